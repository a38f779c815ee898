"""A table of real request encodings (made with kafka-python's classes) for codec tests."""

from __future__ import annotations

import uuid
from typing import Any

from gatekeeper.kafka.codec import API_TABLE

TOPIC_ID = uuid.UUID("6b1c6a4e-94a1-4e0a-9b0e-0c2f5d7a8e11")
SAMPLES_TOPIC_NAME = "orders"


def _batch(count: int) -> bytes:
    """A minimal v2 record batch header announcing ``count`` records (payload not needed)."""
    import struct

    body = struct.pack(">iBI", 0, 2, 0) + struct.pack(">hiqqqhi", 0, count - 1, 0, 0, -1, -1, -1)
    body += struct.pack(">i", count) + b"\x00" * 4
    return struct.pack(">qi", 0, len(body)) + body


def req(api_key: int, version: int, /, **fields: Any) -> Any:
    return API_TABLE[api_key].request[version](**fields)


def produce(version: int, acks: int = -1, txn: str | None = None) -> Any:
    P = API_TABLE[0].request
    topic = {"name": "orders"} if version < 13 else {"topic_id": TOPIC_ID}
    return req(
        0,
        version,
        transactional_id=txn,
        acks=acks,
        timeout_ms=1000,
        topic_data=[
            P.TopicProduceData(**topic, partition_data=[
                P.TopicProduceData.PartitionProduceData(index=0, records=_batch(3)),
                P.TopicProduceData.PartitionProduceData(index=2, records=_batch(2)),
            ])
        ],
    )


def samples() -> list[tuple[str, Any, int]]:
    """(label, request message, version) covering the APIs clients send."""
    M = API_TABLE[3].request
    F = API_TABLE[1].request
    out: list[tuple[str, Any, int]] = []
    for v in (3, 9, 12):
        out.append((f"produce-v{v}", produce(v), v))
    out.append(("produce-v13-topic-id", produce(13), 13))
    out.append(("produce-acks0", produce(9, acks=0), 9))
    for v in (4, 12, 13, 15):
        topic = {"topic": "orders"} if v < 13 else {"topic_id": TOPIC_ID}
        out.append((f"fetch-v{v}", req(1, v, replica_id=-1, max_wait_ms=500, min_bytes=1, max_bytes=1 << 20,
                                        isolation_level=0, session_id=0, session_epoch=-1,
                                        topics=[F.FetchTopic(**topic, partitions=[F.FetchTopic.FetchPartition(partition=0, fetch_offset=5, partition_max_bytes=1 << 20)])],
                                        forgotten_topics_data=[], rack_id=""), v))
    for v in (0, 4, 9, 12, 13):
        out.append((f"metadata-v{v}", req(3, v, topics=[M.MetadataRequestTopic(name="orders")], allow_auto_topic_creation=False), v))
    out.append(("metadata-all", req(3, 12, topics=None, allow_auto_topic_creation=True), 12))
    out.append(("api-versions-v0", req(18, 0), 0))
    out.append(("api-versions-v3", req(18, 3, client_software_name="t", client_software_version="1"), 3))
    out.append(("find-coordinator-v2", req(10, 2, key="g1", key_type=0), 2))
    out.append(("find-coordinator-v4", req(10, 4, key_type=0, coordinator_keys=["g1", "g2"]), 4))
    out.append(("heartbeat-v4", req(12, 4, group_id="g1", generation_id=1, member_id="m"), 4))
    out.append(("describe-groups-v5", req(15, 5, groups=["g1"], include_authorized_operations=False), 5))
    out.append(("list-groups-v4", req(16, 4, states_filter=[]), 4))
    out.append(("delete-groups-v2", req(42, 2, groups_names=["g1"]), 2))
    C = API_TABLE[19].request
    out.append(("create-topics-v7", req(19, 7, topics=[C.CreatableTopic(name="t1", num_partitions=3, replication_factor=1, assignments=[], configs=[])], timeout_ms=1000, validate_only=False), 7))
    out.append(("delete-topics-v4", req(20, 4, topic_names=["t1"], timeout_ms=1000), 4))
    D = API_TABLE[20].request
    out.append(("delete-topics-v6", req(20, 6, topics=[D.DeleteTopicState(name="t1", topic_id=uuid.UUID(int=0))], timeout_ms=1000), 6))
    out.append(("init-producer-v4", req(22, 4, transactional_id="tx1", transaction_timeout_ms=1000, producer_id=-1, producer_epoch=-1), 4))
    out.append(("end-txn-v3", req(26, 3, transactional_id="tx1", producer_id=1, producer_epoch=0, committed=True), 3))
    out.append(("describe-cluster-v1", req(60, 1, include_cluster_authorized_operations=False, endpoint_type=1), 1))
    out.append(("list-transactions-v0", req(66, 0, state_filters=[], producer_id_filters=[]), 0))
    return out
