"""Recorded decisions as opa test fixtures: which cases, which revision, what the test asserts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.policy.authoring import OpaMissing, find_opa
from gatekeeper.policy.fixtures import Fixtures, _pick
from gatekeeper.policy.recorded import Recorded, RecordedDecisions
from gatekeeper.policy.verdicts import recorded_outcome
from tests.unit.whatif_trail import policy_input

OLD, NEW = "sha256:old", "sha256:new"


def rec(topic: str, action: str = "allow", *, revision: str | None = NEW, t: str = "2026-11-22T10:00:00Z",
        session: str = "S1", cached: bool = False, **decision: Any) -> Recorded:
    inp = policy_input("svc", ["g"], "produce", topic, session=session, t=t)
    return Recorded(inp, {"action": action, "reason": f"{action} {topic}", "revision": revision, "cached": cached, **decision},
                    session, t)


def cases(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "recorded_decisions.json").read_text())["gatekeeper_recorded"]["cases"]


def test_one_case_per_distinct_input_and_verdict(tmp_path: Path) -> None:
    f = Fixtures()
    for n in range(10):
        f.add(rec("orders", session=f"S{n}", t=f"2026-11-22T10:00:0{n}Z"))
    f.add(rec("orders", "deny", error="authorization"))
    f.add(rec("payments", "deny", error="policy_violation"))
    written = f.write(tmp_path)
    assert written.cases == 3 and written.decisions == 12
    got = sorted((c["input"]["resource"]["name"], c["expected"]["action"], c["expected"]["error"], c["recorded"]["count"])
                 for c in cases(tmp_path))
    assert got == [("orders", "allow", None, 10), ("orders", "deny", "authorization", 1),
                   ("payments", "deny", "policy_violation", 1)]
    orders = next(c for c in cases(tmp_path) if c["recorded"]["count"] == 10)
    assert orders["recorded"]["sessions"] == ["S0", "S1", "S2"]
    assert orders["input"]["time"] == "2026-11-22T10:00:00Z"  # the first one recorded, exactly


def test_the_last_revision_is_used_unless_one_is_named(tmp_path: Path) -> None:
    f = Fixtures()
    f.add(rec("orders", revision=OLD, t="2026-11-22T09:00:00Z"))
    f.add(rec("payments", revision=OLD, t="2026-11-22T09:00:01Z"))
    f.add(rec("orders", "deny", revision=NEW, t="2026-11-22T10:00:00Z"))
    written = f.write(tmp_path / "last")
    assert (written.revision, written.cases, written.other_revisions) == (NEW, 1, 2)
    assert json.loads((tmp_path / "last" / "recorded_decisions.json").read_text())["gatekeeper_recorded"]["revision"] == NEW
    f = Fixtures(OLD)
    for r in (rec("orders", revision=OLD), rec("payments", revision=OLD), rec("orders", "deny", revision=NEW)):
        f.add(r)
    written = f.write(tmp_path / "old")
    assert (written.revision, written.cases, written.other_revisions) == (OLD, 2, 1)


def test_decisions_no_policy_made_are_left_out(tmp_path: Path) -> None:
    f = Fixtures()
    f.add(rec("orders"))
    f.add(rec("orders", "deny", reason="denied: policy engine opa did not answer within 250 ms (fail closed)"))
    f.add(rec("orders", "deny", reason="denied: the policy gave no valid decision (undefined)"))
    written = f.write(tmp_path)
    assert (written.cases, written.not_policy) == (1, 2)


def test_a_decision_made_afresh_stands_for_its_case_rather_than_a_cached_one(tmp_path: Path) -> None:
    f = Fixtures()
    f.add(rec("orders", cached=True, t="2026-11-22T10:00:01Z", session="A"))
    f.add(rec("orders", cached=False, t="2026-11-22T10:00:02Z", session="B"))
    f.add(rec("orders", cached=True, t="2026-11-22T10:00:03Z", session="C"))
    f.write(tmp_path)
    (case,) = cases(tmp_path)
    assert case["input"]["time"] == "2026-11-22T10:00:02Z"
    assert case["recorded"]["count"] == 3 and case["recorded"]["sessions"] == ["A", "B", "C"]


def test_a_rare_verdict_is_never_crowded_out_by_max_cases(tmp_path: Path) -> None:
    f = Fixtures()
    for n in range(20):
        for _ in range(n + 1):
            f.add(rec(f"t{n}"))
    f.add(rec("x", "deny", error="authorization"))
    written = f.write(tmp_path, max_cases=4)
    assert (written.cases, written.left_out_cases) == (4, 17)
    assert sorted(c["input"]["resource"]["name"] for c in cases(tmp_path)) == ["t17", "t18", "t19", "x"]
    assert _pick([], 3) == []


def test_the_test_module_names_each_case_and_keeps_control_characters_out(tmp_path: Path) -> None:
    f = Fixtures()
    r = rec("weird topic\n# injected")
    f.add(Recorded({**r.input, "principal": {**r.input["principal"], "sub": "evil\nsub"}}, r.decision, r.session, r.time))
    f.write(tmp_path, decision_path="/acme/authz/decision/")
    text = (tmp_path / "recorded_decisions_test.rego").read_text()
    assert "test_0000_produce_topic_weird_topic_injected_allow if _as_recorded(0)" in text
    assert "# evil sub: produce on topic weird topic # injected -> allow (recorded 1x)" in text
    assert "got := data.acme.authz.decision with input as case.input" in text
    assert "\n# injected" not in text


def test_recorded_decisions_skip_other_kinds_and_count_malformed_operations() -> None:
    inp = policy_input("svc", ["g"], "produce", "orders", session="S", t="T")
    records = [
        {"kind": "session_start", "session": "S"},
        {"kind": "request", "session": "S", "time": "T", "operations": [
            {"input": inp, "decision": {"action": "allow"}}, {"input": inp}, {"input": inp, "decision": {"reason": "?"}}, 7]},
        {"kind": "request", "operations": None},
    ]
    recorded = RecordedDecisions(records)
    got = list(recorded)
    assert [(r.input["resource"]["name"], r.decision["action"], r.session) for r in got] == [("orders", "allow", "S")]
    assert recorded.requests == 2 and recorded.malformed == 4


def test_policy_violation_is_asserted_by_opa_test(tmp_path: Path) -> None:
    try:
        opa = find_opa()
    except OpaMissing as e:
        pytest.skip(str(e))
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "p.rego").write_text(
        'package gatekeeper\n\ndefault decision := {"action": "allow"}\n\n'
        'decision := {"action": "deny", "error": "policy_violation"} if input.resource.name == "payments"\n'
    )
    f = Fixtures()
    f.add(rec("payments", "deny", error="policy_violation"))
    f.add(rec("orders"))
    f.write(tmp_path / "ok")
    proc = subprocess.run([opa, "test", str(policy), str(tmp_path / "ok")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    f = Fixtures()
    f.add(rec("payments", "deny", error="authorization"))
    f.write(tmp_path / "other-error")
    proc = subprocess.run([opa, "test", str(policy), str(tmp_path / "other-error")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert 'recorded: {"action": "deny", "error": "authorization"}' in proc.stdout
    assert 'now: {"action": "deny", "error": "policy_violation"}' in proc.stdout
    assert recorded_outcome({"action": "deny", "error": "policy_violation"}) is not None
