"""Kafka error responses built from the request: what a client sees for a denied operation.

``error_response(api_key, version, request_body, denials)`` answers every entity of the
request (topic, partition, group, resource …) in the API's own response shape, with the error
code and, where the version has one, the message that ``denials`` gives for it. Pure.

Each shape is the one the broker itself sends when its own authorizer refuses the same request
(``tests/integration/test_denial_conformance.py`` compares them field by field against a broker
running Kafka's StandardAuthorizer): empty record sets and arrays where the broker sends empty
ones, never null; the group's error on every partition when the group is refused, because Kafka
authorizes the group before the topics.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from gatekeeper.api import Decision, Resource
from gatekeeper.kafka.codec import API_TABLE

__all__ = ["Denial", "Denials", "ErrorResponseUnavailable", "config_resource", "denial_of", "error_response", "topic_resource"]

TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
POLICY_VIOLATION = 44
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53

_BY_RESOURCE = {
    "topic": TOPIC_AUTHORIZATION_FAILED,
    "group": GROUP_AUTHORIZATION_FAILED,
    "transactional_id": TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    "cluster": CLUSTER_AUTHORIZATION_FAILED,
}
_NO_AUTH_OPS = -2147483648  # "authorized operations not requested"
_NEVER_ANSWERED = frozenset({17, 18, 36})  # SaslHandshake, ApiVersions, SaslAuthenticate


@attrs.frozen
class Denial:
    code: int
    message: str


def denial_of(resource: Resource, decision: Decision) -> Denial:
    if decision.error == "policy_violation":
        return Denial(POLICY_VIOLATION, decision.reason)
    return Denial(_BY_RESOURCE.get(resource.type, CLUSTER_AUTHORIZATION_FAILED), decision.reason)


class ErrorResponseUnavailable(Exception):
    """No error response shape is known for this API: the caller closes the connection."""


@attrs.frozen
class Denials:
    """The denials of one request, by resource. Calling it gives an entity's denial: its own,
    or ``fallback`` (the first denial) for an entity of a request refused as a whole because of
    another resource."""

    by_resource: Mapping[Resource, Denial]
    fallback: Denial
    everything: bool = False  # every resource is refused with ``fallback``

    def __call__(self, resource: Resource) -> Denial:
        return self.by_resource.get(resource, self.fallback)

    def get(self, resource: Resource) -> Denial | None:
        """The resource's own denial, None if it was allowed."""
        return self.fallback if self.everything else self.by_resource.get(resource)

    def scoped(self, scope: Resource, resource: Resource) -> Denial | None:
        """An entity inside ``scope`` (a topic in a group's offset request): the scope's denial
        if the scope is refused (Kafka checks it first), else the entity's own, else None."""
        return self.get(scope) or self.get(resource)

    @classmethod
    def uniform(cls, denial: Denial) -> Denials:
        """Every resource refused with ``denial``."""
        return cls({}, denial, everything=True)


DenialFor = Denials


def topic_resource(name: str | None, topic_id: Any, resolve: Callable[[uuid.UUID], str | None]) -> Resource:
    if not name and topic_id is not None and topic_id.int:
        name = resolve(topic_id) or f"unknown-topic-id:{topic_id}"
    return Resource("topic", name or "")


def error_response(api_key: int, version: int, b: Any, deny: DenialFor, resolve: Callable[[uuid.UUID], str | None] = lambda _: None) -> Any:
    """The response body answering request body ``b`` entirely with denials."""
    spec = API_TABLE[api_key]
    R = spec.response
    build = _BUILDERS.get(api_key)
    if api_key in _NEVER_ANSWERED:
        raise ErrorResponseUnavailable(f"{spec.name} is not answered with an error: the connection is closed")
    if build is not None:
        return build(R, version, b, deny, resolve)
    fields = {f["name"] for f in R.json["fields"]}
    if "ErrorCode" in fields:
        from gatekeeper.api import CLUSTER

        d = deny(CLUSTER)
        kw: dict[str, Any] = {"error_code": d.code}
        if "ErrorMessage" in fields:
            kw["error_message"] = d.message
        return R[version](**kw)
    raise ErrorResponseUnavailable(f"no error response is known for {spec.name}")


def _msg(version: int, since: int, d: Denial) -> dict[str, Any]:
    return {"error_message": d.message} if version >= since else {}


