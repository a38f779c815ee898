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
        raise DecisionError(f"malformed decision at {where}: {e.message}")
    ttl = raw.get("ttl")
    return Decision(
        action=raw["action"],
        reason=raw.get("reason", ""),
        mask=tuple(raw.get("mask", ())),
        approval=raw.get("approval"),
        ttl=parse_duration(ttl) if ttl else None,
        error=raw.get("error", "authorization"),
    )


def engine_failure(reason: str) -> Decision:
    """The deny that stands in when no valid decision could be had (never cached)."""
    return Decision(action="deny", reason=reason, error="authorization", ttl=0.0)
