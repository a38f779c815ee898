"""write_through: chunks go straight to the socket when nothing is queued, the rest is queued
behind nothing, and everything else takes Twisted's path."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from twisted.internet import tcp

from gatekeeper.proxy.writes import write_through


class Transport(tcp.Connection):
    """A Twisted TCP connection over a real socket, with the attributes write_through reads
    (not registered with a reactor: only its socket and buffers are used)."""

    TLS = False

    def __init__(self, sock: socket.socket) -> None:  # no super().__init__: no reactor
        self.socket = sock
        self.connected = True
        self.disconnecting = False
        self._writeDisconnected = False
        self._tempDataBuffer: list[bytes] = []
        self.dataBuffer = b""
        self.offset = 0
        self.queued: list[bytes] = []

    def writeSequence(self, chunks: Any) -> None:  # noqa: N802 (Twisted's name)
        self.queued.extend(bytes(c) for c in chunks)


@pytest.fixture
def pair() -> Any:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def _drain(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return out
        if not data:
            return out
        out += data


def test_nothing_queued_sends_every_chunk_at_once_in_order(pair: Any) -> None:
    a, b = pair
    t = Transport(a)
    write_through(t, [b"head", b"-", b"body"])
    assert t.queued == []
    assert _drain(b) == b"head-body"


def test_what_the_kernel_does_not_take_is_queued_in_order(pair: Any) -> None:
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    t = Transport(a)
    chunks = [bytes([i]) * 100_000 for i in range(1, 6)]
    write_through(t, chunks)
    assert t.queued, "a 500 kB write into a 4 kB send buffer cannot all be taken at once"
    received = _drain(b)
    assert received + b"".join(t.queued) == b"".join(chunks)


@pytest.mark.parametrize("state", ["queued", "partly_sent", "tls", "closing", "not_connected", "write_closed"])
def test_otherwise_twisted_queues_it(pair: Any, state: str) -> None:
    a, b = pair
    t = Transport(a)
    if state == "queued":
        t._tempDataBuffer = [b"earlier"]
    elif state == "partly_sent":
        t.dataBuffer, t.offset = b"earlier", 3
    elif state == "tls":
        t.TLS = True
    elif state == "closing":
        t.disconnecting = True
    elif state == "not_connected":
        t.connected = False
    else:
        t._writeDisconnected = True
    write_through(t, [b"later"])
    assert t.queued == [b"later"]
    assert _drain(b) == b""


def test_a_wrapper_that_forwards_to_a_tcp_connection_is_not_written_through(pair: Any) -> None:
    # A TLS wrapper protocol (listener TLS) answers attribute reads from the TCP transport
    # beneath it: written through, its bytes would go to the socket unencrypted.
    a, b = pair
    inner = Transport(a)

    class Wrapper:
        def __getattr__(self, name: str) -> Any:
            return getattr(inner, name)

        def writeSequence(self, chunks: Any) -> None:  # noqa: N802
            inner.queued.extend(chunks)

    write_through(Wrapper(), [b"secret"])
    assert _drain(b) == b""
    assert inner.queued == [b"secret"]


def test_a_socket_error_is_left_to_twisted(pair: Any) -> None:
    a, b = pair
    b.close()
    t = Transport(a)
    write_through(t, [b"x"] * 3)  # EPIPE or ECONNRESET: queued, Twisted's send reports it
    assert t.queued == [b"x"] * 3
