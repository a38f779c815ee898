"""The audit trail service: the reactor side of the writer thread.

``record(kind, fields)`` runs on the reactor thread in O(1): it checks the bound, serialises the
record in its place in the chain (``gatekeeper.audit.chain``: seq, previous hash, the
signed checkpoints), then hands the line to the writer thread (``gatekeeper.audit.writer``),
which only stores it.
The trail tells its callers whether it can take records (``available``, ``on_change``,
``when_available``); it never blocks the reactor and never drops a record it accepted: a
failing sink is retried with the same lines until it heals. Records it cannot accept are
refused (``record`` returns False, so the caller fails closed), counted, logged, and summed up
in an ``unavailable`` record once the trail is back.

Availability: the sink writes (its last attempt succeeded) and the queue — records accepted
and not yet written, plus reserved slots — is below 90% of ``queue_records`` (once over, it is
available again at 75%). ``on_failure: deny`` refuses records while the sink fails;
``on_failure: block`` keeps accepting them up to the bound (the caller stops reading from its
clients while the trail is unavailable, so only requests already read still come).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from gatekeeper.api import AuditOpened, AuditSink, AuditSinkContext
from gatekeeper.audit.chain import UNCOUNTED, Chain
from gatekeeper.audit.records import KINDS, format_time
from gatekeeper.audit.writer import LINGER, Barrier, Stop, WorkQueue, Writer
from gatekeeper.plugins import AUDIT_SINKS, load
from gatekeeper.ratelimit import LogSampler

__all__ = ["DENY", "BLOCK", "AuditTrail", "Slot"]

log = Logger(namespace="gatekeeper.audit")
DENY, BLOCK = "deny", "block"
_HIGH, _LOW = 0.9, 0.75
_TICK = 1.0  # seconds between gauge updates
_CALLERS_KINDS = frozenset(KINDS) - UNCOUNTED


class Slot:
    """A place in the trail's queue, taken before an operation is let through (``reserve``) and
    filled once its outcome is known: ``record`` then always accepts. ``release`` gives the
    place back unused. Either may be called once; later calls do nothing."""

    __slots__ = ("_trail", "used")

    def __init__(self, trail: AuditTrail) -> None:
        self._trail = trail
        self.used = False

    def record(self, kind: str, fields: Mapping[str, Any]) -> None:
        if not self.used:
            self.used = True
            self._trail._fill(kind, fields)

    def release(self) -> None:
        if not self.used:
            self.used = True
            self._trail._release()


class _Reports:
    """The writer's reports, moved to the reactor thread."""

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        self.trail.reactor.callFromThread(fn, *args)

    def opened(self, opened: AuditOpened) -> None:
        self._call(self.trail._opened, opened)

    def written(self, kinds: dict[str, int], accepted: int) -> None:
        self._call(self.trail._written, kinds, accepted)

    def failed(self, error: str) -> None:
        self._call(self.trail._failed, error)

    def barrier(self, token: Any) -> None:
        self._call(self.trail._barrier, token)

    def stopped(self, lost: int) -> None:
        self._call(self.trail._stopped, lost)


