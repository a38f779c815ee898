"""Decoded Kafka requests → stream operations, one per (operation, resource).

This table is the vocabulary policy authors write against. Each Kafka API that Gatekeeper
enforces has one function here; an API that Gatekeeper can decode but has no function for maps
to the operation ``other`` on the cluster, so a default-deny policy refuses it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from gatekeeper.api import CLUSTER, Operation, Resource
from gatekeeper.kafka.records import count_records

__all__ = ["OPERATION_NAMES", "UNKNOWN_TOPIC_ID_PREFIX", "UnresolvedTopicIds", "operations_for"]

TopicResolver = Callable[[uuid.UUID], "str | None"]

_ZERO_UUID = uuid.UUID(int=0)
# The name given to a topic id the broker itself does not know (it will answer UNKNOWN_TOPIC_ID).
UNKNOWN_TOPIC_ID_PREFIX = "unknown-topic-id:"


class UnresolvedTopicIds(Exception):
    """A request names topics by ids Gatekeeper has not yet seen in metadata."""

    def __init__(self, ids: Iterable[uuid.UUID]) -> None:
        self.ids = frozenset(ids)
        super().__init__(f"unknown topic ids: {', '.join(sorted(map(str, self.ids)))}")


class _Ctx:
    __slots__ = ("missing", "resolve", "version")

    def __init__(self, version: int, resolve: TopicResolver) -> None:
        self.version = version
        self.resolve = resolve
        self.missing: set[uuid.UUID] = set()

    def topic(self, name: str | None, topic_id: uuid.UUID | None = None) -> Resource:
        if topic_id is not None and topic_id != _ZERO_UUID and not name:
            resolved = self.resolve(topic_id)
            if resolved is None:
                self.missing.add(topic_id)
                return Resource("topic", f"{UNKNOWN_TOPIC_ID_PREFIX}{topic_id}")
            name = resolved
        return Resource("topic", name or "")


def _group(name: str | None) -> Resource:
    return Resource("group", name or "")


def _txn(name: str | None) -> Resource:
    return Resource("transactional_id", name or "")


# Kafka's ConfigResource types (DescribeConfigs / AlterConfigs / IncrementalAlterConfigs).
_CONFIG_RESOURCE = {2: "topic", 4: "broker", 8: "broker_logger", 16: "client_metrics", 32: "group"}


def _produce(b: Any, c: _Ctx) -> list[Operation]:
    ops = []
    for t in b.topic_data:
        parts = [p.index for p in t.partition_data]
        count = sum(count_records(p.records) for p in t.partition_data)
        size = sum(len(p.records) if p.records is not None else 0 for p in t.partition_data)
        req = {"acks": b.acks, "partitions": parts, "record_count": count, "bytes": size}
        if b.transactional_id:
            req["transactional_id"] = b.transactional_id
        ops.append(Operation("produce", c.topic(getattr(t, "name", None), getattr(t, "topic_id", None)), req))
    if b.transactional_id:
        ops.append(Operation("transactional_write", _txn(b.transactional_id), {"topics": len(ops)}))
    return ops


def _fetch(b: Any, c: _Ctx) -> list[Operation]:
    iso = getattr(b, "isolation_level", 0) or 0
    return [
        Operation(
            "consume",
            c.topic(getattr(t, "topic", None), getattr(t, "topic_id", None)),
            {"partitions": [p.partition for p in t.partitions], "isolation_level": iso},
        )
        for t in b.topics
    ]


def _list_offsets(b: Any, c: _Ctx) -> list[Operation]:
    return [
        Operation("describe_topic", c.topic(t.name), {"partitions": [p.partition_index for p in t.partitions], "api": "list_offsets"})
        for t in b.topics
    ]


def _metadata(b: Any, c: _Ctx) -> list[Operation]:
    if b.topics is None:
        return [Operation("list_topics", CLUSTER, {})]
    auto = bool(getattr(b, "allow_auto_topic_creation", False))
    return [
        Operation("describe_topic", c.topic(t.name, getattr(t, "topic_id", None)), {"allow_auto_topic_creation": auto})
        for t in b.topics
    ]


def _offset_commit(b: Any, c: _Ctx) -> list[Operation]:
    topics = [c.topic(getattr(t, "name", None), getattr(t, "topic_id", None)) for t in b.topics]
    req = {"topics": [t.name for t in topics]}
    return [Operation("commit_offset", _group(b.group_id), req)] + [
        Operation("commit_offset", r, {"group": b.group_id, "partitions": [p.partition_index for p in t.partitions]})
        for r, t in zip(topics, b.topics, strict=True)
    ]


def _offset_fetch(b: Any, c: _Ctx) -> list[Operation]:
    if c.version < 8:
        groups = [(b.group_id, b.topics)]
    else:
        groups = [(g.group_id, g.topics) for g in b.groups]
    ops = []
    for group_id, topics in groups:
        ops.append(Operation("fetch_offset", _group(group_id), {"all_topics": topics is None}))
        for t in topics or ():
            r = c.topic(getattr(t, "name", None), getattr(t, "topic_id", None))
            ops.append(Operation("fetch_offset", r, {"group": group_id, "partitions": list(t.partition_indexes)}))
    return ops


def _find_coordinator(b: Any, c: _Ctx) -> list[Operation]:
    kind = "transactional_id" if getattr(b, "key_type", 0) == 1 else "group"
    keys = list(b.coordinator_keys) if c.version >= 4 else [b.key]
    return [Operation("find_coordinator", Resource(kind, k), {}) for k in keys]


def _group_member(b: Any, c: _Ctx) -> list[Operation]:
    return [Operation("join_group", _group(b.group_id), {})]


def _describe_groups(b: Any, c: _Ctx) -> list[Operation]:
    return [Operation("describe_group", _group(g), {}) for g in b.groups]


def _delete_groups(b: Any, c: _Ctx) -> list[Operation]:
    return [Operation("delete_group", _group(g), {}) for g in b.groups_names]


def _create_topics(b: Any, c: _Ctx) -> list[Operation]:
    return [
        Operation(
            "create_topic",
            c.topic(t.name),
            {
                "num_partitions": t.num_partitions,
                "replication_factor": t.replication_factor,
                "configs": {cfg.name: cfg.value for cfg in t.configs},
                "validate_only": bool(getattr(b, "validate_only", False)),
            },
        )
        for t in b.topics
    ]


def _delete_topics(b: Any, c: _Ctx) -> list[Operation]:
    if c.version >= 6:
        return [Operation("delete_topic", c.topic(t.name, t.topic_id), {}) for t in b.topics]
    return [Operation("delete_topic", c.topic(n), {}) for n in b.topic_names]


def _delete_records(b: Any, c: _Ctx) -> list[Operation]:
    return [
        Operation("delete_records", c.topic(t.name), {"partitions": [p.partition_index for p in t.partitions]})
        for t in b.topics
    ]


def _create_partitions(b: Any, c: _Ctx) -> list[Operation]:
    return [Operation("create_partitions", c.topic(t.name), {"count": t.count}) for t in b.topics]


def _init_producer(b: Any, c: _Ctx) -> list[Operation]:
    if b.transactional_id:
        return [Operation("init_producer", _txn(b.transactional_id), {"transactional": True})]
    return [Operation("init_producer", CLUSTER, {"transactional": False})]


def _add_partitions_to_txn(b: Any, c: _Ctx) -> list[Operation]:
    if c.version <= 3:
        txns = [(b.v3_and_below_transactional_id, b.v3_and_below_topics)]
    else:
        txns = [(t.transactional_id, t.topics) for t in b.transactions]
    return [
        Operation("transactional_write", _txn(tid), {"topics": {t.name: list(t.partitions) for t in topics}})
        for tid, topics in txns
    ]


def _add_offsets_to_txn(b: Any, c: _Ctx) -> list[Operation]:
    return [
        Operation("transactional_write", _txn(b.transactional_id), {"group": b.group_id}),
        Operation("commit_offset", _group(b.group_id), {"transactional_id": b.transactional_id}),
    ]


def _end_txn(b: Any, c: _Ctx) -> list[Operation]:
    return [Operation("transactional_write", _txn(b.transactional_id), {"committed": bool(b.committed)})]


def _txn_offset_commit(b: Any, c: _Ctx) -> list[Operation]:
    topics = [t.name for t in b.topics]
    return [
        Operation("transactional_write", _txn(b.transactional_id), {"group": b.group_id}),
        Operation("commit_offset", _group(b.group_id), {"topics": topics, "transactional_id": b.transactional_id}),
    ]


def _config_resource(kind: str, rtype: int, name: str, req: dict[str, Any]) -> Operation:
    typ = _CONFIG_RESOURCE.get(rtype, f"config_resource_{rtype}")
    if typ == "topic":
        return Operation(f"{kind}_topic_config", Resource("topic", name), req)
    if typ == "group":
        return Operation(f"{kind}_group_config", Resource("group", name), req)
    return Operation(f"{kind}_cluster_config", CLUSTER, {**req, "config_resource": {"type": typ, "name": name}})


def _describe_configs(b: Any, c: _Ctx) -> list[Operation]:
    return [
        _config_resource("describe", r.resource_type, r.resource_name, {"keys": None if r.configuration_keys is None else list(r.configuration_keys)})
        for r in b.resources
    ]


def _alter_configs(b: Any, c: _Ctx) -> list[Operation]:
    return [
        _config_resource(
            "alter",
            r.resource_type,
            r.resource_name,
            {"configs": {cfg.name: cfg.value for cfg in r.configs}, "validate_only": bool(b.validate_only)},
        )
        for r in b.resources
    ]


def _offset_delete(b: Any, c: _Ctx) -> list[Operation]:
    return [Operation("delete_offsets", _group(b.group_id), {"topics": [t.name for t in b.topics]})] + [
        Operation("delete_offsets", c.topic(t.name), {"group": b.group_id}) for t in b.topics
    ]


def _describe_producers(b: Any, c: _Ctx) -> list[Operation]:
    return [Operation("describe_topic", c.topic(t.name), {"api": "describe_producers"}) for t in b.topics]


def _describe_topic_partitions(b: Any, c: _Ctx) -> list[Operation]:
    return [Operation("describe_topic", c.topic(t.name), {}) for t in b.topics]


def _offset_for_leader_epoch(b: Any, c: _Ctx) -> list[Operation]:
    return [Operation("describe_topic", c.topic(t.topic), {"api": "offset_for_leader_epoch"}) for t in b.topics]


def _describe_transactions(b: Any, c: _Ctx) -> list[Operation]:
    return [Operation("describe_transaction", _txn(t), {}) for t in b.transactional_ids]


def _cluster(name: str) -> Callable[[Any, _Ctx], list[Operation]]:
    def ops(b: Any, c: _Ctx) -> list[Operation]:
        return [Operation(name, CLUSTER, {})]

    return ops


def _create_acls(b: Any, c: _Ctx) -> list[Operation]:
    return [Operation("alter_acls", CLUSTER, {"creations": len(b.creations)})]


def _delete_acls(b: Any, c: _Ctx) -> list[Operation]:
    return [Operation("alter_acls", CLUSTER, {"deletions": len(b.filters)})]


_TABLE: dict[int, Callable[[Any, _Ctx], list[Operation]]] = {
    0: _produce,
    1: _fetch,
    2: _list_offsets,
    3: _metadata,
    8: _offset_commit,
    9: _offset_fetch,
    10: _find_coordinator,
    11: _group_member,
    12: _group_member,
    13: _group_member,
    14: _group_member,
    15: _describe_groups,
    16: _cluster("list_groups"),
    17: _cluster("authenticate"),
    18: _cluster("api_versions"),
    19: _create_topics,
    20: _delete_topics,
    21: _delete_records,
    22: _init_producer,
    23: _offset_for_leader_epoch,
    24: _add_partitions_to_txn,
    25: _add_offsets_to_txn,
    26: _end_txn,
    28: _txn_offset_commit,
    29: _cluster("describe_acls"),
    30: _create_acls,
    31: _delete_acls,
    32: _describe_configs,
    33: _alter_configs,
    36: _cluster("authenticate"),
    37: _create_partitions,
    42: _delete_groups,
    44: _alter_configs,
    47: _offset_delete,
    60: _cluster("describe_cluster"),
    61: _describe_producers,
    65: _describe_transactions,
    66: _cluster("list_transactions"),
    75: _describe_topic_partitions,
}

OPERATION_NAMES = frozenset(
    {
        "produce", "consume", "describe_topic", "list_topics", "create_topic", "delete_topic",
        "delete_records", "create_partitions", "commit_offset", "fetch_offset", "delete_offsets",
        "find_coordinator", "join_group", "describe_group", "delete_group", "list_groups",
        "init_producer", "transactional_write", "describe_transaction", "list_transactions",
        "describe_topic_config", "alter_topic_config", "describe_group_config",
        "alter_group_config", "describe_cluster_config", "alter_cluster_config",
        "describe_acls", "alter_acls", "describe_cluster", "api_versions", "authenticate", "other",
    }
)


def operations_for(
    api_key: int, api_name: str, version: int, body: Any, resolve: TopicResolver, *, strict: bool = True
) -> list[Operation]:
    """The operations one decoded request performs.

    With ``strict``, raise UnresolvedTopicIds for topic ids ``resolve`` does not know (the caller
    asks the broker and tries again); otherwise name them ``unknown-topic-id:<uuid>``.
    """
    fn = _TABLE.get(api_key)
    if fn is None:
        return [Operation("other", CLUSTER, {"api": api_name})]
    ctx = _Ctx(version, resolve)
    ops = fn(body, ctx)
    if ctx.missing and strict:
        raise UnresolvedTopicIds(ctx.missing)
    return ops
