"""Approval requests and grants as values, and the rules over them as pure functions.

Nothing here does I/O, reads the clock or draws random numbers: ids and times come in as
arguments (``gatekeeper.approvals.service`` supplies them), so every rule — who may decide a
request, what a vote does, when a request expires, which grants are live — is a function of
its arguments and is tested as one.

Identity is ``(sub, issuer)``: two principals with the same subject from different issuers
are different people, and a requester is the same person whatever groups their token lists.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from gatekeeper.api import Principal, Resource
from gatekeeper.values import parse_duration

__all__ = [
    "APPROVED",
    "DENIED",
    "EXPIRED",
    "PENDING",
    "ApprovalRequest",
    "ApprovalSpec",
    "Grant",
    "Refused",
    "Vote",
    "approver_matches",
    "expire",
    "from_rfc3339",
    "identity",
    "is_live",
    "may_be_same_person",
    "may_decide",
    "may_revoke",
    "new_grant_id",
    "new_request_id",
    "open_request",
    "revoke",
    "rfc3339",
    "same_person",
    "triple",
    "vote",
]

PENDING, APPROVED, DENIED, EXPIRED = "pending", "approved", "denied", "expired"
STATUSES = (PENDING, APPROVED, DENIED, EXPIRED)
VERDICTS = ("approve", "deny")


class Refused(Exception):
    """An approvals call that cannot be done, with the HTTP status that says why: 403 (not
    allowed: segregation of duties, not among the approvers), 404 (no such request or grant),
    409 (no longer pending, already voted, already revoked), 429 (too many pending requests)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"Refused({self.status}, {self.reason!r})"


def new_request_id() -> str:
    """``apr_`` and 16 random URL-safe characters (96 bits): unguessable."""
    return "apr_" + secrets.token_urlsafe(12)


def new_grant_id() -> str:
    return "grt_" + secrets.token_urlsafe(12)


def rfc3339(ts: float) -> str:
    """``2026-11-23T10:00:03.125Z`` (UTC, milliseconds truncated)."""
    ms = int(ts * 1000)
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def from_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def identity(principal: Principal) -> tuple[str, str | None]:
    return (principal.sub, principal.issuer)


def same_person(a: Principal, b: Principal) -> bool:
    return identity(a) == identity(b)


def _bare(principal: Principal) -> Principal:
    """The principal without its claims: what a request records of its requester (the groups
    and mechanism an approver weighs, never the token's other claims)."""
    return Principal(sub=principal.sub, issuer=principal.issuer, groups=tuple(principal.groups),
                     mechanism=principal.mechanism)


@attrs.frozen
class ApprovalSpec:
    """The ``approval`` of an approve decision, with the config's bounds applied."""

    approvers: tuple[str, ...]
    grant_ttl: float
    wait: float
    approvals_required: int = 1

    @classmethod
    def from_decision(cls, approval: Mapping[str, Any], *, default_grant_ttl: float, max_grant_ttl: float,
                      max_wait: float) -> ApprovalSpec:
        """``approval`` has passed the decision schema; durations are capped by the config."""
        approvers = tuple(str(a) for a in approval.get("approvers", ()))
        if not approvers:
            raise ValueError("an approve decision names no approvers")
        grant_ttl = parse_duration(approval["grant_ttl"]) if approval.get("grant_ttl") else default_grant_ttl
        wait = parse_duration(approval["wait"]) if approval.get("wait") else max_wait
        required = int(approval.get("approvals_required", 1))
        if required < 1:
            raise ValueError(f"approvals_required must be at least 1, got {required}")
        return cls(approvers=approvers, grant_ttl=min(grant_ttl, max_grant_ttl), wait=min(wait, max_wait),
                   approvals_required=required)


@attrs.frozen
class Vote:
    sub: str
    issuer: str | None
    verdict: str  # approve | deny
    reason: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"sub": self.sub, "issuer": self.issuer, "verdict": self.verdict, "reason": self.reason,
                "at": rfc3339(self.at)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Vote:
        return cls(raw["sub"], raw.get("issuer"), raw["verdict"], raw.get("reason", ""), from_rfc3339(raw["at"]))


def _principal_json(p: Principal) -> dict[str, Any]:
    return {"sub": p.sub, "issuer": p.issuer, "groups": list(p.groups), "mechanism": p.mechanism}


def _principal_from(raw: Mapping[str, Any]) -> Principal:
    return Principal(sub=raw["sub"], issuer=raw.get("issuer"), groups=tuple(raw.get("groups", ())),
                     mechanism=raw.get("mechanism", "NONE"))


def _resource_from(raw: Mapping[str, Any]) -> Resource:
    return Resource(raw["type"], raw["name"])


def _time_or_none(ts: float | None) -> str | None:
    return None if ts is None else rfc3339(ts)


def _from_time_or_none(text: str | None) -> float | None:
    return None if text is None else from_rfc3339(text)


