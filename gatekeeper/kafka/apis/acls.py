"""ACLs: DescribeAcls (``describe_acls``), CreateAcls and DeleteAcls (``alter_acls``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gatekeeper.api import CLUSTER, Operation
from gatekeeper.kafka.apis.base import (
    ApiKey,
    ApiUnit,
    Denials,
    GatewayIdentity,
    OpContext,
    Resolve,
    ResponseContext,
)

_DENY = 2  # AclPermissionType.DENY
_ANY_USER = "User:*"


def _describe(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("describe_acls", CLUSTER, {})]


def _create(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("alter_acls", CLUSTER, {"creations": len(b.creations)})]


def _delete(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("alter_acls", CLUSTER, {"deletions": len(b.filters)})]


def _per_entry(list_name: str, item: str, request_list: str) -> Callable[..., Any]:
    def build(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
        d = deny(CLUSTER)
        cls = getattr(R, item)
        extra: dict[str, Any] = {"matching_acls": []} if item == "DeleteAclsFilterResult" else {}
        return R[v](throttle_time_ms=0, **{list_name: [cls(error_code=d.code, error_message=d.message, **extra)
                                                      for _ in getattr(b, request_list)]})

    return build


def _create_guard(version: int, b: Any, gateway: GatewayIdentity) -> str | None:
    for c in b.creations:
        if gateway.principal is not None and c.principal == gateway.principal:
            return f"ACLs of {gateway.principal} are Gatekeeper's own: no client may change them"
        if c.principal == _ANY_USER and c.permission_type == _DENY:
            return f"a DENY for {_ANY_USER} would apply to Gatekeeper's own principal: refused"
    return None


def _delete_guard(version: int, b: Any, gateway: GatewayIdentity) -> str | None:
    if gateway.principal is None:
        return None
    for f in b.filters:
        if f.principal_filter is None or f.principal_filter == gateway.principal:
            return (f"an ACL filter for any principal (or {gateway.principal}) would delete Gatekeeper's own ACLs: "
                    "name the principal")
    return None


def _without_gateway_acls(version: int, body: Any, ctx: ResponseContext) -> None:
    if ctx.gateway.principal is None:
        return
    kept = []
    for r in body.resources:
        r.acls = [a for a in r.acls if a.principal != ctx.gateway.principal]
        if r.acls:
            kept.append(r)
    body.resources = kept


UNITS = [
    ApiUnit(ApiKey.DESCRIBE_ACLS, _describe, rewrite=_without_gateway_acls),
    ApiUnit(ApiKey.CREATE_ACLS, _create, _per_entry("results", "AclCreationResult", "creations"), guard=_create_guard),
    ApiUnit(ApiKey.DELETE_ACLS, _delete, _per_entry("filter_results", "DeleteAclsFilterResult", "filters"), guard=_delete_guard),
]
