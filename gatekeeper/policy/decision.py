"""Strict decision parsing: a policy's raw value → Decision, or an error that ends in deny.

Anything that does not match ``schemas/decision.schema.json`` is refused with a message that
says what was wrong; the engine turns that into a deny (fail closed).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema

from gatekeeper.api import Decision
from gatekeeper.values import parse_duration

__all__ = ["DecisionError", "engine_failure", "parse_decision"]

_VALIDATOR = jsonschema.Draft202012Validator(
    json.loads(resources.files("gatekeeper").joinpath("schemas/decision.schema.json").read_text())
)


class DecisionError(Exception):
    """The policy returned something that is not a valid decision (the policy author's bug)."""


def parse_decision(raw: Any) -> Decision:
    if raw is None:
        raise DecisionError("the decision rule is undefined for this input (no default?)")
    errors = sorted(_VALIDATOR.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        where = "/".join(map(str, e.absolute_path)) or "decision"
        raise DecisionError(f"malformed decision at {where}: {_message(e)}")
    if isinstance(raw.get("approval"), dict):
        _check_approval(raw["approval"])
    ttl = raw.get("ttl")
    return Decision(
        action=raw["action"],
        reason=raw.get("reason", ""),
        mask=tuple(raw.get("mask", ())),
        approval=raw.get("approval"),
        ttl=parse_duration(ttl) if ttl else None,
        error=raw.get("error", "authorization"),
    )


def _message(e: jsonschema.ValidationError) -> str:
    """What was wrong, in words a policy author acts on (jsonschema's own for most errors)."""
    if e.validator == "oneOf" and "masker" in e.schema.get("required", ()):
        named = [k for k in ("field", "detector") if isinstance(e.instance, dict) and k in e.instance]
        return f"a mask item names exactly one of field or detector, this one names {' and '.join(named) or 'neither'}"
    if e.validator == "maxItems" and isinstance(e.instance, list):
        return f"{len(e.instance)} items, more than the {e.validator_value} allowed"
    return e.message


def _check_approval(approval: dict[str, Any]) -> None:
    """An approval only user: approvers could give is refused if there are fewer of them than
    approvals_required: the request would wait for an approval that can never come."""
    approvers = approval["approvers"]
    required = approval.get("approvals_required", 1)
    if any(a.startswith("group:") for a in approvers):
        return
    users = set(approvers)
    if len(users) < required:
        raise DecisionError(
            f"malformed decision at approval: approvals_required is {int(required)} but the approvers name "
            f"{len(users)} different user{'s' if len(users) != 1 else ''} and no group, so it could never be approved"
        )


def engine_failure(reason: str) -> Decision:
    """The deny that stands in when no valid decision could be had (never cached)."""
    return Decision(action="deny", reason=reason, error="authorization", ttl=0.0)