@attrs.frozen
class ApprovalRequest:
    """A request for approval of one (principal, operation, resource): what an approver needs
    to decide, and what became of it."""

    id: str
    requester: Principal  # without claims
    client_id: str | None
    client_address: str | None
    operation: str
    resource: Resource
    summary: Mapping[str, Any]  # the policy input's ``request``: sizes and partitions, never data
    reason: str  # the policy's
    approvers: tuple[str, ...]  # group:NAME | user:SUB
    approvals_required: int
    grant_ttl: float  # seconds
    created_at: float
    expires_at: float  # a still pending request expires then
    status: str = PENDING
    votes: tuple[Vote, ...] = ()
    decided_at: float | None = None
    grant_id: str | None = None

    @property
    def pending(self) -> bool:
        return self.status == PENDING

    def to_json(self) -> dict[str, Any]:
        """The request as JSON (the API, notifications and the store share it)."""
        return {
            "id": self.id,
            "status": self.status,
            "requester": _principal_json(self.requester),
            "client": {"id": self.client_id, "address": self.client_address},
            "operation": self.operation,
            "resource": self.resource.to_json(),
            "summary": dict(self.summary),
            "reason": self.reason,
            "approvers": list(self.approvers),
            "approvals_required": self.approvals_required,
            "grant_ttl_seconds": self.grant_ttl,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "votes": [v.to_json() for v in self.votes],
            "decided_at": _time_or_none(self.decided_at),
            "grant_id": self.grant_id,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ApprovalRequest:
        client = raw.get("client") or {}
        return cls(
            id=raw["id"],
            requester=_principal_from(raw["requester"]),
            client_id=client.get("id"),
            client_address=client.get("address"),
            operation=raw["operation"],
            resource=_resource_from(raw["resource"]),
            summary=dict(raw.get("summary") or {}),
            reason=raw.get("reason", ""),
            approvers=tuple(raw["approvers"]),
            approvals_required=int(raw.get("approvals_required", 1)),
            grant_ttl=float(raw["grant_ttl_seconds"]),
            created_at=from_rfc3339(raw["created_at"]),
            expires_at=from_rfc3339(raw["expires_at"]),
            status=raw["status"],
            votes=tuple(Vote.from_json(v) for v in raw.get("votes", ())),
            decided_at=_from_time_or_none(raw.get("decided_at")),
            grant_id=raw.get("grant_id"),
        )


@attrs.frozen
class Grant:
    """A time-boxed permission given by an approval: the grantee may do ``operation`` on
    ``resource`` until ``expires_at`` unless revoked first. ``approvers`` is the approval's list,
    kept so that who may revoke is known without the request."""

    id: str
    sub: str
    issuer: str | None
    operation: str
    resource: Resource
    granted_at: float
    expires_at: float
    approved_by: tuple[str, ...]  # the approvers' subjects, in voting order
    approval_id: str
    approvers: tuple[str, ...] = ()
    revoked_at: float | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None

    def to_input(self) -> dict[str, Any]:
        """The grant as a policy input carries it in ``grants`` (docs/policy-input.md)."""
        return {
            "id": self.id,
            "operation": self.operation,
            "resource": self.resource.to_json(),
            "expires_at": rfc3339(self.expires_at),
            "approved_by": list(self.approved_by),
            "approval_id": self.approval_id,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "principal": {"sub": self.sub, "issuer": self.issuer},
            "operation": self.operation,
            "resource": self.resource.to_json(),
            "granted_at": rfc3339(self.granted_at),
            "expires_at": rfc3339(self.expires_at),
            "approved_by": list(self.approved_by),
            "approval_id": self.approval_id,
            "approvers": list(self.approvers),
            "revoked_at": _time_or_none(self.revoked_at),
            "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Grant:
        return cls(
            id=raw["id"],
            sub=raw["principal"]["sub"],
            issuer=raw["principal"].get("issuer"),
            operation=raw["operation"],
            resource=_resource_from(raw["resource"]),
            granted_at=from_rfc3339(raw["granted_at"]),
            expires_at=from_rfc3339(raw["expires_at"]),
            approved_by=tuple(raw.get("approved_by", ())),
            approval_id=raw["approval_id"],
            approvers=tuple(raw.get("approvers", ())),
            revoked_at=_from_time_or_none(raw.get("revoked_at")),
            revoked_by=raw.get("revoked_by"),
            revoke_reason=raw.get("revoke_reason"),
        )


Triple = tuple[str, str | None, str, str, str]


def triple(principal: Principal, operation: str, resource: Resource) -> Triple:
    """What makes two approve decisions the same request: who (sub, issuer), what, on what."""
    return (principal.sub, principal.issuer, operation, resource.type, resource.name)


def request_triple(request: ApprovalRequest) -> Triple:
    return triple(request.requester, request.operation, request.resource)


def open_request(*, id: str, requester: Principal, client: Mapping[str, Any] | None, operation: str,
                 resource: Resource, summary: Mapping[str, Any], reason: str, spec: ApprovalSpec,
                 now: float, request_ttl: float) -> ApprovalRequest:
    client = client or {}
    return ApprovalRequest(
        id=id,
        requester=_bare(requester),
        client_id=client.get("id"),
        client_address=client.get("address"),
        operation=operation,
        resource=resource,
        summary=dict(summary),
        reason=reason,
        approvers=spec.approvers,
        approvals_required=spec.approvals_required,
        grant_ttl=spec.grant_ttl,
        created_at=now,
        expires_at=now + request_ttl,
    )


def approver_matches(approvers: Iterable[str], principal: Principal) -> bool:
    """Whether ``principal`` is one of ``approvers``: ``group:NAME`` against the groups of their
    token, ``user:SUB`` against their subject. Anything else matches nobody."""
    for entry in approvers:
        kind, _, name = entry.partition(":")
        if not name:
            continue
        if (kind == "group" and name in principal.groups) or (kind == "user" and name == principal.sub):
            return True
    return False


def may_be_same_person(a: Principal, b: Principal) -> bool:
    """Same subject and issuer — or the same subject where either has no issuer (a client-id or
    anonymous principal): nothing shows those are two people, so segregation of duties assumes
    they are one."""
    return a.sub == b.sub and (a.issuer == b.issuer or a.issuer is None or b.issuer is None)


def may_decide(request: ApprovalRequest, approver: Principal, now: float | None = None) -> Refused | None:
    """Why ``approver`` may not vote on ``request`` now, or None when they may. Segregation of
    duties comes first: the requester never decides their own request, whatever their groups."""
    if may_be_same_person(request.requester, approver):
        return Refused(403, "segregation of duties: the requester cannot decide their own request")
    if not approver_matches(request.approvers, approver):
        return Refused(403, f"{approver.sub} is not among the approvers of this request "
                            f"({', '.join(request.approvers)})")
    if request.status != PENDING or (now is not None and now >= request.expires_at):
        status = request.status if request.status != PENDING else EXPIRED
        return Refused(409, f"the request is {status}, no longer pending")
    if any((v.sub, v.issuer) == identity(approver) for v in request.votes):
        return Refused(409, f"{approver.sub} has already voted on this request")
    return None


def vote(request: ApprovalRequest, approver: Principal, verdict: str, reason: str, now: float,
         grant_id: str) -> tuple[ApprovalRequest, Grant | None]:
    """The request after ``approver``'s vote, and the grant when this vote approves it. One
    denial denies; ``approvals_required`` distinct approvals approve. Raises Refused when
    :func:`may_decide` does. ``grant_id`` is used only if a grant is made."""
    if verdict not in VERDICTS:
        raise ValueError(f"a verdict is approve or deny, not {verdict!r}")
    refused = may_decide(request, approver, now)
    if refused is not None:
        raise refused
    votes = (*request.votes, Vote(approver.sub, approver.issuer, verdict, reason, now))
    if verdict == "deny":
        return attrs.evolve(request, votes=votes, status=DENIED, decided_at=now), None
    approvals = [v for v in votes if v.verdict == "approve"]
    if len(approvals) < request.approvals_required:
        return attrs.evolve(request, votes=votes), None
    grant = Grant(
        id=grant_id,
        sub=request.requester.sub,
        issuer=request.requester.issuer,
        operation=request.operation,
        resource=request.resource,
        granted_at=now,
        expires_at=now + request.grant_ttl,
        approved_by=tuple(v.sub for v in approvals),
        approval_id=request.id,
        approvers=request.approvers,
    )
    decided = attrs.evolve(request, votes=votes, status=APPROVED, decided_at=now, grant_id=grant_id)
    return decided, grant


def expire(request: ApprovalRequest, now: float) -> ApprovalRequest:
    """The request, expired if it is still pending at or after its ``expires_at``."""
    if request.status == PENDING and now >= request.expires_at:
        return attrs.evolve(request, status=EXPIRED, decided_at=request.expires_at)
    return request


def is_live(grant: Grant, now: float) -> bool:
    """Unrevoked and ``now`` before ``expires_at`` (a grant ends at its expiry, exactly)."""
    return grant.revoked_at is None and now < grant.expires_at


def may_revoke(grant: Grant, by: Principal, now: float) -> Refused | None:
    """The grantee may give up their own grant; anyone among the approvers of the approval that
    made it may take it back. Nobody revokes what has already ended."""
    if grant.revoked_at is not None:
        return Refused(409, "the grant is already revoked")
    if now >= grant.expires_at:
        return Refused(409, "the grant has already expired")
    if (by.sub, by.issuer) == (grant.sub, grant.issuer) or approver_matches(grant.approvers, by):
        return None
    return Refused(403, f"{by.sub} may not revoke this grant: only its grantee or one of its approvers "
                        f"({', '.join(grant.approvers)})")


def revoke(grant: Grant, by: Principal, reason: str, now: float) -> Grant:
    refused = may_revoke(grant, by, now)
    if refused is not None:
        raise refused
    return attrs.evolve(grant, revoked_at=now, revoked_by=by.sub, revoke_reason=reason)
