"""The writer's work queue: without a linger the taker is woken by the first item; while it
lingers for a group commit, only by a full batch or an urgent item (each wake costs the reactor
thread a wait for the interpreter's lock) — nothing lost, nobody who waits left waiting."""

from __future__ import annotations

import threading
import time

from gatekeeper.audit.writer import WorkQueue


def _put_later(queue: WorkQueue, items: list[int], delay: float) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        for item in items:
            queue.put(item)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_the_first_item_wakes_a_taker_waiting_for_one() -> None:
    queue = WorkQueue()
    putter = _put_later(queue, [1], 0.05)
    started = time.monotonic()
    assert queue.take(30.0) == [1]
    assert time.monotonic() - started < 10  # woken, not timed out
    putter.join()


def test_a_full_batch_ends_the_linger() -> None:
    queue = WorkQueue()
    queue.put(0)
    putter = _put_later(queue, list(range(1, 10)), 0.05)
    started = time.monotonic()
    assert queue.take(1.0, limit=10, linger=30.0) == list(range(10))
    assert time.monotonic() - started < 10  # the tenth item woke it
    putter.join()


def test_items_put_while_lingering_join_the_batch_in_order() -> None:
    queue = WorkQueue()
    queue.put("a")
    putter = _put_later(queue, ["b", "c"], 0.0)
    putter.join()
    assert queue.take(1.0, limit=10, linger=0.05) == ["a", "b", "c"]
    assert queue.take(0) == []


def test_wake_ends_a_wait_for_the_first_item() -> None:
    queue = WorkQueue()
    timer = threading.Timer(0.05, queue.wake)
    timer.start()
    started = time.monotonic()
    assert queue.take(30.0) == []
    assert time.monotonic() - started < 10
    timer.join()


def test_an_urgent_item_ends_the_linger() -> None:
    """A barrier or a stop (someone waits for it) is taken at once, with what lingered."""
    queue = WorkQueue()
    queue.put("a")

    def urgent() -> None:
        time.sleep(0.05)
        queue.put("barrier", urgent=True)

    putter = threading.Thread(target=urgent)
    putter.start()
    started = time.monotonic()
    assert queue.take(1.0, limit=10, linger=30.0) == ["a", "barrier"]
    assert time.monotonic() - started < 10  # not the 30 s linger
    putter.join()
    queue.put("b")
    started = time.monotonic()
    assert queue.take(1.0, limit=10, linger=0.2) == ["b"]  # the next take lingers again
    assert time.monotonic() - started >= 0.15


def test_a_lingering_taker_is_not_woken_by_the_first_item() -> None:
    """One wake per linger, however the items of a group trickle in."""
    queue = WorkQueue()
    putter = _put_later(queue, ["a"], 0.02)
    started = time.monotonic()
    assert queue.take(1.0, limit=10, linger=0.3) == ["a"]
    assert time.monotonic() - started >= 0.25  # slept the linger out, then took what came
    putter.join()


def test_a_lingering_taker_sleeps_at_most_the_timeout() -> None:
    queue = WorkQueue()
    started = time.monotonic()
    assert queue.take(0.05, limit=10, linger=30.0) == []
    assert time.monotonic() - started < 10


def test_no_timeout_no_wait_even_when_lingering() -> None:
    queue = WorkQueue()
    queue.put(1)
    started = time.monotonic()
    assert queue.take(0, limit=10, linger=30.0) == [1]
    assert time.monotonic() - started < 1
