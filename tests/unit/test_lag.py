from __future__ import annotations

from twisted.internet.task import Clock

from gatekeeper.metrics import gateway_metrics
from gatekeeper.proxy.lag import ReactorLag


def _gauge(metrics, name: str) -> float:  # type: ignore[no-untyped-def]
    for line in metrics.render().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


def test_a_late_timer_is_the_lag_and_the_window_forgets_it() -> None:
    clock, metrics = Clock(), gateway_metrics()
    lag = ReactorLag(clock, metrics, interval=0.05, window=10.0)
    lag.start()
    for _ in range(10):
        clock.advance(0.05)
    assert _gauge(metrics, "gatekeeper_reactor_lag_seconds") == 0.0
    clock.advance(0.05 + 0.3)  # the reactor was held for 0.3 s
    assert abs(_gauge(metrics, "gatekeeper_reactor_lag_seconds") - 0.3) < 1e-9
    assert abs(_gauge(metrics, "gatekeeper_reactor_lag_max_seconds") - 0.3) < 1e-9
    for _ in range(500):  # 25 s on time: two windows later the recent gauge is back to 0
        clock.advance(0.05)
    assert _gauge(metrics, "gatekeeper_reactor_lag_seconds") < 1e-9
    assert abs(_gauge(metrics, "gatekeeper_reactor_lag_max_seconds") - 0.3) < 1e-9
    lag.stop()
    assert not clock.getDelayedCalls()
