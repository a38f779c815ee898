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
offers it (``passthrough_view``), and copied for the core after its bytes have gone: each step
spliced into the pipe is duplicated into a copy pipe (tee(2): page references, no bytes copied)
before it goes on to the client, and when the event's steps are done the copy pipes are read into
the core's buffer and the core is told what passed. The client has the bytes before the copy is
made, so the copy is made while the broker sends the next ones or the client reads what it got,
not between them. The copy pipes hold one event's bytes (``_MAX_PER_EVENT``); an event that
outgrows them has the held bytes read at once and goes on. A step that not even an empty copy
pipe takes whole is read out of the pipe into the buffer and queued on the client's transport,
which ends the event (the rest goes Twisted's way). Python's ``os`` has no ``tee``: it is called
in the C library through ``ctypes``; without it, an answer the core reads goes Twisted's way.

Order: the client's socket is written only while its transport has nothing queued (as
``write_through`` does), and the core writes nothing else to the client until the answer has
passed. Whatever the client's socket does not take is read back out of the pipe and queued on the
transport, so the pipe is empty between events; the transport's queue then pauses the broker's
reads when it grows, as it always did, and the next bytes go Twisted's way behind the queue.

One pipe and one set of copy pipes serve the whole process (the reactor thread uses them for one
answer's bytes at a time, and empties them before it returns): they are checked empty before each
use and replaced after any failure, so no byte of one connection's answer can reach another
client or another connection's buffer.

Errors: a broker read that fails ends the connection as Twisted's own read would
(``CONNECTION_LOST``); the end of the stream is left to Twisted's read, which meets it and closes
as usual; a client write that fails queues the rest on the transport, which meets the error on
its own write and closes; a pipe that gives back fewer bytes than it holds, or a tee(2) that fails
other than for want of room, raises (Twisted closes the connection and logs it).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import socket
import sys
import termios
from collections.abc import Callable
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
_COPY_PIPES = 4  # copy pipes of the pipe's size: one event's bytes (_MAX_PER_EVENT) held at once


def _libc_tee() -> Callable[[int, int, int, int], int] | None:
    """tee(2) from the C library (it releases the interpreter's lock while it runs), or None."""
    try:
        tee: Any = ctypes.CDLL(None, use_errno=True).tee
    except (OSError, AttributeError):
        return None
    tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
    tee.restype = ctypes.c_ssize_t
    return tee  # type: ignore[no-any-return]


_tee = _libc_tee()


def _pending(fd: int) -> int:
    """Bytes in a pipe (-1 when it cannot be asked)."""
    try:
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
    except OSError:
        return -1


def _sized_pipe(size: int) -> tuple[int, int, int] | None:
    """A new non-blocking pipe asked to hold ``size`` bytes: (read end, write end, the size the
    kernel gave), or None when no pipe can be had."""
    try:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with contextlib.suppress(OSError):  # over the user's pipe allowance: the size the kernel gives
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, size)
    try:
        got = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    except OSError:
        got = 0
    return r, w, got


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
            if _pending(fds[0]) == 0:
                return fds[0], fds[1], cls.size
            cls.discard()  # never: every use empties it; but a stale byte must not reach a client
        pipe = _sized_pipe(_PIPE_BYTES)
        if pipe is None:
            return None
        r, w, size = pipe
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


class _CopyPipes:
    """The process's copy pipes: ``_COPY_PIPES`` pipes, each at least as large as the splicing
    pipe (so an empty one takes whatever a step put there), all empty whenever handed out; None
    when they cannot be had (no tee(2), or the user's pipe allowance spent)."""

    fds: list[tuple[int, int]] | None = None
    size = 0

    @classmethod
    def get(cls, size: int) -> list[tuple[int, int]] | None:
        if _tee is None:
            return None
        fds = cls.fds
        if fds is not None:
            if cls.size >= size and all(_pending(r) == 0 for r, _ in fds):
                return fds
            cls.discard()  # never: every use empties them; but a stale byte must reach no one
        made: list[tuple[int, int]] = []
        got = size
        while len(made) < _COPY_PIPES:
            pipe = _sized_pipe(size)
            if pipe is not None:
                made.append(pipe[:2])
                got = min(got, pipe[2])
            if pipe is None or got < size:
                for fd in (fd for p in made for fd in p):
                    os.close(fd)
                return None
        cls.fds, cls.size = made, got
        return made

    @classmethod
    def discard(cls) -> None:
        if cls.fds is not None:
            for fd in (fd for p in cls.fds for fd in p):
                os.close(fd)
            cls.fds = None


