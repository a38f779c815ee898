"""DescribeCluster: ``describe_cluster``; broker addresses learned and rewritten."""

from __future__ import annotations

from typing import Any

from gatekeeper.api import CLUSTER, Operation
from gatekeeper.kafka.apis.addresses import map_address
from gatekeeper.kafka.apis.base import ApiKey, ApiUnit, OpContext, force


def _describe(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("describe_cluster", CLUSTER, {})]


def _observe(version: int, body: Any, cluster: Any) -> None:
    for b in body.brokers:
        cluster.observe_broker(b.broker_id, b.host, b.port)


def _rewrite(version: int, body: Any, ctx: Any) -> None:
    for b in body.brokers:
        b.host, b.port = map_address(ctx.mapper, b.broker_id, b.host, b.port)


UNITS = [
    ApiUnit(ApiKey.DESCRIBE_CLUSTER, _describe, observe=_observe, rewrite=_rewrite,
            # The broker would report Gatekeeper's own rights, not the client's: never asked for.
            normalize=lambda version, body: force(body, "include_cluster_authorized_operations", False)),
]
