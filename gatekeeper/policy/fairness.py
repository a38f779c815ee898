"""A bounded, fair queue of evaluations for an engine that evaluates a few batches at a time.

Batches wait per principal; the next one taken is from the principal served least recently, so
one principal's flood waits behind itself, not in front of everyone else; a batch whose caller
has given up (timed out, its Deferred cancelled) is dropped when its turn comes, never
evaluated; and past ``max_inputs`` waiting, new batches are refused at once (the engine fails
them closed). ``take_many`` takes the batches of several turns at once (in the same order), so
that an engine can hand everything waiting to its backend in one call. Pure: no threads, no
reactor.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["FairQueue", "QueueFull"]

_REMEMBERED = 10_000  # principals whose last turn is remembered


class QueueFull(Exception):
    """Too many inputs are waiting for the engine: refused, not queued."""


class FairQueue:
    def __init__(self, max_inputs: int) -> None:
        self.max_inputs = max_inputs
        self.waiting = 0  # inputs queued
        self._queues: dict[Hashable, deque[tuple[Any, int]]] = {}
        self._served: dict[Hashable, int] = {}  # key -> the tick of its last turn
        self._tick = 0
        # The keys with batches waiting, by (tick of last turn or -1, arrival): the least recently
        # served first, ties in the order their batches arrived. A turn is O(log keys).
        self._turns: list[tuple[int, int, Hashable]] = []
        self._arrivals = 0

    def put(self, key: Hashable, job: Any, size: int) -> None:
        if self.waiting + size > self.max_inputs:
            raise QueueFull(f"{self.waiting} policy inputs are already waiting for the engine (limit {self.max_inputs})")
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._arrivals += 1
            heapq.heappush(self._turns, (self._served.get(key, -1), self._arrivals, key))
        queue.append((job, size))
        self.waiting += size

    def take(self, abandoned: Callable[[Any], bool] = lambda job: False) -> Any:
        """The next job, from the key served least recently, skipping abandoned ones; None if none."""
        taken = self.take_many(1, abandoned)
        return taken[0] if taken else None

    def take_many(self, max_inputs: int, abandoned: Callable[[Any], bool] = lambda job: False) -> list[Any]:
        """The next jobs in turn order (what repeated ``take`` would give), skipping abandoned
        ones, as long as their inputs add up to at most ``max_inputs`` — but always the first,
        however large; [] if none waits."""
        jobs: list[Any] = []
        total = 0
        while self._turns:
            _, _, key = self._turns[0]
            queue = self._queues[key]
            job, size = queue[0]
            if abandoned(job):
                self._pop(key, queue)
                continue
            if jobs and total + size > max_inputs:
                break
            self._pop(key, queue)
            jobs.append(job)
            total += size
            self._tick += 1
            self._served.pop(key, None)
            self._served[key] = self._tick
            if len(self._served) > _REMEMBERED:
                del self._served[next(iter(self._served))]
            if queue:  # its next batch waits for a turn after everyone served before it
                heapq.heapreplace(self._turns, (self._tick, self._turns[0][1], key))
        return jobs

    def _pop(self, key: Hashable, queue: deque[tuple[Any, int]]) -> None:
        """Drop the head of ``key``'s queue (the key at the head of the turns)."""
        _, size = queue.popleft()
        self.waiting -= size
        if not queue:
            del self._queues[key]
            heapq.heappop(self._turns)
