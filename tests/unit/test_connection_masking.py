"""Mask decisions in the Kafka connection core, driven directly (no sockets, no reactor): the
records of a masked Produce topic are rewritten before they go upstream, the partitions of a
masked Fetch topic before the response goes to the client, and large work is offloaded
without changing the order of anything."""

from __future__ import annotations

import json
import struct
from typing import Any

from kafka.record.memory_records import MemoryRecords

from gatekeeper.api import Decision
from gatekeeper.kafka.batches import Record, build_batch
from gatekeeper.kafka.codec import API_TABLE, decode_request, decode_response_body
from tests.unit.samples import req
from tests.unit.test_client_protocol import framed, response
from tests.unit.test_connection import ALLOW, answer, ready

CARD = "4111 1111 1111 1111"
P = API_TABLE[0].request
F = API_TABLE[1].request
FR = API_TABLE[1].response
MASK = Decision("mask", reason="pii", mask=({"field": "$.card", "masker": "redact"},))


def records(n: int, value: Any = None, codec: int = 0) -> bytes:
    return build_batch([Record(key=f"k{i}".encode(), value=value or json.dumps({"i": i, "card": CARD, "pad": "x" * 200}).encode(),
                               headers=(("h", b"v"),), offset_delta=i, timestamp_delta=i) for i in range(n)],
                       codec=codec, base_timestamp=1_700_000_000_000, producer_id=7, producer_epoch=1, base_sequence=0)


def produce(cid: int, topics: dict[str, bytes]) -> bytes:
    data = [P.TopicProduceData(name=t, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=r)])
            for t, r in topics.items()]
    return framed(req(0, 9, transactional_id=None, acks=-1, timeout_ms=1000, topic_data=data), 9, cid)


def values(data: bytes) -> list[bytes]:
    out, mr = [], MemoryRecords(data)
    while (batch := mr.next_batch()) is not None:
        batch.validate_crc()
        out += [r.value for r in batch]
    return out


def sent_records(frame: bytes) -> dict[str, bytes]:
    _h, _s, body, _t = decode_request(frame)
    return {t.name: t.partition_data[0].records for t in body.topic_data}


def test_a_masked_produce_goes_upstream_with_masked_records_and_other_topics_as_they_came() -> None:
    core, io, _ = ready()
    raw = records(5, codec=1)
    core.client_data(produce(1, {"pii": raw, "plain": raw}))
    answer(core, io, MASK, ALLOW)
    (frame,) = io.upstream_frames()
    sent = sent_records(frame)
    assert sent["plain"] == raw
    assert all(json.loads(v)["card"] == "****" for v in values(sent["pii"])) and len(values(sent["pii"])) == 5
    assert CARD.encode() not in frame


def test_a_record_the_rules_cannot_apply_to_refuses_its_topic_with_policy_violation() -> None:
    core, io, _ = ready()
    core.client_data(produce(1, {"pii": records(3, value=b"not json"), "plain": records(2)}))
    answer(core, io, MASK, ALLOW)
    (frame,) = io.upstream_frames()
    assert list(sent_records(frame)) == ["plain"]  # the refused topic never goes upstream
    R = API_TABLE[0].response
    core.upstream_data(response(0, 9, 1, throttle_time_ms=0, responses=[
        R.TopicProduceResponse(name="plain", partition_responses=[R.TopicProduceResponse.PartitionProduceResponse(index=0, error_code=0, base_offset=7)])]))
    (reply,) = io.client_frames()
    _h, body = decode_response_body(reply, API_TABLE[0], 9)
    refused = next(t for t in body.responses if t.name == "pii").partition_responses[0]
    assert refused.error_code == 44
    assert "partition 0" in refused.error_message and "offset delta 0" in refused.error_message
    assert "not json" not in refused.error_message


