"""Builders of record fields from Gatekeeper's values (pure), so the data path writes the shapes
``schemas/audit-record.schema.json`` expects and never a token, a claim it should not, or a
secret. ``docs/audit.md`` shows each kind whole."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gatekeeper.api import Decision, Principal
from gatekeeper.audit.records import format_time

__all__ = [
    "decision_fields",
    "enforced_fields",
    "fetched_partition",
    "operation_entry",
    "principal_fields",
    "produced_partition",
    "token_fields",
]


def principal_fields(principal: Principal | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Who, without claims: ``{"sub", "issuer", "groups", "mechanism"}``."""
    if principal is None:
        return None
    if isinstance(principal, Mapping):
        return {"sub": str(principal.get("sub")), "issuer": principal.get("issuer"),
                "groups": list(principal.get("groups") or ()), "mechanism": str(principal.get("mechanism", "NONE"))}
    return {"sub": principal.sub, "issuer": principal.issuer, "groups": list(principal.groups),
            "mechanism": principal.mechanism}


def token_fields(claims: Mapping[str, Any]) -> dict[str, Any]:
    """A validated token's id and expiry (and issuer) from its claims: never the token itself."""
    exp = claims.get("exp")
    return {"jti": str(claims["jti"]) if claims.get("jti") is not None else None,
            "exp": format_time(float(exp)) if isinstance(exp, int | float) else None,
            "issuer": claims.get("iss") if isinstance(claims.get("iss"), str) else None}


def decision_fields(decision: Decision, revision: str | None, *, cached: bool | None = None) -> dict[str, Any]:
    """The decision as enforced, with the policy revision that made it."""
    out: dict[str, Any] = {"action": decision.action, "reason": decision.reason,
                           "error": decision.error if decision.action == "deny" else None, "revision": revision}
    if decision.mask:
        out["mask"] = [dict(m) for m in decision.mask]
    if decision.approval is not None:
        out["approval"] = dict(decision.approval)
    if decision.ttl is not None:
        out["ttl"] = decision.ttl
    if cached is not None:
        out["cached"] = cached
    return out


def enforced_fields(result: str, *, error_code: int | None = None, masked_fields: int | None = None,
                    masked_records: int | None = None, approval: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What was done: ``forwarded`` | ``denied`` (with the Kafka error code) | ``masked`` (how
    many fields and records) | ``held`` (still waiting when the request ended) | ``dropped``
    (an acks=0 produce denied); ``approval``: ``{"id", "status", "waited_ms"}`` once held."""
    out: dict[str, Any] = {"result": result}
    if error_code is not None:
        out["error_code"] = error_code
    if masked_fields is not None:
        out["masked_fields"] = masked_fields
    if masked_records is not None:
        out["masked_records"] = masked_records
    if approval is not None:
        out["approval"] = dict(approval)
    return out


def operation_entry(policy_input: Mapping[str, Any], decision: Decision, revision: str | None,
                    enforced: Mapping[str, Any], *, cached: bool | None = None) -> dict[str, Any]:
    """One decided operation of a request record: the policy input as decided, the decision,
    what was enforced."""
    return {"input": policy_input, "decision": decision_fields(decision, revision, cached=cached),
            "enforced": dict(enforced)}


def produced_partition(topic: str, partition: int, error_code: int, base_offset: int, record_count: int) -> dict[str, Any]:
    return {"topic": topic, "partition": partition, "error_code": error_code, "base_offset": base_offset,
            "record_count": record_count}


def fetched_partition(topic: str, partition: int, error_code: int, offsets: Sequence[int]) -> dict[str, Any]:
    """A Fetch partition's outcome: the first and last offset of the records returned (none: no
    offsets)."""
    out: dict[str, Any] = {"topic": topic, "partition": partition, "error_code": error_code}
    if offsets:
        out["first_offset"], out["last_offset"] = min(offsets), max(offsets)
        out["record_count"] = len(offsets)
    return out
