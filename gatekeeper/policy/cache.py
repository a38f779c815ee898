"""A bounded LRU decision cache keyed by the policy input minus its volatile fields."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from gatekeeper.api import Decision

__all__ = ["DecisionCache", "cache_key"]

_VOLATILE_REQUEST = ("record_count", "bytes")


def cache_key(policy_input: Mapping[str, Any]) -> str:
    """The input without time, session and per-request sizes: what a decision may depend on."""
    stable = {k: v for k, v in policy_input.items() if k not in ("time", "session")}
    request = policy_input.get("request")
    if request:
        stable["request"] = {k: v for k, v in request.items() if k not in _VOLATILE_REQUEST}
    return json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str)


class DecisionCache:
    def __init__(self, max_entries: int, default_ttl: float, clock: Callable[[], float]) -> None:
        self.max_entries = max_entries
        self.default_ttl = default_ttl
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, Decision]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: str) -> Decision | None:
        item = self._entries.get(key)
        if item is None:
            self.misses += 1
            return None
        expires, decision = item
        if expires <= self.clock():
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return decision

    def put(self, key: str, decision: Decision) -> None:
        ttl = self.default_ttl if decision.ttl is None else decision.ttl
        if ttl <= 0 or self.max_entries <= 0:
            return
        self._entries[key] = (self.clock() + ttl, decision)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
