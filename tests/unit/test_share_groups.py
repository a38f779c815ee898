"""The share group unit's pure parts: operations, remembered subscriptions, the response
listings (assignment, ShareFetch topics, described members), ListGroups by group type, the
error responses, and masking a ShareFetch response with its acquired records kept consistent."""

from __future__ import annotations

import json
import uuid
from typing import Any

from kafka.record.default_records import DefaultRecordBatchBuilder

from gatekeeper.api import Decision, Resource
from gatekeeper.config.values import MaskingConfig
from gatekeeper.kafka import enforce
from gatekeeper.kafka.apis import UNITS
from gatekeeper.kafka.apis.base import ApiKey, Denial, Denials, OpContext
from gatekeeper.kafka.apis.share_groups import Subscriptions, share_group
from gatekeeper.kafka.cluster import ClusterView
from gatekeeper.kafka.codec import API_TABLE
from gatekeeper.kafka.masking import clip_acquired, mask_share_fetch
from gatekeeper.kafka.messages import KafkaCodec
from gatekeeper.masking import Masking

TID, TID2 = uuid.UUID(int=11), uuid.UUID(int=12)
NAMES = {TID: "orders", TID2: "secret"}
CARD = "4111 1111 1111 1111"


def _resolve(i: uuid.UUID) -> str | None:
    return NAMES.get(i)


def _ops(key: int, version: int, body: Any) -> list[tuple[str, str, str]]:
    return [(o.name, o.resource.type, o.resource.name) for o in UNITS[key].operations(body, OpContext(version, _resolve))]


def _heartbeat(topics: list[str] | None, epoch: int = 3, member: str = "m1") -> Any:
    return API_TABLE[76].request[1](group_id="q", member_id=member, member_epoch=epoch, rack_id=None,
                                    subscribed_topic_names=topics)


def test_a_heartbeat_joins_the_share_group_and_consumes_each_subscribed_topic() -> None:
    assert _ops(76, 1, _heartbeat(["orders", "secret"])) == [
        ("join_group", "share_group", "q"), ("consume", "topic", "orders"), ("consume", "topic", "secret")]


def test_a_heartbeat_without_its_subscription_is_decided_on_the_one_remembered() -> None:
    subs = Subscriptions()
    first = _heartbeat(["orders"])
    subs.operations(first, [])
    again = subs.operations(_heartbeat(None), [])
    assert [(o.name, o.resource.name, o.request["remembered"]) for o in again] == [("consume", "orders", True)]
    # Another member of the same group on this connection has its own (none yet).
    assert subs.operations(_heartbeat(None, member="m2"), []) == []
    # A new subscription replaces the old one; leaving forgets it.
    subs.operations(_heartbeat(["secret"]), [])
    assert [o.resource.name for o in subs.operations(_heartbeat(None), [])] == ["secret"]
    assert subs.operations(_heartbeat(None, epoch=-1), []) == []
    assert subs.operations(_heartbeat(None), []) == []


def test_remembered_subscriptions_are_bounded_per_connection() -> None:
    subs = Subscriptions(limit=2)
    for m in ("a", "b", "c"):
        subs.operations(_heartbeat(["orders"], member=m), [])
    assert len(subs.by_member) == 2 and ("q", "a") not in subs.by_member


def _heartbeat_response(*topic_ids: uuid.UUID) -> Any:
    R = API_TABLE[76].response
    A = R.Assignment
    return R[1](throttle_time_ms=0, error_code=0, error_message=None, member_id="m1", member_epoch=4,
                heartbeat_interval_ms=5000, assignment=A(topic_partitions=[A.AssignedTopic(topic_id=i, partitions=[0, 1])
                                                                           for i in topic_ids]))


def test_the_assignment_keeps_only_topics_the_principal_may_consume_and_ids_not_yet_named() -> None:
    unknown = uuid.UUID(int=99)
    body = _heartbeat_response(TID, TID2, unknown)
    listing = UNITS[ApiKey.SHARE_GROUP_HEARTBEAT].listing(1, _heartbeat(None))  # type: ignore[misc]
    ops = listing.operations(body, _resolve)
    assert [(o.name, o.resource.name, o.request["share_group"]) for o in ops] == [("consume", "orders", "q"), ("consume", "secret", "q")]
    listing.keep(body, [True, False])
    assert [t.topic_id for t in body.assignment.topic_partitions] == [TID, unknown]


def _share_fetch(*topic_ids: uuid.UUID, acks: bool = False, group: str = "q") -> Any:
    R = API_TABLE[78].request
    T = R.FetchTopic
    P = T.FetchPartition
    B = P.AcknowledgementBatch
    batches = [B(first_offset=0, last_offset=1, acknowledge_types=[1])] if acks else []
    return R[2](group_id=group, member_id="m1", share_session_epoch=1, max_wait_ms=500, min_bytes=1, max_bytes=1 << 20,
                max_records=100, batch_size=100, share_acquire_mode=0, is_renew_ack=False,
                topics=[T(topic_id=i, partitions=[P(partition_index=0, acknowledgement_batches=batches)]) for i in topic_ids],
                forgotten_topics_data=[])


