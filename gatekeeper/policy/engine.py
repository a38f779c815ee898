"""The policy engine: cache and fail-closed handling in front of a backend.

``PolicyEngine.decide_many(inputs)`` returns a Deferred firing with one Decision per input
(``decide_now``: the decisions themselves when all are cached, which is what the data path calls). A
cache hit answers without a round trip; misses go to the backend (allow-all, an OPA server, or
the embedded evaluator) in one batch. Whatever goes wrong — timeout, engine down, a malformed
or undefined decision — becomes a deny whose reason says so, logged (one line per failed batch
with its first input, at most one per reason every few seconds).

Callers' batches wait in a fair queue while the backend is busy; when it is free, everything
waiting (up to ``MAX_CALL_INPUTS``) goes to it in one call.

The cache key of each policy revision keeps the volatile fields (``cache.VOLATILE_FIELDS``) its
Rego may read (``reads.scan`` over the backend's ``sources``); a revision that reads the time
without declaring that its ttls cover it, or whose source Gatekeeper cannot see, is not cached.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from gatekeeper.api import Decision
from gatekeeper.audit.records import policy_revision
from gatekeeper.metrics import Metrics
from gatekeeper.policy.cache import VOLATILE_FIELDS, DecisionCache, cache_key
from gatekeeper.policy.decision import DecisionError, engine_failure, parse_decision
from gatekeeper.policy.fairness import FairQueue, QueueFull
from gatekeeper.policy.reads import PolicyReads, scan
from gatekeeper.ratelimit import LogSampler

__all__ = ["AllowAllBackend", "IPolicyBackend", "PolicyEngine"]

log = Logger()
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class IPolicyBackend(Interface):
    name: str
    # The Rego modules in force (file name -> source) once start/reload succeeded; None when
    # Gatekeeper cannot see them (OPA serving bundles): the cache then keeps nothing.
    sources: Mapping[str, str] | None

    def start() -> defer.Deferred[None]:  # type: ignore[misc]
        """Load policies and data; fail if they do not load."""

    def reload() -> defer.Deferred[None]:  # type: ignore[misc]
        """Load policies and data again; on failure the old ones stay in force."""

    def evaluate_many(inputs: Sequence[Mapping[str, Any]]) -> defer.Deferred[list[Any]]:  # type: ignore[misc]
        """The raw value of the decision rule for each input: None where undefined, an
        Exception instance where evaluating that input failed."""

    def stop() -> defer.Deferred[None]:  # type: ignore[misc]
        """Release connections and threads."""


@implementer(IPolicyBackend)
class AllowAllBackend:
    """Allows everything. For bringing up the data path; never for production."""

    name = "allow-all"
    sources: Mapping[str, str] | None = {}

    def start(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    reload = start
    stop = start

    def evaluate_many(self, inputs: Sequence[Mapping[str, Any]]) -> defer.Deferred[list[Any]]:
        return defer.succeed([{"action": "allow", "reason": "allow-all engine"}] * len(inputs))


MAX_WAITING_INPUTS = 20_000  # policy inputs waiting for the backend, all principals
# The most inputs one backend call carries when batches have piled up behind a busy backend:
# everything waiting goes in one call (up to this), not one batch per call. Each call costs a
# hand-off to the backend and its answer's way back through the reactor; on a busy reactor
# (hundreds of connections) that round trip, not the evaluation, was what kept a one-thread
# backend's queue waiting past policy.timeout.
MAX_CALL_INPUTS = 1_000
# Engine failures are logged at most once per reason per this many seconds (with a count of the
# ones held back): a timeout of a whole queue is one line, not one per input.
FAILURE_LOG_INTERVAL = 5.0


class _Job:
    """One caller's batch in the fair queue: its inputs, the caller's Deferred, and the backend
    call that carries it once under way."""

    __slots__ = ("batch", "call", "done")

    def __init__(self, batch: list[Mapping[str, Any]]) -> None:
        self.batch = batch
        self.done: defer.Deferred[list[Any]] = defer.Deferred(canceller=self.cancel)
        self.call: _Call | None = None

    def cancel(self, _: Any) -> None:
        # The backend's work is cancelled once no caller in its call waits for it any more.
        call = self.call
        if (call is not None and call.underway is not None and not call.underway.called
                and all(job is self or job.done.called for job in call.jobs)):
            call.underway.cancel()


class _Call:
    """One ``evaluate_many`` call: the jobs whose inputs it carries, in order."""

    __slots__ = ("jobs", "underway")

    def __init__(self, jobs: list[_Job]) -> None:
        self.jobs = jobs
        self.underway: defer.Deferred[list[Any]] | None = None


class PolicyEngine:
    def __init__(self, backend: IPolicyBackend, cache: DecisionCache, metrics: Metrics, reactor: Any, timeout: float) -> None:
        self.backend = backend
        self.cache = cache
        self.metrics = metrics
        self._cache_results = metrics.counters("gatekeeper_decision_cache_total", "result")
        self.reactor = reactor
        self.timeout = timeout
        # The volatile fields the cache key keeps, or None: no caching. Nothing is known of the
        # policies until they are loaded.
        self.cache_keeps: frozenset[str] | None = None
        self._generation = 0  # bumped when a reload starts and ends: older answers are not cached
        self._inflight: dict[bytes, list[defer.Deferred[Decision]]] = {}  # key -> callers waiting on its evaluation
        self._queue = FairQueue(max_inputs=MAX_WAITING_INPUTS)
        self._running = 0  # batches the backend is evaluating
        self._pumping = False
        self._reloading = False
        self._failure_log = LogSampler(FAILURE_LOG_INTERVAL)
        # The digest of the policies and data in force (audit records carry it); None until
        # loaded, or when Gatekeeper cannot see them (OPA bundles).
        self.revision: str | None = None
        self.loaded = False  # policies loaded at least once

    @property
    def name(self) -> str:
        return self.backend.name

    @defer.inlineCallbacks
    def start(self) -> Any:
        yield self.backend.start()
        self._policies_loaded()

    def stop(self) -> defer.Deferred[None]:
        return self.backend.stop()

    @defer.inlineCallbacks
    def reload(self) -> Any:
        self._generation += 1
        self._reloading = True
        try:
            yield self.backend.reload()
        except Exception as e:
            self.metrics.inc("gatekeeper_policy_reloads_total", result="refused")
            log.error("policy reload refused, the previous policies stay in force: {err}", err=str(e))
            raise
        else:
            self._policies_loaded()
            self.cache.clear()
        finally:
            self._generation += 1
            self._reloading = False
        self.metrics.inc("gatekeeper_policy_reloads_total", result="ok")
        log.info("policies reloaded ({engine}); decision cache cleared", engine=self.backend.name)

    def health(self) -> defer.Deferred[str | None]:
        """None when the engine can decide now, else why not (for readiness): the policies are
        loaded, and a backend that lives elsewhere (OPA) answers its health check."""
        if not self.loaded:
            return defer.succeed("the policies are not loaded yet")
        check = getattr(self.backend, "health", None)
        return defer.succeed(None) if check is None else check()  # type: ignore[no-any-return]

    def _policies_loaded(self) -> None:
        """Work out the cache key for the revision now in force, and say what it is and why."""
        self.loaded = True
        sources = getattr(self.backend, "sources", None)
        self.revision = None if sources is None else policy_revision(sources, getattr(self.backend, "data", None))
        if sources is None:
            self.cache_keeps = None
            log.warn("decision cache off: the {engine} engine's policies are not visible to Gatekeeper, "
                     "so it cannot tell which input fields they read", engine=self.backend.name)
            return
        reads = scan(sources)
        self.cache_keeps = _cache_keeps(reads)
        log.info("{what}", what=_describe(reads, self.cache_keeps))

    def decide_many(self, inputs: Sequence[Mapping[str, Any]]) -> defer.Deferred[list[Decision]]:
        decided = self.decide_now(inputs)
        return defer.succeed(decided) if type(decided) is list else decided  # type: ignore[return-value]

    def decide_now(self, inputs: Sequence[Mapping[str, Any]]) -> list[Decision] | defer.Deferred[list[Decision]]:
        """``decide_many``, but the decisions themselves when the cache holds every one (the data
        path's usual case: no Deferred made and run per request), else the Deferred."""
        asked = self.reactor.seconds()
        results: list[Decision | None] = [None] * len(inputs)
        missing: list[tuple[int, bytes | None]] = []
        keeps = self.cache_keeps
        for i, policy_input in enumerate(inputs):
            if keeps is None:
                missing.append((i, None))
                continue
            key = cache_key(policy_input, keeps)
            hit = self.cache.get(key)
            if hit is None:
                missing.append((i, key))
            else:
                results[i] = hit
        if keeps is None:
            self._cache_results["off"].inc(len(inputs))
        else:
            if missing:
                self._cache_results["miss"].inc(len(missing))
            if len(missing) < len(inputs):
                self._cache_results["hit"].inc(len(inputs) - len(missing))
        if not missing:
            return results  # type: ignore[return-value]
        # Single flight: an input whose key is already being evaluated (for this caller or another)
        # waits for that answer instead of being evaluated again. A burst of identical requests
        # (every client listing all topics when the cache expires) costs one evaluation each.
        shared: list[tuple[int, defer.Deferred[Decision]]] = []
        own: list[tuple[int, bytes | None]] = []
        for i, flight in missing:
            if flight is not None and flight in self._inflight:
                waiter: defer.Deferred[Decision] = defer.Deferred()
                self._inflight[flight].append(waiter)
                shared.append((i, waiter))
            else:
                if flight is not None:
                    self._inflight[flight] = []
                own.append((i, flight))
        if shared:
            self._cache_results["shared"].inc(len(shared))
        missing = own
        if not missing:
            return self._with_shared(results, shared)
        generation = self._generation
        started = self.reactor.seconds()
        principal = inputs[missing[0][0]].get("principal")
        who = (principal.get("sub"), principal.get("issuer")) if isinstance(principal, Mapping) else None
        d = self._scheduled(who, [inputs[i] for i, _ in missing])
        self._deadline(d)

        def answered(raws: list[Any]) -> list[Decision]:
            self._observe(started)
            if len(raws) != len(missing):
                raise DecisionError(f"engine answered {len(raws)} decisions for {len(missing)} inputs")
            for (i, key), raw in zip(missing, raws, strict=True):
                try:
                    if isinstance(raw, Exception):  # a backend's per-input evaluation error
                        raise DecisionError(f"evaluation failed: {raw}")
                    decision = parse_decision(raw)
                except DecisionError as e:
                    self.metrics.inc("gatekeeper_engine_errors_total", engine=self.backend.name, kind="malformed")
                    decision = engine_failure(f"denied: the policy gave no valid decision ({e})")
                    self._log_failure(decision.reason, inputs[i], 1)
                else:
                    # Only the revision whose key rule made the key may fill it (not one swapped
                    # in by a reload meanwhile); the ttl counts from when the decision was asked.
                    if key is not None and generation == self._generation and not self._reloading:
                        self.cache.put(key, decision, since=asked)
                results[i] = decision
                self._release(key, decision)
            return results  # type: ignore[return-value]

        def failed(f: Failure) -> list[Decision]:
            self._observe(started)
            if f.check(defer.TimeoutError, defer.CancelledError):
                kind, what = "timeout", f"did not answer within {self.timeout * 1000:.0f} ms"
            else:
                kind, what = "unavailable", f"failed: {f.getErrorMessage() or getattr(f.type, '__name__', 'error')}"
            self.metrics.inc("gatekeeper_engine_errors_total", engine=self.backend.name, kind=kind)
            decision = engine_failure(f"denied: policy engine {self.backend.name} {what} (fail closed)")
            self._log_failure(decision.reason, inputs[missing[0][0]], len(missing))
            for i, key in missing:
                results[i] = decision
                self._release(key, decision)
            return results  # type: ignore[return-value]

        d.addCallbacks(answered, failed)
        d.addErrback(failed)  # a malformed batch answer also ends in deny
        if shared:
            d.addCallback(lambda res: self._with_shared(res, shared))
        return d

    def _deadline(self, d: defer.Deferred[Any]) -> None:
        """Cancel ``d`` (a timeout: fail closed) if the backend has not answered within
        ``timeout`` — and one reactor turn more. A thread's answer reaches the reactor as a call
        it makes before its due timers; when the reactor was held up past the deadline (hundreds
        of connections' work on a busy machine), an answer the backend gave in time may be
        waiting for it, or a batch was handed over only as the reactor came back: that turn
        lets it through, so only a backend that really did not answer is timed out."""

        timer: list[Any] = []  # the pending call: the deadline, then the extra turn

        def expired() -> None:
            if not d.called:
                timer[0] = self.reactor.callLater(0, lambda: None if d.called else d.cancel())

        timer.append(self.reactor.callLater(self.timeout, expired))

        def done(result: Any) -> Any:
            if timer[0].active():
                timer[0].cancel()
            return result

        d.addBoth(done)

    def _scheduled(self, who: Any, batch: list[Mapping[str, Any]]) -> defer.Deferred[list[Any]]:
        """``batch`` evaluated when its turn comes: batches wait per principal and are taken in
        turn (one principal's flood waits behind itself), at most ``backend.concurrency`` at once;
        a batch whose caller gave up (timed out) before its turn is never evaluated, and one
        under way is cancelled; past the queue's bound, refused at once (and denied)."""
        job = _Job(batch)
        try:
            self._queue.put(who, job, len(batch))
        except QueueFull as e:
            return defer.fail(e)
        self._pump()
        return job.done

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._running < getattr(self.backend, "concurrency", 1):
                jobs = self._queue.take_many(MAX_CALL_INPUTS, abandoned=lambda j: j.done.called)
                if not jobs:
                    return
                self._running += 1
                call = _Call(jobs)
                for job in jobs:
                    job.call = call
                inputs = jobs[0].batch if len(jobs) == 1 else [i for job in jobs for i in job.batch]
                try:
                    call.underway = self.backend.evaluate_many(inputs)
                except Exception:
                    call.underway = defer.fail()
                call.underway.addBoth(self._finished, call)
        finally:
            self._pumping = False

    def _finished(self, result: Any, call: _Call) -> None:
        self._running -= 1
        total = sum(len(job.batch) for job in call.jobs)
        if not isinstance(result, Failure) and len(result) != total:
            result = Failure(DecisionError(f"engine answered {len(result)} decisions for {total} inputs"))
        offset = 0
        for job in call.jobs:
            size = len(job.batch)
            if not job.done.called:  # else the caller gave up (timed out): its answer is dropped
                if isinstance(result, Failure):
                    job.done.errback(result)
                else:
                    job.done.callback(result[offset:offset + size])
            offset += size
        self._pump()

    def _log_failure(self, reason: str, first: Mapping[str, Any], count: int) -> None:
        """One error line for a failed batch (its first input), and at most one per ``reason``
        every ``FAILURE_LOG_INTERVAL`` seconds: when the engine is down or its queue times out,
        every request fails the same way, and a line per input would flood the log (and cost the
        reactor a JSON dump each). The metrics count every failure."""
        held = self._failure_log.admit(reason, self.reactor.seconds())
        if held is None:
            return
        more = f"; {held} more failed batches like it were not logged" if held else ""
        log.error("{reason}; {count} input(s), the first {input}{more}", reason=reason, count=count,
                  input=json.dumps(first, sort_keys=True, default=str), more=more)

    def _release(self, key: bytes | None, decision: Decision) -> None:
        """Give ``decision`` to every caller waiting on ``key``'s evaluation."""
        if key is None:
            return
        for waiter in self._inflight.pop(key, ()):
            waiter.callback(decision)

    @staticmethod
    def _with_shared(results: list[Decision | None], shared: list[tuple[int, defer.Deferred[Decision]]]) -> Any:
        def fill(decisions: list[Decision]) -> list[Decision | None]:
            for (i, _), decision in zip(shared, decisions, strict=True):
                results[i] = decision
            return results

        return defer.gatherResults([w for _, w in shared]).addCallback(fill)

    def _observe(self, started: float) -> None:
        self.metrics.observe(
            "gatekeeper_engine_latency_seconds", self.reactor.seconds() - started, LATENCY_BUCKETS, engine=self.backend.name
        )


def _cache_keeps(reads: PolicyReads) -> frozenset[str] | None:
    """The volatile fields the key must keep; None (no caching) if that includes the time: a key
    with the time in it (to the millisecond) would hardly ever be met again."""
    fields = reads.fields
    return None if "time" in fields else frozenset(fields)


def _describe(reads: PolicyReads, keeps: frozenset[str] | None) -> str:
    def first(field: str) -> str:
        return str(reads.first(field))

    if keeps is None:
        return (
            f"decision cache off for this policy revision: {first('time')} reads the time, and its module "
            "does not declare that its decisions' ttl covers it (custom.gatekeeper.ttl_covers_time in "
            "its package METADATA; see docs/policy-engines.md, Cache)"
        )
    left_out = [f for f in VOLATILE_FIELDS if f not in keeps]
    parts = [f"decision cache key leaves out {', '.join(left_out) or 'nothing'}"]
    if keeps:
        parts.append("keeps " + ", ".join(f"{f} ({first(f)} reads it)" for f in VOLATILE_FIELDS if f in keeps))
    if reads.covered:
        parts.append(f"{reads.covered[0]} reads the time, but its module declares ttl_covers_time")
    return "; ".join(parts)
