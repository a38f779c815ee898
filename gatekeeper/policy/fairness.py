"""A bounded, fair queue of evaluations for an engine that evaluates a few batches at a time.

Batches wait per principal; the next one taken is from the principal served least recently, so
one principal's flood waits behind itself, not in front of everyone else; a batch whose caller
has given up (timed out, its Deferred cancelled) is dropped when its turn comes, never
evaluated; and past ``max_inputs`` waiting, new batches are refused at once (the engine fails
them closed). Pure: no threads, no reactor.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
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

    def put(self, key: Hashable, job: Any, size: int) -> None:
        if self.waiting + size > self.max_inputs:
            raise QueueFull(f"{self.waiting} policy inputs are already waiting for the engine (limit {self.max_inputs})")
        self._queues.setdefault(key, deque()).append((job, size))
        self.waiting += size

    def take(self, abandoned: Any = lambda job: False) -> Any:
        """The next job, from the key served least recently, skipping abandoned ones; None if none."""
        while self._queues:
            key = min(self._queues, key=lambda k: self._served.get(k, -1))
            queue = self._queues[key]
            job, size = queue.popleft()
            self.waiting -= size
            if not queue:
                del self._queues[key]
            if abandoned(job):
                continue
            self._tick += 1
            self._served.pop(key, None)
            self._served[key] = self._tick
            if len(self._served) > _REMEMBERED:
                del self._served[next(iter(self._served))]
            return job
        return None
