"""The what-if core: distinct inputs, what is compared, how changes are grouped."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.policy.candidate import EmbeddedCandidate
from gatekeeper.policy.verdicts import Outcome, candidate_outcome, recorded_outcome
from gatekeeper.policy.whatif import Evaluation, WhatIf
from tests.unit.whatif_trail import policy_input

ALLOW = {"action": "allow", "reason": "ok"}
DENY = {"action": "deny", "reason": "no", "error": "authorization"}


class FakeCandidate:
    """Decides with ``fn(input) -> raw``; says it read ``reads(input)`` (None: cannot tell)."""

    def __init__(self, fn: Callable[[Mapping[str, Any]], Any], may_read: frozenset[str] = frozenset(),
                 reads: Callable[[Mapping[str, Any]], frozenset[str] | None] = lambda i: frozenset()) -> None:
        self.fn, self.may_read, self.reads = fn, may_read, reads
        self.evaluated: list[Mapping[str, Any]] = []

    def evaluate_many(self, inputs: Sequence[Mapping[str, Any]]) -> list[Evaluation]:
        self.evaluated += inputs
        return [Evaluation(self.fn(i), self.reads(i)) for i in inputs]


def inp(sub: str = "svc", topic: str = "orders", *, op: str = "produce", session: str = "S1", t: str = "2026-11-22T10:00:00Z",
        grants: list[Any] | None = None, nbytes: int = 1000) -> dict[str, Any]:
    return policy_input(sub, ["g"], op, topic, session=session, t=t, grants=grants, nbytes=nbytes)


# -- distinct inputs -----------------------------------------------------------------------------


def test_inputs_differing_only_in_volatile_fields_are_evaluated_once() -> None:
    c = FakeCandidate(lambda i: ALLOW)
    w = WhatIf(c)
    for n in range(50):
        i = inp(session=f"S{n % 5}", t=f"2026-11-22T10:00:{n:02d}Z", nbytes=n)
        i["client"] = {"id": f"c{n}", "address": f"10.0.0.{n}"}
        w.add(i, ALLOW, i["session"]["id"])
    w.add(inp(topic="payments"), ALLOW, "S9")
    report = w.run()
    assert len(c.evaluated) == 2
    assert report.summary.distinct == 2 and report.summary.inputs == 51 and report.summary.compared == 51
    assert not report.changed


def test_a_field_the_evaluation_read_tells_inputs_apart() -> None:
    # Reads the time only when the input carries grants (as the default library does).
    def decide(i: Mapping[str, Any]) -> Any:
        return DENY if i["grants"] and i["time"] >= "2026-11-22T10:00:30Z" else ALLOW

    def reads(i: Mapping[str, Any]) -> frozenset[str]:
        return frozenset({"time"}) if i["grants"] else frozenset()

    c = FakeCandidate(decide, frozenset({"time"}), reads)
    w = WhatIf(c)
    for n in range(60):
        t = f"2026-11-22T10:00:{n:02d}Z"
        w.add(inp(t=t), ALLOW, "S1")
        w.add(inp(t=t, grants=[{"g": 1}]), ALLOW, "S2")
    report = w.run()
    # One evaluation without grants; with grants one per distinct time.
    assert len(c.evaluated) == 1 + 60
    assert [(ch.before, ch.after, ch.count) for ch in report.changes] == [("allow", "deny", 30)]
    assert report.summary.distinct == 61


def test_a_candidate_that_cannot_tell_what_it_read_is_assumed_to_read_all_it_may() -> None:
    c = FakeCandidate(lambda i: ALLOW, frozenset({"time", "request.bytes"}), lambda i: None)
    w = WhatIf(c)
    for n in range(10):
        w.add(inp(t=f"2026-11-22T10:00:0{n % 2}Z", nbytes=n % 3), ALLOW, "S")
    w.run()
    # One round to learn nothing, then every (time, bytes) pair apart from the first.
    assert len(c.evaluated) == 1 + (6 - 1)
    assert {(i["time"][-3:], i["request"]["bytes"]) for i in c.evaluated} == {
        (f"0{t}Z", b) for t in range(2) for b in range(3)
    }


def test_a_missing_field_is_told_apart_from_a_present_one() -> None:
    def decide(i: Mapping[str, Any]) -> Any:
        return DENY if "bytes" in i["request"] else ALLOW

    c = FakeCandidate(decide, frozenset({"request.bytes"}), lambda i: frozenset({"request.bytes"}))
    w = WhatIf(c)
    with_bytes = inp()
    without = inp()
    del without["request"]["bytes"]
    w.add(without, ALLOW)
    w.add(with_bytes, ALLOW)
    report = w.run()
    assert [(ch.before, ch.after, ch.count) for ch in report.changes] == [("allow", "deny", 1)]
    assert "bytes" not in c.evaluated[0]["request"] and c.evaluated[1]["request"]["bytes"] == 1000


def _grants_scenario(w: WhatIf) -> None:
    for n in range(60):
        t = f"2026-11-22T10:00:{n:02d}Z"
        w.add(inp(t=t, session=f"S{n % 7}"), ALLOW, f"S{n % 7}")
        w.add(inp(topic=f"t{n % 5}", t=t), DENY)
        w.add(inp(t=t, grants=[{"g": 1}], session=f"G{n}"), ALLOW, f"G{n}")


def _reads_time_with_grants() -> FakeCandidate:
    return FakeCandidate(lambda i: DENY if i["grants"] and i["time"] >= "2026-11-22T10:00:30Z" else ALLOW,
                         frozenset({"time"}), lambda i: frozenset({"time"}) if i["grants"] else frozenset())


@pytest.mark.parametrize("batch", [1, 2, 7, 256])
def test_the_report_does_not_depend_on_how_inputs_are_batched(monkeypatch, batch: int) -> None:
    w = WhatIf(_reads_time_with_grants())
    _grants_scenario(w)
    expected = w.run().to_json()
    monkeypatch.setattr("gatekeeper.policy.whatif.BATCH", batch)
    w = WhatIf(_reads_time_with_grants())
    _grants_scenario(w)
    assert w.run().to_json() == expected
    assert expected["summary"]["evaluations"] == 1 + 5 + 60


def test_a_decided_input_keeps_counts_not_the_inputs(monkeypatch) -> None:
    monkeypatch.setattr("gatekeeper.policy.whatif.BATCH", 1)
    w = WhatIf(FakeCandidate(lambda i: ALLOW))
    for n in range(10_000):
        w.add(inp(t=f"2026-11-22T10:00:{n % 60:02d}Z", session=f"S{n}"), DENY if n % 2 else ALLOW, f"S{n}")
    (root,) = w._roots.values()
    assert root.waiting is None and w._waiting == 0
    assert sorted((count, len(sessions)) for count, sessions in root.tallies.values()) == [(5000, 3), (5000, 3)]
    assert w.run().summary.changed == 5000


# -- the embedded candidate: what the evaluation read --------------------------------------------


def _candidate(tmp_path: Path, rego: str) -> EmbeddedCandidate:
    (tmp_path / "p.rego").write_text(rego)
    return EmbeddedCandidate.load(tmp_path, None, "gatekeeper/decision")


def _late_denied(tmp_path: Path, rego: str) -> tuple[Any, EmbeddedCandidate]:
    candidate = _candidate(tmp_path, rego)
    w = WhatIf(candidate)
    for n in range(4):
        w.add(inp(t=f"2026-11-22T1{n}:00:00Z", session=f"S{n}"), ALLOW, f"S{n}")
    return w.run(), candidate


TIME_READERS = {
    "body": """package gatekeeper
