"""Produce: one ``produce`` per topic (and ``transactional_write`` for a transactional id).

From v10 on, an answer about a partition whose leader moved names the new leader's address
(KIP-951 ``node_endpoints``, a tagged field at its end): mapped to Gatekeeper's like every
broker address. Only such an answer is decoded; the walk over its bytes tells them apart."""

from __future__ import annotations

from typing import Any

from gatekeeper.api import Operation
from gatekeeper.kafka.apis.addresses import map_node_endpoints
from gatekeeper.kafka.apis.base import (
    ApiKey,
    ApiUnit,
    Denials,
    Entities,
    OpContext,
    Resolve,
    message,
    topic_resource,
    txn,
)
from gatekeeper.kafka.walks import partition_records, produce_response_tagged


def _operations(b: Any, c: OpContext) -> list[Operation]:
    ops = []
    for t in b.topic_data:
        parts, count, size = [], 0, 0
        for p in t.partition_data:
            parts.append(p.index)
            count += partition_records(p)
            if p.records is not None:
                size += len(p.records)
        req = {"acks": b.acks, "partitions": parts, "record_count": count, "bytes": size}
        if b.transactional_id:
            req["transactional_id"] = b.transactional_id
        ops.append(Operation("produce", c.topic(getattr(t, "name", None), getattr(t, "topic_id", None)), req))
    if b.transactional_id:
        ops.append(Operation("transactional_write", txn(b.transactional_id), {"topics": len(ops)}))
    return ops


def _error_response(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    T = R.TopicProduceResponse
    P = T.PartitionProduceResponse
    out = []
    for t in b.topic_data:
        d = deny(topic_resource(getattr(t, "name", None), getattr(t, "topic_id", None), resolve))
        key = {"topic_id": t.topic_id} if v >= 13 else {"name": t.name}
        out.append(T(**key, partition_responses=[
            P(index=p.index, error_code=d.code, base_offset=-1, **message(v, 8, d)) for p in t.partition_data]))
    return R[v](responses=out, throttle_time_ms=0)


_ENTITIES = Entities("topic_data", "responses",
                     lambda e, r: topic_resource(getattr(e, "name", None), getattr(e, "topic_id", None), r))

UNITS = [ApiUnit(ApiKey.PRODUCE, _operations, _error_response, entities=lambda v: _ENTITIES,
                 rewrite=map_node_endpoints, rewrite_since=10,
                 rewrite_needed=lambda version, frame, start: produce_response_tagged(frame, start, version))]
