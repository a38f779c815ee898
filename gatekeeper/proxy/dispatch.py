"""Event dispatch for Twisted's epoll reactor without a log context per event.

Twisted's epoll reactor hands each ready descriptor to ``_doReadOrWrite`` through
``twisted.python.log.callWithLogger``, which pushes a legacy log context (the descriptor's
``logPrefix()`` as the ``system`` of legacy ``log.msg`` lines) around every read and write. On a
gateway that is a large part of what Twisted costs per event: 1.5–3 µs a call, two or more
events per relayed request (``bench/relay_floor.py`` compares both dispatches).

:func:`dispatch_directly` replaces the reactor's poll with one that calls ``_doReadOrWrite``
itself: the same reads, writes and disconnections in the same order. ``_doReadOrWrite`` already
turns an exception from a protocol into a logged disconnection of that descriptor; what it lets
through (a ``connectionLost`` that raises) is logged here as ``callWithLogger`` logged it, and
the events after it in the same poll are still dispatched (``KeyboardInterrupt`` still ends the
loop). What changes: a legacy ``log.msg`` line written inside a protocol callback shows ``-`` as
its system instead of the connection's prefix. Gatekeeper's own lines use ``twisted.logger``,
which never read that context.

Only Twisted's own ``EPollReactor`` is changed (not a subclass, not another reactor); anything
else is left as it is.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet.epollreactor import EPollReactor
from twisted.logger import Logger

__all__ = ["dispatch_directly"]

log = Logger()

_NEEDS = ("_poller", "_selectables", "_doReadOrWrite")


def dispatch_directly(reactor: Any) -> bool:
    """Give ``reactor`` the direct dispatch if it is Twisted's epoll reactor; True if it was."""
    if type(reactor) is not EPollReactor or not all(hasattr(reactor, a) for a in _NEEDS):
        return False
    if getattr(reactor.doIteration, "_gatekeeper_direct", False):
        return True

    def poll(timeout: float | None) -> None:
        selectables = reactor._selectables
        try:
            events = reactor._poller.poll(-1 if timeout is None else timeout, len(selectables))
        except OSError as err:
            if err.errno == errno.EINTR:
                return
            raise
        handle = reactor._doReadOrWrite
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                continue
            try:
                handle(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:
                log.failure("dispatching an event of {selectable!r}", selectable=selectable)

    poll._gatekeeper_direct = True  # type: ignore[attr-defined]
    reactor.doIteration = poll  # type: ignore[method-assign]
    return True
