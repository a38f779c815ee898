"""Which volatile fields one evaluation read: the embedded engine's coverage and ReadSites."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.policy.embedded import EmbeddedEvaluator, LinesReached
from gatekeeper.policy.reach import ReadSites
from gatekeeper.policy.reads import scan

POLICY = """\
package gatekeeper

default decision := {"action": "allow"}

decision := {"action": "deny"} if {
	input.operation == "delete_topic"
	input.time >= "2026-11-22T12"
}

big if input.request.bytes > 10
"""


@pytest.fixture
def evaluator(tmp_path: Path) -> EmbeddedEvaluator:
    (tmp_path / "p.rego").write_text(POLICY)
    return EmbeddedEvaluator.load(tmp_path, None, "gatekeeper/decision", coverage=True)


def test_lines_reached_are_those_of_the_last_evaluation(evaluator: EmbeddedEvaluator, tmp_path: Path) -> None:
    name = str(tmp_path / "p.rego")
    evaluator.evaluate({"operation": "produce", "time": "2026-11-22T13:00:00Z"})
    first = evaluator.lines_reached()[name]
    assert 6 in first.covered and 7 in first.not_covered
    evaluator.evaluate({"operation": "delete_topic", "time": "2026-11-22T13:00:00Z"})
    assert 7 in evaluator.lines_reached()[name].covered
    evaluator.evaluate({"operation": "produce", "time": "2026-11-22T13:00:00Z"})
    assert evaluator.lines_reached()[name] == first


def test_lines_reached_needs_coverage(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(POLICY)
    plain = EmbeddedEvaluator.load(tmp_path, None, "gatekeeper/decision")
    with pytest.raises(RuntimeError, match="coverage=True"):
        plain.lines_reached()


def test_read_sites_come_from_the_scan_including_covered_time_reads() -> None:
    declared = "# METADATA\n# custom:\n#   gatekeeper:\n#     ttl_covers_time: true\npackage q\n\nx := input.time\n"
    sites = ReadSites.of(scan({"p.rego": POLICY, "q.rego": declared, "r.rego": "package r\n\nn := time.now_ns()\n"}))
    assert sites.sites == {
        "time": (("p.rego", 7), ("r.rego", 3), ("q.rego", 7)),
        "request.bytes": (("p.rego", 10),),
    }
    assert sites.fields == {"time", "request.bytes"}
    assert sites.clock == ("time.now_ns() at r.rego:3",)


def test_a_site_counts_as_read_unless_its_line_is_known_not_reached() -> None:
    sites = ReadSites({"time": (("p.rego", 7),), "session": (("p.rego", 9),), "client": (("other.rego", 1),)})
    lines = {"p.rego": LinesReached(covered=frozenset({6}), not_covered=frozenset({7}))}
    # Line 7 was not reached; line 9 is in neither list (unknown: read); other.rego had nothing reached.
    assert sites.reached(lines) == {"session"}
    lines = {"p.rego": LinesReached(covered=frozenset({7, 9}), not_covered=frozenset())}
    assert sites.reached(lines) == {"time", "session"}
    assert sites.reached({}) == frozenset()
