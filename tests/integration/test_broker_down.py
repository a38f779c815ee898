"""Broker down or unreachable: the client's connection is closed with a log line, and a later
connection works once the broker is back. The broker's "outage" is a TCP relay in front of the
real broker that the test stops and starts (the shared broker itself keeps running)."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest
import pytest_twisted
from kafka import KafkaProducer
from twisted.internet import defer
from twisted.internet import reactor as _reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.logger import globalLogPublisher
from twisted.protocols import portforward

from gatekeeper.config import load_config
from gatekeeper.kafka.codec import API_TABLE
from gatekeeper.proxy.gateway import GatewayService
from harness.gateway import write_config
from harness.ports import free_port
from tests.integration.conftest import in_thread

pytestmark = pytest.mark.integration


class _Relay(portforward.ProxyFactory):
    """A TCP relay to the real broker that remembers its connections so it can cut them."""

    noisy = False

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.open: set[Any] = set()

    def buildProtocol(self, addr: Any) -> Any:
        p = super().buildProtocol(addr)
        self.open.add(p)
        return p

    def cut(self) -> None:
        for p in self.open:
            p.transport.abortConnection()
        self.open.clear()


def _api_versions_roundtrip(bootstrap: str) -> str:
    """Send ApiVersions v3; 'answered' or 'closed' (by Gatekeeper) as it turns out."""
    host, port = bootstrap.split(":")
    msg = API_TABLE[18].request[3](client_software_name="t", client_software_version="1")
    msg.with_header(correlation_id=1, client_id="probe")
    body = bytes(msg.encode(header=True))
    with socket.create_connection((host, int(port)), timeout=15) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        data = s.recv(4)
        return "answered" if len(data) == 4 else "closed"


def _hold_then_wait_close(bootstrap: str, ready: Any) -> str:
    host, port = bootstrap.split(":")
    msg = API_TABLE[18].request[3](client_software_name="t", client_software_version="1")
    msg.with_header(correlation_id=1, client_id="holder")
    body = bytes(msg.encode(header=True))
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        (n,) = struct.unpack(">i", s.recv(4))
        while n > 0:
            n -= len(s.recv(n))
        _reactor.callFromThread(ready.callback, None)
        return "closed" if s.recv(1) == b"" else "data"


def _produce_one(bootstrap: str, topic: str) -> int:
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    md = p.send(topic, b"after-outage").get(30)
    p.close()
    return int(md.offset)


@pytest_twisted.inlineCallbacks
def test_unreachable_broker_closes_clients_and_recovers(kafka_broker, tmp_path):
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    relay_port = free_port()
    host, port = kafka_broker.bootstrap.split(":")
    ports = write_config(tmp_path / "gk.yaml", f"127.0.0.1:{relay_port}")
    service = GatewayService(load_config(tmp_path / "gk.yaml"), _reactor)
    service.startService()
    try:
        yield service.started
        # 1. Nothing listens upstream: the client is closed, with a line naming the broker.
        outcome = yield in_thread(_api_versions_roundtrip, ports.bootstrap)
        assert outcome == "closed"
        assert any(f"cannot reach broker 127.0.0.1:{relay_port}" in str(e.get("why", "")) for e in events)
        # 2. The broker comes back: a later connection works, and real clients produce.
        relay = _Relay(host, int(port))
        listening = yield TCP4ServerEndpoint(_reactor, relay_port, interface="127.0.0.1").listen(relay)
        assert (yield in_thread(_api_versions_roundtrip, ports.bootstrap)) == "answered"
        kafka_broker.create_topic("outage-topic")
        offset = yield in_thread(_produce_one, ports.bootstrap, "outage-topic")
        assert offset >= 0
        # 3. The broker connection drops under a connected client: that client is closed.
        ready: defer.Deferred[None] = defer.Deferred()
        holder = in_thread(_hold_then_wait_close, ports.bootstrap, ready)
        yield ready
        relay.cut()
        assert (yield holder) == "closed"
        assert any("broker connection closed" in str(e.get("why", "")) for e in events)
        yield listening.stopListening()
    finally:
        globalLogPublisher.removeObserver(events.append)
        yield service.stopService()