def test_share_fetch_consumes_through_the_group_and_each_topic_by_id() -> None:
    assert _ops(78, 2, _share_fetch(TID, TID2)) == [
        ("consume", "share_group", "q"), ("consume", "topic", "orders"), ("consume", "topic", "secret")]


def _encoded(body: Any, key: int, version: int) -> Any:
    body.with_header(correlation_id=1, client_id="t")
    cluster = ClusterView(3)
    cluster.observe_topics(list(NAMES.items()))
    codec = KafkaCodec(cluster)
    return codec, codec.decode(bytes(body.encode(version=version, header=True)))


def test_a_refused_topic_is_split_out_of_a_share_fetch_and_answered_per_partition() -> None:
    codec, request = _encoded(_share_fetch(TID, TID2, acks=True), 78, 2)
    ops = codec.operations(request)
    decisions = [Decision("allow"), Decision("allow"), Decision("deny", reason="no")]
    plan = enforce.plan(request, ops, decisions, codec.cluster.topic_name)
    assert isinstance(plan, enforce.Partial)
    forwarded = codec.decode(plan.frame).body
    assert [t.topic_id for t in forwarded.topics] == [TID]
    R = API_TABLE[78].response
    merged = plan.merge(R[2](throttle_time_ms=0, error_code=0, error_message=None, acquisition_lock_timeout_ms=30000,
                             responses=[], node_endpoints=[]))
    (err,) = merged.responses
    p = err.partitions[0]
    assert (err.topic_id, p.error_code, p.acknowledge_error_code, p.records, p.acquired_records) == (TID2, 29, 29, b"", [])


def test_every_topic_refused_still_forwards_the_share_fetch_so_the_session_epoch_stays_in_step() -> None:
    codec, request = _encoded(_share_fetch(TID2), 78, 2)
    ops = codec.operations(request)
    plan = enforce.plan(request, ops, [Decision("allow"), Decision("deny", reason="no")], codec.cluster.topic_name)
    assert isinstance(plan, enforce.Partial)
    assert codec.decode(plan.frame).body.topics == []


def test_a_refused_share_group_refuses_the_whole_share_fetch() -> None:
    R = API_TABLE[78].response
    d = Denial(30, "no group")
    body = UNITS[78].error_response(R, 2, _share_fetch(TID), Denials({share_group("q"): d}, d), _resolve)  # type: ignore[misc]
    assert (body.error_code, body.error_message, body.responses) == (30, "no group", [])


def test_a_refused_subscribed_topic_answers_the_heartbeat_with_topic_authorization_failed() -> None:
    R = API_TABLE[76].response
    d = Denial(29, "not orders")
    body = UNITS[76].error_response(R, 1, _heartbeat(["orders"]), Denials({Resource("topic", "orders"): d}, d), _resolve)  # type: ignore[misc]
    assert (body.error_code, body.error_message, body.assignment, body.member_id) == (29, "not orders", None, None)


def _records(values: list[bytes], base: int = 0) -> bytes:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=1, key=None, value=v, headers=[])
    data = bytearray(b.build())
    data[0:8] = base.to_bytes(8, "big")  # base offset, outside the CRC
    return bytes(data)


def _fetch_response(records: bytes, acquired: list[tuple[int, int]]) -> Any:
    R = API_TABLE[78].response
    T = R.ShareFetchableTopicResponse
    P = T.PartitionData
    A = P.AcquiredRecords
    part = P(partition_index=0, error_code=0, error_message=None, acknowledge_error_code=0, acknowledge_error_message=None,
             current_leader=P.LeaderIdAndEpoch(leader_id=1, leader_epoch=0), records=records,
             acquired_records=[A(first_offset=f, last_offset=last, delivery_count=1) for f, last in acquired])
    return R[2](throttle_time_ms=0, error_code=0, error_message=None, acquisition_lock_timeout_ms=30000,
                responses=[T(topic_id=TID, partitions=[part])], node_endpoints=[])


PLAN = Masking(MaskingConfig()).plan([{"field": "$.card", "masker": "last4"}], "consume")


def test_share_fetch_records_are_masked_in_place_and_acquired_records_kept() -> None:
    values = [json.dumps({"id": i, "card": CARD}).encode() for i in range(5)]
    body = _fetch_response(_records(values, base=10), [(10, 14)])
    counts = mask_share_fetch(body, {TID: ("orders", PLAN)}, 1 << 26)
    p = body.responses[0].partitions[0]
    from kafka.record.memory_records import MemoryRecords
    got = [(r.offset, json.loads(r.value)) for batch in MemoryRecords(p.records) for r in batch]
    assert [o for o, _ in got] == list(range(10, 15))
    assert all(d["card"] != CARD and d["card"].endswith("1111") for _, d in got)
    assert [(a.first_offset, a.last_offset) for a in p.acquired_records] == [(10, 14)]
    assert counts.records["orders"] == 5


