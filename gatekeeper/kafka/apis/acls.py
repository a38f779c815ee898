"""ACLs: DescribeAcls (``describe_acls``), CreateAcls and DeleteAcls (``alter_acls``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gatekeeper.api import CLUSTER, Operation
from gatekeeper.kafka.apis.base import ApiKey, ApiUnit, Denials, OpContext, Resolve


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


UNITS = [
    ApiUnit(ApiKey.DESCRIBE_ACLS, _describe),
    ApiUnit(ApiKey.CREATE_ACLS, _create, _per_entry("results", "AclCreationResult", "creations")),
    ApiUnit(ApiKey.DELETE_ACLS, _delete, _per_entry("filter_results", "DeleteAclsFilterResult", "filters")),
]
