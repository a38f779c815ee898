"""Builders of record fields from Gatekeeper's values (pure), so the data path writes the shapes
``schemas/audit-record.schema.json`` expects and never a token, a claim it should not, or a
secret. ``docs/audit.md`` shows each kind whole."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gatekeeper.api import Decision, Principal
from gatekeeper.audit.records import format_time

__all__ = [
    "audit_approval_record",
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


def _who(sub: str | None, issuer: str | None = None) -> dict[str, Any] | None:
    return None if not sub else {"sub": sub, "issuer": issuer, "groups": [], "mechanism": "unknown"}


def audit_approval_record(event: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """An approvals service event (``Approvals.subscribe``) as an ``approval`` or ``grant``
    record: who asked for what and who decided, never a token."""
    kind = event.get("type")
    if kind in ("request_opened", "request_voted", "request_decided"):
        r = event["request"]
        votes = r.get("votes") or []
        last = votes[-1] if votes else None
        if kind == "request_opened":
            name, by, reason = "opened", None, r.get("reason")
        elif kind == "request_voted":
            if r.get("status") != "pending":
                return None  # the deciding vote is recorded as the decision
            name = "approved" if last and last.get("verdict") == "approve" else "denied"
            by, reason = (_who(last.get("sub"), last.get("issuer")), last.get("reason")) if last else (None, None)
        else:
            name = r.get("status")
            if name not in ("approved", "denied", "expired"):
                return None
            by, reason = (_who(last.get("sub"), last.get("issuer")), last.get("reason")) if last and name != "expired" else (None, None)
        requester = r.get("requester") or {}
        return "approval", {
            "event": name, "by": by, "reason": reason,
            "request": {"id": r["id"], "status": r.get("status", ""), "operation": r.get("operation", ""),
                        "resource": r.get("resource", {}), "approvers": list(r.get("approvers") or ()),
                        "requester": {"sub": requester.get("sub", ""), "issuer": requester.get("issuer"),
                                      "groups": list(requester.get("groups") or ()), "mechanism": requester.get("mechanism", "NONE")}},
        }
    if kind in ("grant_created", "grant_revoked", "grant_expired"):
        g = event["grant"]
        name = {"grant_created": "granted", "grant_revoked": "revoked", "grant_expired": "expired"}[kind]
        principal = g.get("principal") or {}
        grant = {"id": g["id"], "principal": _who(principal.get("sub"), principal.get("issuer")),
                 "operation": g.get("operation", ""), "resource": g.get("resource", {}), "expires_at": g["expires_at"],
                 "approved_by": list(g.get("approved_by") or ())}
        if g.get("approval_id"):
            grant["request"] = g["approval_id"]
        by = _who(g.get("revoked_by")) if kind == "grant_revoked" else None
        return "grant", {"event": name, "grant": grant, "by": by,
                         "reason": g.get("revoke_reason") if kind == "grant_revoked" else None}
    return None
