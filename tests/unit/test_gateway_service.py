"""GatewayService.started on a memory reactor: fires once listening, fails when starting fails."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from gatekeeper.proxy.gateway import GatewayService
from gatekeeper.testing.fakes import fake_config

ADMIN_PORT = 9180


class _AdminPortTaken(MemoryReactorClock):
    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        if port == ADMIN_PORT:
            raise CannotListenError(interface, port, OSError("address already in use"))
        return super().listenTCP(port, factory, backlog, interface)


@pytest.fixture(autouse=True)
def _keep_sighup() -> Iterator[None]:
    """startService installs a SIGHUP handler (main thread): put pytest's back afterwards."""
    previous = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, previous)


def _start(reactor: MemoryReactorClock) -> tuple[GatewayService, list[Any]]:
    service = GatewayService(fake_config(admin={"bind": f"127.0.0.1:{ADMIN_PORT}"}), reactor)
    service.startService()
    results: list[Any] = []
    service.started.addBoth(results.append)
    return service, results


def test_started_fires_once_every_listener_and_the_admin_endpoint_listen() -> None:
    reactor = MemoryReactorClock()
    service, results = _start(reactor)
    assert results == [None]
    # bootstrap 9192, broker ports 9193-9195, admin last
    assert [port for port, *_ in reactor.tcpServers] == [9192, 9193, 9194, 9195, ADMIN_PORT]
    assert service.admin_port is not None and len(service.gateway.ports) == 4
    assert not reactor.hasStopped


def test_started_fails_after_the_failure_is_handled(capsys: pytest.CaptureFixture[str]) -> None:
    reactor = _AdminPortTaken()
    service, results = _start(reactor)
    assert len(results) == 1 and isinstance(results[0], Failure)
    assert results[0].check(CannotListenError)
    # The existing handling ran first: a line on stderr, the reactor stopped, exit status 3.
    assert "gatekeeper: failed to start:" in capsys.readouterr().err
    assert reactor.hasStopped
    assert (os._exit, (3,), {}) in reactor.triggers["after"]["shutdown"]
    assert service.admin_port is None
