"""A catalogue of Kafka requests naming resources a principal is refused, for every API key
Gatekeeper answers with its own error response, built for any version.

``request_fields(key, version, names)`` gives the keyword arguments of kafka-python's request
class; fields a version lacks are ignored by its encoder. The same requests are sent to a broker
whose own authorizer refuses them and to Gatekeeper's denial builders, so both answers can be
compared field by field.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import attrs

from gatekeeper.kafka.codec import API_TABLE

__all__ = ["CATALOG", "Names", "request_fields"]


@attrs.frozen
class Names:
    """Resources the test principal has no rights on (they exist on the broker)."""

    topic: str = "refused"
    topic2: str = "refused.two"
    group: str = "refused-group"
    txn: str = "refused-txn"
    topic_id: uuid.UUID = uuid.UUID(int=0)


def _R(key: int) -> Any:
    return API_TABLE[key].request


def _produce(v: int, n: Names) -> dict[str, Any]:
    R = _R(0)
    T = R.TopicProduceData
    topics = [T(name=n.topic, topic_id=n.topic_id, partition_data=[T.PartitionProduceData(index=0, records=b""),
                                                                  T.PartitionProduceData(index=1, records=b"")])]
    return {"transactional_id": None, "acks": -1, "timeout_ms": 1000, "topic_data": topics}


def _fetch(v: int, n: Names) -> dict[str, Any]:
    R = _R(1)
    T = R.FetchTopic
    P = T.FetchPartition
    parts = [P(partition=i, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1, log_start_offset=-1,
               partition_max_bytes=1 << 20) for i in (0, 1)]
    return {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
            "session_id": 0, "session_epoch": -1, "topics": [T(topic=n.topic, topic_id=n.topic_id, partitions=parts)],
            "forgotten_topics_data": [], "rack_id": ""}


def _list_offsets(v: int, n: Names) -> dict[str, Any]:
    R = _R(2)
    T = R.ListOffsetsTopic
    P = T.ListOffsetsPartition
    return {"replica_id": -1, "isolation_level": 0, "timeout_ms": 1000, "topics": [
        T(name=n.topic, partitions=[P(partition_index=i, current_leader_epoch=-1, timestamp=-1) for i in (0, 1)])]}


def _metadata(v: int, n: Names) -> dict[str, Any]:
    R = _R(3)
    return {"topics": [R.MetadataRequestTopic(name=n.topic, topic_id=uuid.UUID(int=0))], "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False}


def _offset_commit(v: int, n: Names) -> dict[str, Any]:
    R = _R(8)
    T = R.OffsetCommitRequestTopic
    P = T.OffsetCommitRequestPartition
    return {"group_id": n.group, "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
            "retention_time_ms": -1, "topics": [T(name=n.topic, topic_id=n.topic_id, partitions=[
                P(partition_index=0, committed_offset=1, committed_leader_epoch=-1, committed_metadata="")])]}


def _offset_fetch(v: int, n: Names) -> dict[str, Any]:
    R = _R(9)
    if v < 8:
        T = R.OffsetFetchRequestTopic
        return {"group_id": n.group, "topics": [T(name=n.topic, partition_indexes=[0])], "require_stable": False}
    G = R.OffsetFetchRequestGroup
    T = G.OffsetFetchRequestTopics
    return {"groups": [G(group_id=n.group, member_id=None, member_epoch=-1,
                         topics=[T(name=n.topic, topic_id=n.topic_id, partition_indexes=[0])])], "require_stable": False}


def _find_coordinator(v: int, n: Names) -> dict[str, Any]:
    return {"key": n.group, "key_type": 0, "coordinator_keys": [n.group]}


def _join_group(v: int, n: Names) -> dict[str, Any]:
    R = _R(11)
    return {"group_id": n.group, "session_timeout_ms": 10000, "rebalance_timeout_ms": 10000, "member_id": "",
            "group_instance_id": None, "protocol_type": "consumer",
            "protocols": [R.JoinGroupRequestProtocol(name="range", metadata=b"")], "reason": None}


def _heartbeat(v: int, n: Names) -> dict[str, Any]:
    return {"group_id": n.group, "generation_id": 1, "member_id": "m-1", "group_instance_id": None}


def _leave_group(v: int, n: Names) -> dict[str, Any]:
    R = _R(13)
    return {"group_id": n.group, "member_id": "m-1",
            "members": [R.MemberIdentity(member_id="m-1", group_instance_id=None, reason=None)]}


def _sync_group(v: int, n: Names) -> dict[str, Any]:
    return {"group_id": n.group, "generation_id": 1, "member_id": "m-1", "group_instance_id": None,
            "protocol_type": "consumer", "protocol_name": "range", "assignments": []}


def _describe_groups(v: int, n: Names) -> dict[str, Any]:
    return {"groups": [n.group, n.group + "-2"], "include_authorized_operations": False}


def _create_topics(v: int, n: Names) -> dict[str, Any]:
    R = _R(19)
    return {"topics": [R.CreatableTopic(name=n.topic + ".new", num_partitions=1, replication_factor=1, assignments=[], configs=[])],
            "timeout_ms": 1000, "validate_only": False}


def _delete_topics(v: int, n: Names) -> dict[str, Any]:
    R = _R(20)
    return {"topics": [R.DeleteTopicState(name=n.topic, topic_id=uuid.UUID(int=0))], "topic_names": [n.topic], "timeout_ms": 1000}


def _delete_records(v: int, n: Names) -> dict[str, Any]:
    R = _R(21)
    T = R.DeleteRecordsTopic
    return {"topics": [T(name=n.topic, partitions=[T.DeleteRecordsPartition(partition_index=0, offset=0)])], "timeout_ms": 1000}


def _init_producer(v: int, n: Names) -> dict[str, Any]:
    return {"transactional_id": n.txn, "transaction_timeout_ms": 60000, "producer_id": -1, "producer_epoch": -1,
            "enable2_pc": False, "keep_prepared_txn": False}


def _init_producer_idempotent(v: int, n: Names) -> dict[str, Any]:
    return {**_init_producer(v, n), "transactional_id": None}


def _offset_for_leader_epoch(v: int, n: Names) -> dict[str, Any]:
    R = _R(23)
    T = R.OffsetForLeaderTopic
    return {"replica_id": -1, "topics": [T(topic=n.topic, partitions=[
        T.OffsetForLeaderPartition(partition=0, current_leader_epoch=-1, leader_epoch=0)])]}


def _add_partitions_to_txn(v: int, n: Names) -> dict[str, Any]:
    R = _R(24)
    T = R.AddPartitionsToTxnTopic
    topics = [T(name=n.topic, partitions=[0, 1])]
    return {"v3_and_below_transactional_id": n.txn, "v3_and_below_producer_id": 1, "v3_and_below_producer_epoch": 0,
            "v3_and_below_topics": topics,
            "transactions": [R.AddPartitionsToTxnTransaction(transactional_id=n.txn, producer_id=1, producer_epoch=0,
                                                             verify_only=False, topics=topics)]}


def _add_offsets_to_txn(v: int, n: Names) -> dict[str, Any]:
    return {"transactional_id": n.txn, "producer_id": 1, "producer_epoch": 0, "group_id": n.group}


def _end_txn(v: int, n: Names) -> dict[str, Any]:
    return {"transactional_id": n.txn, "producer_id": 1, "producer_epoch": 0, "committed": True}


def _txn_offset_commit(v: int, n: Names) -> dict[str, Any]:
    R = _R(28)
    T = R.TxnOffsetCommitRequestTopic
    return {"transactional_id": n.txn, "group_id": n.group, "producer_id": 1, "producer_epoch": 0, "generation_id": -1,
            "member_id": "", "group_instance_id": None, "topics": [T(name=n.topic, partitions=[
                T.TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                                                  committed_metadata="")])]}


def _describe_acls(v: int, n: Names) -> dict[str, Any]:
    return {"resource_type_filter": 1, "resource_name_filter": None, "pattern_type_filter": 1, "principal_filter": None,
            "host_filter": None, "operation": 1, "permission_type": 1}


def _create_acls(v: int, n: Names) -> dict[str, Any]:
    R = _R(30)
    return {"creations": [R.AclCreation(resource_type=2, resource_name=n.topic, resource_pattern_type=3,
                                        principal="User:outsider", host="*", operation=2, permission_type=3)]}


def _delete_acls(v: int, n: Names) -> dict[str, Any]:
    R = _R(31)
    return {"filters": [R.DeleteAclsFilter(resource_type_filter=2, resource_name_filter=n.topic, pattern_type_filter=3,
                                           principal_filter=None, host_filter=None, operation=1, permission_type=1)]}


def _describe_configs(v: int, n: Names) -> dict[str, Any]:
    R = _R(32)
    return {"resources": [R.DescribeConfigsResource(resource_type=2, resource_name=n.topic, configuration_keys=None)],
            "include_synonyms": False, "include_documentation": False}


def _alter_configs(v: int, n: Names) -> dict[str, Any]:
    R = _R(33)
    A = R.AlterConfigsResource
    return {"resources": [A(resource_type=2, resource_name=n.topic, configs=[A.AlterableConfig(name="retention.ms", value="1000")])],
            "validate_only": True}


def _incremental_alter_configs(v: int, n: Names) -> dict[str, Any]:
    R = _R(44)
    A = R.AlterConfigsResource
    return {"resources": [A(resource_type=2, resource_name=n.topic, configs=[
        A.AlterableConfig(name="retention.ms", config_operation=0, value="1000")])], "validate_only": True}


def _create_partitions(v: int, n: Names) -> dict[str, Any]:
    R = _R(37)
    return {"topics": [R.CreatePartitionsTopic(name=n.topic, count=5, assignments=None)], "timeout_ms": 1000,
            "validate_only": True}


def _delete_groups(v: int, n: Names) -> dict[str, Any]:
    return {"groups_names": [n.group, n.group + "-2"]}


def _offset_delete(v: int, n: Names) -> dict[str, Any]:
    R = _R(47)
    T = R.OffsetDeleteRequestTopic
    return {"group_id": n.group, "topics": [T(name=n.topic, partitions=[T.OffsetDeleteRequestPartition(partition_index=0)])]}


def _describe_producers(v: int, n: Names) -> dict[str, Any]:
    R = _R(61)
    return {"topics": [R.TopicRequest(name=n.topic, partition_indexes=[0, 1])]}


def _describe_transactions(v: int, n: Names) -> dict[str, Any]:
    return {"transactional_ids": [n.txn]}


def _describe_topic_partitions(v: int, n: Names) -> dict[str, Any]:
    R = _R(75)
    return {"topics": [R.TopicRequest(name=n.topic)], "response_partition_limit": 100, "cursor": None}


def _alter_replica_log_dirs(v: int, n: Names) -> dict[str, Any]:
    R = _R(34)
    D = R.AlterReplicaLogDir
    return {"dirs": [D(path="/tmp/nowhere", topics=[D.AlterReplicaLogDirTopic(name=n.topic, partitions=[0])])]}


def _describe_log_dirs(v: int, n: Names) -> dict[str, Any]:
    R = _R(35)
    return {"topics": [R.DescribableLogDirTopic(topic=n.topic, partitions=[0])]}


def _elect_leaders(v: int, n: Names) -> dict[str, Any]:
    R = _R(43)
    return {"election_type": 0, "topic_partitions": [R.TopicPartitions(topic=n.topic, partitions=[0])], "timeout_ms": 1000}


def _alter_partition_reassignments(v: int, n: Names) -> dict[str, Any]:
    R = _R(45)
    T = R.ReassignableTopic
    return {"timeout_ms": 1000, "allow_replication_factor_change": True,
            "topics": [T(name=n.topic, partitions=[T.ReassignablePartition(partition_index=0, replicas=None)])]}


def _list_partition_reassignments(v: int, n: Names) -> dict[str, Any]:
    R = _R(46)
    return {"timeout_ms": 1000, "topics": [R.ListPartitionReassignmentsTopics(name=n.topic, partition_indexes=[0])]}


def _describe_client_quotas(v: int, n: Names) -> dict[str, Any]:
    R = _R(48)
    return {"components": [R.ComponentData(entity_type="user", match_type=0, match="someone")], "strict": False}


def _alter_client_quotas(v: int, n: Names) -> dict[str, Any]:
    E = _R(49).EntryData
    return {"entries": [E(entity=[E.EntityData(entity_type="user", entity_name="someone")],
                          ops=[E.OpData(key="producer_byte_rate", value=1.0, remove=False)])], "validate_only": True}


def _describe_user_scram_credentials(v: int, n: Names) -> dict[str, Any]:
    return {"users": [_R(50).UserName(name="someone")]}


def _alter_user_scram_credentials(v: int, n: Names) -> dict[str, Any]:
    U = _R(51).ScramCredentialUpsertion
    return {"deletions": [], "upsertions": [U(name="someone", mechanism=2, iterations=4096, salt=b"s" * 16,
                                              salted_password=b"p" * 64)]}


def _describe_quorum(v: int, n: Names) -> dict[str, Any]:
    T = _R(55).TopicData
    return {"topics": [T(topic_name="__cluster_metadata", partitions=[T.PartitionData(partition_index=0)])]}


def _update_features(v: int, n: Names) -> dict[str, Any]:
    F = _R(57).FeatureUpdateKey
    return {"timeout_ms": 1000, "feature_updates": [F(feature="group.version", max_version_level=1, allow_downgrade=False,
                                                       upgrade_type=1)], "validate_only": True}


def _consumer_group_heartbeat(v: int, n: Names) -> dict[str, Any]:
    return {"group_id": n.group, "member_id": "m-1", "member_epoch": 0, "instance_id": None, "rack_id": None,
            "rebalance_timeout_ms": 30000, "subscribed_topic_names": [n.topic, n.topic2], "subscribed_topic_regex": None,
            "server_assignor": None, "topic_partitions": []}


def _consumer_group_describe(v: int, n: Names) -> dict[str, Any]:
    return {"group_ids": [n.group, n.group + "-2"], "include_authorized_operations": False}
def _share_group_heartbeat(v: int, n: Names) -> dict[str, Any]:
    return {"group_id": n.group, "member_id": str(uuid.UUID(int=7)), "member_epoch": 0, "rack_id": None,
            "subscribed_topic_names": [n.topic]}


def _share_group_describe(v: int, n: Names) -> dict[str, Any]:
    return {"group_ids": [n.group], "include_authorized_operations": False}


def _share_partitions(T: Any) -> list[Any]:
    return [T.FetchPartition(partition_index=i, acknowledgement_batches=[]) for i in (0, 1)]


def _share_fetch(v: int, n: Names) -> dict[str, Any]:
    T = _R(78).FetchTopic
    return {"group_id": n.group, "member_id": str(uuid.UUID(int=7)), "share_session_epoch": 0, "max_wait_ms": 0,
            "min_bytes": 1, "max_bytes": 1 << 20, "max_records": 100, "batch_size": 100, "share_acquire_mode": 0,
            "is_renew_ack": False, "topics": [T(topic_id=n.topic_id, partitions=_share_partitions(T))],
            "forgotten_topics_data": []}


def _share_acknowledge(v: int, n: Names) -> dict[str, Any]:
    T = _R(79).AcknowledgeTopic
    P = T.AcknowledgePartition
    B = P.AcknowledgementBatch
    parts = [P(partition_index=i, acknowledgement_batches=[B(first_offset=0, last_offset=0, acknowledge_types=[1])])
             for i in (0, 1)]
    return {"group_id": n.group, "member_id": str(uuid.UUID(int=7)), "share_session_epoch": 1, "is_renew_ack": False,
            "topics": [T(topic_id=n.topic_id, partitions=parts)]}


def _describe_share_group_offsets(v: int, n: Names) -> dict[str, Any]:
    G = _R(90).DescribeShareGroupOffsetsRequestGroup
    T = G.DescribeShareGroupOffsetsRequestTopic
    return {"groups": [G(group_id=n.group, topics=[T(topic_name=n.topic, partitions=[0, 1])])]}


def _alter_share_group_offsets(v: int, n: Names) -> dict[str, Any]:
    T = _R(91).AlterShareGroupOffsetsRequestTopic
    P = T.AlterShareGroupOffsetsRequestPartition
    return {"group_id": n.group, "topics": [T(topic_name=n.topic, partitions=[P(partition_index=0, start_offset=0)])]}


def _delete_share_group_offsets(v: int, n: Names) -> dict[str, Any]:
    T = _R(92).DeleteShareGroupOffsetsRequestTopic
    return {"group_id": n.group, "topics": [T(topic_name=n.topic)]}


CATALOG: dict[str, tuple[int, Callable[[int, Names], dict[str, Any]]]] = {
    "Produce": (0, _produce),
    "Fetch": (1, _fetch),
    "ListOffsets": (2, _list_offsets),
    "Metadata": (3, _metadata),
    "OffsetCommit": (8, _offset_commit),
    "OffsetFetch": (9, _offset_fetch),
    "FindCoordinator": (10, _find_coordinator),
    "JoinGroup": (11, _join_group),
    "Heartbeat": (12, _heartbeat),
    "LeaveGroup": (13, _leave_group),
    "SyncGroup": (14, _sync_group),
    "DescribeGroups": (15, _describe_groups),
    "CreateTopics": (19, _create_topics),
    "DeleteTopics": (20, _delete_topics),
    "DeleteRecords": (21, _delete_records),
    "InitProducerId": (22, _init_producer),
    "InitProducerId(idempotent)": (22, _init_producer_idempotent),
    "OffsetForLeaderEpoch": (23, _offset_for_leader_epoch),
    "AddPartitionsToTxn": (24, _add_partitions_to_txn),
    "AddOffsetsToTxn": (25, _add_offsets_to_txn),
    "EndTxn": (26, _end_txn),
    "TxnOffsetCommit": (28, _txn_offset_commit),
    "DescribeAcls": (29, _describe_acls),
    "CreateAcls": (30, _create_acls),
    "DeleteAcls": (31, _delete_acls),
    "DescribeConfigs": (32, _describe_configs),
    "AlterConfigs": (33, _alter_configs),
    "CreatePartitions": (37, _create_partitions),
    "DeleteGroups": (42, _delete_groups),
    "IncrementalAlterConfigs": (44, _incremental_alter_configs),
    "OffsetDelete": (47, _offset_delete),
    "DescribeProducers": (61, _describe_producers),
    "DescribeTransactions": (65, _describe_transactions),
    "DescribeTopicPartitions": (75, _describe_topic_partitions),
    "AlterReplicaLogDirs": (34, _alter_replica_log_dirs),
    "DescribeLogDirs": (35, _describe_log_dirs),
    "ElectLeaders": (43, _elect_leaders),
    "AlterPartitionReassignments": (45, _alter_partition_reassignments),
    "ListPartitionReassignments": (46, _list_partition_reassignments),
    "DescribeClientQuotas": (48, _describe_client_quotas),
    "AlterClientQuotas": (49, _alter_client_quotas),
    "DescribeUserScramCredentials": (50, _describe_user_scram_credentials),
    "AlterUserScramCredentials": (51, _alter_user_scram_credentials),
    "DescribeQuorum": (55, _describe_quorum),
    "UpdateFeatures": (57, _update_features),
    "ListConfigResources": (74, lambda v, n: {"resource_types": [2]}),
    "ConsumerGroupHeartbeat": (68, _consumer_group_heartbeat),
    "ConsumerGroupDescribe": (69, _consumer_group_describe),
    "ShareGroupHeartbeat": (76, _share_group_heartbeat),
    "ShareGroupDescribe": (77, _share_group_describe),
    "ShareFetch": (78, _share_fetch),
    "ShareAcknowledge": (79, _share_acknowledge),
    "DescribeShareGroupOffsets": (90, _describe_share_group_offsets),
    "AlterShareGroupOffsets": (91, _alter_share_group_offsets),
    "DeleteShareGroupOffsets": (92, _delete_share_group_offsets),
}


def request_fields(name: str, version: int, names: Names) -> tuple[int, dict[str, Any]]:
    key, build = CATALOG[name]
    return key, build(version, names)
