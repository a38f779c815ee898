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

    def answer_naming_each_input(self) -> int:
        """Answer the oldest call, each decision's reason naming its input's resource."""
        inputs, d = self.calls.pop(0)
        d.callback([{"action": "allow", "reason": i["resource"]["name"], "ttl": "0s"} for i in inputs])
        return len(inputs)


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


def test_take_many_gives_the_turns_take_would_within_a_bound_of_inputs() -> None:
    def filled() -> FairQueue:
        q = FairQueue(max_inputs=100)
        for i in range(3):
            q.put("a", f"a-{i}", 2)
        q.put("b", "b-0", 1)
        q.put("c", "c-0", 5)
        return q

    one_by_one = filled()
    order = []
    while (job := one_by_one.take(abandoned=lambda j: j == "a-1")) is not None:
        order.append(job)
    assert order == ["a-0", "b-0", "c-0", "a-2"]
    q = filled()
    assert q.take_many(8, abandoned=lambda j: j == "a-1") == ["a-0", "b-0", "c-0"]  # 2 + 1 + 5 inputs
    assert q.take_many(1) == ["a-2"]  # the first is always taken, however large
    assert q.take_many(100) == [] and q.waiting == 0


def test_a_key_served_again_waits_behind_every_key_served_before_it() -> None:
    q = FairQueue(max_inputs=1000)
    for key in ("a", "b", "c"):
        for i in range(3):
            q.put(key, f"{key}-{i}", 1)
    assert q.take_many(1000) == ["a-0", "b-0", "c-0", "a-1", "b-1", "c-1", "a-2", "b-2", "c-2"]
    q.put("c", "c-3", 1)  # served last: goes after a key never served, and after "a"
    q.put("a", "a-3", 1)
    q.put("new", "new-0", 1)
    assert q.take_many(1000) == ["new-0", "a-3", "c-3"]


def test_batches_waiting_behind_a_busy_backend_go_in_one_call_each_caller_getting_its_own_answers() -> None:
    # A backend's answer reaches the engine on a later reactor turn, and a turn of a reactor busy
    # with hundreds of connections takes a while (20 ms here). Handing the backend one batch per
    # turn, 300 first requests took 6 s, past the 5 s timeout: most were denied (fail closed).
    engine, backend, reactor = _engine(concurrency=1, timeout=5)
    callers = [engine.decide_many([_input(f"p{n % 7}", n), _input(f"p{n % 7}", 1000 + n)]) for n in range(300)]
    sizes = []
    while backend.calls:
        reactor.advance(0.02)
        sizes.append(backend.answer_naming_each_input())
    assert sizes == [2, 598]  # the first batch alone, then everything that waited meanwhile
    out: list[Any] = []
    for d in callers:
        d.addCallback(out.append)
    assert [[(x.action, x.reason) for x in decisions] for decisions in out] == [
        [("allow", f"t{n}"), ("allow", f"t{1000 + n}")] for n in range(300)
    ]


def test_a_call_is_capped_and_its_batches_taken_in_turn() -> None:
    engine, backend, _ = _engine(concurrency=1)
    engine.decide_many([_input("first", 0)])
    for n in range(900):
        engine.decide_many([_input("flood", n), _input("flood", 10_000 + n)])  # 1,800 inputs
    engine.decide_many([_input("other", 0)])
    backend.answer()
    inputs, _ = backend.calls[0]
    assert len(inputs) == 999  # whole batches up to MAX_CALL_INPUTS (1,000): 2 + 1 + 498 × 2
    assert inputs[2]["principal"]["sub"] == "other"  # the other principal's turn comes second


def test_a_caller_giving_up_does_not_cancel_a_call_others_still_wait_for() -> None:
    engine, backend, reactor = _engine(concurrency=1, timeout=1)
    engine.decide_many([_input("a", 0)])  # under way
    reactor.advance(0.5)
    gives_up = engine.decide_many([_input("b", 1)])
    reactor.advance(0.4)
    waits = engine.decide_many([_input("c", 2)])
    backend.answer()  # "a" answered; "b" and "c" go in one call
    assert [len(inputs) for inputs, _ in backend.calls] == [2]
    reactor.advance(0.7)  # "b" times out (asked 1.1 s ago), "c" has time left (0.7 s)
    assert gives_up.called and not waits.called
    assert not backend.calls[0][1].called  # still under way for "c"
    backend.answer()
    out: list[Any] = []
    waits.addCallback(out.append)
    assert out[0][0].action == "allow"
    # When every caller of a call has given up, the backend's work is cancelled.
    engine.decide_many([_input("d", 0)])
    reactor.advance(0.5)
    engine.decide_many([_input("e", 1)])
    engine.decide_many([_input("f", 2)])
    backend.answer()
    reactor.advance(1.1)
    assert backend.calls[0][1].called  # cancelled: nobody waits for it


def test_a_combined_call_answered_with_the_wrong_count_denies_every_caller() -> None:
    engine, backend, _ = _engine(concurrency=1)
    engine.decide_many([_input("a", 0)])
    others = [engine.decide_many([_input("b", n)]) for n in range(3)]
    backend.answer()
    _, d = backend.calls.pop(0)
    d.callback([{"action": "allow"}] * 2)  # three inputs, two answers
    out: list[Any] = []
    for o in others:
        o.addCallback(out.append)
    assert [decisions[0].action for decisions in out] == ["deny"] * 3
    assert all("answered 2 decisions for 3 inputs" in decisions[0].reason for decisions in out)


class _Turns(MemoryReactorClock):
    """A reactor by turns: ``turn()`` runs the timed calls due when it starts; calls they make
    wait for the next turn, as in Twisted's reactor (whose turn also delivers threads' answers
    before its timers: the test does that by answering before ``turn()``)."""

    def turn(self) -> None:
        due = [c for c in self.calls if c.getTime() <= self.seconds()]
        for call in due:
            if call.active():
                self.calls.remove(call)
                call.called = 1
                call.func(*call.args, **call.kw)


def test_a_reactor_held_up_past_the_deadline_does_not_time_out_what_the_backend_answers_at_once() -> None:
    reactor = _Turns()
    backend = _Held(concurrency=1)
    engine = PolicyEngine(backend, DecisionCache(100, 5.0, reactor.seconds), Metrics(), reactor, timeout=5)  # type: ignore[arg-type]
    engine.cache_keeps = frozenset()
    engine.decide_many([_input("a", 0)])  # under way
    reactor.rightNow = 0.1
    waiting = engine.decide_many([_input("b", 1)])  # queued behind it
    reactor.rightNow = 6.0  # the reactor comes back after 6 s of other connections' work
    backend.answer()  # the first answer, delivered before the timers: "b" is handed over now
    assert len(backend.calls) == 1
    reactor.turn()  # "b"'s deadline has passed, but its batch has only just gone to the backend
    assert not waiting.called
    backend.answer()  # answered in the next turn
    reactor.turn()
    out: list[Any] = []
    waiting.addCallback(out.append)
    assert out[0][0].action == "allow"
    # A backend that really does not answer is still timed out, one turn after the deadline.
    hung = engine.decide_many([_input("c", 2)])
    reactor.rightNow = 11.5
    reactor.turn()
    assert not hung.called
    reactor.turn()
    hung.addCallback(out.append)
    assert out[1][0].action == "deny" and "did not answer within 5000 ms" in out[1][0].reason
    assert engine.metrics.get("gatekeeper_engine_errors_total", engine="held", kind="timeout") == 1
