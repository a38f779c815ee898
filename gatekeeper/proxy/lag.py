"""How late the reactor runs: a timer that asks to be called every ``interval`` seconds and
measures by how much each call came late. A late call means something held the reactor thread
(a long computation on it) and every connection waited that long.

Exposed as ``gatekeeper_reactor_lag_seconds`` (the worst lateness seen over the last window,
about ``window`` to twice ``window`` seconds) and ``gatekeeper_reactor_lag_max_seconds`` (the
worst since start): operators alert on the first, tests read both.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.metrics import Metrics

__all__ = ["ReactorLag"]


class ReactorLag:
    def __init__(self, clock: Any, metrics: Metrics, interval: float = 0.05, window: float = 10.0) -> None:
        self.clock, self.metrics = clock, metrics
        self.interval, self.window = interval, window
        self.worst = 0.0
        self._current = self._previous = 0.0
        self._window_ends = 0.0
        self._expected = 0.0
        self._call: Any = None

    def start(self) -> None:
        now = self.clock.seconds()
        self._window_ends = now + self.window
        self._schedule(now)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self, now: float) -> None:
        self._expected = now + self.interval
        self._call = self.clock.callLater(self.interval, self._tick)

    def _tick(self) -> None:
        now = self.clock.seconds()
        late = max(0.0, now - self._expected)
        if now >= self._window_ends:
            self._previous, self._current = self._current, 0.0
            self._window_ends = now + self.window
        self._current = max(self._current, late)
        if late > self.worst:
            self.worst = late
            self.metrics.set("gatekeeper_reactor_lag_max_seconds", late)
        self.metrics.set("gatekeeper_reactor_lag_seconds", max(self._current, self._previous))
        self._schedule(now)
