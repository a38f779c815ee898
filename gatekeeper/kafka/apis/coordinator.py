"""FindCoordinator: ``find_coordinator`` per group or transactional id; the coordinator's
address learned and rewritten to Gatekeeper's."""

from __future__ import annotations

from typing import Any

from gatekeeper.api import Operation, Resource
from gatekeeper.kafka.apis.addresses import map_address
from gatekeeper.kafka.apis.base import ApiKey, ApiUnit, Denials, OpContext, Resolve, message


def _kind(b: Any) -> str:
    return "transactional_id" if getattr(b, "key_type", 0) == 1 else "group"


def _operations(b: Any, c: OpContext) -> list[Operation]:
    keys = list(b.coordinator_keys) if c.version >= 4 else [b.key]
    return [Operation("find_coordinator", Resource(_kind(b), k), {}) for k in keys]


def _error_response(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    kind = _kind(b)
    if v < 4:
        d = deny(Resource(kind, b.key))
        return R[v](throttle_time_ms=0, error_code=d.code, node_id=-1, host="", port=-1, **message(v, 1, d))
    C = R.Coordinator
    out = []
    for k in b.coordinator_keys:
        d = deny(Resource(kind, k))
        out.append(C(key=k, node_id=-1, host="", port=-1, error_code=d.code, error_message=d.message))
    return R[v](throttle_time_ms=0, coordinators=out)


def _observe(version: int, body: Any, cluster: Any) -> None:
    if version >= 4:
        for c in body.coordinators:
            if c.error_code == 0:
                cluster.observe_broker(c.node_id, c.host, c.port)
    elif body.error_code == 0:
        cluster.observe_broker(body.node_id, body.host, body.port)


def _rewrite(version: int, body: Any, ctx: Any) -> None:
    if version >= 4:
        for c in body.coordinators:
            if c.node_id >= 0 and c.error_code == 0:
                c.host, c.port = map_address(ctx.mapper, c.node_id, c.host, c.port)
    elif body.node_id >= 0 and body.error_code == 0:
        body.host, body.port = map_address(ctx.mapper, body.node_id, body.host, body.port)


UNITS = [ApiUnit(ApiKey.FIND_COORDINATOR, _operations, _error_response, observe=_observe, rewrite=_rewrite)]