def test_an_incomplete_trailing_batch_changes_nothing_the_client_would_have_read() -> None:
    # A client skips an incomplete trailing batch itself: masking drops it, and the acquired
    # records stay as the broker sent them (the client sees the same complete records).
    first = _records([json.dumps({"card": CARD}).encode()] * 3, base=0)
    second = _records([json.dumps({"card": CARD}).encode()] * 3, base=3)
    body = _fetch_response(first + second[: len(second) - 5], [(0, 5)])
    mask_share_fetch(body, {TID: ("orders", PLAN)}, 1 << 26)
    p = body.responses[0].partitions[0]
    assert len(p.records) < len(first) + 5
    assert [(a.first_offset, a.last_offset) for a in p.acquired_records] == [(0, 5)]


def test_a_complete_batch_that_cannot_be_masked_cuts_the_acquired_records() -> None:
    good = _records([json.dumps({"card": CARD}).encode()] * 3, base=0)
    bad = bytearray(_records([json.dumps({"card": CARD}).encode()] * 3, base=3))
    bad[17:21] = b"\x00\x00\x00\x00"  # CRC broken: the batch cannot be trusted, its records are dropped
    body = _fetch_response(good + bytes(bad), [(0, 5)])
    mask_share_fetch(body, {TID: ("orders", PLAN)}, 1 << 26)
    p = body.responses[0].partitions[0]
    assert (p.records, p.acquired_records) == (b"", [])


def test_records_that_cannot_be_masked_leave_no_acquired_records_behind() -> None:
    body = _fetch_response(b"\x00" * 70, [(0, 5)])  # not a record batch
    mask_share_fetch(body, {TID: ("orders", PLAN)}, 1 << 26)
    p = body.responses[0].partitions[0]
    assert (p.records, p.acquired_records) == (b"", [])


def test_clip_acquired_keeps_ranges_up_to_the_last_offset() -> None:
    A = API_TABLE[78].response.ShareFetchableTopicResponse.PartitionData.AcquiredRecords
    ranges = [A(first_offset=0, last_offset=4, delivery_count=1), A(first_offset=6, last_offset=9, delivery_count=2)]
    assert [(a.first_offset, a.last_offset) for a in clip_acquired(ranges, 7)] == [(0, 4), (6, 7)]
    assert clip_acquired(ranges, None) == []


def test_share_fetch_response_topics_are_decided_again_and_refused_ones_emptied() -> None:
    body = _fetch_response(_records([b"x"]), [(0, 0)])
    listing = UNITS[78].listing(2, _share_fetch(TID))  # type: ignore[misc]
    ops = listing.operations(body, _resolve)
    assert [(o.name, o.resource.name, o.request["response"]) for o in ops] == [("consume", "orders", True)]
    listing.keep(body, [False])
    p = body.responses[0].partitions[0]
    assert (p.error_code, p.records, p.acquired_records) == (29, b"", [])


def test_list_groups_decides_a_share_group_as_a_share_group() -> None:
    R = API_TABLE[16].response
    G = R.ListedGroup
    body = R[5](throttle_time_ms=0, error_code=0, groups=[
        G(group_id="s", protocol_type="share", group_state="Stable", group_type="Share"),
        G(group_id="c", protocol_type="consumer", group_state="Stable", group_type="Consumer")])
    listing = UNITS[16].listing(5, None)  # type: ignore[misc]
    assert [(o.resource.type, o.resource.name) for o in listing.operations(body)] == [("share_group", "s"), ("group", "c")]


def test_share_group_describe_never_asks_for_authorized_operations_and_filters_members_topics() -> None:
    req = API_TABLE[77].request[1](group_ids=["q"], include_authorized_operations=True)
    assert UNITS[77].normalize(1, req) and req.include_authorized_operations is False  # type: ignore[misc]
    R = API_TABLE[77].response
    G = R.DescribedGroup
    M = G.Member
    A = M.Assignment
    member = M(member_id="m", rack_id=None, member_epoch=1, client_id="c", client_host="h",
               subscribed_topic_names=["orders", "secret"],
               assignment=A(topic_partitions=[A.TopicPartitions(topic_id=TID, topic_name="orders", partitions=[0]),
                                              A.TopicPartitions(topic_id=TID2, topic_name="secret", partitions=[0])]))
    body = R[1](throttle_time_ms=0, groups=[G(error_code=0, error_message=None, group_id="q", group_state="Stable",
                                             group_epoch=1, assignment_epoch=1, assignor_name="simple", members=[member],
                                             authorized_operations=-2147483648)])
    listing = UNITS[77].listing(1, req)  # type: ignore[misc]
    ops = listing.operations(body)
    assert [(o.name, o.resource.name) for o in ops] == [("describe_topic", "orders"), ("describe_topic", "secret")]
    listing.keep(body, [True, False])
    m = body.groups[0].members[0]
    assert m.subscribed_topic_names == ["orders"]
    assert [t.topic_name for t in m.assignment.topic_partitions] == ["orders"]
