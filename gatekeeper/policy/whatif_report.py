"""The what-if report: the decisions that would change, grouped, and a summary.

Changes are grouped by (before → after, operation, resource); each group counts the recorded
decisions, the principals that made the requests (with their counts) and keeps a few example
session ids. ``ReportBuilder`` takes one distinct input at a time (``add``: its input, the
candidate's outcome, and the recorded outcomes with their counts and sessions).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from gatekeeper.policy.verdicts import Outcome

__all__ = ["Change", "Report", "ReportBuilder", "Summary"]


@attrs.frozen
class Change:
    """Recorded decisions that would be different, of one kind on one resource."""

    before: str
    after: str
    operation: str
    resource: str  # "topic orders"
    count: int
    principals: tuple[tuple[str, int], ...]  # (principal, count), most first
    sessions: tuple[str, ...]  # a few example session ids
    reason_before: str
    reason_after: str

    def to_json(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "after": self.after,
            "operation": self.operation,
            "resource": self.resource,
            "count": self.count,
            "principals": [{"principal": p, "count": n} for p, n in self.principals],
            "sessions": list(self.sessions),
            "reason_before": self.reason_before,
            "reason_after": self.reason_after,
        }


@attrs.frozen
class Summary:
    inputs: int  # recorded decisions read
    compared: int
    not_compared: int  # recorded engine failures (timeouts, engine down)
    distinct: int  # distinct inputs, as far as the candidate's decisions go
    evaluations: int
    changed: int
    transitions: tuple[tuple[str, int], ...]  # ("allow → deny", n), most first
    detail_changes: int  # same verdict, other reason or terms (only counted when asked)
    invalid_after: int  # decisions the candidate gives no valid decision for
    revisions: tuple[tuple[str, int], ...]  # policy revisions the decisions were recorded under

    def to_json(self) -> dict[str, Any]:
        out = attrs.asdict(self)
        out["transitions"] = dict(self.transitions)
        out["revisions"] = dict(self.revisions)
        return out


@attrs.frozen
class Report:
    changes: tuple[Change, ...]  # verdict changes, most first
    detail_changes: tuple[Change, ...]  # same verdict, other details (when asked)
    summary: Summary

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.detail_changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [c.to_json() for c in self.changes],
            "detail_changes": [c.to_json() for c in self.detail_changes],
            "summary": self.summary.to_json(),
        }


@attrs.define
class _Tally:
    reason_before: str
    reason_after: str
    count: int = 0
    principals: Counter[str] = attrs.field(factory=Counter)
    sessions: list[str] = attrs.field(factory=list)

    def add(self, principal: str, count: int, sessions: Sequence[str], examples: int) -> None:
        self.count += count
        self.principals[principal] += count
        for s in sessions:
            if len(self.sessions) >= examples:
                break
            if s not in self.sessions:
                self.sessions.append(s)


class ReportBuilder:
    def __init__(self, *, details: bool, examples: int) -> None:
        self.details = details
        self.examples = examples
        self._changes: dict[tuple[str, str, str, str], _Tally] = {}
        self._details: dict[tuple[str, str, str, str], _Tally] = {}
        self._transitions: Counter[str] = Counter()
        self.distinct = self.compared = self.changed = self.detail_changed = self.invalid_after = 0

    def add(self, policy_input: Mapping[str, Any], after: Outcome,
            recorded: Mapping[Outcome, tuple[int, Sequence[str]]]) -> None:
        """One distinct input: the candidate's outcome for it, and each recorded outcome with
        how often it was recorded and example sessions."""
        self.distinct += 1
        for before, (count, sessions) in recorded.items():
            self.compared += count
            if after.invalid:
                self.invalid_after += count
            if before.verdict != after.verdict:
                target = self._changes
                self.changed += count
                self._transitions[f"{before} → {after}"] += count
            elif self.details and not before.same_details(after):
                target = self._details
                self.detail_changed += count
            else:
                continue
            key = (str(before), str(after), *_what(policy_input))
            tally = target.get(key)
            if tally is None:
                tally = target[key] = _Tally(before.reason, after.reason)
            tally.add(_principal(policy_input), count, sessions, self.examples)

    def build(self, *, inputs: int, not_compared: int, evaluations: int, revisions: Counter[str]) -> Report:
        summary = Summary(
            inputs=inputs,
            compared=self.compared,
            not_compared=not_compared,
            distinct=self.distinct,
            evaluations=evaluations,
            changed=self.changed,
            transitions=tuple(self._transitions.most_common()),
            detail_changes=self.detail_changed,
            invalid_after=self.invalid_after,
            revisions=tuple(revisions.most_common()),
        )
        return Report(_changes(self._changes), _changes(self._details), summary)


def _changes(tallies: Mapping[tuple[str, str, str, str], _Tally]) -> tuple[Change, ...]:
    out = [
        Change(
            before=before,
            after=after,
            operation=operation,
            resource=resource,
            count=t.count,
            principals=tuple(sorted(t.principals.items(), key=lambda pn: (-pn[1], pn[0]))),
            sessions=tuple(t.sessions),
            reason_before=t.reason_before,
            reason_after=t.reason_after,
        )
        for (before, after, operation, resource), t in tallies.items()
    ]
    out.sort(key=lambda c: (-c.count, c.before, c.after, c.operation, c.resource))
    return tuple(out)


def _what(policy_input: Mapping[str, Any]) -> tuple[str, str]:
    operation = str(policy_input.get("operation", "?"))
    resource = policy_input.get("resource")
    if isinstance(resource, Mapping):
        return operation, f"{resource.get('type', '?')} {resource.get('name', '?')}"
    return operation, "?"


def _principal(policy_input: Mapping[str, Any]) -> str:
    principal = policy_input.get("principal")
    if isinstance(principal, Mapping):
        return str(principal.get("sub") or "anonymous")
    return "anonymous"