class AuditTrail:
    """The audit trail of one Gatekeeper instance (one chain per writer run: see ``docs/audit.md``)."""

    def __init__(self, sink: AuditSink, *, key: bytes, instance: str, reactor: Any, metrics: Any = None,
                 queue_records: int = 10_000, on_failure: str = DENY, checkpoint_interval: float = 60.0,
                 sink_name: str = "file", retry_min: float = 0.2, retry_max: float = 5.0,
                 group_commit: float = LINGER) -> None:
        if on_failure not in (DENY, BLOCK):
            raise ValueError(f"on_failure must be {DENY} or {BLOCK}, not {on_failure!r}")  # our bug
        self.sink, self.reactor, self.metrics, self._key = sink, reactor, metrics, key
        self.instance, self.sink_name, self.on_failure = instance, sink_name, on_failure
        self.bound = max(1, queue_records)
        self._high = max(1, int(self.bound * _HIGH))
        self._low = int(self.bound * _LOW)
        self.checkpoint_interval = checkpoint_interval
        self._queue = WorkQueue()
        self._writer = Writer(sink, self._queue, _Reports(self), sink_name=sink_name, retry_min=retry_min,
                              retry_max=retry_max, linger=group_commit)
        self.chain: str | None = None  # its name, once the sink opened it
        self._chain: Chain | None = None
        # Until the sink opened (and said which chain to continue): records accepted, barriers
        # asked for, and whether stop() was asked for; all placed once it opened, in that order.
        self._early: list[tuple[str, Mapping[str, Any], float]] = []
        self._early_barriers: list[Barrier] = []
        self._stop_asked = False
        self._stop_queued = False  # the stop checkpoint and Stop are in the queue
        self._depth = 0  # accepted and not yet written, plus reserved slots
        self._reserved = 0  # slots neither filled nor released
        self._slots_done: defer.Deferred[None] | None = None  # stop() waits on it for open slots
        self._running = False  # between start() and stop()
        self._sink_ok = False  # the sink opened and its last write succeeded
        self._full = False
        self._available = False
        self._error: str | None = None
        self._down_reason: str | None = None  # the first failure while unavailable, for the unavailable record
        self._starting = False  # unavailable only because the sink has not opened yet
        self._down_since: float | None = None
        self._down_seconds = 0.0
        self._refused: dict[str, int] = {}
        self._listeners: list[Callable[[bool], None]] = []
        self._waiting: list[defer.Deferred[None]] = []
        self._barriers: dict[int, defer.Deferred[None]] = {}
        self._next_barrier = 0
        self._started: defer.Deferred[None] | None = None
        self._stopped_d: defer.Deferred[None] | None = None
        self._thread: threading.Thread | None = None
        self._loops: list[task.LoopingCall] = []
        self._fail_log = LogSampler(30.0)
        self._refuse_log = LogSampler(10.0)

    @classmethod
    def from_config(cls, config: Any, *, reactor: Any, metrics: Any = None, upstream: Any = None,
                    credentials: Callable[[], Any] | None = None) -> AuditTrail:
        """The trail as configured (``config`` is ``gatekeeper.config.AuditConfig``): its sink
        plugin built with the section's options, the HMAC key read when the config was loaded.
        Raises PluginError or ValueError (the operator's config) when the sink cannot be built."""
        sink_cls = load(AUDIT_SINKS, config.sink)
        context = AuditSinkContext(name=config.sink, instance=config.instance, base=config.base, upstream=upstream,
                                   credentials=credentials or (lambda: None))
        sink = sink_cls(config.sink_options(), context)
        if config.hmac_key is None:
            raise ValueError("audit.hmac_key_file: the key was not read (load the config with load_config)")
        return cls(sink, key=config.hmac_key, instance=config.instance, reactor=reactor, metrics=metrics,
                   queue_records=config.queue_records, on_failure=config.on_failure,
                   checkpoint_interval=config.checkpoint_interval, sink_name=config.sink,
                   group_commit=config.group_commit)

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> defer.Deferred[None]:
        """Start the writer thread. Fires once the sink has opened, or its first attempt failed
        (then the trail is unavailable, says why in the log, and keeps trying)."""
        if self._thread is not None:
            raise RuntimeError("the audit trail was started already")  # our bug
        self._running = True
        self._down_since, self._down_reason, self._starting = self.reactor.seconds(), None, True
        self._refused = {}  # refused before start: logged and counted, in no trail period
        self._started = defer.Deferred()
        self._thread = threading.Thread(target=self._writer.run, name="gatekeeper-audit-writer", daemon=True)
        self._thread.start()
        if self.checkpoint_interval > 0:
            self._loop(self._interval_checkpoint, self.checkpoint_interval)
        self._loop(self._gauges, _TICK)
        return self._started

    def stop(self, timeout: float = 30.0) -> defer.Deferred[None]:
        """Refuse new records, write everything accepted and a stop checkpoint, close the sink.
        Reserved slots still open are waited for (up to half of ``timeout``): the operations
        they stand for are recorded. When the sink still fails after ``timeout`` seconds, give
        up: the records not written are logged as lost (an error), never dropped silently."""
        if self._stopped_d is not None:
            return self._stopped_d
        self._stopped_d = defer.Deferred()
        self._running = False
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._update()
        if self._thread is None:
            self._stopped_d.callback(None)
            return self._stopped_d
        call = self.reactor.callLater(timeout, self._writer.abandon)
        self._stopped_d.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])
        if not self._reserved:
            self._finish()
            return self._stopped_d
        log.info("audit trail stopping: waiting for {n} reserved record(s)", n=self._reserved)
        done = self._slots_done = defer.Deferred()
        grace = self.reactor.callLater(timeout / 2, lambda: None if done.called else done.callback(None))

        def go(_: Any) -> None:
            if grace.active():
                grace.cancel()
            self._finish()

        done.addCallback(go)
        return self._stopped_d

    def _loop(self, fn: Callable[[], None], interval: float) -> None:
        loop = task.LoopingCall(fn)
        loop.clock = self.reactor
        loop.start(interval, now=False)
        self._loops.append(loop)

    # -- the API the data path calls (reactor thread) -----------------------------------------

    @property
    def available(self) -> bool:
        """The sink writes and the queue is below its bound (see the module doc)."""
        return self._available

    @property
    def error(self) -> str | None:
        """Why the sink fails now (None while it writes)."""
        return self._error

    def record(self, kind: str, fields: Mapping[str, Any]) -> bool:
        """Hand one record to the writer. ``fields`` are the kind's fields (docs/audit.md), not
        the envelope; the caller hands them over and must not change them afterwards. False:
        not accepted (stopped, the queue full, or the sink failing under ``on_failure: deny``):
        fail closed."""
        if not self._accepts(kind):
            return False
        self._depth += 1
        accepted = self._put(kind, fields)
        self._update()
        return accepted

    def reserve(self) -> Slot | None:
        """A queue place for a record to be written later (an operation's, once the broker
        answered), or None where ``record`` would refuse."""
        if self._available and self._depth < self._low:
            # The usual case: nothing to refuse, and one more place cannot change availability.
            self._depth += 1
            self._reserved += 1
            return Slot(self)
        if not self._accepts(None):
            return None
        self._depth += 1
        self._reserved += 1
        self._update()
        return Slot(self)

    def on_change(self, fn: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``fn(available)`` whenever availability changes; returns the unsubscriber."""
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    def when_available(self) -> defer.Deferred[None]:
        """Fires (on the reactor thread) once the trail is available; at once if it is now.
        Cancel it to stop waiting."""
        if self._available:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred(lambda d: self._waiting.remove(d) if d in self._waiting else None)
        self._waiting.append(d)
        return d

    def flushed(self) -> defer.Deferred[None]:
        """Fires once every record accepted before the call is written to the sink."""
        if self._thread is None or self._stopped_d is not None and self._stopped_d.called:
            return defer.succeed(None)
        token = self._next_barrier = self._next_barrier + 1
        d: defer.Deferred[None] = defer.Deferred()
        self._barriers[token] = d
        if self._chain is None:  # after the records waiting for the chain
            self._early_barriers.append(Barrier(token))
        else:
            self._queue.put(Barrier(token), urgent=True)
        return d

    def status(self) -> dict[str, Any]:
        """For health endpoints and logs."""
        return {"available": self._available, "sink": self.sink_name, "chain": self.chain, "queued": self._depth,
                "bound": self.bound, "error": self._error, "on_failure": self.on_failure}

    # -- internals (reactor thread) ------------------------------------------------------------

    def _accepts(self, kind: str | None) -> bool:
        reason = None
        if not self._running:
            reason = "stopped"
        elif self._depth >= self.bound:
            reason = "queue_full"
        elif not self._sink_ok and self.on_failure == DENY:
            reason = "sink_failing"
        if reason is None:
            return True
        what = kind or "reserved"
        self._refused[what] = self._refused.get(what, 0) + 1
        if self.metrics is not None:
            self.metrics.inc("gatekeeper_audit_refused_total", kind=what, reason=reason)
        held = self._refuse_log.admit("refused", self.reactor.seconds())
        if held is not None:
            log.error("audit trail refused a {kind} record ({reason}; {held} more refused since the last such line); "
                      "the caller fails the operation closed; {queued} queued, sink: {error}", kind=what,
                      reason=reason, held=held, queued=self._depth, error=self._error or "writing")
        return False

    def _put(self, kind: str, fields: Mapping[str, Any]) -> bool:
        if kind not in _CALLERS_KINDS:  # our bug
            if kind in UNCOUNTED:
                raise ValueError(f"the audit trail makes its {kind} records itself")
            raise ValueError(f"unknown audit record kind {kind!r}")
        t = self.reactor.seconds()
        if self._chain is None:
            self._early.append((kind, fields, t))
        else:
            try:
                # Serialised here, where the fields were just built, and placed in the chain: the
                # writer thread only stores the line (gatekeeper.audit.chain).
                self._chain_record(self._chain, kind, fields, t)
            except Exception:
                self._unrecordable(kind)
                return False
        return True

    def _unrecordable(self, kind: str) -> None:
        """A record whose fields do not serialise (our bug): said so with the traceback, counted as
        lost; the chain is as it was. ``record`` returns False for it (the caller fails closed)."""
        log.failure("audit {kind} record cannot be serialised (a Gatekeeper bug): it is lost", kind=kind)
        self._depth -= 1
        if self.metrics is not None:
            self.metrics.inc("gatekeeper_audit_lost_total")
        self._update()

    def _chain_record(self, chain: Chain, kind: str, fields: Any, t: float) -> None:
        put = self._queue.put
        if chain.rotation_due(t):
            put(chain.checkpoint({"reason": "rotate"}, t, last_in_segment=True))
        put(chain.record(kind, fields, t))
        if self._stop_queued:  # a record after the stop (a reserved slot filled late): signed too
            put(chain.checkpoint({"reason": "stop"}, chain.last_time))

    def _interval_checkpoint(self) -> None:
        chain = self._chain
        if chain is not None and chain.since_checkpoint:
            self._queue.put(chain.checkpoint({"reason": "interval"}, self.reactor.seconds()))

    def _finish(self) -> None:
        """The stop checkpoint comes last, after every record accepted; then the writer stops."""
        self._stop_asked = True
        chain = self._chain
        if chain is None or self._stop_queued:
            return  # _opened finishes (or stop() gives up on the sink at its timeout)
        self._queue.put(chain.checkpoint({"reason": "stop"}, max(self.reactor.seconds(), chain.last_time)))
        self._stop_queued = True
        self._queue.put(Stop(), urgent=True)

    def _fill(self, kind: str, fields: Mapping[str, Any]) -> None:
        self._slot_closed()
        if self._stopped_d is not None and self._stopped_d.called:
            self._depth -= 1
            log.error("audit trail already stopped: a {kind} record of a reserved slot is lost", kind=kind)
            if self.metrics is not None:
                self.metrics.inc("gatekeeper_audit_lost_total")
            return
        self._put(kind, fields)  # the slot's place is already counted in _depth (availability is as it was)

    def _release(self) -> None:
        self._slot_closed()
        self._depth -= 1
        self._update()

    def _slot_closed(self) -> None:
        self._reserved -= 1
        if not self._reserved and self._slots_done is not None and not self._slots_done.called:
            self._slots_done.callback(None)

    def _update(self) -> None:
        if self._depth >= self._high:
            self._full = True
        elif self._depth <= self._low:
            self._full = False
        now = self._running and self._sink_ok and not self._full
        if now == self._available:
            return
        self._available = now
        t = self.reactor.seconds()
        if self.metrics is not None:
            self.metrics.set("gatekeeper_audit_available", 1.0 if now else 0.0)
        if not now:
            self._down_since, self._down_reason, self._starting = t, self._error, False
        elif self._down_since is not None:
            since, self._down_since = self._down_since, None
            self._down_seconds += t - since
            refused, self._refused = self._refused, {}
            if refused or self._down_reason is not None or not self._starting:  # not a plain start
                reason = self._down_reason or "the queue was over 90% of audit.queue_records"
                log.info("audit trail available again after {s:.1f}s; {n} record(s) refused meanwhile",
                         s=t - since, n=sum(refused.values()))
                fields = {"since": format_time(since), "until": format_time(t), "refused": refused,
                          "reason": reason}
                if self._chain is not None:  # it is: the sink writes again
                    self._chain_record(self._chain, "unavailable", fields, t)
            self._starting = False
        for fn in list(self._listeners):
            try:
                fn(now)
            except Exception:
                log.failure("audit availability listener failed")
        if now:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def _opened(self, opened: AuditOpened) -> None:
        chain = self._chain = Chain(opened, key=self._key, instance=self.instance, segments=self.sink.segments)
        self.chain = chain.name
        self._queue.put(chain.start(self.reactor.seconds(), self.sink_name))
        early, self._early = self._early, []
        for kind, fields, t in early:
            try:
                self._chain_record(chain, kind, fields, t)
            except Exception:
                self._unrecordable(kind)
        barriers, self._early_barriers = self._early_barriers, []
        for barrier in barriers:
            self._queue.put(barrier, urgent=True)
        if opened.repaired:
            log.warn("audit sink {sink} repaired its trail before continuing it: {what}", sink=self.sink_name,
                     what=dict(opened.repaired))
        log.info("audit trail: sink {sink}, chain {chain}, {how}", sink=self.sink_name, chain=opened.chain,
                 how="new chain" if opened.head is None else f"continuing after seq {opened.head.seq}")
        self._healthy()
        if self._stop_asked:
            self._finish()
        if self._started is not None and not self._started.called:
            self._started.callback(None)

    def _written(self, kinds: dict[str, int], accepted: int) -> None:
        self._depth -= accepted
        if self.metrics is not None:
            for kind, n in kinds.items():
                self.metrics.inc("gatekeeper_audit_records_total", n, kind=kind)
        self._healthy()

    def _healthy(self) -> None:
        if not self._sink_ok:
            self._sink_ok = True
            if self._error is not None:
                log.info("audit sink {sink} writes again", sink=self.sink_name)
            self._error = None
        self._update()

    def _failed(self, error: str) -> None:
        self._error = error
        if self._down_since is not None and self._down_reason is None:
            self._down_reason = error
        if self.metrics is not None:
            self.metrics.inc("gatekeeper_audit_write_failures_total")
        if self._fail_log.admit("failed", self.reactor.seconds()) is not None:
            log.error("{error}; the audit trail is unavailable (on_failure: {mode}), retrying", error=error,
                      mode=self.on_failure)
        self._sink_ok = False
        self._update()
        if self._started is not None and not self._started.called:
            self._started.callback(None)

    def _barrier(self, token: Any) -> None:
        d = self._barriers.pop(token, None)
        if d is not None:
            d.callback(None)

    def _stopped(self, lost: int) -> None:
        # What the writer thread did not take before it ended: records accepted before the sink
        # opened (it never did), or placed after its last look at the queue.
        lost += len(self._early) + self._queue.drain_counted()
        self._early = []
        if lost:
            log.error("audit trail stopped with {n} accepted record(s) not written: the sink {sink} still fails "
                      "({error}); they are lost", n=lost, sink=self.sink_name, error=self._error)
            if self.metrics is not None:
                self.metrics.inc("gatekeeper_audit_lost_total", lost)
        self._sink_ok = False
        self._running = False
        self._update()
        for d in list(self._barriers.values()):
            d.callback(None)
        self._barriers.clear()
        if self._started is not None and not self._started.called:
            self._started.callback(None)
        if self._stopped_d is not None and not self._stopped_d.called:
            self._stopped_d.callback(None)

    def _gauges(self) -> None:
        if self.metrics is None:
            return
        self.metrics.set("gatekeeper_audit_queue_depth", float(self._depth))
        down = self._down_seconds
        if self._down_since is not None and self._running:
            down += self.reactor.seconds() - self._down_since
        self.metrics.set("gatekeeper_audit_unavailable_seconds_total", down)
