"""The engine's queue: fair across principals, bounded, and timed-out work never evaluated."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer

from gatekeeper.policy.embedded_backend import EmbeddedBackend
from gatekeeper.policy.fairness import FairQueue, QueueFull


def test_keys_take_turns_and_abandoned_jobs_are_skipped() -> None:
    q = FairQueue(max_inputs=100)
    for i in range(5):
        q.put("flood", f"flood-{i}", 1)
    q.put("other", "other-0", 1)
    q.put("flood", "flood-gone", 1)
    order = [q.take(abandoned=lambda job: job == "flood-1") for _ in range(6)]
    assert order == ["flood-0", "other-0", "flood-2", "flood-3", "flood-4", "flood-gone"]
    assert q.take() is None and q.waiting == 0


def test_the_queue_is_bounded() -> None:
    q = FairQueue(max_inputs=3)
    q.put("a", "x", 2)
    with pytest.raises(QueueFull):
        q.put("b", "y", 2)
    q.put("b", "z", 1)


class _HeldPool:
    """The evaluator 'thread': holds each batch until the test releases it."""

    started = joined = False

    def __init__(self) -> None:
        self.held: list[tuple[Any, Any, tuple[Any, ...]]] = []

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.joined = True

    def callInThreadWithCallback(self, on_result: Any, f: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        self.held.append((on_result, f, args))

    def release(self) -> list[str]:
        on_result, f, args = self.held.pop(0)
        on_result(True, [i["principal"]["sub"] for i in args[0]])
        return args[0]


class _Reactor:
    def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        f(*args, **kwargs)


def _input(sub: str) -> dict[str, Any]:
    return {"principal": {"sub": sub, "issuer": "idp"}, "operation": "produce"}


def test_one_principals_flood_waits_behind_itself_and_timed_out_work_is_dropped() -> None:
    backend = EmbeddedBackend.__new__(EmbeddedBackend)
    backend.reactor = _Reactor()
    backend.pool = _HeldPool()  # type: ignore[assignment]
    backend.queue = FairQueue(max_inputs=1000)
    backend._busy = False
    backend._evaluate = lambda inputs: inputs  # type: ignore[method-assign]
    floods = [backend.evaluate_many([_input("flood")]) for _ in range(50)]
    other = backend.evaluate_many([_input("other")])
    floods[1].cancel()  # its caller timed out while it waited
    order = []
    while backend.pool.held:
        order.append(backend.pool.release()[0]["principal"]["sub"])
    assert order[:2] == ["flood", "other"]  # the other principal is next, not 50th
    assert len(order) == 50  # the cancelled batch was never evaluated
    got: list[Any] = []
    other.addCallback(got.append)
    assert got == [["other"]]
    failures: list[Any] = []
    floods[1].addErrback(failures.append)
    assert failures and failures[0].check(defer.CancelledError)
