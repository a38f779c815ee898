"""Consumer groups: membership (JoinGroup, Heartbeat, LeaveGroup, SyncGroup), DescribeGroups,
ListGroups (a listing filtered by describe rights) and DeleteGroups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from gatekeeper.api import CLUSTER, Operation, Resource
from gatekeeper.kafka.apis.base import (
    ApiKey,
    ApiUnit,
    Denials,
    Entities,
    Listing,
    OpContext,
    Resolve,
    force,
    group,
    message,
)
from gatekeeper.kafka.apis.share_groups import SHARE_GROUP


def _member(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("join_group", group(b.group_id), {})]


def _group_error(extra: dict[str, Any]) -> Callable[..., Any]:
    def build(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
        return R[v](error_code=deny(Resource("group", b.group_id)).code, **extra)

    return build


def _join_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    return R[v](throttle_time_ms=0, error_code=deny(Resource("group", b.group_id)).code, generation_id=-1,
                protocol_type=None, protocol_name=None if v >= 7 else "", leader="", member_id=b.member_id or "", members=[])


def _describe(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("describe_group", group(g), {}) for g in b.groups]


def _describe_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    G = R.DescribedGroup
    out = []
    for g in b.groups:
        d = deny(Resource("group", g))
        out.append(G(error_code=d.code, group_id=g, group_state="", protocol_type="", protocol_data="", members=[],
                     authorized_operations=None, **message(v, 6, d)))
    return R[v](throttle_time_ms=0, groups=out)


def _list(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("list_groups", CLUSTER, {})]


@attrs.frozen
class _Groups(Listing):
    """Listed groups, each kept if the principal may describe it: a share group (by its type,
    or its protocol type before ListGroups v5) as a ``share_group``, any other as a ``group``."""

    def operations(self, body: Any, resolve: Resolve | None = None) -> list[Operation]:
        return [Operation(self.operation, Resource(_listed_type(g), g.group_id), {"listing": True})
                for g in body.groups or ()]


def _listed_type(g: Any) -> str:
    share = (getattr(g, "group_type", None) or "").lower() == "share" or (g.protocol_type or "") == "share"
    return SHARE_GROUP if share else "group"


_LISTING = _Groups("groups", "describe_group", "group", lambda g: g.group_id)


def _delete(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("delete_group", group(g), {}) for g in b.groups_names]


def _delete_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    X = R.DeletableGroupResult
    return R[v](throttle_time_ms=0, results=[X(group_id=g, error_code=deny(Resource("group", g)).code) for g in b.groups_names])


_DESCRIBE_ENTITIES = Entities("groups", "groups", lambda e, r: Resource("group", e))
_DELETE_ENTITIES = Entities("groups_names", "results", lambda e, r: Resource("group", e))

UNITS = [
    ApiUnit(ApiKey.JOIN_GROUP, _member, _join_error),
    ApiUnit(ApiKey.HEARTBEAT, _member, _group_error({"throttle_time_ms": 0})),
    ApiUnit(ApiKey.LEAVE_GROUP, _member, _group_error({"throttle_time_ms": 0, "members": []})),
    ApiUnit(ApiKey.SYNC_GROUP, _member, _group_error({"throttle_time_ms": 0, "assignment": b""})),
    ApiUnit(ApiKey.DESCRIBE_GROUPS, _describe, _describe_error, entities=lambda v: _DESCRIBE_ENTITIES,
            # The broker would report Gatekeeper's own rights, not the client's: never asked for.
            normalize=lambda version, body: force(body, "include_authorized_operations", False)),
    ApiUnit(ApiKey.LIST_GROUPS, _list, listing=lambda version, body: _LISTING),
    ApiUnit(ApiKey.DELETE_GROUPS, _delete, _delete_error, entities=lambda v: _DELETE_ENTITIES),
]
