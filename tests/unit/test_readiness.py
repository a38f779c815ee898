from gatekeeper.proxy.readiness import Check, verdict


def test_ready_only_when_listening_and_every_check_passed() -> None:
    ok = {"upstream": Check(True, "b:9092 accepts connections", 1.0), "policy_engine": Check(True, "healthy", 1.0)}
    assert verdict(listening=True, draining=False, checks=ok) == (True, {
        "status": "ready", "checks": {"upstream": {"ok": True, "detail": "b:9092 accepts connections"},
                                      "policy_engine": {"ok": True, "detail": "healthy"}}})
    ready, body = verdict(listening=True, draining=False, checks={**ok, "upstream": Check(False, "refused", 2.0)})
    assert not ready and body["reasons"] == ["upstream: refused"]
    ready, body = verdict(listening=True, draining=False, checks={**ok, "policy_engine": None})
    assert not ready and body["reasons"] == ["policy_engine: not probed yet"]
    assert not verdict(listening=False, draining=False, checks=ok)[0]
    ready, body = verdict(listening=False, draining=True, checks=ok)
    assert not ready and body["reasons"][0].startswith("shutting down")
    ready, body = verdict(listening=True, draining=False, checks=ok, extra_problems=["audit trail unavailable: x"])
    assert not ready and body["reasons"] == ["audit trail unavailable: x"]