default decision := {"action": "allow"}
decision := {"action": "deny"} if {
	input.time >= "2026-11-22T12"
}
""",
    # regorus's coverage report leaves out a comprehension's head and an else value: a read there
    # counts as read (not known not to be).
    "comprehension head": """package gatekeeper
default decision := {"action": "allow"}
_times := [
	input.time |
	true
]
decision := {"action": "deny"} if _times[0] >= "2026-11-22T12"
""",
    "else value": """package gatekeeper
decision := {"action": "deny"} if input.operation == "delete_topic"
else := {"action": _a}
_a := "allow" if input.operation == "nothing"
else := {true: "deny", false: "allow"}[
	input.time >= "2026-11-22T12"
]
""",
    "whole input": """package gatekeeper
default decision := {"action": "allow"}
decision := {"action": "deny"} if {
	some k, v in input
	k == "time"
	v >= "2026-11-22T12"
}
""",
}


@pytest.mark.parametrize("where", sorted(TIME_READERS))
def test_a_policy_reading_the_time_anywhere_is_replayed_at_each_time(tmp_path: Path, where: str) -> None:
    report, _ = _late_denied(tmp_path, TIME_READERS[where])
    assert [(ch.before, ch.after, ch.count, ch.sessions) for ch in report.changes] == [("allow", "deny", 2, ("S2", "S3"))]


def test_a_size_read_through_a_loop_over_the_request_tells_inputs_apart(tmp_path: Path) -> None:
    candidate = _candidate(tmp_path, """package gatekeeper
