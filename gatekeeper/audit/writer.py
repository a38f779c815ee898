"""The trail's writer thread: the only caller of the sink. It stores the lines the trail chained
(``gatekeeper.audit.chain``, on the reactor thread) in the order they were queued.

The reactor side (``gatekeeper.audit.trail``) puts lines into a ``WorkQueue`` and hears back
through ``Reports`` callbacks, which the trail routes to the reactor thread. A write that fails
is retried with the very same lines (backoff doubling up to ``retry_max``), so a failing sink
never forks the chain and nothing accepted is dropped.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import attrs

from gatekeeper.api import AuditLine, AuditOpened, AuditSink
from gatekeeper.audit.chain import UNCOUNTED

__all__ = ["LINGER", "Barrier", "Reports", "Stop", "WorkQueue", "Writer"]

_IDLE = 0.5  # seconds: the sink's idle() at least this often when nothing comes
# Seconds the writer gathers lines before it writes (and syncs) them in one go (audit.group_commit).
# The data path never waits for the write; whoever waits for it (a barrier, a stop) ends the
# linger at once. What it saves is the writer thread's wakes: each takes the interpreter's lock
# from the reactor thread, which then waits for it back after its next send or receive (and on
# a busy machine for the scheduler too). A sampling profile of a produce run put the reactor
# thread's extra time with a trail at +336 samples with a 50 ms linger woken by each group's first
# record, +176 with this (docs/audit.md, "What it costs"); throughput moved within the noise.
LINGER = 0.2


@attrs.frozen
class Barrier:
    """Reported (``Reports.barrier``) once every line before it is written."""

    token: Any


@attrs.frozen
class Stop:
    """Write everything (what comes after it too, while the writer runs), close the sink and
    end. The trail queues its stop checkpoint before it."""


class Reports(Protocol):
    """What the writer tells the trail; called on the writer thread (the trail forwards each to
    the reactor thread)."""

    def opened(self, opened: AuditOpened) -> None: ...

    def written(self, kinds: dict[str, int], accepted: int) -> None: ...

    def failed(self, error: str) -> None: ...

    def barrier(self, token: Any) -> None: ...

    def stopped(self, lost: int) -> None: ...


class WorkQueue:
    """An unbounded FIFO between the reactor thread (``put``, O(1)) and the writer thread
    (``take``). The trail enforces the bound before putting.

    Every time the writer thread wakes, or comes back from a system call, it must take the
    interpreter's lock from the reactor thread, which holds it nearly all the time on a busy
    gateway; the reactor thread then waits for it back after its own next system call (a send,
    a receive), and on a busy machine also for the scheduler. So the taker wakes as seldom as
    it can: while it lingers for a group commit it sleeps the whole linger and is woken only by
    a full batch or an urgent item, never by the first item of a group."""

    def __init__(self) -> None:
        self._items: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.abandon = False  # set by the trail when stop() gave up on a failing sink
        # What wakes the taker: the first item while it waits for one without lingering, or
        # ``_limit`` items; and an urgent item, always.
        self._waiting_first = False
        self._limit = 0
        self._urgent = False

    def put(self, item: Any, urgent: bool = False) -> None:
        """Queue ``item``; ``urgent`` (a barrier, a stop: someone waits for it) ends the taker's
        wait at once."""
        with self._lock:  # the condition's own lock (without the condition's Python-level enter)
            self._items.append(item)
            if urgent:
                self._urgent = True
            if self._waiting_first or urgent or (self._limit and len(self._items) >= self._limit):
                self._cond.notify()

    def take(self, timeout: float, limit: int = 1000, linger: float = 0.0) -> list[Any]:
        """Up to ``limit`` items. Without ``linger``: waits up to ``timeout`` seconds for the
        first. With it (a group commit): sleeps ``min(timeout, linger)`` seconds whether items
        are there or not, woken early only by ``limit`` items or an urgent one, so one wake,
        one write and one sync serve everything that came meanwhile."""
        with self._cond:
            if timeout > 0 and not self._urgent and not self.abandon and len(self._items) < limit:
                if linger > 0:
                    self._limit = limit
                    try:
                        self._cond.wait(min(timeout, linger))
                    finally:
                        self._limit = 0
                elif not self._items:
                    self._waiting_first = True
                    try:
                        self._cond.wait(timeout)
                    finally:
                        self._waiting_first = False
            self._urgent = False
            out: list[Any] = []
            while self._items and len(out) < limit:
                out.append(self._items.popleft())
            return out

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def drain_counted(self) -> int:
        """Take everything left and say how many of its lines stand for accepted records (what
        is lost when nobody will write them)."""
        return counted(item for item in self.take(0, limit=10**9) if type(item) is AuditLine)

    def __len__(self) -> int:
        return len(self._items)


class Writer:
    """The loop of the writer thread (``run``). Not thread-safe: only that thread uses it. It
    takes lines (``AuditLine``), barriers and a ``Stop`` from the queue."""

    def __init__(self, sink: AuditSink, queue: WorkQueue, reports: Reports, *, sink_name: str = "file",
                 retry_min: float = 0.2, retry_max: float = 5.0, sleep: Callable[[float], Any] | None = None,
                 linger: float = LINGER) -> None:
        self.sink, self.queue, self.reports, self.sink_name = sink, queue, reports, sink_name
        self.retry_min, self.retry_max = retry_min, retry_max
        # Lines arriving one by one are written (and synced) in groups: the writer sleeps this
        # long between writes (see LINGER). The data path never waits for the write, so this
        # costs no latency there, and spares the disk (shared with the broker) a sync per request.
        self.linger = max(0.0, linger)
        self._stop_event = threading.Event()
        self._sleep = sleep or self._stop_event.wait
        self._pending: list[AuditLine] = []
        self._barriers: list[Any] = []
        self._stopping = False

    def abandon(self) -> None:
        """Give up on lines not yet written (called from the reactor thread when stop() timed
        out on a failing sink): the loop ends after the attempt in progress, reporting them lost."""
        self.queue.abandon = True
        self._stop_event.set()
        self.queue.wake()

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            if not self._open():
                self.reports.stopped(self._lost())
                return
            while True:
                items = self.queue.take(self._wait(), limit=1000, linger=self.linger)
                for item in items:
                    self._take(item)
                if self._pending:
                    if not self._write():
                        if self.queue.abandon:
                            self.reports.stopped(self._lost())
                            return
                        continue
                elif not items:
                    self._idle()
                if self._barriers:
                    barriers, self._barriers = self._barriers, []
                    for token in barriers:
                        self.reports.barrier(token)
                if self._stopping and not self._pending and not len(self.queue):
                    self._close()
                    self.reports.stopped(0)
                    return
        except Exception as e:  # our bug: say so, never die silently
            self.reports.failed(f"audit writer crashed (a Gatekeeper bug): {type(e).__name__}: {e}")
            self.reports.stopped(self._lost())
            raise

    def _lost(self) -> int:
        return counted(self._pending) + self.queue.drain_counted()

    def _wait(self) -> float:
        return 0.0 if self._pending or self._stopping else _IDLE

    def _open(self) -> bool:
        delay = self.retry_min
        while True:
            try:
                opened = self.sink.open()
                break
            except Exception as e:
                self.reports.failed(f"audit sink {self.sink_name} cannot open: {_describe(e)}")
                if self.queue.abandon:
                    return False
                self._sleep(delay)
                delay = min(delay * 2, self.retry_max)
        self.reports.opened(opened)
        return True

    def _write(self) -> bool:
        delay = self.retry_min
        while True:
            try:
                self.sink.write(list(self._pending))
            except Exception as e:
                self.reports.failed(f"audit sink {self.sink_name} cannot write: {_describe(e)}")
                if self.queue.abandon:
                    return False
                self._sleep(delay)
                delay = min(delay * 2, self.retry_max)
                # Take what came meanwhile, so that one retry writes it too (and the trail's
                # barriers and bound see progress as soon as the sink heals).
                for item in self.queue.take(0, limit=1000):
                    self._take(item)
                continue
            kinds: dict[str, int] = {}
            for line in self._pending:
                kinds[line.kind] = kinds.get(line.kind, 0) + 1
            accepted = len(self._pending) - sum(n for kind, n in kinds.items() if kind in UNCOUNTED)
            self._pending = []
            self.reports.written(kinds, accepted)
            return True

    def _idle(self) -> None:
        try:
            self.sink.idle()
        except Exception as e:
            self.reports.failed(f"audit sink {self.sink_name} failed: {_describe(e)}")

    def _close(self) -> None:
        try:
            self.sink.close()
        except Exception as e:
            self.reports.failed(f"audit sink {self.sink_name} did not close cleanly: {_describe(e)}")

    def _take(self, item: Any) -> None:
        if type(item) is AuditLine:
            self._pending.append(item)
        elif isinstance(item, Barrier):
            self._barriers.append(item.token)
        elif isinstance(item, Stop):
            self._stopping = True


def counted(lines: Iterable[AuditLine]) -> int:
    """How many of ``lines`` stand for records the trail accepted (not its own: ``UNCOUNTED``)."""
    return sum(1 for line in lines if line.kind not in UNCOUNTED)


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if type(e).__name__ in text else f"{type(e).__name__}: {text}"
