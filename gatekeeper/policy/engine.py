"""The policy engine: cache and fail-closed handling in front of a backend.

``PolicyEngine.decide_many(inputs)`` returns a Deferred firing with one Decision per input. A
cache hit answers without a round trip; misses go to the backend (allow-all, an OPA server, or
the embedded evaluator) in one batch. Whatever goes wrong — timeout, engine down, a malformed
or undefined decision — becomes a deny whose reason says so, logged with the input.
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
from gatekeeper.metrics import Metrics
from gatekeeper.policy.cache import DecisionCache, cache_key
from gatekeeper.policy.decision import DecisionError, engine_failure, parse_decision

__all__ = ["AllowAllBackend", "IPolicyBackend", "PolicyEngine"]

log = Logger()
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class IPolicyBackend(Interface):
    name: str

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

    def start(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    reload = start
    stop = start

    def evaluate_many(self, inputs: Sequence[Mapping[str, Any]]) -> defer.Deferred[list[Any]]:
        return defer.succeed([{"action": "allow", "reason": "allow-all engine"}] * len(inputs))


class PolicyEngine:
    def __init__(self, backend: IPolicyBackend, cache: DecisionCache, metrics: Metrics, reactor: Any, timeout: float) -> None:
        self.backend = backend
        self.cache = cache
        self.metrics = metrics
        self.reactor = reactor
        self.timeout = timeout

    @property
    def name(self) -> str:
        return self.backend.name

    def start(self) -> defer.Deferred[None]:
        return self.backend.start()

    def stop(self) -> defer.Deferred[None]:
        return self.backend.stop()

    @defer.inlineCallbacks
    def reload(self) -> Any:
        try:
            yield self.backend.reload()
        except Exception as e:
            self.metrics.inc("gatekeeper_policy_reloads_total", result="refused")
            log.error("policy reload refused, the previous policies stay in force: {err}", err=str(e))
            raise
        self.cache.clear()
        self.metrics.inc("gatekeeper_policy_reloads_total", result="ok")
        log.info("policies reloaded ({engine}); decision cache cleared", engine=self.backend.name)

    def decide_many(self, inputs: Sequence[Mapping[str, Any]]) -> defer.Deferred[list[Decision]]:
        results: list[Decision | None] = [None] * len(inputs)
        missing: list[tuple[int, str]] = []
        for i, policy_input in enumerate(inputs):
            key = cache_key(policy_input)
            hit = self.cache.get(key)
            if hit is None:
                missing.append((i, key))
            else:
                results[i] = hit
        if missing:
            self.metrics.inc("gatekeeper_decision_cache_total", len(missing), result="miss")
        if len(missing) < len(inputs):
            self.metrics.inc("gatekeeper_decision_cache_total", len(inputs) - len(missing), result="hit")
        if not missing:
            return defer.succeed(results)  # type: ignore[arg-type]
        started = self.reactor.seconds()
        try:
            d = self.backend.evaluate_many([inputs[i] for i, _ in missing])
        except Exception:
            d = defer.fail()
        d.addTimeout(self.timeout, self.reactor)

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
                    log.error("{reason}; input {input}", reason=decision.reason, input=json.dumps(inputs[i], sort_keys=True))
                else:
                    self.cache.put(key, decision)
                results[i] = decision
            return results  # type: ignore[return-value]

        def failed(f: Failure) -> list[Decision]:
            self._observe(started)
            if f.check(defer.TimeoutError, defer.CancelledError):
                kind, what = "timeout", f"did not answer within {self.timeout * 1000:.0f} ms"
            else:
                kind, what = "unavailable", f"failed: {f.getErrorMessage() or getattr(f.type, '__name__', 'error')}"
            self.metrics.inc("gatekeeper_engine_errors_total", engine=self.backend.name, kind=kind)
            decision = engine_failure(f"denied: policy engine {self.backend.name} {what} (fail closed)")
            for i, _ in missing:
                log.error("{reason}; input {input}", reason=decision.reason, input=json.dumps(inputs[i], sort_keys=True))
                results[i] = decision
            return results  # type: ignore[return-value]

        d.addCallbacks(answered, failed)
        d.addErrback(failed)  # a malformed batch answer also ends in deny
        return d

    def _observe(self, started: float) -> None:
        self.metrics.observe(
            "gatekeeper_engine_latency_seconds", self.reactor.seconds() - started, LATENCY_BUCKETS, engine=self.backend.name
        )
