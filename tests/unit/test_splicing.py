"""The splicing relay: where it installs, the process's pipes, and its moves over real loopback
TCP connections (the copy an audited answer needs included)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import termios
import threading
import time

import pytest

from gatekeeper.proxy import splicing

pytestmark = pytest.mark.skipif(not hasattr(os, "splice"), reason="splice(2) is Linux-only")


def _pending(fd: int) -> int:
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little")


def test_the_pipe_is_handed_out_empty_and_one_holding_stale_bytes_is_replaced() -> None:
    splicing._Pipe.discard()
    r, w, size = splicing._Pipe.get()  # type: ignore[misc]
    assert size >= splicing._MIN_PIPE_BYTES and _pending(r) == 0
    assert splicing._Pipe.get() == (r, w, size)  # the same pipe while it is empty
    os.write(w, b"another connection's bytes")
    r2, w2, _ = splicing._Pipe.get()  # type: ignore[misc]
    assert _pending(r2) == 0  # a new pipe (the kernel may give it the old numbers)
    os.write(w2, b"x")
    assert os.read(r2, 100) == b"x"  # and one that works
    splicing._Pipe.discard()
    assert splicing._Pipe.fds is None


class _Core:
    closing = False

    def passthrough_next(self, read: bool = False) -> bool:
        return False

    def passthrough_left(self, read: bool = False) -> int:
        return 0

    def passthrough_view(self) -> memoryview | None:
        return None

    def passed_through(self, n: int, queued: int = 0, read: bool = False) -> None:
        pass


def test_no_relay_for_what_is_not_plain_tcp_or_a_core_that_cannot_pass_bytes() -> None:
    class NotTcp:
        TLS = False

    assert splicing.splice_relay(_Core(), NotTcp(), NotTcp()) is None
    assert splicing.splice_relay(object(), NotTcp(), NotTcp()) is None


def test_copy_pipes_are_handed_out_empty_as_large_as_asked_and_replaced_when_stale() -> None:
    splicing._CopyPipes.discard()
    pipes = splicing._CopyPipes.get(1024 * 1024)
    assert pipes is not None and len(pipes) == splicing._COPY_PIPES
    assert all(_pending(r) == 0 and fcntl.fcntl(w, fcntl.F_GETPIPE_SZ) >= 1024 * 1024 for r, w in pipes)
    assert splicing._CopyPipes.get(1024 * 1024) is pipes  # the same pipes while they are empty
    os.write(pipes[2][1], b"another connection's bytes")
    fresh = splicing._CopyPipes.get(1024 * 1024)
    assert fresh is not None and all(_pending(r) == 0 for r, _ in fresh)
    splicing._CopyPipes.discard()
    assert splicing._CopyPipes.fds is None


# The relay's move over real loopback TCP connections: a "broker" socket sending one answer's
# bytes, the gateway's two sockets, and a "client" socket read by a thread. The core is a plain
# object with one answer to pass on and (for an audited answer) a buffer the copy must fill.

class _Conn:
    """What the relay uses of a Twisted TCP transport, over a real socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.queued: list[bytes] = []

    def fileno(self) -> int:
        return self.socket.fileno()

    def doRead(self) -> str:
        return "twisted's read"

    def writeSequence(self, chunks: list[bytes]) -> None:
        self.queued.extend(chunks)


class _Answer:
    """A core with one answer of ``size`` bytes to pass on, read (copied into ``buf``) or not."""

    closing = False

    def __init__(self, size: int, read: bool) -> None:
        self.buf = bytearray(size) if read else None
        self.left = size
        self.passed: list[tuple[int, int]] = []

    def passthrough_next(self, read: bool = False) -> bool:
        return False

    def passthrough_left(self, read: bool = False) -> int:
        return self.left

    def passthrough_view(self) -> memoryview | None:
        return None if self.buf is None else memoryview(self.buf)[len(self.buf) - self.left:]

    def passed_through(self, n: int, queued: int = 0, read: bool = False) -> None:
        assert read and 0 < n <= self.left and 0 <= queued <= n
        self.left -= n
        self.passed.append((n, queued))


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        a = socket.create_connection(server.getsockname())
        b, _ = server.accept()
    return a, b


