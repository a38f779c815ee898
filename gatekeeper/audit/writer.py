"""The trail's writer thread: it owns the chain (seq and previous hash), so records are chained
in the order they were enqueued, and it is the only caller of the sink.

The reactor side (``gatekeeper.audit.trail``) puts items into a ``WorkQueue`` and hears back
through ``Reports`` callbacks, which the trail routes to the reactor thread. Lines are chained
once; a write that fails is retried with the very same lines (backoff doubling up to
``retry_max``), so a failing sink never forks the chain and nothing accepted is dropped.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

import attrs

from gatekeeper import __version__
from gatekeeper.api import AuditLine, AuditOpened, AuditSink
from gatekeeper.audit.records import (
    GENESIS,
    Rendered,
    envelope,
    format_time,
    place,
    seal,
    serialize,
    sign_checkpoint,
)

__all__ = ["LINGER", "Barrier", "Checkpoint", "Item", "Reports", "Stop", "WorkQueue", "Writer"]

_IDLE = 0.5  # seconds: the sink's idle() at least this often when nothing comes
# Seconds the writer gathers records before it writes (and syncs) them in one go (audit.group_commit).
# The data path never waits for the write; whoever waits for it (a barrier, a stop) ends the
# linger at once. What it saves is the writer thread's wakes: each takes the interpreter's lock
# from the reactor thread, which then waits for it back after its next send or receive (and on
# a busy machine for the scheduler too). A sampling profile of a produce run put the reactor
# thread's extra time with a trail at +336 samples with a 50 ms linger woken by each group's first
# record, +176 with this (docs/audit.md, "What it costs"); throughput moved within the noise.
LINGER = 0.2


class Item(NamedTuple):
    """A record to chain: accepted by the trail at ``time`` (reactor clock). (A named tuple:
    one is made per request on the reactor thread, several times faster than an attrs class.)"""

    kind: str
    fields: Mapping[str, Any] | Rendered  # Rendered: serialised by the trail (see records.render)
    time: float
    counted: bool = True  # counts against the queue bound (records the trail accepted)


@attrs.frozen
class Checkpoint:
    reason: str  # interval (skipped when no record came since the last checkpoint)
    time: float  # when it was asked for (reactor clock): chain times follow the queue's order


@attrs.frozen
class Barrier:
    """Reported (``Reports.barrier``) once every line before it is written."""

    token: Any


@attrs.frozen
class Stop:
    """Write everything (what comes after it too, while the writer runs), then a stop
    checkpoint; close the sink and end."""

    time: float


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
        self._cond = threading.Condition(threading.Lock())
        self.abandon = False  # set by the trail when stop() gave up on a failing sink
        # What wakes the taker: the first item while it waits for one without lingering, or
        # ``_limit`` items; and an urgent item, always.
        self._waiting_first = False
        self._limit = 0
        self._urgent = False

    def put(self, item: Any, urgent: bool = False) -> None:
        """Queue ``item``; ``urgent`` (a barrier, a stop: someone waits for it) ends the taker's
        wait at once."""
        with self._cond:
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

    def __len__(self) -> int:
        return len(self._items)


@attrs.define
class _Pending:
    line: AuditLine
    counted: bool


class Writer:
    """The loop of the writer thread (``run``). Not thread-safe: only that thread uses it.
    ``clock`` gives the start checkpoint's time; every other record has the time its item
    was put into the queue (so a chain's times follow its order)."""

    def __init__(self, sink: AuditSink, queue: WorkQueue, reports: Reports, *, key: bytes, instance: str,
                 clock: Callable[[], float], sink_name: str = "file", retry_min: float = 0.2,
                 retry_max: float = 5.0, sleep: Callable[[float], None] | None = None,
                 linger: float = LINGER) -> None:
        self.sink, self.queue, self.reports = sink, queue, reports
        self._key, self.instance, self.clock, self.sink_name = key, instance, clock, sink_name
        self.retry_min, self.retry_max = retry_min, retry_max
        # Records arriving one by one are written (and synced) in groups: the writer sleeps this
        # long between writes (see LINGER). The data path never waits for the write, so this
        # costs no latency there, and spares the disk (shared with the broker) a sync per request.
        self.linger = max(0.0, linger)
        self._stop_event = threading.Event()
        self._sleep = sleep or self._stop_event.wait
        self.chain = ""
        self.seq = 0
        self.prev = GENESIS
        self._since_checkpoint = 0
        self._segment_bytes = 0
        self._segment_started: float | None = None
        self._pending: list[_Pending] = []
        self._barriers: list[Any] = []
        self._stopping: float | None = None  # when stop was asked for
        self._stop_signed = False
        self._last_time = 0.0  # of the last record chained

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
                if self._stopping is not None and not len(self.queue) and (
                        self._since_checkpoint or not self._stop_signed):
                    # The stop checkpoint comes last: after the records that came with or after
                    # the stop (a reserved slot filled late), signing them too.
                    self._checkpoint({"reason": "stop"}, max(self._stopping, self._last_time))
                    self._stop_signed = True
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
                if self._stop_signed and not self._pending and not len(self.queue) and not self._since_checkpoint:
                    self._close()
                    self.reports.stopped(0)
                    return
        except Exception as e:  # our bug: say so, never die silently
            self.reports.failed(f"audit writer crashed (a Gatekeeper bug): {type(e).__name__}: {e}")
            self.reports.stopped(self._lost())
            raise

    def _lost(self) -> int:
        return sum(1 for p in self._pending if p.counted) + sum(
            1 for item in self.queue.take(0, limit=10**9) if isinstance(item, Item) and item.counted)

    def _wait(self) -> float:
        return 0.0 if self._pending or self._stopping is not None else _IDLE

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
        self.chain = opened.chain
        if opened.head is not None:
            self.seq, self.prev = opened.head.seq + 1, opened.head.hash
        self.reports.opened(opened)
        resumed = None if opened.head is None else {"seq": opened.head.seq, "hash": opened.head.hash}
        fields: dict[str, Any] = {"reason": "start", "records": 0, "resumed": resumed,
                                  "writer": {"version": __version__, "sink": self.sink_name}}
        if opened.repaired is not None:
            fields["repaired"] = dict(opened.repaired)
        self._checkpoint(fields, self.clock())
        return True

    def _write(self) -> bool:
        delay = self.retry_min
        while True:
            try:
                self.sink.write([p.line for p in self._pending])
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
            for p in self._pending:
                kinds[p.line.kind] = kinds.get(p.line.kind, 0) + 1
            accepted = sum(1 for p in self._pending if p.counted)
            self._pending.clear()
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

    # -- chaining ------------------------------------------------------------------------------

    def _take(self, item: Any) -> None:
        if isinstance(item, Item):
            self._rotate_if_due(item.time)
            fields = item.fields
            if isinstance(fields, Rendered):  # serialised on the reactor thread: only its place is added here
                if fields.chain != self.chain:
                    raise RuntimeError(f"a record rendered for chain {fields.chain} came to chain {self.chain}")
                data, digest = place(fields, self.seq, self.prev)
                session = fields.session
            else:
                data, digest = seal(envelope(item.kind, fields, instance=self.instance, chain=self.chain,
                                             seq=self.seq, prev=self.prev, time=format_time(item.time)))
                session = fields.get("session")
            self._add(item.kind, data, digest, item.time, counted=item.counted, session=session)
            self._since_checkpoint += 1
            self._last_time = max(self._last_time, item.time)
        elif isinstance(item, Checkpoint):
            if self._since_checkpoint:
                self._checkpoint({"reason": item.reason}, item.time)
        elif isinstance(item, Barrier):
            self._barriers.append(item.token)
        elif isinstance(item, Stop) and self._stopping is None:
            self._stopping = item.time

    def _rotate_if_due(self, now: float) -> None:
        policy = self.sink.segments
        if policy is None or self._segment_started is None:
            return
        if self._segment_bytes >= policy.max_bytes or now - self._segment_started >= policy.max_age:
            self._checkpoint({"reason": "rotate"}, now, last_in_segment=True)

    def _checkpoint(self, fields: dict[str, Any], now: float, last_in_segment: bool = False) -> None:
        record = sign_checkpoint({"records": self._since_checkpoint, **fields}, self._key, instance=self.instance,
                                 chain=self.chain, seq=self.seq, prev=self.prev, time=format_time(now))
        self._append(record, now, counted=False, last_in_segment=last_in_segment)
        self._since_checkpoint = 0

    def _append(self, record: dict[str, Any], time: float, *, counted: bool, last_in_segment: bool = False) -> None:
        self._add(record["kind"], serialize(record), record["hash"], time, counted=counted,
                  last_in_segment=last_in_segment)

    def _add(self, kind: str, data: bytes, digest: str, time: float, *, counted: bool, session: Any = None,
             last_in_segment: bool = False) -> None:
        key = (session if isinstance(session, str) and session else self.chain).encode()
        line = AuditLine(chain=self.chain, seq=self.seq, kind=kind, time=time, key=key, data=data,
                         last_in_segment=last_in_segment)
        self._pending.append(_Pending(line, counted))
        self.seq += 1
        self.prev = digest
        if last_in_segment:
            self._segment_bytes, self._segment_started = 0, None
        else:
            self._segment_bytes += len(data)
            if self._segment_started is None:
                self._segment_started = time


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if type(e).__name__ in text else f"{type(e).__name__}: {text}"
