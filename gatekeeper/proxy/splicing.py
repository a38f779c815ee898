"""Relaying the rest of an unchanged answer with splice(2): broker socket, pipe, client socket.

A Fetch answer that is cut through (nothing in it to rewrite or mask; in practice any answer cut
through, but only Fetch and ShareFetch answers are large) passes Gatekeeper unchanged, yet
Twisted's read copies each chunk out of the kernel into Python, and the write copies it back in.
When both sockets are plain TCP, a :class:`SpliceRelay` takes over the broker connection's read:
while the connection core says the broker's next bytes go to the client as they are
(``passthrough_left``), they are spliced from the broker's socket into a pipe and from the pipe
into the client's socket, and the core is told how many passed (``passed_through``). The
answer's first bytes (its frame header, which the core reads to match it to its request) and
everything else take Twisted's ordinary read.

An answer the audit trail reads (a Fetch answer's offsets) is moved the same way when the core
offers it (``passthrough_view``): each step first copies the bytes from the broker's socket into
the core's buffer without taking them (``MSG_PEEK``), then splices them. That is one copy out of
the kernel, in steps as large as the pipe, where Twisted's read would make it in 64 KiB steps and
the write would copy every byte back in.

Order: the client's socket is written only while its transport has nothing queued (as
``write_through`` does), and the core writes nothing else to the client until the answer has
passed. Whatever the client's socket does not take is read back out of the pipe and queued on the
transport, so the pipe is empty between events; the transport's queue then pauses the broker's
reads when it grows, as it always did, and the next bytes go Twisted's way behind the queue.

One pipe serves the whole process (the reactor thread uses it for one answer's bytes at a time):
it is checked empty before each use and replaced after any failure, so no byte of one
connection's answer can reach another client.

Errors: a broker read that fails ends the connection as Twisted's own read would
(``CONNECTION_LOST``); the end of the stream is left to Twisted's read, which meets it and closes
as usual; a client write that fails queues the rest on the transport, which meets the error on
its own write and closes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
import termios
from typing import Any

from twisted.internet import main, tcp

from gatekeeper.proxy.writes import nothing_queued

__all__ = ["SpliceRelay", "splice_relay"]

_MIN_BYTES = 16 * 1024  # less than this left of the answer: an ordinary read costs no more
_PIPE_BYTES = 1024 * 1024  # the pipe size asked for
_MIN_PIPE_BYTES = 64 * 1024  # a smaller pipe (the user's pipe allowance spent) is not worth it
_MAX_PER_EVENT = 4 * 1024 * 1024  # bytes moved in one readable event before the reactor's turn
_HEAD = 8  # an answer's length and correlation id
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_RETRY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)


def splice_relay(core: Any, upstream: Any, client: Any) -> SpliceRelay | None:
    """A relay installed on the broker connection's read, or None where it cannot work: no
    ``os.splice`` (not Linux), either side not a plain TCP connection (TLS, a wrapper protocol),
    or a core that cannot pass bytes through."""
    if not hasattr(os, "splice") or not sys.platform.startswith("linux"):
        return None
    if not all(hasattr(core, a) for a in ("passthrough_next", "passthrough_left", "passthrough_view", "passed_through",
                                          "closing")):
        return None
    for t in (upstream, client):
        if not isinstance(t, tcp.Connection) or t.TLS:
            return None
    return SpliceRelay(core, upstream, client)


class _Pipe:
    """The process's one splicing pipe: (read end, write end, size), empty whenever it is handed
    out; None when no usable pipe can be had (then Twisted's read is used)."""

    fds: tuple[int, int] | None = None
    size = 0

    @classmethod
    def get(cls) -> tuple[int, int, int] | None:
        fds = cls.fds
        if fds is not None:
            try:
                left = int.from_bytes(fcntl.ioctl(fds[0], termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
            except OSError:
                left = -1
            if left == 0:
                return fds[0], fds[1], cls.size
            cls.discard()  # never: every use empties it; but a stale byte must not reach a client
        try:
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        with contextlib.suppress(OSError):  # over the user's pipe allowance: the size the kernel gives
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        try:
            size = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
        except OSError:
            size = 0
        if size < _MIN_PIPE_BYTES:
            os.close(r)
            os.close(w)
            return None
        cls.fds, cls.size = (r, w), size
        return r, w, size

    @classmethod
    def discard(cls) -> None:
        if cls.fds is not None:
            for fd in cls.fds:
                os.close(fd)
            cls.fds = None


class SpliceRelay:
    def __init__(self, core: Any, upstream: tcp.Connection, client: tcp.Connection) -> None:
        self.core, self.upstream, self.client = core, upstream, client
        self._read = upstream.doRead  # Twisted's own read, for everything the relay does not move
        self._closed = False
        upstream.doRead = self.doRead  # type: ignore[method-assign]

    def close(self) -> None:
        """The client connection ended: Twisted's read from now on."""
        self._closed = True

    def doRead(self) -> Any:
        core = self.core
        if self._closed:
            return self._read()
        left = core.passthrough_left(read=True)
        # Most reads (every Produce answer) stop at the core's cheap answer, before the client's
        # transport is looked at.
        if (left < _MIN_BYTES and (left or not core.passthrough_next(read=True))) or not nothing_queued(self.client):
            return self._read()
        if left < _MIN_BYTES:  # a large answer passed as it is comes next: take its head, move the rest
            try:
                head = self._large_answer_head()
            except OSError as e:
                return None if e.errno in _RETRY else main.CONNECTION_LOST
            if head is None:
                return self._read()
            self.upstream.protocol.dataReceived(head)  # the core reads it and starts the answer
            left = core.passthrough_left(read=True)
            if left < _MIN_BYTES or not nothing_queued(self.client):
                return None  # the socket is still readable: the next event goes on with it
        pipe = _Pipe.get()
        if pipe is None:
            return self._read()
        try:
            return self._move(pipe, left)
        except BaseException:
            _Pipe.discard()  # whatever it holds goes to no one
            raise

    def _move(self, pipe: tuple[int, int, int], left: int) -> Any:
        core = self.core
        sock = self.upstream.socket
        source, sink = self.upstream.fileno(), self.client.fileno()
        moved = 0
        while left and moved < _MAX_PER_EVENT:
            want = min(left, pipe[2])
            # An answer the core reads: its next bytes are copied into the core's buffer without
            # being taken (a peek), then the same bytes are spliced. Splice may take fewer than
            # were peeked; only those count, and the next peek copies the rest again.
            view = core.passthrough_view()
            try:
                if view is not None:
                    want = sock.recv_into(view, want, socket.MSG_PEEK)  # 0 at the end: the splice gives 0 too
                n = os.splice(source, pipe[1], want, flags=_FLAGS)
            except OSError as e:
                return None if e.errno in _RETRY else main.CONNECTION_LOST
            if n == 0:  # the end of the stream: Twisted's read meets it and closes
                return None if moved else self._read()
            queued = self._to_client(pipe[0], sink, n)
            moved += n
            core.passed_through(n, queued, read=True)
            if queued or core.closing:
                break  # the client's socket is full: the rest of the answer goes Twisted's way
            left = core.passthrough_left(read=True)
        return None

    def _large_answer_head(self) -> bytes | None:
        """The next answer's first 8 bytes, taken from the broker's socket, if at least that
        many have arrived and the answer runs to ``_MIN_BYTES`` or more; else None, nothing taken."""
        sock = self.upstream.socket
        head = sock.recv(_HEAD, socket.MSG_PEEK)
        if len(head) < _HEAD or int.from_bytes(head[:4], "big", signed=True) + 4 - _HEAD < _MIN_BYTES:
            return None
        return sock.recv(_HEAD)  # the same 8 bytes: they are there

    def _to_client(self, source: int, sink: int, n: int) -> int:
        """Moves the ``n`` bytes in the pipe to the client's socket; what it does not take is
        read back out of the pipe and queued on the client's transport. Returns how many were
        queued."""
        taken = 0
        while taken < n:
            try:
                k = os.splice(source, sink, n - taken, flags=_FLAGS)
            except OSError:  # full (EAGAIN), or broken: the transport's own write meets the error
                break
            if k == 0:
                break
            taken += k
        if taken == n:
            return 0
        rest = []
        want = n - taken
        while want:
            chunk = os.read(source, want)
            if not chunk:
                raise OSError(f"the splicing pipe gave back {n - taken - want} of {n - taken} bytes")
            rest.append(chunk)
            want -= len(chunk)
        self.client.writeSequence(rest)
        return n - taken
