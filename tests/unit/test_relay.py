"""The fault tests' relay (harness.relay): passes bytes, stalls, delays, in order."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from harness.ports import free_port
from harness.relay import Relay


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def relay() -> Iterator[Relay]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with Relay(free_port(), f"127.0.0.1:{server.server_address[1]}") as r:
        yield r
    server.shutdown()
    server.server_close()


def _roundtrip(relay: Relay, payload: bytes, timeout: float = 10.0) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", relay.listen_port), timeout=timeout) as s:
        started = time.monotonic()
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got, time.monotonic() - started


def test_passes_bytes_both_ways_in_order(relay: Relay) -> None:
    payload = bytes(range(256)) * 2000
    got, _ = _roundtrip(relay, payload)
    assert got == payload
    assert relay.bytes == {"request": len(payload), "response": len(payload)} and relay.connections == 1


def test_delay_holds_one_direction(relay: Relay) -> None:
    relay.delay("response", 0.5)
    got, took = _roundtrip(relay, b"ping")
    assert got == b"ping" and took >= 0.45
    relay.delay("response", 0)
    assert _roundtrip(relay, b"pong")[1] < 0.4


def test_stall_holds_everything_until_it_ends(relay: Relay) -> None:
    with socket.create_connection(("127.0.0.1", relay.listen_port), timeout=10) as s:
        s.sendall(b"before")
        assert s.recv(100) == b"before"
        relay.stall(True)
        s.sendall(b"during")
        s.settimeout(0.5)
        with pytest.raises(socket.timeout):
            s.recv(100)
        relay.stall(False)
        s.settimeout(10)
        assert s.recv(100) == b"during"


def test_unknown_direction_is_refused(relay: Relay) -> None:
    with pytest.raises(ValueError, match="direction"):
        relay.delay("sideways", 1)
