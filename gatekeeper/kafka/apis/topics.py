"""Topic administration: CreateTopics, DeleteTopics, DeleteRecords, CreatePartitions."""

from __future__ import annotations

import uuid
from typing import Any

from gatekeeper.api import Operation, Resource
from gatekeeper.kafka.apis.base import (
    ApiKey,
    ApiUnit,
    Denials,
    Entities,
    OpContext,
    Resolve,
    message,
    topic_resource,
)


def _by_name(e: Any, r: Resolve) -> Resource:
    return Resource("topic", e.name)


def _create(b: Any, c: OpContext) -> list[Operation]:
    return [
        Operation("create_topic", c.topic(t.name), {
            "num_partitions": t.num_partitions,
            "replication_factor": t.replication_factor,
            "configs": {cfg.name: cfg.value for cfg in t.configs},
            "validate_only": bool(getattr(b, "validate_only", False)),
        })
        for t in b.topics
    ]


def _create_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    T = R.CreatableTopicResult
    out = []
    for t in b.topics:
        d = deny(Resource("topic", t.name))
        out.append(T(name=t.name, topic_id=uuid.UUID(int=0), error_code=d.code, num_partitions=-1, replication_factor=-1,
                     configs=[], **message(v, 1, d)))
    return R[v](throttle_time_ms=0, topics=out)


def _delete(b: Any, c: OpContext) -> list[Operation]:
    if c.version >= 6:
        return [Operation("delete_topic", c.topic(t.name, t.topic_id), {}) for t in b.topics]
    return [Operation("delete_topic", c.topic(n), {}) for n in b.topic_names]


def _delete_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    T = R.DeletableTopicResult
    out = []
    if v >= 6:
        for t in b.topics:
            d = deny(topic_resource(t.name, t.topic_id, resolve))
            out.append(T(name=t.name, topic_id=t.topic_id or uuid.UUID(int=0), error_code=d.code, error_message=d.message))
    else:
        for n in b.topic_names:
            d = deny(Resource("topic", n))
            out.append(T(name=n, error_code=d.code, **message(v, 5, d)))
    return R[v](throttle_time_ms=0, responses=out)


def _delete_entities(version: int) -> Entities:
    if version >= 6:
        return Entities("topics", "responses", lambda e, r: topic_resource(e.name, e.topic_id, r))
    return Entities("topic_names", "responses", lambda e, r: Resource("topic", e))


def _delete_records(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("delete_records", c.topic(t.name), {"partitions": [p.partition_index for p in t.partitions]})
            for t in b.topics]


def _delete_records_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    T = R.DeleteRecordsTopicResult
    P = T.DeleteRecordsPartitionResult
    return R[v](throttle_time_ms=0, topics=[
        T(name=t.name, partitions=[P(partition_index=p.partition_index, low_watermark=-1,
                                      error_code=deny(Resource("topic", t.name)).code) for p in t.partitions])
        for t in b.topics])


def _create_partitions(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("create_partitions", c.topic(t.name), {"count": t.count}) for t in b.topics]


def _create_partitions_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    X = R.CreatePartitionsTopicResult
    out = []
    for t in b.topics:
        d = deny(Resource("topic", t.name))
        out.append(X(name=t.name, error_code=d.code, error_message=d.message))
    return R[v](throttle_time_ms=0, results=out)


_CREATE = Entities("topics", "topics", _by_name)
_DELETE_RECORDS = Entities("topics", "topics", _by_name)
_CREATE_PARTITIONS = Entities("topics", "results", _by_name)

UNITS = [
    ApiUnit(ApiKey.CREATE_TOPICS, _create, _create_error, entities=lambda v: _CREATE),
    ApiUnit(ApiKey.DELETE_TOPICS, _delete, _delete_error, entities=_delete_entities),
    ApiUnit(ApiKey.DELETE_RECORDS, _delete_records, _delete_records_error, entities=lambda v: _DELETE_RECORDS),
    ApiUnit(ApiKey.CREATE_PARTITIONS, _create_partitions, _create_partitions_error, entities=lambda v: _CREATE_PARTITIONS),
]