def _produce(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    T = R.TopicProduceResponse
    P = T.PartitionProduceResponse
    out = []
    for t in b.topic_data:
        d = deny(topic_resource(getattr(t, "name", None), getattr(t, "topic_id", None), resolve))
        key = {"topic_id": t.topic_id} if v >= 13 else {"name": t.name}
        out.append(T(**key, partition_responses=[
            P(index=p.index, error_code=d.code, base_offset=-1, **_msg(v, 8, d)) for p in t.partition_data]))
    return R[v](responses=out, throttle_time_ms=0)


def _fetch(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    T = R.FetchableTopicResponse
    P = T.PartitionData
    out = []
    for t in b.topics:
        d = deny(topic_resource(getattr(t, "topic", None), getattr(t, "topic_id", None), resolve))
        key = {"topic_id": t.topic_id} if v >= 13 else {"topic": t.topic}
        out.append(T(**key, partitions=[
            # An empty record set and an empty aborted-transaction list, as the broker sends on an
            # error partition: a null record set is a parse failure for librdkafka
            # ("invalid MessageSetSize -1"), which then refetches at once, without backoff.
            P(partition_index=p.partition, error_code=d.code, high_watermark=-1, last_stable_offset=-1,
              log_start_offset=-1, aborted_transactions=[], preferred_read_replica=-1, records=b"")
            for p in t.partitions]))
    return R[v](throttle_time_ms=0, error_code=0, session_id=0, responses=out)


def _list_offsets(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    T = R.ListOffsetsTopicResponse
    P = T.ListOffsetsPartitionResponse
    return R[v](throttle_time_ms=0, topics=[
        T(name=t.name, partitions=[P(partition_index=p.partition_index, error_code=deny(Resource("topic", t.name)).code,
                                     timestamp=-1, offset=-1, leader_epoch=-1) for p in t.partitions])
        for t in b.topics])


def _metadata(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    T = R.MetadataResponseTopic
    topics = []
    for t in b.topics or ():
        r = topic_resource(t.name, getattr(t, "topic_id", None), resolve)
        topics.append(T(error_code=deny(r).code, name=t.name, topic_id=getattr(t, "topic_id", None) or uuid.UUID(int=0),
                        is_internal=False, partitions=[], authorized_operations=None))
    return R[v](throttle_time_ms=0, brokers=[], cluster_id=None, controller_id=-1, topics=topics)


def _scoped_code(deny: DenialFor, scope: Resource, resource: Resource) -> int:
    d = deny.scoped(scope, resource)
    return 0 if d is None else d.code


def _offset_commit(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    T = R.OffsetCommitResponseTopic
    P = T.OffsetCommitResponsePartition
    group = Resource("group", b.group_id)
    out = []
    for t in b.topics:
        code = _scoped_code(deny, group, topic_resource(getattr(t, "name", None), getattr(t, "topic_id", None), resolve))
        key = {"topic_id": t.topic_id} if v >= 10 else {"name": t.name}
        out.append(T(**key, partitions=[P(partition_index=p.partition_index, error_code=code) for p in t.partitions]))
    return R[v](throttle_time_ms=0, topics=out)


def _offset_fetch(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    # A refused group: from v2 on, the group's error at the top (per group from v8) and no
    # topics, as the broker answers; v1 has no top-level code, so each partition carries it.
    # A group that is allowed, with refused topics: the topics' own codes per partition.
    if v < 8:
        group = Resource("group", b.group_id)
        gd = deny.get(group)
        T = R.OffsetFetchResponseTopic
        P = T.OffsetFetchResponsePartition
        topics = [] if gd is not None and v >= 2 else [T(name=t.name, partitions=[
            P(partition_index=i, committed_offset=-1, committed_leader_epoch=-1, metadata="",
              error_code=_scoped_code(deny, group, Resource("topic", t.name))) for i in t.partition_indexes])
            for t in b.topics or ()]
        return R[v](throttle_time_ms=0, topics=topics, error_code=0 if gd is None else gd.code)
    G = R.OffsetFetchResponseGroup
    T8 = G.OffsetFetchResponseTopics
    P8 = T8.OffsetFetchResponsePartitions
    groups = []
    for g in b.groups:
        gd = deny.get(Resource("group", g.group_id))
        topics = [] if gd is not None else [
            T8(name=t.name, topic_id=t.topic_id, partitions=[
                P8(partition_index=i, committed_offset=-1, committed_leader_epoch=-1, metadata="",
                   error_code=_scoped_code(deny, Resource("group", g.group_id),
                                           topic_resource(getattr(t, "name", None), getattr(t, "topic_id", None), resolve)))
                for i in t.partition_indexes])
            for t in g.topics or ()]
        groups.append(G(group_id=g.group_id, topics=topics, error_code=0 if gd is None else gd.code))
    return R[v](throttle_time_ms=0, groups=groups)


def _find_coordinator(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    kind = "transactional_id" if getattr(b, "key_type", 0) == 1 else "group"
    if v < 4:
        d = deny(Resource(kind, b.key))
        return R[v](throttle_time_ms=0, error_code=d.code, node_id=-1, host="", port=-1, **_msg(v, 1, d))
    C = R.Coordinator
    out = []
    for k in b.coordinator_keys:
        d = deny(Resource(kind, k))
        out.append(C(key=k, node_id=-1, host="", port=-1, error_code=d.code, error_message=d.message))
    return R[v](throttle_time_ms=0, coordinators=out)


def _group_error(extra: dict[str, Any]) -> Callable[..., Any]:
    def build(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
        return R[v](error_code=deny(Resource("group", b.group_id)).code, **extra)

    return build


def _join_group(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    return R[v](throttle_time_ms=0, error_code=deny(Resource("group", b.group_id)).code, generation_id=-1,
                protocol_type=None, protocol_name=None if v >= 7 else "", leader="", member_id=b.member_id or "", members=[])


def _describe_groups(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    G = R.DescribedGroup
    out = []
    for g in b.groups:
        d = deny(Resource("group", g))
        out.append(G(error_code=d.code, group_id=g, group_state="", protocol_type="", protocol_data="", members=[],
                     authorized_operations=None, **_msg(v, 6, d)))
    return R[v](throttle_time_ms=0, groups=out)


def _create_topics(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    T = R.CreatableTopicResult
    out = []
    for t in b.topics:
        d = deny(Resource("topic", t.name))
        out.append(T(name=t.name, topic_id=uuid.UUID(int=0), error_code=d.code, num_partitions=-1, replication_factor=-1,
                     configs=[], **_msg(v, 1, d)))
    return R[v](throttle_time_ms=0, topics=out)


def _delete_topics(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    T = R.DeletableTopicResult
    out = []
    if v >= 6:
        for t in b.topics:
            d = deny(topic_resource(t.name, t.topic_id, resolve))
            out.append(T(name=t.name, topic_id=t.topic_id or uuid.UUID(int=0), error_code=d.code, error_message=d.message))
    else:
        for n in b.topic_names:
            d = deny(Resource("topic", n))
            out.append(T(name=n, error_code=d.code, **_msg(v, 5, d)))
    return R[v](throttle_time_ms=0, responses=out)


def _delete_records(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    T = R.DeleteRecordsTopicResult
    P = T.DeleteRecordsPartitionResult
    return R[v](throttle_time_ms=0, topics=[
        T(name=t.name, partitions=[P(partition_index=p.partition_index, low_watermark=-1,
                                      error_code=deny(Resource("topic", t.name)).code) for p in t.partitions])
        for t in b.topics])


def _init_producer(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    from gatekeeper.api import CLUSTER

    r = Resource("transactional_id", b.transactional_id) if b.transactional_id else CLUSTER
    return R[v](throttle_time_ms=0, error_code=deny(r).code, producer_id=-1, producer_epoch=-1)


def _txn_error(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    return R[v](throttle_time_ms=0, error_code=deny(Resource("transactional_id", b.transactional_id)).code)


def _add_partitions_to_txn(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    T = R.AddPartitionsToTxnTopicResult
    P = T.AddPartitionsToTxnPartitionResult

    def topics(tid: str, ts: Any) -> list[Any]:
        code = deny(Resource("transactional_id", tid)).code
        return [T(name=t.name, results_by_partition=[P(partition_index=p, partition_error_code=code) for p in t.partitions]) for t in ts]

    if v <= 3:
        return R[v](throttle_time_ms=0, results_by_topic_v3_and_below=topics(b.v3_and_below_transactional_id, b.v3_and_below_topics))
    X = R.AddPartitionsToTxnResult
    return R[v](throttle_time_ms=0, error_code=0, results_by_transaction=[
        X(transactional_id=t.transactional_id, topic_results=topics(t.transactional_id, t.topics)) for t in b.transactions])


def _txn_offset_commit(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    # Kafka checks the transactional id, then the group, then each topic.
    T = R.TxnOffsetCommitResponseTopic
    P = T.TxnOffsetCommitResponsePartition
    txn = deny.get(Resource("transactional_id", b.transactional_id))
    group = Resource("group", b.group_id)

    def code(topic: str) -> int:
        return txn.code if txn is not None else _scoped_code(deny, group, Resource("topic", topic))

    return R[v](throttle_time_ms=0, topics=[
        T(name=t.name, partitions=[P(partition_index=p.partition_index, error_code=code(t.name)) for p in t.partitions])
        for t in b.topics])


def config_resource(rtype: int, name: str) -> Resource:
    from gatekeeper.api import CLUSTER

    return {2: Resource("topic", name), 32: Resource("group", name)}.get(rtype, CLUSTER)


def _describe_configs(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    X = R.DescribeConfigsResult
    out = []
    for r in b.resources:
        d = deny(config_resource(r.resource_type, r.resource_name))
        out.append(X(error_code=d.code, error_message=d.message, resource_type=r.resource_type, resource_name=r.resource_name, configs=[]))
    return R[v](throttle_time_ms=0, results=out)


def _alter_configs(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    X = R.AlterConfigsResourceResponse
    out = []
    for r in b.resources:
        d = deny(config_resource(r.resource_type, r.resource_name))
        out.append(X(error_code=d.code, error_message=d.message, resource_type=r.resource_type, resource_name=r.resource_name))
    return R[v](throttle_time_ms=0, responses=out)


def _create_partitions(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    X = R.CreatePartitionsTopicResult
    out = []
    for t in b.topics:
        d = deny(Resource("topic", t.name))
        out.append(X(name=t.name, error_code=d.code, error_message=d.message))
    return R[v](throttle_time_ms=0, results=out)


def _delete_groups(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    X = R.DeletableGroupResult
    return R[v](throttle_time_ms=0, results=[X(group_id=g, error_code=deny(Resource("group", g)).code) for g in b.groups_names])


def _acls(list_name: str, item: str, request_list: str) -> Callable[..., Any]:
    def build(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
        from gatekeeper.api import CLUSTER

        d = deny(CLUSTER)
        cls = getattr(R, item)
        extra: dict[str, Any] = {"matching_acls": []} if item == "DeleteAclsFilterResult" else {}
        return R[v](throttle_time_ms=0, **{list_name: [cls(error_code=d.code, error_message=d.message, **extra) for _ in getattr(b, request_list)]})

    return build


def _offset_delete(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    group = Resource("group", b.group_id)
    gd = deny.get(group)
    if gd is not None:
        return R[v](error_code=gd.code, throttle_time_ms=0, topics=[])
    T = R.OffsetDeleteResponseTopic
    P = T.OffsetDeleteResponsePartition
    return R[v](error_code=0, throttle_time_ms=0, topics=[
        T(name=t.name, partitions=[P(partition_index=p.partition_index, error_code=_scoped_code(deny, group, Resource("topic", t.name)))
                                   for p in t.partitions]) for t in b.topics])


def _describe_topic_partitions(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    T = R.DescribeTopicPartitionsResponseTopic
    return R[v](throttle_time_ms=0, next_cursor=None, topics=[
        T(error_code=deny(Resource("topic", t.name)).code, name=t.name, topic_id=uuid.UUID(int=0), is_internal=False,
          partitions=[], topic_authorized_operations=_NO_AUTH_OPS) for t in b.topics])


def _offset_for_leader_epoch(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    T = R.OffsetForLeaderTopicResult
    P = T.EpochEndOffset
    return R[v](throttle_time_ms=0, topics=[
        T(topic=t.topic, partitions=[P(error_code=deny(Resource("topic", t.topic)).code, partition=p.partition,
                                       leader_epoch=-1, end_offset=-1) for p in t.partitions]) for t in b.topics])


def _describe_producers(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    T = R.TopicResponse
    P = T.PartitionResponse
    out = []
    for t in b.topics:
        d = deny(Resource("topic", t.name))
        out.append(T(name=t.name, partitions=[P(partition_index=i, error_code=d.code, error_message=d.message, active_producers=[])
                                              for i in t.partition_indexes]))
    return R[v](throttle_time_ms=0, topics=out)


def _describe_transactions(R: Any, v: int, b: Any, deny: DenialFor, resolve: Any) -> Any:
    X = R.TransactionState
    return R[v](throttle_time_ms=0, transaction_states=[
        X(error_code=deny(Resource("transactional_id", t)).code, transactional_id=t, transaction_state="",
          transaction_timeout_ms=0, transaction_start_time_ms=0, producer_id=0, producer_epoch=0, topics=[])
        for t in b.transactional_ids])


_BUILDERS: dict[int, Callable[..., Any]] = {
    0: _produce,
    1: _fetch,
    2: _list_offsets,
    3: _metadata,
    8: _offset_commit,
    9: _offset_fetch,
    10: _find_coordinator,
    11: _join_group,
    12: _group_error({"throttle_time_ms": 0}),
    13: _group_error({"throttle_time_ms": 0, "members": []}),
    14: _group_error({"throttle_time_ms": 0, "assignment": b""}),
    15: _describe_groups,
    19: _create_topics,
    20: _delete_topics,
    21: _delete_records,
    22: _init_producer,
    23: _offset_for_leader_epoch,
    24: _add_partitions_to_txn,
    25: _txn_error,
    26: _txn_error,
    28: _txn_offset_commit,
    30: _acls("results", "AclCreationResult", "creations"),
    31: _acls("filter_results", "DeleteAclsFilterResult", "filters"),
    32: _describe_configs,
    33: _alter_configs,
    37: _create_partitions,
    42: _delete_groups,
    44: _alter_configs,
    47: _offset_delete,
    61: _describe_producers,
    65: _describe_transactions,
    75: _describe_topic_partitions,
}
