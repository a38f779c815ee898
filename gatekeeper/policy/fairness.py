"""A bounded, fair queue of evaluations for an engine that evaluates one batch at a time.

Batches wait per principal and are taken round-robin, so one principal's flood waits behind
itself, not in front of everyone else; a batch whose caller has given up (timed out, its
Deferred cancelled) is dropped when its turn comes, never evaluated; and past ``max_inputs``
waiting, new batches are refused at once (the engine fails them closed). Pure: no threads.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable
from typing import Any

__all__ = ["FairQueue", "QueueFull"]


class QueueFull(Exception):
    """Too many inputs are waiting for the engine: refused, not queued."""


class FairQueue:
    def __init__(self, max_inputs: int) -> None:
        self.max_inputs = max_inputs
        self.waiting = 0  # inputs queued
        self._queues: OrderedDict[Hashable, deque[tuple[Any, int]]] = OrderedDict()

    def put(self, key: Hashable, job: Any, size: int) -> None:
        if self.waiting + size > self.max_inputs:
            raise QueueFull(f"{self.waiting} policy inputs are already waiting for the engine (limit {self.max_inputs})")
        self._queues.setdefault(key, deque()).append((job, size))
        self.waiting += size

    def take(self, abandoned: Any = lambda job: False) -> Any:
        """The next job, round-robin over keys, skipping abandoned ones; None if there is none."""
        while self._queues:
            key, queue = next(iter(self._queues.items()))
            job, size = queue.popleft()
            self.waiting -= size
            if queue:
                self._queues.move_to_end(key)  # this key's next job waits for every other key's
            else:
                del self._queues[key]
            if not abandoned(job):
                return job
        return None
