"""Relaying the rest of an answer nobody reads with splice(2): broker socket, pipe, client socket.

A Fetch answer that is cut through (nothing in it to rewrite, not read for the audit trail or
masking) passes Gatekeeper unchanged, yet Twisted's read copies each chunk out of the kernel
into Python, and the write copies it back in. When both sockets are plain TCP, a
:class:`SpliceRelay` takes over the broker connection's read: while the connection core says the
broker's next bytes go to the client as they are (``passthrough_left``), they are spliced from
the broker's socket into a pipe and from the pipe into the client's socket, and the core is told
how many passed (``passed_through``). The answer's first bytes (its frame header, which the core
reads to match it to its request) and everything else take Twisted's ordinary read.

Order: the client's socket is written only while its transport has nothing queued (as
``write_through`` does), and the core writes nothing else to the client until the answer has
passed. Whatever the client's socket does not take is read back out of the pipe and queued on the
transport, so the pipe is empty between events; the transport's queue then pauses the broker's
reads when it grows, as it always did, and the next bytes go Twisted's way behind the queue.

Errors: a broker read that fails or meets the end of the stream before anything moved is left to
Twisted's read, which meets it again and closes as usual; a client write that fails queues the
rest on the transport, which meets the error on its own write and closes.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from typing import Any

from twisted.internet import tcp

from gatekeeper.proxy.writes import nothing_queued

__all__ = ["SpliceRelay", "splice_relay"]

_MIN_BYTES = 16 * 1024  # less than this left of the answer: an ordinary read costs no more
_PIPE_BYTES = 1024 * 1024  # the pipe size asked for (the kernel may refuse; then its default)
_MAX_PER_EVENT = 4 * 1024 * 1024  # bytes moved in one readable event before the reactor's turn
_HEAD = 8  # an answer's length and correlation id
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)


def splice_relay(core: Any, upstream: Any, client: Any) -> SpliceRelay | None:
    """A relay installed on the broker connection's read, or None where it cannot work: no
    ``os.splice`` (not Linux), either side not a plain TCP connection (TLS, a wrapper protocol),
    or a core that cannot pass bytes through."""
    if (not hasattr(os, "splice") or not sys.platform.startswith("linux")
            or not hasattr(core, "passthrough_left") or not hasattr(core, "passed_through")):
        return None
    for t in (upstream, client):
        if not isinstance(t, tcp.Connection) or t.TLS:
            return None
    return SpliceRelay(core, upstream, client)


class SpliceRelay:
    def __init__(self, core: Any, upstream: tcp.Connection, client: tcp.Connection) -> None:
        self.core, self.upstream, self.client = core, upstream, client
        self._read = upstream.doRead  # Twisted's own read, for everything the relay does not move
        self._pipe: tuple[int, int] | None = None
        self._pipe_bytes = 0
        self._failed = False  # the pipe could not be made: Twisted's read from then on
        upstream.doRead = self.doRead  # type: ignore[method-assign]

    def close(self) -> None:
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None

    def doRead(self) -> Any:
        core = self.core
        if self._failed or not nothing_queued(self.client):
            return self._read()
        left = core.passthrough_left()
        if left < _MIN_BYTES:
            if left or not core.passthrough_next():
                return self._read()
            head = self._large_answer_head()
            if head is None:
                return self._read()
            self.upstream.protocol.dataReceived(head)  # the core reads it and starts the answer
            left = core.passthrough_left()
            if left < _MIN_BYTES or not nothing_queued(self.client):
                return None  # the socket is still readable: the next event goes on with it
        pipe = self._pipe or self._open()
        if pipe is None:
            return self._read()
        source, sink = self.upstream.fileno(), self.client.fileno()
        moved = 0
        while left and moved < _MAX_PER_EVENT:
            try:
                n = os.splice(source, pipe[1], min(left, self._pipe_bytes), flags=_FLAGS)
            except BlockingIOError:
                break
            except OSError:
                n = 0
            if n == 0:  # the end of the stream, or an error: Twisted's read meets it and closes
                return None if moved else self._read()
            taken = self._to_client(pipe, sink, n)
            moved += n
            core.passed_through(n)
            if taken < n or core.closing:
                break  # the client's socket is full: the rest of the answer goes Twisted's way
            left = core.passthrough_left()
        return None

    def _large_answer_head(self) -> bytes | None:
        """The next answer's first 8 bytes, taken from the broker's socket, if at least that
        many have arrived and the answer runs to ``_MIN_BYTES`` or more; else None, nothing taken."""
        sock = self.upstream.socket
        try:
            head = sock.recv(_HEAD, socket.MSG_PEEK)
        except OSError:
            return None
        if len(head) < _HEAD or int.from_bytes(head[:4], "big", signed=True) + 4 - _HEAD < _MIN_BYTES:
            return None
        return sock.recv(_HEAD)  # the same 8 bytes: they are there

    def _to_client(self, pipe: tuple[int, int], sink: int, n: int) -> int:
        """Moves the ``n`` bytes in the pipe to the client's socket; what it does not take is
        queued on the client's transport. Returns how many the socket took."""
        taken = 0
        while taken < n:
            try:
                k = os.splice(pipe[0], sink, n - taken, flags=_FLAGS)
            except OSError:  # full (EAGAIN), or broken: the transport's own write meets the error
                break
            if k == 0:
                break
            taken += k
        if taken < n:
            rest = []
            want = n - taken
            while want:
                chunk = os.read(pipe[0], want)
                rest.append(chunk)
                want -= len(chunk)
            self.client.writeSequence(rest)
        return taken

    def _open(self) -> tuple[int, int] | None:
        try:
            pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            self._failed = True
            return None
        try:
            fcntl.fcntl(pipe[1], fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        except OSError:
            pass  # over the user's pipe allowance: the default size still works
        self._pipe_bytes = fcntl.fcntl(pipe[1], fcntl.F_GETPIPE_SZ)
        self._pipe = pipe
        return pipe
