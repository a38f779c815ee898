"""What-if: recorded policy inputs replayed against a candidate policy (``gatekeeper policy what-if``).

``WhatIf(candidate).add(input, decision, session)`` for every decided operation of the audit
trail, then ``run()``: the report of every decision the candidate would make differently,
grouped by (before → after, operation, resource), with counts, principals and example
sessions, and a summary.

**Distinct inputs.** A trail repeats itself: the same principal produces to the same topic
thousands of times, and the inputs differ only in the volatile fields (``cache.VOLATILE_FIELDS``:
time, session, client, request sizes). Each input is evaluated once per distinct value of the
fields the candidate reads. Which those are is settled in two steps: ``reads.scan`` says which
volatile fields the candidate may read at all (``ReadSites``); then the inputs that agree on
everything else are evaluated once, and the candidate says which of those fields that
evaluation actually read (``Candidate.evaluate_many``; ``reach`` explains how the embedded
engine tells). Only if it read one are the inputs told apart by it, and each part evaluated
again, until every part is decided by an evaluation that read nothing its members differ in.
The default library reads ``input.time`` only to check a time-boxed grant, so an input
without one is evaluated once however many times it was recorded.

**Compared**: the verdict — the action, a deny's ``error`` (authorization or policy_violation),
and whether there was a valid decision at all (a candidate that gives none is a deny, as the
gateway enforces it). Reasons, mask items and approval terms are compared only when asked
(``details=True``), and reported apart. Recorded denies that stood in for an engine that did
not answer (a timeout, OPA down) were no policy's decision: they are counted, not compared.

The candidate's raw values go through ``parse_decision`` exactly as ``PolicyEngine`` does.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import orjson

from gatekeeper.policy.cache import VOLATILE_FIELDS
from gatekeeper.policy.decision import DecisionError, parse_decision

__all__ = [
    "Candidate",
    "Change",
    "Evaluation",
    "Outcome",
    "Report",
    "Summary",
    "WhatIf",
    "candidate_outcome",
    "recorded_outcome",
    "stable_key",
]

EXAMPLE_SESSIONS = 3
_TOP_LEVEL = tuple(f for f in VOLATILE_FIELDS if "." not in f)
_REQUEST = tuple(f.split(".", 1)[1] for f in VOLATILE_FIELDS if f.startswith("request."))
# engine_failure's reasons (engine.py): an engine that did not answer, or a policy that gave
# no valid decision.
_ENGINE_DOWN = re.compile(r"denied: policy engine \S+ (did not answer|failed)")
_NO_VALID_DECISION = "denied: the policy gave no valid decision"


# -- outcomes ------------------------------------------------------------------------------------


@attrs.frozen
class Outcome:
    """A decision as compared: the verdict (action, error, valid or not) and the details."""

    action: str  # allow | deny | mask | approve
    error: str | None = None  # a deny's: authorization | policy_violation
    invalid: bool = False  # no valid decision (the policy's fault): enforced as a deny
    reason: str = ""
    terms: str | None = None  # mask items and approval, canonical JSON; None: not recorded

    @property
    def verdict(self) -> tuple[str, str | None, bool]:
        return (self.action, self.error, self.invalid)

    @property
    def details(self) -> tuple[str, str | None]:
        return (self.reason, self.terms)

    def __str__(self) -> str:
        if self.invalid:
            return "deny (no valid decision)"
        if self.action == "deny" and self.error not in (None, "authorization"):
            return f"deny ({self.error})"
        return self.action


def _terms(decision: Mapping[str, Any]) -> str | None:
    if "mask" not in decision and "approval" not in decision:
        return None
    terms = {"mask": decision.get("mask") or [], "approval": decision.get("approval")}
    return orjson.dumps(terms, option=orjson.OPT_SORT_KEYS).decode()


def recorded_outcome(decision: Mapping[str, Any]) -> Outcome | None:
    """The recorded decision as an Outcome; None for a deny that stood in for an engine that
    did not answer (no policy decided it)."""
    action = decision.get("action")
    if not isinstance(action, str):
        raise ValueError(f"a recorded decision without an action: {decision!r}"[:300])
    reason = decision.get("reason") or ""
    if action == "deny" and _ENGINE_DOWN.match(reason):
        return None
    invalid = action == "deny" and reason.startswith(_NO_VALID_DECISION)
    error = (decision.get("error") or "authorization") if action == "deny" else None
    terms = None if action not in ("mask", "approve") else _terms(decision)
    return Outcome(action, error, invalid, reason, terms)


def candidate_outcome(raw: Any) -> Outcome:
    """The candidate's raw value (or evaluation error) as the gateway would enforce it: the
    same ``parse_decision``, and the same deny where there is no valid decision."""
    try:
        if isinstance(raw, Exception):  # a per-input evaluation error, as in PolicyEngine
            raise DecisionError(f"evaluation failed: {raw}")
        decision = parse_decision(raw)
    except DecisionError as e:
        return Outcome("deny", "authorization", True, f"{_NO_VALID_DECISION} ({e})")
    error = decision.error if decision.action == "deny" else None
    terms = None if decision.action not in ("mask", "approve") else _terms(raw)
    return Outcome(decision.action, error, False, decision.reason, terms)


# -- the candidate -------------------------------------------------------------------------------


@attrs.frozen
class Evaluation:
    """The candidate's raw value for one input (an Exception where evaluating it failed), and
    the volatile fields evaluating it read; None: it cannot tell (assume all it may read)."""

    raw: Any
    reached: frozenset[str] | None = None


class Candidate(Protocol):
    """The candidate policy behind an engine (``gatekeeper.policy.candidate``)."""

    @property
    def may_read(self) -> frozenset[str]:
        """The volatile fields the candidate may read at all (``reads.scan``)."""

    def evaluate_many(self, inputs: Sequence[Mapping[str, Any]]) -> list[Evaluation]:
        """One Evaluation per input, in order."""


# -- the report ----------------------------------------------------------------------------------


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
    detail_changes: tuple[Change, ...]  # same verdict, other details (details=True only)
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


# -- the core ------------------------------------------------------------------------------------


@attrs.define
class _Group:
    """Recorded inputs equal in everything but the volatile fields."""

    input: Mapping[str, Any]  # the first one
    members: list[tuple[tuple[Any, ...], int, str | None]]  # (read-field values, outcome index, session)


@attrs.define
class _Work:
    group: _Group
    members: list[tuple[tuple[Any, ...], int, str | None]]
    told_apart: frozenset[str]  # the fields these members all agree on
    input: Mapping[str, Any]
    values: tuple[Any, ...]  # input's values of the fields the candidate may read


class WhatIf:
    """Feed it recorded decisions with ``add``, then ``run`` the candidate over them."""

    def __init__(self, candidate: Candidate, *, details: bool = False, examples: int = EXAMPLE_SESSIONS) -> None:
        self.candidate = candidate
        self.details = details
        self.examples = examples
        self._fields = tuple(sorted(candidate.may_read))  # the order of each member's values
        self._paths = [(f.partition(".")[0], f.partition(".")[2] or None) for f in self._fields]
        self._groups: dict[bytes, _Group] = {}
        self._outcomes: dict[tuple[Any, ...], int] = {}  # recorded outcome -> index
        self._outcome_list: list[Outcome] = []
        self._revisions: Counter[str] = Counter()
        self._inputs = 0
        self._not_compared = 0

    def add(self, policy_input: Mapping[str, Any], decision: Mapping[str, Any], session: str | None = None) -> None:
        """One recorded decision: the policy input and the decision made then (action, reason,
        error; ``revision`` if recorded). Raises ValueError for a decision without an action."""
        self._inputs += 1
        revision = decision.get("revision")
        if revision:
            self._revisions[revision] += 1
        memo = (decision.get("action"), decision.get("error"), decision.get("reason"), _terms(decision) if "mask" in decision or "approval" in decision else None)
        index = self._outcomes.get(memo)
        if index is None:
            outcome = recorded_outcome(decision)
            index = -1 if outcome is None else len(self._outcome_list)
            if outcome is not None:
                self._outcome_list.append(outcome)
            self._outcomes[memo] = index
        if index < 0:
            self._not_compared += 1
            return
        key = stable_key(policy_input)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(policy_input, [])
        if self._paths:
            read = []
            for head, rest in self._paths:
                value = policy_input.get(head, _MISSING)
                if rest is not None:
                    value = value.get(rest, _MISSING) if isinstance(value, Mapping) else _MISSING
                read.append(value if type(value) in _SCALARS else _hashable(value))
            group.members.append((tuple(read), index, session))
        else:
            group.members.append(((), index, session))

    def run(self) -> Report:
        """Evaluate the distinct inputs and compare. ``add`` may not be called afterwards."""
        fields = self._fields
        work = [
            _Work(g, g.members, frozenset(), g.input, g.members[0][0]) for g in self._groups.values()
        ]
        leaves: list[tuple[_Group, list[tuple[tuple[Any, ...], int, str | None]], Outcome]] = []
        decided: dict[bytes, Outcome] = {}  # raw value -> outcome: parse each distinct one once
        evaluations = 0
        while work:
            answers = self.candidate.evaluate_many([w.input for w in work])
            if len(answers) != len(work):
                raise RuntimeError(f"the candidate answered {len(answers)} evaluations for {len(work)} inputs")
            evaluations += len(work)
            following: list[_Work] = []
            for w, answer in zip(work, answers, strict=True):
                outcome = _decided(answer.raw, decided)
                reached = self.candidate.may_read if answer.reached is None else answer.reached
                if reached <= w.told_apart:
                    leaves.append((w.group, w.members, outcome))
                    continue
                apart = w.told_apart | reached
                at = [i for i, f in enumerate(fields) if f in apart]
                parts: dict[tuple[Any, ...], list[tuple[tuple[Any, ...], int, str | None]]] = defaultdict(list)
                for member in w.members:
                    parts[tuple(member[0][i] for i in at)].append(member)
                evaluated = tuple(w.values[i] for i in at)
                for part_key, members in parts.items():
                    if part_key == evaluated:
                        # Agrees with the input just evaluated on all it read: decided.
                        leaves.append((w.group, members, outcome))
                    else:
                        values = members[0][0]
                        following.append(_Work(w.group, members, apart, _with_values(w.group.input, fields, values), values))
            work = following
        return self._report(leaves, evaluations)

    # -- internals -------------------------------------------------------------------------

    def _report(self, leaves: Iterable[tuple[_Group, list[tuple[tuple[Any, ...], int, str | None]], Outcome]], evaluations: int) -> Report:
        changes: dict[tuple[str, str, str, str], _ChangeTally] = {}
        details: dict[tuple[str, str, str, str], _ChangeTally] = {}
        transitions: Counter[str] = Counter()
        distinct = compared = changed = detail_changed = invalid_after = 0
        outcomes = self._outcome_list
        for group, members, after in leaves:
            distinct += 1
            by_outcome: dict[int, list[str | None]] = defaultdict(list)
            for _, index, session in members:
                by_outcome[index].append(session)
            for index, sessions in by_outcome.items():
                before = outcomes[index]
                n = len(sessions)
                compared += n
                if after.invalid:
                    invalid_after += n
                if before.verdict != after.verdict:
                    target = changes
                    changed += n
                    transitions[f"{before} → {after}"] += n
                elif self.details and before.details != after.details and not _unrecorded_terms(before, after):
                    target = details
                    detail_changed += n
                else:
                    continue
                k = (str(before), str(after), *_what(group.input))
                tally = target.get(k)
                if tally is None:
                    tally = target[k] = _ChangeTally(before.reason, after.reason)
                tally.add(_principal(group.input), sessions, self.examples)
        summary = Summary(
            inputs=self._inputs,
            compared=compared,
            not_compared=self._not_compared,
            distinct=distinct,
            evaluations=evaluations,
            changed=changed,
            transitions=tuple(transitions.most_common()),
            detail_changes=detail_changed,
            invalid_after=invalid_after,
            revisions=tuple(self._revisions.most_common()),
        )
        return Report(_changes(changes), _changes(details), summary)


@attrs.define
class _ChangeTally:
    reason_before: str
    reason_after: str
    count: int = 0
    principals: Counter[str] = attrs.field(factory=Counter)
    sessions: list[str] = attrs.field(factory=list)

    def add(self, principal: str, sessions: list[str | None], examples: int) -> None:
        self.count += len(sessions)
        self.principals[principal] += len(sessions)
        for s in sessions:
            if len(self.sessions) >= examples:
                break
            if s and s not in self.sessions:
                self.sessions.append(s)


def _changes(tallies: Mapping[tuple[str, str, str, str], _ChangeTally]) -> tuple[Change, ...]:
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


def _unrecorded_terms(before: Outcome, after: Outcome) -> bool:
    """The reasons agree and only the terms differ, but the trail did not record them."""
    return before.reason == after.reason and before.terms is None


def _decided(raw: Any, memo: dict[bytes, Outcome]) -> Outcome:
    if isinstance(raw, Exception):
        return candidate_outcome(raw)
    try:
        key = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return candidate_outcome(raw)
    outcome = memo.get(key)
    if outcome is None:
        outcome = memo[key] = candidate_outcome(raw)
    return outcome


def stable_key(policy_input: Mapping[str, Any]) -> bytes:
    """The input without the volatile fields, as bytes (cache.cache_key with nothing kept)."""
    stable = dict(policy_input)
    for field in _TOP_LEVEL:
        stable.pop(field, None)
    request = policy_input.get("request")
    if isinstance(request, Mapping) and any(k in request for k in _REQUEST):
        request = dict(request)
        for field in _REQUEST:
            request.pop(field, None)
        stable["request"] = request
    try:
        return orjson.dumps(stable, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # something orjson does not serialise: the slow path
        import json

        return json.dumps(stable, sort_keys=True, default=str).encode()


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


_SCALARS = frozenset({str, int, float, bool, type(None), _Missing})


def _hashable(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    return ("json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


def _unhashable(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "json":
        return orjson.loads(value[1])
    return value


def _with_values(policy_input: Mapping[str, Any], fields: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """``policy_input`` with the given fields set to another member's values."""
    out = dict(policy_input)
    for field, value in zip(fields, values, strict=True):
        head, _, rest = field.partition(".")
        if rest:
            inner = dict(out.get(head) or {})
            if value is _MISSING:
                inner.pop(rest, None)
            else:
                inner[rest] = _unhashable(value)
            out[head] = inner
        elif value is _MISSING:
            out.pop(head, None)
        else:
            out[head] = _unhashable(value)
    return out


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
