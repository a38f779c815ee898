"""Pure rate-limiting values: a token bucket, a back-off for repeats, a sampler for log lines.

Each takes the time (seconds, from the injected clock) as an argument and does no I/O, so the
proxy shell can hold one per connection or per gateway and unit tests can drive them with any
clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["LogSampler", "RepeatBackoff", "TokenBucket"]


class TokenBucket:
    """``rate`` events a second on average, bursts of up to ``burst``; ``rate`` 0 = no limit."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._tokens = self.burst
        self._last: float | None = None

    def take(self, now: float) -> bool:
        """Spend one token: False when the bucket is empty (the event is over the limit)."""
        if self.rate <= 0:
            return True
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class RepeatBackoff:
    """A delay that doubles while the same key repeats within ``window`` seconds.

    The first occurrence of a key costs nothing, so a client that handles its error promptly is
    never slowed; the n-th repeat in a row costs ``base * 2**(n-1)``, capped at ``cap``.
    """

    __slots__ = ("_key", "_last", "_repeats", "base", "cap", "window")

    def __init__(self, base: float, cap: float, window: float) -> None:
        self.base = base
        self.cap = cap
        self.window = window
        self._key: Hashable = None
        self._last = float("-inf")
        self._repeats = 0

    def delay(self, key: Hashable, now: float) -> float:
        """Seconds to hold the client back for this occurrence of ``key`` (0 for a new key)."""
        if key == self._key and now - self._last <= self.window:
            self._repeats += 1
        else:
            self._key, self._repeats = key, 0
        self._last = now
        if self._repeats == 0 or self.cap <= 0:
            return 0.0
        return min(self.cap, self.base * 2 ** (self._repeats - 1))


class LogSampler:
    """At most one log line per key per ``interval`` seconds, counting the lines held back.

    ``admit(key, now)`` returns None to hold the line back, or the number of lines held back
    for that key since its last admitted line (0 for a first line). At most ``max_keys`` keys
    are remembered, the least recently logged forgotten first.
    """

    __slots__ = ("_keys", "interval", "max_keys")

    def __init__(self, interval: float, max_keys: int = 10_000) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._keys: OrderedDict[Hashable, list[float]] = OrderedDict()  # key -> [last logged, held back]

    def admit(self, key: Hashable, now: float) -> int | None:
        state = self._keys.get(key)
        if state is not None and now - state[0] < self.interval:
            state[1] += 1
            return None
        held = 0 if state is None else int(state[1])
        self._keys[key] = [now, 0]
        self._keys.move_to_end(key)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return held