default decision := {"action": "allow"}
decision := {"action": "deny", "error": "policy_violation"} if {
	some k
	is_number(input.request[k])
	input.request[k] > 5000
}
""")
    assert candidate.may_read == {"request.bytes", "request.record_count"}
    w = WhatIf(candidate)
    for n in range(10):
        w.add(inp(nbytes=1000 * n, session=f"S{n}"), ALLOW, f"S{n}")
    report = w.run()
    assert [(c.before, c.after, c.count) for c in report.changes] == [("allow", "deny (policy_violation)", 4)]
    assert report.summary.evaluations == 10


def test_a_time_read_never_reached_costs_one_evaluation(tmp_path: Path) -> None:
    rego = """package gatekeeper
default decision := {"action": "allow"}
decision := {"action": "deny"} if {
	input.operation == "delete_topic"
	input.time >= "2026-11-22T12"
}
"""
    report, candidate = _late_denied(tmp_path, rego)
    assert candidate.may_read == {"time"}
    assert report.summary.evaluations == 1 and not report.changes


def test_the_default_library_reads_the_time_only_for_time_boxed_grants() -> None:
    root = Path(__file__).resolve().parents[2] / "policies"
    candidate = EmbeddedCandidate.load(root, root / "data.json", "gatekeeper/decision")
    assert candidate.may_read == {"time"}
    grant = {"operation": "produce", "resource": {"type": "topic", "name": "payments"}, "expires_at": "2026-11-22T10:30:00Z"}
    w = WhatIf(candidate)
    for n in range(60):
        t = f"2026-11-22T10:{n:02d}:00Z"
        w.add(policy_input("svc", ["orders-writers"], "produce", "orders", session="S", t=t), ALLOW)
        w.add(policy_input("svc", ["orders-writers"], "produce", "payments", session="S", t=t), DENY)
        w.add(policy_input("svc", ["orders-writers"], "produce", "payments", session="G", t=t, grants=[grant]), DENY)
    report = w.run()
    assert report.summary.evaluations == 1 + 1 + 60
    assert [(ch.before, ch.after, ch.count) for ch in report.changes] == [("deny", "allow", 30)]


# -- what is compared ----------------------------------------------------------------------------


def test_recorded_outcomes() -> None:
    assert recorded_outcome({"action": "allow", "reason": "r"}) == Outcome("allow", None, False, "r")
    assert recorded_outcome({"action": "deny", "reason": "r", "error": None}).error == "authorization"
    assert str(recorded_outcome({"action": "deny", "error": "policy_violation"})) == "deny (policy_violation)"
    invalid = recorded_outcome({"action": "deny", "reason": "denied: the policy gave no valid decision (x)"})
    assert invalid is not None and invalid.invalid and str(invalid) == "deny (no valid decision)"
    for down in ("denied: policy engine opa did not answer within 250 ms (fail closed)",
                 "denied: policy engine embedded failed: QueueFull (fail closed)"):
        assert recorded_outcome({"action": "deny", "reason": down}) is None
    masked = recorded_outcome({"action": "mask", "mask": [{"field": "$.a", "masker": "redact"}]})
    assert masked is not None and masked.terms is not None and '"$.a"' in masked.terms
    with pytest.raises(ValueError):
        recorded_outcome({"reason": "no action"})


def test_candidate_outcomes_are_parsed_strictly() -> None:
    assert candidate_outcome({"action": "allow"}) == Outcome("allow", None, False, "")
    assert candidate_outcome({"action": "deny"}).error == "authorization"
    for raw in (None, {"action": "permit"}, {"action": "allow", "extra": 1}, RuntimeError("conflict")):
        outcome = candidate_outcome(raw)
        assert outcome.invalid and outcome.action == "deny", raw


def _compare(recorded: Mapping[str, Any], candidate: Any, details: bool = False) -> Any:
    w = WhatIf(FakeCandidate(lambda i: candidate), details=details)
    w.add(inp(), recorded, "S1")
    return w.run()


def test_a_deny_whose_error_kind_changes_is_a_change() -> None:
    report = _compare(DENY, {"action": "deny", "reason": "no", "error": "policy_violation"})
    assert [(c.before, c.after) for c in report.changes] == [("deny", "deny (policy_violation)")]


def test_a_candidate_without_a_valid_decision_is_a_change_even_from_a_deny() -> None:
    report = _compare(DENY, {"action": "deny", "reason": 7})
    assert [(c.before, c.after) for c in report.changes] == [("deny", "deny (no valid decision)")]
    assert "malformed decision" in report.changes[0].reason_after
    assert report.summary.invalid_after == 1


def test_reasons_and_terms_are_compared_only_when_asked() -> None:
    other = {"action": "allow", "reason": "another reason"}
    assert not _compare(ALLOW, other).changed
    report = _compare(ALLOW, other, details=True)
    assert report.changed and not report.changes
    assert [(c.before, c.after, c.reason_before, c.reason_after) for c in report.detail_changes] == [
        ("allow", "allow", "ok", "another reason")
    ]
    mask = {"action": "mask", "reason": "m", "mask": [{"field": "$.a", "masker": "redact"}]}
    more = {"action": "mask", "reason": "m", "mask": [{"field": "$.a", "masker": "redact"}, {"field": "$.b", "masker": "redact"}]}
    assert _compare(mask, more, details=True).summary.detail_changes == 1
    # A trail that did not record the mask items cannot tell.
    assert not _compare({"action": "mask", "reason": "m"}, more, details=True).changed


def test_recorded_engine_failures_are_counted_not_compared() -> None:
    report = _compare({"action": "deny", "reason": "denied: policy engine opa did not answer within 250 ms (fail closed)"}, ALLOW)
    assert not report.changed
    assert report.summary.not_compared == 1 and report.summary.compared == 0


def test_recorded_decisions_of_one_input_are_compared_each() -> None:
    w = WhatIf(FakeCandidate(lambda i: ALLOW))
    for n in range(10):
        w.add(inp(session=f"S{n}"), DENY if n % 2 else ALLOW, f"S{n}")
    report = w.run()
    assert [(c.before, c.after, c.count, c.sessions) for c in report.changes] == [("deny", "allow", 5, ("S1", "S3", "S5"))]
    assert report.summary.compared == 10 and report.summary.distinct == 1


# -- grouping ------------------------------------------------------------------------------------


def test_changes_are_grouped_by_transition_operation_and_resource() -> None:
    def decide(i: Mapping[str, Any]) -> Any:
        return DENY if i["resource"]["name"] == "payments" else ALLOW

    w = WhatIf(FakeCandidate(decide), examples=2)
    for sub, n in (("a", 3), ("b", 5), ("c", 1)):
        for k in range(n):
            w.add(inp(sub, "payments", session=f"{sub}{k}"), ALLOW, f"{sub}{k}")
            w.add(inp(sub, "payments", op="consume", session=f"{sub}{k}"), ALLOW, f"{sub}{k}")
    w.add(inp("a", "orders"), DENY, "x")
    w.add(inp("a", "orders"), ALLOW, "y")
    report = w.run()
    got = [(c.before, c.after, c.operation, c.resource, c.count, c.principals, len(c.sessions)) for c in report.changes]
    assert got == [
        ("allow", "deny", "consume", "topic payments", 9, (("b", 5), ("a", 3), ("c", 1)), 2),
        ("allow", "deny", "produce", "topic payments", 9, (("b", 5), ("a", 3), ("c", 1)), 2),
        ("deny", "allow", "produce", "topic orders", 1, (("a", 1),), 1),
    ]
    assert report.summary.transitions == (("allow → deny", 18), ("deny → allow", 1))
    assert report.summary.changed == 19 and report.summary.compared == 20


def test_revisions_recorded_are_summed_up() -> None:
    w = WhatIf(FakeCandidate(lambda i: ALLOW))
    for n in range(3):
        w.add(inp(), {**ALLOW, "revision": "sha256:old" if n == 0 else "sha256:new"})
    assert w.run().summary.revisions == (("sha256:new", 2), ("sha256:old", 1))
