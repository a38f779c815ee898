"""The policy engine: cache, strict decisions, fail closed on errors and timeouts."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from zope.interface import implementer

from gatekeeper.metrics import Metrics
from gatekeeper.policy.cache import DecisionCache, cache_key
from gatekeeper.policy.engine import IPolicyBackend, PolicyEngine


@implementer(IPolicyBackend)
class ScriptedBackend:
    name = "scripted"

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []
        self.answer: Any = None
        self.pending: defer.Deferred[Any] | None = None

    def start(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    reload = stop = start

    def evaluate_many(self, inputs: Any) -> defer.Deferred[list[Any]]:
        self.calls.append(list(inputs))
        if self.answer == "hang":
            self.pending = defer.Deferred()
            return self.pending
        if isinstance(self.answer, Exception):
            return defer.fail(self.answer)
        return defer.succeed([self.answer(i) if callable(self.answer) else self.answer for i in inputs])


def _input(topic: str, t: str = "2026-11-23T00:00:00Z", count: int = 1) -> dict[str, Any]:
    return {"operation": "produce", "resource": {"type": "topic", "name": topic}, "time": t,
            "session": {"id": "s", "started_at": t}, "request": {"acks": -1, "record_count": count, "bytes": count * 10}}


def make(answer: Any) -> tuple[PolicyEngine, ScriptedBackend, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    backend = ScriptedBackend()
    backend.answer = answer
    engine = PolicyEngine(backend, DecisionCache(100, 5.0, reactor.seconds), Metrics(), reactor, timeout=0.25)
    return engine, backend, reactor


def result(d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "deferred has not fired"
    return out[0]


def test_cache_ignores_volatile_fields_and_honours_ttl() -> None:
    engine, backend, reactor = make({"action": "allow", "ttl": "2s"})
    assert result(engine.decide_many([_input("orders")]))[0].allowed
    assert result(engine.decide_many([_input("orders", t="2026-11-23T00:00:09Z", count=50)]))[0].allowed
    assert len(backend.calls) == 1  # time, session and sizes are not part of the key
    reactor.advance(2.5)
    engine.decide_many([_input("orders")])
    assert len(backend.calls) == 2
    assert cache_key(_input("orders")) != cache_key(_input("payments"))


def test_misses_are_batched_in_one_backend_call() -> None:
    engine, backend, _ = make(lambda i: {"action": "allow" if i["resource"]["name"] == "a" else "deny", "reason": "r"})
    decisions = result(engine.decide_many([_input("a"), _input("b"), _input("a2")]))
    assert [d.action for d in decisions] == ["allow", "deny", "deny"]
    assert len(backend.calls) == 1 and len(backend.calls[0]) == 3


def test_malformed_or_undefined_decisions_deny_with_a_reason() -> None:
    for raw, words in [(None, "undefined"), ({"action": "maybe"}, "maybe"), ({"reason": "x"}, "action"),
                       ({"action": "mask"}, "mask"), ({"action": "allow", "ttl": 5}, "ttl")]:
        engine, _, _ = make(raw)
        (d,) = result(engine.decide_many([_input("orders")]))
        assert d.action == "deny" and "no valid decision" in d.reason and words in d.reason, (raw, d.reason)
        assert len(engine.cache) == 0  # failures are never cached


def test_engine_down_and_timeout_fail_closed() -> None:
    engine, _, reactor = make(ConnectionRefusedError("Connection refused"))
    (d,) = result(engine.decide_many([_input("orders")]))
    assert d.action == "deny" and "policy engine scripted failed" in d.reason and "refused" in d.reason
    engine, backend, reactor = make("hang")
    pending = engine.decide_many([_input("orders")])
    reactor.advance(0.3)
    (d,) = result(pending)
    assert d.action == "deny" and "did not answer within 250 ms" in d.reason
    assert engine.metrics.get("gatekeeper_engine_errors_total", engine="scripted", kind="timeout") == 1
