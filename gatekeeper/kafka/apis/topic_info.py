"""Reading about topics: ListOffsets, OffsetForLeaderEpoch, DescribeProducers and
DescribeTopicPartitions, each ``describe_topic`` per topic."""

from __future__ import annotations

from collections.abc import Sequence
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
)

_NO_AUTH_OPS = -2147483648  # "authorized operations not requested"


def _list_offsets(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("describe_topic", c.topic(t.name), {"partitions": [p.partition_index for p in t.partitions], "api": "list_offsets"})
            for t in b.topics]


def _list_offsets_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    T = R.ListOffsetsTopicResponse
    P = T.ListOffsetsPartitionResponse
    return R[v](throttle_time_ms=0, topics=[
        T(name=t.name, partitions=[P(partition_index=p.partition_index, error_code=deny(Resource("topic", t.name)).code,
                                     timestamp=-1, offset=-1, leader_epoch=-1) for p in t.partitions])
        for t in b.topics])


def _leader_epoch(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("describe_topic", c.topic(t.topic), {"api": "offset_for_leader_epoch"}) for t in b.topics]


def _leader_epoch_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    T = R.OffsetForLeaderTopicResult
    P = T.EpochEndOffset
    return R[v](throttle_time_ms=0, topics=[
        T(topic=t.topic, partitions=[P(error_code=deny(Resource("topic", t.topic)).code, partition=p.partition,
                                       leader_epoch=-1, end_offset=-1) for p in t.partitions]) for t in b.topics])


def _producers(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("describe_topic", c.topic(t.name), {"api": "describe_producers"}) for t in b.topics]


def _producers_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    T = R.TopicResponse
    P = T.PartitionResponse
    out = []
    for t in b.topics:
        d = deny(Resource("topic", t.name))
        out.append(T(name=t.name, partitions=[P(partition_index=i, error_code=d.code, error_message=d.message, active_producers=[])
                                              for i in t.partition_indexes]))
    return R[v](throttle_time_ms=0, topics=out)


def _partitions(b: Any, c: OpContext) -> list[Operation]:
    if not b.topics:  # an empty list means every topic (from the cursor on)
        return [Operation("list_topics", CLUSTER, {})]
    return [Operation("describe_topic", c.topic(t.name), {}) for t in b.topics]


@attrs.frozen
class _PagedTopics(Listing):
    """All topics, a page at a time: the page is filtered like any listing, and the cursor to
    the next page names a topic too, so it is decided with them; a cursor the principal may not
    describe ends the listing there (the client sees fewer pages, never the hidden name)."""

    def operations(self, body: Any, resolve: Resolve | None = None) -> list[Operation]:
        ops = super().operations(body, resolve)
        if body.next_cursor is not None:
            ops.append(Operation(self.operation, Resource(self.resource_type, body.next_cursor.topic_name), {"listing": True}))
        return ops

    def keep(self, body: Any, allowed: Sequence[bool]) -> Any:
        if body.next_cursor is not None:
            *allowed, cursor_ok = allowed
            if not cursor_ok:
                body.next_cursor = None
        return super().keep(body, allowed)


_ALL_TOPICS = _PagedTopics("topics", "describe_topic", "topic", lambda t: t.name)


def _partitions_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    import uuid

    T = R.DescribeTopicPartitionsResponseTopic
    return R[v](throttle_time_ms=0, next_cursor=None, topics=[
        T(error_code=deny(Resource("topic", t.name)).code, name=t.name, topic_id=uuid.UUID(int=0), is_internal=False,
          partitions=[], topic_authorized_operations=_NO_AUTH_OPS) for t in b.topics])


def _by_name(e: Any, r: Resolve) -> Resource:
    return Resource("topic", e.name)


_TOPICS = Entities("topics", "topics", _by_name)
_EPOCH = Entities("topics", "topics", lambda e, r: Resource("topic", e.topic))

def _as_a_consumer(version: int, body: Any) -> bool:
    """Replica id -1 (a consumer); -2 (debugging) and a follower's id read beyond what a
    consumer may, with Gatekeeper's rights."""
    return force(body, "replica_id", -1)


def _no_authorized_operations(version: int, body: Any, ctx: Any) -> None:
    """The broker reports Gatekeeper's own rights, not the client's: never passed on."""
    for t in body.topics:
        t.topic_authorized_operations = _NO_AUTH_OPS


UNITS = [
    ApiUnit(ApiKey.LIST_OFFSETS, _list_offsets, _list_offsets_error, entities=lambda v: _TOPICS, normalize=_as_a_consumer),
    ApiUnit(ApiKey.OFFSET_FOR_LEADER_EPOCH, _leader_epoch, _leader_epoch_error, entities=lambda v: _EPOCH,
            normalize=_as_a_consumer),
    ApiUnit(ApiKey.DESCRIBE_PRODUCERS, _producers, _producers_error, entities=lambda v: _TOPICS),
    ApiUnit(ApiKey.DESCRIBE_TOPIC_PARTITIONS, _partitions, _partitions_error, entities=lambda v: _TOPICS,
            rewrite=_no_authorized_operations, listing=lambda version, body: None if body.topics else _ALL_TOPICS),
]
