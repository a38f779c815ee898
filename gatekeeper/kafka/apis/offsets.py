"""Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete. Kafka authorizes the group
before the topics, so a refused group's error answers every partition."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from gatekeeper.api import Operation, Resource
from gatekeeper.kafka.apis.base import (
    ApiKey,
    ApiUnit,
    Denials,
    Entities,
    Listing,
    OpContext,
    Resolve,
    group,
    scoped_code,
    topic_resource,
)


def _commit_operations(b: Any, c: OpContext) -> list[Operation]:
    topics = [c.topic(getattr(t, "name", None), getattr(t, "topic_id", None)) for t in b.topics]
    req = {"topics": [t.name for t in topics]}
    return [Operation("commit_offset", group(b.group_id), req)] + [
        Operation("commit_offset", r, {"group": b.group_id, "partitions": [p.partition_index for p in t.partitions]})
        for r, t in zip(topics, b.topics, strict=True)
    ]


def _commit_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    T = R.OffsetCommitResponseTopic
    P = T.OffsetCommitResponsePartition
    scope = Resource("group", b.group_id)
    out = []
    for t in b.topics:
        code = scoped_code(deny, scope, topic_resource(getattr(t, "name", None), getattr(t, "topic_id", None), resolve))
        key = {"topic_id": t.topic_id} if v >= 10 else {"name": t.name}
        out.append(T(**key, partitions=[P(partition_index=p.partition_index, error_code=code) for p in t.partitions]))
    return R[v](throttle_time_ms=0, topics=out)


_COMMIT_ENTITIES = Entities("topics", "topics",
                            lambda e, r: topic_resource(getattr(e, "name", None), getattr(e, "topic_id", None), r))


def _fetch_operations(b: Any, c: OpContext) -> list[Operation]:
    groups = [(b.group_id, b.topics)] if c.version < 8 else [(g.group_id, g.topics) for g in b.groups]
    ops = []
    for group_id, topics in groups:
        ops.append(Operation("fetch_offset", group(group_id), {"all_topics": topics is None}))
        for t in topics or ():
            r = c.topic(getattr(t, "name", None), getattr(t, "topic_id", None))
            ops.append(Operation("fetch_offset", r, {"group": group_id, "partitions": list(t.partition_indexes)}))
    return ops


def _fetch_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    # A refused group: from v2 on, the group's error at the top (per group from v8) and no
    # topics, as the broker answers; v1 has no top-level code, so each partition carries it.
    # A group that is allowed, with refused topics: the topics' own codes per partition.
    if v < 8:
        scope = Resource("group", b.group_id)
        gd = deny.get(scope)
        T = R.OffsetFetchResponseTopic
        P = T.OffsetFetchResponsePartition
        topics = [] if gd is not None and v >= 2 else [T(name=t.name, partitions=[
            P(partition_index=i, committed_offset=-1, committed_leader_epoch=-1, metadata="",
              error_code=scoped_code(deny, scope, Resource("topic", t.name))) for i in t.partition_indexes])
            for t in b.topics or ()]
        return R[v](throttle_time_ms=0, topics=topics, error_code=0 if gd is None else gd.code)
    G = R.OffsetFetchResponseGroup
    T8 = G.OffsetFetchResponseTopics
    P8 = T8.OffsetFetchResponsePartitions
    groups = []
    for g in b.groups:
        scope = Resource("group", g.group_id)
        gd = deny.get(scope)
        topics = [] if gd is not None else [
            T8(name=t.name, topic_id=t.topic_id, partitions=[
                P8(partition_index=i, committed_offset=-1, committed_leader_epoch=-1, metadata="",
                   error_code=scoped_code(deny, scope, topic_resource(getattr(t, "name", None), getattr(t, "topic_id", None), resolve)))
                for i in t.partition_indexes])
            for t in g.topics or ()]
        groups.append(G(group_id=g.group_id, topics=topics, error_code=0 if gd is None else gd.code))
    return R[v](throttle_time_ms=0, groups=groups)


@attrs.frozen
class _AllCommittedTopics(Listing):
    """OffsetFetch with no topics (null) answers every topic the group has committed offsets
    for: like Kafka's authorizer, only those the principal may describe are kept, in the
    groups that asked for all of theirs (``groups``; a single group before v8)."""

    groups: frozenset[str] = frozenset()

    def _entries(self, body: Any) -> list[tuple[Any, Any]]:
        """(container, topic) for each answered topic to filter."""
        if getattr(body, "groups", None):
            return [(g, t) for g in body.groups if g.group_id in self.groups for t in g.topics or ()]
        return [(body, t) for t in body.topics or ()]

    def operations(self, body: Any, resolve: Resolve | None = None) -> list[Operation]:
        return [Operation("describe_topic", topic_resource(getattr(t, "name", None), getattr(t, "topic_id", None),
                                                           resolve or (lambda _: None)), {"listing": True})
                for _, t in self._entries(body)]

    def keep(self, body: Any, allowed: Sequence[bool]) -> Any:
        dropped = {id(t) for (_, t), ok in zip(self._entries(body), allowed, strict=True) if not ok}
        for container in {id(c): c for c, _ in self._entries(body)}.values():
            container.topics = [t for t in container.topics if id(t) not in dropped]
        return body


def _fetch_listing(version: int, body: Any) -> Listing | None:
    if version < 8:
        return _AllCommittedTopics("topics", "describe_topic", "topic", str) if body.topics is None else None
    everything = frozenset(g.group_id for g in body.groups if g.topics is None)
    return _AllCommittedTopics("groups", "describe_topic", "topic", str, everything) if everything else None


def _delete_operations(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("delete_offsets", group(b.group_id), {"topics": [t.name for t in b.topics]})] + [
        Operation("delete_offsets", c.topic(t.name), {"group": b.group_id}) for t in b.topics
    ]


def _delete_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    scope = Resource("group", b.group_id)
    gd = deny.get(scope)
    if gd is not None:
        return R[v](error_code=gd.code, throttle_time_ms=0, topics=[])
    T = R.OffsetDeleteResponseTopic
    P = T.OffsetDeleteResponsePartition
    return R[v](error_code=0, throttle_time_ms=0, topics=[
        T(name=t.name, partitions=[P(partition_index=p.partition_index, error_code=scoped_code(deny, scope, Resource("topic", t.name)))
                                   for p in t.partitions]) for t in b.topics])


UNITS = [
    ApiUnit(ApiKey.OFFSET_COMMIT, _commit_operations, _commit_error, entities=lambda v: _COMMIT_ENTITIES),
    ApiUnit(ApiKey.OFFSET_FETCH, _fetch_operations, _fetch_error, listing=_fetch_listing),
    ApiUnit(ApiKey.OFFSET_DELETE, _delete_operations, _delete_error),
]
