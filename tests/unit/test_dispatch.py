"""The epoll reactor's direct event dispatch (gatekeeper/proxy/dispatch.py), on reactors of
their own (never the test run's), with real sockets on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twisted.internet import epollreactor, protocol
from twisted.internet.selectreactor import SelectReactor
from twisted.logger import capturedLogs

from gatekeeper.proxy.dispatch import dispatch_directly


def _close(r: Any) -> None:
    """Close what a reactor built for a test opened: its connections, its waker, its poller."""
    r.disconnectAll()
    waker = getattr(r, "waker", None)
    if waker is not None:
        r.removeReader(waker)
        waker.connectionLost(None)
    poller = getattr(r, "_poller", None)
    if poller is not None:
        poller.close()


@pytest.fixture
def reactor() -> Iterator[Any]:
    r = epollreactor.EPollReactor()
    yield r
    _close(r)


def _spin(r: Any, until: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the reactor did not get there"
        r.iterate(0.01)


class _Echo(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        if data.startswith(b"boom"):
            raise RuntimeError("a protocol failed")
        self.transport.write(data)


def _listen(r: Any) -> int:
    port = r.listenTCP(0, protocol.Factory.forProtocol(_Echo), interface="127.0.0.1")
    return int(port.getHost().port)


def _connect(r: Any, port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    return s


def _read(r: Any, s: socket.socket, n: int) -> bytes:
    got = bytearray()

    def done() -> bool:
        try:
            chunk = s.recv(65536)
        except BlockingIOError:
            return False
        if not chunk:
            return True
        got.extend(chunk)
        return len(got) >= n

    _spin(r, done)
    return bytes(got)


def test_only_twisteds_own_epoll_reactor_is_changed() -> None:
    other = SelectReactor()
    try:
        before = other.doIteration
        assert dispatch_directly(other) is False
        assert other.doIteration == before
    finally:
        _close(other)

    class Derived(epollreactor.EPollReactor):
        pass

    derived = Derived()
    try:
        assert dispatch_directly(derived) is False
        assert derived.doIteration == Derived.doIteration.__get__(derived)
    finally:
        _close(derived)


def test_installed_once(reactor: Any) -> None:
    assert dispatch_directly(reactor) is True
    installed = reactor.doIteration
    assert dispatch_directly(reactor) is True
    assert reactor.doIteration is installed


@pytest.mark.parametrize("direct", [True, False])
def test_connections_are_served_with_or_without_the_log_context(reactor: Any, monkeypatch: pytest.MonkeyPatch,
                                                                 direct: bool) -> None:
    contexts: list[Any] = []
    original = epollreactor.log.callWithLogger

    def counting(*args: Any, **kwargs: Any) -> Any:
        contexts.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(epollreactor.log, "callWithLogger", counting)
    if direct:
        dispatch_directly(reactor)
    port = _listen(reactor)
    client = _connect(reactor, port)
    try:
        payload = bytes(range(256)) * 1024  # several reads and writes each way
        client.sendall(payload)
        assert _read(reactor, client, len(payload)) == payload
    finally:
        client.close()
    # The control (Twisted's own dispatch) goes through the log context for every event; the
    # direct dispatch through none.
    assert (len(contexts) == 0) if direct else (len(contexts) > 2)


def test_a_failing_protocol_loses_its_connection_and_the_reactor_goes_on(reactor: Any) -> None:
    dispatch_directly(reactor)
    port = _listen(reactor)
    bad, good = _connect(reactor, port), _connect(reactor, port)
    try:
        with capturedLogs() as events:
            bad.sendall(b"boom")
            assert _read(reactor, bad, 1) == b"", "the failing connection was closed"
            good.sendall(b"still here")
            assert _read(reactor, good, 10) == b"still here"
        # Twisted's own handling: a legacy log.err of the protocol's failure, then the disconnection.
        assert any("a protocol failed" in str(e.get("failure", "")) for e in events)
    finally:
        bad.close()
        good.close()


def test_an_error_escaping_one_descriptor_is_logged_and_the_others_in_the_poll_still_run(reactor: Any) -> None:
    dispatch_directly(reactor)
    pairs = [socket.socketpair() for _ in range(3)]
    reads: list[int] = []

    class Reader:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def fileno(self) -> int:
            return self.sock.fileno()

        def logPrefix(self) -> str:
            return "reader"

        def doRead(self) -> None:
            self.sock.recv(100)
            reads.append(self.fileno())

        def connectionLost(self, reason: Any) -> None:
            pass

    readers = [Reader(a) for a, _ in pairs]
    for r in readers:
        reactor.addReader(r)
    handle = reactor._doReadOrWrite

    def failing_first(selectable: Any, fd: int, event: int) -> None:
        if selectable is readers[0]:
            raise RuntimeError("escaped _doReadOrWrite")
        handle(selectable, fd, event)

    reactor._doReadOrWrite = failing_first
    try:
        with capturedLogs() as events:
            for _, b in pairs:
                b.send(b"x")
            _spin(reactor, lambda: len(reads) >= 2)
            reactor.iterate(0)  # one more poll: still nothing from the first
        assert sorted(reads) == sorted(r.fileno() for r in readers[1:])
        assert [e for e in events if "escaped _doReadOrWrite" in str(e.get("log_failure", ""))]
    finally:
        for r in readers:
            reactor.removeReader(r)
        for a, b in pairs:
            a.close()
            b.close()
