"""Gateway fixtures in front of the real broker: in-process (real reactor, via pytest-twisted)
and as a real ``twistd -n gatekeeper`` process.

pytest-twisted runs every test inside the reactor's greenlet, so a test that drives a blocking
Kafka client against the in-process gateway is an ``@pytest_twisted.inlineCallbacks`` test that
``yield in_thread(fn, ...)``: the client runs in a thread while the reactor (Gatekeeper) turns."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet import threads

from gatekeeper.config import load_config
from gatekeeper.proxy.gateway import GatewayService
from harness.gateway import GatewayPorts, TwistdGateway, write_config

T = TypeVar("T")


def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Any:
    """A Deferred for a blocking client call run in a thread while the reactor turns."""
    return threads.deferToThread(fn, *args, **kwargs)


class InProcessGateway:
    def __init__(self, service: GatewayService, ports: GatewayPorts) -> None:
        self.service = service
        self.gateway = service.gateway
        self.ports = ports
        self.bootstrap = ports.bootstrap
        self.inputs: list[dict[str, Any]] = []

    def record_inputs(self) -> None:
        original = self.gateway.inputs_decoded

        def record(inputs: list[dict[str, Any]]) -> None:
            self.inputs.extend(inputs)
            original(inputs)

        self.gateway.inputs_decoded = record  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def gateway(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    """Gatekeeper running in this process, on the real reactor, in front of the real broker."""
    gw = start_gateway(tmp_path_factory.mktemp("gateway") / "gatekeeper.yaml", kafka_broker.bootstrap, {})
    yield gw
    pytest_twisted.blockon(gw.service.stopService())


@pytest.fixture(scope="session")
def twistd_gateway(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwistdGateway]:
    """Gatekeeper as a real ``twistd -n gatekeeper`` child process."""
    with TwistdGateway(tmp_path_factory.mktemp("twistd"), kafka_broker.bootstrap) as gw:
        yield gw


def start_gateway(path: Any, upstream: str, extra: dict[str, Any], auth: dict[str, Any] | None = None,
                  tls: dict[str, Any] | None = None) -> InProcessGateway:
    """An in-process gateway with extra config (policy engine, identity …), started."""
    ports = write_config(path, upstream, extra=extra, auth=auth, tls=tls)
    service = GatewayService(load_config(path), _reactor)
    service.startService()
    pytest_twisted.blockon(service.started)  # listening, admin endpoint up (or start failed)
    gw = InProcessGateway(service, ports)
    gw.record_inputs()
    return gw
