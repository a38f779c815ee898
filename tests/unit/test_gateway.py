"""Gateway start-up on a memory reactor: what it tells the operator."""

from __future__ import annotations

from typing import Any

from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from gatekeeper.policy.engine import AllowAllBackend
from gatekeeper.proxy.gateway import Gateway
from gatekeeper.testing.fakes import FakeUpstreams, fake_config, reactor

ALLOW_ALL_WARNING = "every request is allowed without a policy"


def _start_and_collect_warnings(gw: Gateway) -> list[str]:
    events: list[dict[str, Any]] = []
    results: list[Any] = []
    globalLogPublisher.addObserver(events.append)
    try:
        gw.start().addBoth(results.append)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert results and not isinstance(results[0], Failure), results  # started, synchronously
    return [formatEvent(e) for e in events if e.get("log_level") == LogLevel.warn]


def test_allow_all_engine_warns_at_start() -> None:
    gw = Gateway(fake_config(), reactor(), upstream_connector=FakeUpstreams())
    warnings = _start_and_collect_warnings(gw)
    assert any("policy.engine is allow-all" in w and ALLOW_ALL_WARNING in w for w in warnings), warnings


def test_a_real_engine_does_not_warn_about_allow_all(tmp_path) -> None:
    policy = {"engine": "opa", "url": "http://127.0.0.1:8181", "policies": str(tmp_path)}
    gw = Gateway(fake_config(policy=policy), reactor(), upstream_connector=FakeUpstreams())
    gw.engine.backend = AllowAllBackend()  # a stand-in: no OPA server to push policies to here
    warnings = _start_and_collect_warnings(gw)
    assert not any(ALLOW_ALL_WARNING in w for w in warnings), warnings
