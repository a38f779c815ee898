"""What the approvals API shows a principal: who may see which request or grant, and the JSON.

The rule (docs/approvals.md, Who sees what): a principal sees a request when they made it or
when they are among its approvers (``group:``/``user:`` entries matched against their token),
and a grant when it is theirs or they are among the approvers of the approval that made it.
Listings leave out what the caller may not see; asking for one by id answers 403 (ids are 96
random bits, so this says nothing a caller could probe for). Each object
carries a ``viewer`` block saying what the caller may do with it, computed by the same rules the
service enforces (``gatekeeper.approvals.model``), so the page and the CLI never guess.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.api import Principal
from gatekeeper.approvals.model import (
    ApprovalRequest,
    Grant,
    approver_matches,
    is_live,
    may_decide,
    may_revoke,
    same_person,
)

__all__ = ["grant_json", "may_see_grant", "may_see_request", "principal_json", "request_json"]


def is_requester(request: ApprovalRequest, principal: Principal) -> bool:
    return same_person(request.requester, principal)


def may_see_request(request: ApprovalRequest, principal: Principal) -> bool:
    return is_requester(request, principal) or approver_matches(request.approvers, principal)


def is_grantee(grant: Grant, principal: Principal) -> bool:
    return (grant.sub, grant.issuer) == (principal.sub, principal.issuer)


def may_see_grant(grant: Grant, principal: Principal) -> bool:
    return is_grantee(grant, principal) or approver_matches(grant.approvers, principal)


def request_json(request: ApprovalRequest, viewer: Principal, now: float) -> dict[str, Any]:
    refused = may_decide(request, viewer, now)
    out = request.to_json()
    out["viewer"] = {"requester": is_requester(request, viewer), "may_decide": refused is None,
                     "why_not": None if refused is None else refused.reason}
    return out


def grant_json(grant: Grant, viewer: Principal, now: float) -> dict[str, Any]:
    refused = may_revoke(grant, viewer, now)
    out = grant.to_json()
    out["live"] = is_live(grant, now)
    out["viewer"] = {"grantee": is_grantee(grant, viewer), "may_revoke": refused is None,
                     "why_not": None if refused is None else refused.reason}
    return out


def principal_json(principal: Principal) -> dict[str, Any]:
    """The caller as ``whoami`` shows it: no token claims beyond who they are."""
    return {"sub": principal.sub, "issuer": principal.issuer, "groups": list(principal.groups)}