def test_a_mask_on_an_operation_without_records_or_with_an_unknown_masker_is_a_deny() -> None:
    core, io, _ = ready()
    bad = Decision("mask", reason="pii", mask=({"field": "$.card", "masker": "no_such_masker"},))
    core.client_data(produce(1, {"pii": records(1)}))
    answer(core, io, bad)
    assert io.upstream_frames() == []
    (reply,) = io.client_frames()
    message = decode_response_body(reply, API_TABLE[0], 9)[1].responses[0].partition_responses[0].error_message
    assert "no_such_masker" in message
    M = API_TABLE[3].request
    core.client_data(framed(req(3, 12, topics=[M.MetadataRequestTopic(name="pii")], allow_auto_topic_creation=False), 12, 2))
    token, inputs = io.asked.pop(0)
    assert [i["operation"] for i in inputs] == ["describe_topic"]
    core.decided(token, [MASK])
    # Denied describe of a named topic: the request still goes (brokers must come back), the
    # topic comes back as an authorization error.
    (metadata,) = io.upstream_frames()
    assert struct.unpack_from(">h", metadata)[0] == 3


def fetch_request(cid: int, *topics: str) -> bytes:
    parts = [F.FetchTopic(topic=t, partitions=[F.FetchTopic.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20,
                                                                           current_leader_epoch=-1, log_start_offset=-1)]) for t in topics]
    return framed(req(1, 12, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 24, isolation_level=0, session_id=0,
                      session_epoch=-1, topics=parts, forgotten_topics_data=[], rack_id=""), 12, cid)


def fetch_response(cid: int, topics: dict[str, bytes]) -> bytes:
    T = FR.FetchableTopicResponse
    return response(1, 12, cid, throttle_time_ms=0, error_code=0, session_id=0, responses=[
        T(topic=t, partitions=[T.PartitionData(partition_index=0, error_code=0, high_watermark=99, last_stable_offset=98,
                                               log_start_offset=3, aborted_transactions=[], preferred_read_replica=-1, records=r)])
        for t, r in topics.items()])


def test_a_large_masked_fetch_is_masked_off_the_reactor_and_answers_keep_their_order() -> None:
    core, io, _ = ready()
    raw = records(400, codec=3)  # lz4, not masked: passed on as the broker's bytes
    big = records(400)  # uncompressed: about 100 KiB, over the offload threshold
    core.client_data(fetch_request(1, "pii", "plain"))
    answer(core, io, MASK, ALLOW)
    core.client_data(framed(req(18, 3, client_software_name="u", client_software_version="1"), 3, 2))
    core.upstream_data(fetch_response(1, {"pii": big, "plain": raw}))
    core.upstream_data(response(18, 3, 2, error_code=0, api_keys=[], throttle_time_ms=0))
    assert io.offloaded and io.client_frames() == []  # the masked Fetch is on a worker; ApiVersions waits behind it
    io.run_offloaded()
    first, second = io.client_frames()
    assert struct.unpack_from(">i", first)[0] == 1 and struct.unpack_from(">i", second)[0] == 2
    _h, body = decode_response_body(first, API_TABLE[1], 12)
    by_topic = {t.topic: t.partitions[0] for t in body.responses}
    assert by_topic["plain"].records == raw  # the broker's bytes
    masked = values(by_topic["pii"].records)
    assert len(masked) == 400 and all(json.loads(v)["card"] == "****" for v in masked)
    p = by_topic["pii"]
    assert (p.high_watermark, p.last_stable_offset, p.log_start_offset) == (99, 98, 3)


def test_a_large_masked_produce_is_masked_off_the_reactor_and_later_requests_wait_for_it() -> None:
    core, io, _ = ready()
    core.client_data(produce(1, {"pii": records(400)}))
    answer(core, io, MASK)
    core.client_data(produce(2, {"plain": records(1)}))
    answer(core, io, ALLOW)
    assert io.offloaded and io.upstream_frames() == []
    io.run_offloaded()
    first, second = io.upstream_frames()
    assert struct.unpack_from(">i", first, 4)[0] == 1 and struct.unpack_from(">i", second, 4)[0] == 2
    assert CARD.encode() not in first


def test_a_connection_closed_while_masking_drops_the_result() -> None:
    core, io, _ = ready()
    core.client_data(produce(1, {"pii": records(400)}))
    answer(core, io, MASK)
    core.client_lost()
    io.run_offloaded()
    assert io.upstream_frames() == []
