"""Fakes for unit-testing the proxy without a network or a running reactor (STYLE #9)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from gatekeeper.config import Config, parse_config
from gatekeeper.values import HostPort

__all__ = ["FakeUpstreams", "ProducerStringTransport", "fake_config"]


class ProducerStringTransport(StringTransport):
    """A StringTransport that also records pause/resume and abort."""

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", *peer))
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.loseConnection()

    def writeSequence(self, seq: Any) -> None:
        self.write(b"".join(seq))


class FakeUpstreams:
    """An upstream connector: each connect gets a StringTransport (or fails, if told to)."""

    def __init__(self) -> None:
        self.connected: list[tuple[HostPort, Any]] = []
        self.fail_with: Exception | None = None

    def __call__(self, target: HostPort, protocol: Any) -> defer.Deferred[Any]:
        if self.fail_with is not None:
            return defer.fail(self.fail_with)
        transport = ProducerStringTransport(peer=(target.host, target.port))
        protocol.makeConnection(transport)
        self.connected.append((target, protocol))
        return defer.succeed(protocol)


def fake_config(**overrides: Any) -> Config:
    raw = {
        "listeners": [{"name": "default", "bind": "127.0.0.1:9192", "advertised_host": "gk.example", "broker_ports": "9193-9195"}],
        "upstream": {"bootstrap_servers": ["127.0.0.1:19092"]},
        "policy": {"engine": "allow-all"},
        "limits": {"max_frame_bytes": 1024 * 1024},
    }
    raw.update(overrides)
    return parse_config(raw)


def reactor() -> MemoryReactorClock:
    return MemoryReactorClock()