class _Wire:
    """broker -> (upstream) gateway (client) -> client, all loopback TCP."""

    def __init__(self, data: bytes) -> None:
        self.broker, upstream = _tcp_pair()
        client, self.client = _tcp_pair()
        upstream.setblocking(False)
        client.setblocking(False)
        self.upstream, self.to_client = _Conn(upstream), _Conn(client)
        self.got = bytearray()
        self._sender = threading.Thread(target=self.broker.sendall, args=(data,), daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        with contextlib.suppress(OSError):  # closed under it when a test fails
            while chunk := self.client.recv(1 << 20):
                self.got += chunk

    def start(self, reader: bool = True) -> None:
        self._sender.start()
        if reader:
            self._reader.start()

    def finish(self) -> bytes:
        """Everything the client was given: what reached its socket, then what was queued."""
        self.to_client.socket.close()
        self._reader.join(10)
        return bytes(self.got) + b"".join(self.to_client.queued)

    def close(self) -> None:
        for s in (self.broker, self.client, self.upstream.socket, self.to_client.socket):
            s.close()


def _relay(core: _Answer, wire: _Wire) -> splicing.SpliceRelay:
    return splicing.SpliceRelay(core, wire.upstream, wire.to_client)  # type: ignore[arg-type]


def _move_all(relay: splicing.SpliceRelay, core: _Answer, wire: _Wire, pipe: tuple[int, int, int],
              copies: list[tuple[int, int]] | None) -> None:
    """Readable events until the answer has passed. After an event that queued (the client's
    socket full), the rest goes Twisted's way, as in the gateway: read here, into the core's
    buffer, and queued behind."""
    while core.left and not any(q for _, q in core.passed):
        select.select([wire.upstream.socket], [], [], 10)
        view = core.passthrough_view()
        copy = None if view is None or copies is None else splicing._Copy(splicing._tee, copies, view)  # type: ignore[arg-type]
        assert relay._move(pipe, core.left, copy) is None
    while core.left:
        select.select([wire.upstream.socket], [], [], 10)
        chunk = wire.upstream.socket.recv(core.left)
        assert chunk
        view = core.passthrough_view()
        if view is not None:
            view[:len(chunk)] = chunk
        wire.to_client.queued.append(chunk)
        core.left -= len(chunk)


def _data(size: int) -> bytes:
    return os.urandom(size)


@pytest.mark.parametrize("read", [False, True], ids=["unread", "read"])
def test_an_answer_reaches_the_client_whole_and_an_audited_one_is_copied_exactly(read: bool) -> None:
    data = _data(6 * 1024 * 1024 + 12345)  # more than one event's worth (_MAX_PER_EVENT)
    core, wire = _Answer(len(data), read), _Wire(data)
    try:
        pipe = splicing._Pipe.get()
        copies = splicing._CopyPipes.get(pipe[2]) if pipe is not None else None
        assert pipe is not None and copies is not None
        wire.start()
        _move_all(_relay(core, wire), core, wire, pipe, copies)
        assert core.left == 0 and sum(n for n, _ in core.passed) > splicing._MAX_PER_EVENT  # two events or more
        assert wire.finish() == data
        if read:
            assert core.buf == data
        assert _pending(pipe[0]) == 0 and all(_pending(r) == 0 for r, _ in copies)  # empty between events
    finally:
        wire.close()


def test_steps_that_overflow_the_copy_pipes_are_copied_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copy pipes as large as the splicing pipe but smaller than an event: steps are taken in
    part by one pipe and whole by the next, and the pipes are read out mid-event and reused;
    no step is read back (an empty copy pipe takes any step)."""
    reads: list[int] = []
    read = splicing._Copy.read

    def counted(self: splicing._Copy) -> None:
        reads.append(len(self.held))
        read(self)

    monkeypatch.setattr(splicing._Copy, "read", counted)
    monkeypatch.setattr(splicing.SpliceRelay, "_read_back", lambda *a: pytest.fail("a step was read back"))
    data = _data(3 * 1024 * 1024 + 777)
    core, wire = _Answer(len(data), True), _Wire(data)
    made = [splicing._sized_pipe(64 * 1024) for _ in range(splicing._COPY_PIPES + 1)]
    try:
        assert all(p is not None and p[2] == 64 * 1024 for p in made)
        pipe, copies = made[0], [p[:2] for p in made[1:]]  # type: ignore[index]
        wire.start()
        _move_all(_relay(core, wire), core, wire, pipe, copies)  # type: ignore[arg-type]
        assert core.left == 0 and sum(n for n, _ in core.passed) > 64 * 1024 * splicing._COPY_PIPES
        assert len(reads) > len(core.passed)  # read out mid-event too
        assert core.buf == data
        assert wire.finish() == data
    finally:
        wire.close()
        for fd in (fd for p in made if p is not None for fd in p[:2]):
            os.close(fd)


def test_a_step_no_copy_pipe_takes_whole_is_read_back_and_queued_in_order() -> None:
    """Copy pipes smaller than a step: the step is read out of the splicing pipe into the buffer
    and queued on the client's transport behind what was spliced, and the event ends there."""
    data = _data(2 * 1024 * 1024)
    core, wire = _Answer(len(data), True), _Wire(data)
    main = splicing._sized_pipe(512 * 1024)
    small = [splicing._sized_pipe(4096) for _ in range(splicing._COPY_PIPES)]
    try:
        assert main is not None and all(p is not None for p in small)
        wire.start(reader=False)
        deadline = time.monotonic() + 10
        while _pending(wire.upstream.socket.fileno()) < 64 * 1024:  # a step larger than a copy pipe
            assert time.monotonic() < deadline
            time.sleep(0.01)
        wire._reader.start()
        _move_all(_relay(core, wire), core, wire, main, [p[:2] for p in small])  # type: ignore[index]
        (moved, queued), = core.passed  # one event: its first step was read back and queued
        assert moved == queued >= 64 * 1024
        assert core.buf == data
        assert wire.finish() == data  # and what went Twisted's way after it
        assert all(_pending(p[0]) == 0 for p in small)  # type: ignore[index]
    finally:
        wire.close()
        for fd in (fd for p in [main, *small] if p is not None for fd in p[:2]):
            os.close(fd)