class _Copy:
    """One event's copy of what it spliced, for the core's buffer ``view`` (which starts where
    the event's first byte goes): each step is duplicated into a copy pipe when it is in the
    splicing pipe (``tee``) and read into ``view`` later (``read``)."""

    def __init__(self, tee: Callable[[int, int, int, int], int], pipes: list[tuple[int, int]],
                 view: memoryview) -> None:
        self._tee, self.pipes, self.view = tee, pipes, view
        self.held: list[list[int]] = []  # [copy pipe, where in view its bytes go, how many]
        self.at = 0  # the copy pipe steps are teed into

    def tee(self, source: int, start: int, n: int) -> bool:
        """Duplicates the ``n`` bytes in the splicing pipe ``source`` (bound for ``view[start:]``)
        into a copy pipe. A pipe that takes only part of them keeps that part (read with the
        rest of its bytes, the same bytes in the same place) and the next pipe takes the step
        whole; when none is left, what they hold is read now and the first takes it. False when
        not even an empty pipe takes the step whole (nothing of it is then held)."""
        fresh = False
        while True:
            k = self._tee(source, self.pipes[self.at][1], n, _FLAGS)
            if k < 0:
                err = ctypes.get_errno()
                if err not in _RETRY:
                    raise OSError(err, f"tee(2) into a copy pipe failed: {os.strerror(err)}")
                k = 0
            if k:
                last = self.held[-1] if self.held else None
                if last is not None and last[0] == self.at:  # a pipe takes only consecutive steps
                    last[2] += k
                else:
                    self.held.append([self.at, start, k])
            if k == n:
                return True
            if fresh:
                if k:  # the part it took is read, and the step is read from the splicing pipe
                    self.read()
                return False
            self.at += 1
            if self.at == len(self.pipes):
                self.read()
                fresh = True

    def read(self) -> None:
        """Reads every held byte into ``view``; the copy pipes are empty afterwards."""
        view = self.view
        for index, start, n in self.held:
            fd = self.pipes[index][0]
            got = 0
            while got < n:
                try:
                    k = os.readv(fd, [view[start + got:start + n]])
                except BlockingIOError:
                    k = 0
                if not k:
                    raise OSError(f"a copy pipe gave back {got} of the {n} bytes it held")
                got += k
        self.held.clear()
        self.at = 0


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
        copy = None
        view = core.passthrough_view()
        if view is not None:  # the core reads this answer: its steps are copied through tee(2)
            copies = _CopyPipes.get(pipe[2])
            if copies is None or _tee is None:
                return self._read()
            copy = _Copy(_tee, copies, view)
        try:
            return self._move(pipe, left, copy)
        except BaseException:
            _Pipe.discard()  # whatever they hold goes to no one
            _CopyPipes.discard()
            raise

    def _move(self, pipe: tuple[int, int, int], left: int, copy: _Copy | None) -> Any:
        """Moves up to ``left`` bytes (no more than ``_MAX_PER_EVENT``), step by step as they
        have arrived, then reads the copy (when the core reads the answer) and tells the core
        what passed. Each step may be smaller than asked: splice takes what has arrived and what
        the pipe has room for."""
        source, sink = self.upstream.fileno(), self.client.fileno()
        moved = queued = 0
        result: Any = None
        while left and moved < _MAX_PER_EVENT:
            try:
                n = os.splice(source, pipe[1], min(left, pipe[2]), flags=_FLAGS)
            except OSError as e:
                if e.errno not in _RETRY:
                    result = main.CONNECTION_LOST
                break
            if n == 0:  # the end of the stream: Twisted's read meets it and closes
                if not moved:
                    return self._read()
                break
            if copy is not None and not copy.tee(pipe[0], moved, n):
                queued = self._read_back(pipe[0], copy.view[moved:moved + n])
            else:
                queued = self._to_client(pipe[0], sink, n)
            moved += n
            left -= n
            if queued:
                break  # the client's socket is full: the rest of the answer goes Twisted's way
        if copy is not None:
            copy.read()
        if moved:
            self.core.passed_through(moved, queued, read=True)
        return result

    def _large_answer_head(self) -> bytes | None:
        """The next answer's first 8 bytes, taken from the broker's socket, if at least that
        many have arrived and the answer runs to ``_MIN_BYTES`` or more; else None, nothing taken."""
        sock = self.upstream.socket
        head = sock.recv(_HEAD, socket.MSG_PEEK)
        if len(head) < _HEAD or int.from_bytes(head[:4], "big", signed=True) + 4 - _HEAD < _MIN_BYTES:
            return None
        return sock.recv(_HEAD)  # the same 8 bytes: they are there

    def _read_back(self, source: int, into: memoryview) -> int:
        """Reads the step in the pipe into ``into`` (all of it) and queues it on the client's
        transport: the way of a step no copy pipe takes. Returns how many were queued."""
        got = 0
        while got < len(into):
            try:
                k = os.readv(source, [into[got:]])
            except BlockingIOError:
                k = 0
            if not k:
                raise OSError(f"the splicing pipe gave back {got} of {len(into)} bytes")
            got += k
        self.client.writeSequence([bytes(into)])
        return got

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
