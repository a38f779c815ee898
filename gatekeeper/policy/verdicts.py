"""Decisions as what-if compares them: a recorded decision, or a candidate's raw value, as an Outcome.

**Compared**: the verdict — the action, a deny's ``error`` (authorization or policy_violation:
which Kafka error the client gets), and whether there was a valid decision at all (none is a
deny, as the gateway enforces it). The details — the reason, and the mask items and approval
terms — are compared only when asked. A recorded deny that stood in for an engine that did not
answer (a timeout, OPA down, the queue full) was no policy's decision: ``recorded_outcome``
gives None for it.

The candidate's raw value goes through ``parse_decision`` as in ``PolicyEngine``: the same
strict parsing, the same deny where there is no valid decision.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs
import orjson

from gatekeeper.policy.decision import DecisionError, parse_decision

__all__ = ["Outcome", "candidate_outcome", "recorded_outcome", "terms"]

# engine_failure's reasons (engine.py): an engine that did not answer, or a policy that gave
# no valid decision.
_ENGINE_DOWN = re.compile(r"denied: policy engine \S+ (did not answer|failed)")
NO_VALID_DECISION = "denied: the policy gave no valid decision"


@attrs.frozen
class Outcome:
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

    def same_details(self, other: Outcome) -> bool:
        """The same reason and, where this one recorded them, the same terms."""
        return self.reason == other.reason and (self.terms is None or self.terms == other.terms)

    def __str__(self) -> str:
        if self.invalid:
            return "deny (no valid decision)"
        if self.action == "deny" and self.error not in (None, "authorization"):
            return f"deny ({self.error})"
        return self.action


def terms(decision: Mapping[str, Any]) -> str | None:
    """A decision's mask items and approval as canonical JSON; None when it has neither key."""
    if "mask" not in decision and "approval" not in decision:
        return None
    value = {"mask": decision.get("mask") or [], "approval": decision.get("approval")}
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def recorded_outcome(decision: Mapping[str, Any]) -> Outcome | None:
    """The recorded decision as an Outcome; None for a deny that stood in for an engine that
    did not answer. Raises ValueError for a decision without an action."""
    action = decision.get("action")
    if not isinstance(action, str):
        raise ValueError(f"a recorded decision without an action: {decision!r}"[:300])
    reason = decision.get("reason") or ""
    if action == "deny" and _ENGINE_DOWN.match(reason):
        return None
    invalid = action == "deny" and reason.startswith(NO_VALID_DECISION)
    error = (decision.get("error") or "authorization") if action == "deny" else None
    return Outcome(action, error, invalid, reason, terms(decision) if action in ("mask", "approve") else None)


def candidate_outcome(raw: Any) -> Outcome:
    """The candidate's raw value (or the Exception evaluating it raised) as the gateway
    would enforce it."""
    try:
        if isinstance(raw, Exception):  # a per-input evaluation error, as in PolicyEngine
            raise DecisionError(f"evaluation failed: {raw}")
        decision = parse_decision(raw)
    except DecisionError as e:
        return Outcome("deny", "authorization", True, f"{NO_VALID_DECISION} ({e})")
    error = decision.error if decision.action == "deny" else None
    return Outcome(decision.action, error, False, decision.reason,
                   terms(raw) if decision.action in ("mask", "approve") else None)
