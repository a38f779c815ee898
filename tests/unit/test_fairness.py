"""The engine's queue: fair across principals, bounded, and timed-out work never evaluated."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from gatekeeper.metrics import Metrics
from gatekeeper.policy.cache import DecisionCache
from gatekeeper.policy.engine import PolicyEngine
from gatekeeper.policy.fairness import FairQueue, QueueFull


def test_the_key_served_least_recently_goes_next_and_abandoned_jobs_are_skipped() -> None:
    q = FairQueue(max_inputs=100)
    q.put("flood", "flood-0", 1)
    assert q.take() == "flood-0"  # served, its queue now empty
    for i in range(1, 5):
        q.put("flood", f"flood-{i}", 1)
    q.put("other", "other-0", 1)  # arrives after the flood's next batches, still goes first
    q.put("third", "third-0", 1)
    order = [q.take(abandoned=lambda job: job == "flood-2") for _ in range(4)]
    assert order == ["other-0", "third-0", "flood-1", "flood-3"]
    assert q.take() == "flood-4" and q.take() is None and q.waiting == 0


def test_the_queue_is_bounded() -> None:
    q = FairQueue(max_inputs=3)
    q.put("a", "x", 2)
    with pytest.raises(QueueFull):
        q.put("b", "y", 2)
    q.put("b", "z", 1)


class _Held:
    """A backend that holds each batch until the test answers it."""

    name = "held"
    sources: Any = {}

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.calls: list[tuple[list[Any], defer.Deferred[list[Any]]]] = []

    def evaluate_many(self, inputs: Any) -> defer.Deferred[list[Any]]:
        d: defer.Deferred[list[Any]] = defer.Deferred()
        self.calls.append((list(inputs), d))
        return d

    def answer(self) -> str:
        inputs, d = self.calls.pop(0)
        d.callback([{"action": "allow", "ttl": "0s"}] * len(inputs))
        return str(inputs[0]["principal"]["sub"])


def _input(sub: str, n: int) -> dict[str, Any]:
    return {"principal": {"sub": sub, "issuer": "idp"}, "operation": "produce", "resource": {"type": "topic", "name": f"t{n}"}}


def _engine(concurrency: int, timeout: float = 5) -> tuple[PolicyEngine, _Held, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    backend = _Held(concurrency)
    engine = PolicyEngine(backend, DecisionCache(100, 5.0, reactor.seconds), Metrics(), reactor, timeout=timeout)  # type: ignore[arg-type]
    engine.cache_keeps = frozenset()
    return engine, backend, reactor


def test_one_principals_flood_waits_behind_itself() -> None:
    engine, backend, _ = _engine(concurrency=1)
    floods = [engine.decide_many([_input("flood", n)]) for n in range(50)]
    other = engine.decide_many([_input("other", 0)])
    order = []
    while backend.calls:
        order.append(backend.answer())
    assert order[:2] == ["flood", "other"]  # the other principal is next, not 51st
    assert all(d.called for d in [*floods, other])


def test_a_batch_whose_caller_gave_up_is_never_evaluated() -> None:
    engine, backend, _ = _engine(concurrency=1)
    first = engine.decide_many([_input("a", 1)])  # under way
    second = engine.decide_many([_input("a", 2)])  # waiting
    second.cancel()  # its caller gave up: denied, fail closed
    out: list[Any] = []
    second.addCallback(out.append)
    assert out and out[0][0].action == "deny"
    backend.answer()
    assert first.called and backend.calls == []  # "t2" was dropped, never evaluated
    engine.decide_many([_input("a", 3)])
    assert [inputs[0]["resource"]["name"] for inputs, _ in backend.calls] == ["t3"]


def test_a_batch_that_times_out_under_way_is_cancelled_and_frees_its_turn() -> None:
    engine, backend, reactor = _engine(concurrency=1, timeout=1)
    first = engine.decide_many([_input("a", 1)])
    reactor.advance(2)
    out: list[Any] = []
    first.addCallback(out.append)
    assert out and "did not answer" in out[0][0].reason
    assert backend.calls[0][1].called  # the backend's work was cancelled
    backend.calls.clear()
    engine.decide_many([_input("b", 1)])
    assert len(backend.calls) == 1  # the next batch goes at once
