"""The splicing relay's pure parts: where it installs, and the process's one pipe."""

from __future__ import annotations

import fcntl
import os
import termios

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
