"""Recorded decisions as ``opa test`` fixtures (``gatekeeper policy fixtures``).

``Fixtures(revision=None).add(recorded)`` for each recorded decision, then ``write(out_dir)``:

- ``recorded_decisions.json``: ``{"gatekeeper_recorded": {"revision": …, "cases": [...]}}``,
  each case a recorded policy input (exactly as decided), the verdict recorded for it (action,
  and a deny's error) and how often and where it was recorded;
- ``recorded_decisions_test.rego``: package ``gatekeeper_recorded_test``, one test per case
  asserting that the decision rule still gives that verdict for that input.

``opa test POLICIES OUT_DIR`` then passes against the policy revision that made the decisions
and fails, case by case with what was recorded and what came, when a decision changes.

Cases are distinct inputs: inputs equal in everything but the volatile fields (time, session,
client, request sizes) are one case per recorded verdict, the input of the first such record
(one the gateway decided afresh, not from its cache, where there is one). Only the decisions
of one policy revision are used (``revision``; default the one in force last in the trail):
decisions of others were made by other policies. Denies that stood in for an engine that did
not answer are left out: no policy made them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from gatekeeper.policy.recorded import Recorded
from gatekeeper.policy.verdicts import Outcome, recorded_outcome
from gatekeeper.policy.whatif import stable_key

__all__ = ["Fixtures", "FixturesWritten"]

DATA_ROOT = "gatekeeper_recorded"
PACKAGE = "gatekeeper_recorded_test"
DATA_FILE = "recorded_decisions.json"
TEST_FILE = "recorded_decisions_test.rego"
MAX_CASES = 2000
_IDENT = re.compile(r"[^A-Za-z0-9]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


@attrs.define
class _Case:
    input: Mapping[str, Any]
    outcome: Outcome
    cached: bool
    count: int = 0
    sessions: list[str] = attrs.field(factory=list)


@attrs.frozen
class FixturesWritten:
    paths: tuple[Path, ...]
    cases: int
    revision: str | None
    decisions: int  # recorded decisions of that revision the cases stand for
    other_revisions: int  # recorded decisions left out: other revisions
    not_policy: int  # recorded decisions left out: engine failures, no valid decision
    left_out_cases: int  # distinct cases over max_cases


class Fixtures:
    def __init__(self, revision: str | None = None, *, examples: int = 3) -> None:
        self.revision = revision
        self.examples = examples
        self._by_revision: dict[str | None, dict[tuple[bytes, tuple[Any, ...]], _Case]] = {}
        self._counts: Counter[str | None] = Counter()
        self._last: str | None = None  # the revision of the latest record seen
        self._last_time = ""
        self._not_policy: Counter[str | None] = Counter()

    def add(self, recorded: Recorded) -> None:
        revision = recorded.revision
        if self.revision is not None and revision != self.revision:
            self._counts[revision] += 1
            return
        if recorded.time is None or recorded.time >= self._last_time:
            self._last, self._last_time = revision, recorded.time or self._last_time
        outcome = recorded_outcome(recorded.decision)
        if outcome is None or outcome.invalid:
            self._not_policy[revision] += 1
            return
        self._counts[revision] += 1
        cases = self._by_revision.setdefault(revision, {})
        key = (stable_key(recorded.input), outcome.verdict)
        cached = bool(recorded.decision.get("cached"))
        case = cases.get(key)
        if case is None or (case.cached and not cached):
            fresh = _Case(recorded.input, outcome, cached)
            if case is not None:
                fresh.count, fresh.sessions = case.count, case.sessions
            case = cases[key] = fresh
        case.count += 1
        if recorded.session and len(case.sessions) < self.examples and recorded.session not in case.sessions:
            case.sessions.append(recorded.session)

    @property
    def decisions(self) -> int:
        """Recorded decisions of the chosen revision that cases stand for."""
        return self._counts[self.chosen_revision]

    @property
    def chosen_revision(self) -> str | None:
        return self.revision if self.revision is not None else self._last

    def write(self, out_dir: Path, decision_path: str = "gatekeeper/decision", max_cases: int = MAX_CASES) -> FixturesWritten:
        revision = self.chosen_revision
        chosen = _pick(list(self._by_revision.get(revision, {}).values()), max_cases)
        total = len(self._by_revision.get(revision, {}))
        out_dir.mkdir(parents=True, exist_ok=True)
        cases = [
            {
                "input": c.input,
                "expected": {"action": c.outcome.action, "error": c.outcome.error},
                "recorded": {"count": c.count, "sessions": c.sessions, "reason": c.outcome.reason},
            }
            for c in chosen
        ]
        data = {DATA_ROOT: {"revision": revision, "cases": cases}}
        data_path = out_dir / DATA_FILE
        data_path.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        test_path = out_dir / TEST_FILE
        test_path.write_text(_test_module(chosen, revision, decision_path))
        return FixturesWritten(
            paths=(data_path, test_path),
            cases=len(chosen),
            revision=revision,
            decisions=self._counts[revision],
            other_revisions=sum(n for r, n in self._counts.items() if r != revision)
            + sum(n for r, n in self._not_policy.items() if r != revision),
            not_policy=self._not_policy[revision],
            left_out_cases=total - len(chosen),
        )


def _pick(cases: list[_Case], max_cases: int) -> list[_Case]:
    """At most ``max_cases``, most recorded first, taken in turn from each verdict so that a
    rare verdict (the few denies among many allows) is never crowded out."""
    buckets: dict[tuple[Any, ...], list[_Case]] = {}
    for case in sorted(cases, key=lambda c: -c.count):
        buckets.setdefault(case.outcome.verdict, []).append(case)
    picked: list[_Case] = []
    queues = [list(reversed(b)) for b in buckets.values()]
    while len(picked) < max_cases and any(queues):
        for q in queues:
            if q and len(picked) < max_cases:
                picked.append(q.pop())
    return picked


def _test_module(cases: list[_Case], revision: str | None, decision_path: str) -> str:
    rule = "data." + decision_path.strip("/").replace("/", ".")
    lines = [
        "# Generated by `gatekeeper policy fixtures` from an audit trail: the decisions policy",
        f"# revision {revision or '(not recorded)'} made on {len(cases)} distinct recorded inputs",
        f"# ({DATA_FILE}). Each test asserts that {rule} still gives the",
        "# recorded verdict: the action, and for a deny its error. Regenerate rather than edit.",
        f"package {PACKAGE}",
        "",
        f"_cases := data.{DATA_ROOT}.cases",
        "",
        "# The decision for case i is the recorded one; prints both (shown when a test fails).",
        "_as_recorded(i) if {",
        "\tcase := _cases[i]",
        '\tprint("recorded:", case.expected, case.recorded.reason)',
        f"\tgot := {rule} with input as case.input",
        '\tprint("now:", object.filter(got, ["action", "error", "reason"]))',
        "\t_same(got, case.expected)",
        "}",
        "",
        "_same(got, expected) if {",
        '\texpected.action != "deny"',
        "\tgot.action == expected.action",
        "}",
        "",
        "_same(got, expected) if {",
        '\texpected.action == "deny"',
        '\tgot.action == "deny"',
        '\tobject.get(got, "error", "authorization") == expected.error',
        "}",
    ]
    for i, case in enumerate(cases):
        operation = str(case.input.get("operation", "other"))
        resource = _mapping(case.input.get("resource"))
        principal = _mapping(case.input.get("principal"))
        what = f"{resource.get('type', '?')} {resource.get('name', '?')}"
        name = _IDENT.sub("_", f"{operation}_{what}_{case.outcome.action}").strip("_").lower()[:60]
        comment = f"{principal.get('sub') or 'anonymous'}: {operation} on {what} -> {case.outcome} (recorded {case.count}x)"
        lines += [
            "",
            "# " + _CONTROL.sub(" ", comment),
            f"test_{i:04d}_{name} if _as_recorded({i})",
        ]
    return "\n".join(lines) + "\n"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
