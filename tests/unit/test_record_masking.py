"""Property: masking random record batches keeps everything but the masked values, and no
value a detector matches survives. Batches are built by kafka-python's own builder (every
codec, idempotent and transactional producer fields) and read back by its reader with CRC
validation, so neither side is checked only against itself."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

from gatekeeper.config.values import MaskingConfig
from gatekeeper.kafka.codec import API_TABLE
from gatekeeper.kafka.masking import mask_fetch, mask_produce
from gatekeeper.masking import Masking

CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009"]
SSNS = ["123-45-6789", "078-05-1120"]
EMAILS = ["ada@example.com", "grace.hopper@navy.example.org"]
RULES = [{"detector": "credit_card", "masker": "redact"}, {"detector": "us_ssn", "masker": "redact"},
         {"detector": "email", "masker": "email"}]
PLAN = Masking(MaskingConfig()).plan(RULES, "consume")
LIMIT = 64 * 1024 * 1024
_CODECS = {0: 0, 1: DefaultRecordBatchBuilder.CODEC_GZIP, 2: DefaultRecordBatchBuilder.CODEC_SNAPPY,
           3: DefaultRecordBatchBuilder.CODEC_LZ4, 4: DefaultRecordBatchBuilder.CODEC_ZSTD}

secret = st.sampled_from(CARDS + SSNS + EMAILS)
filler = st.text(alphabet="abcdefghij XYZ-.,", max_size=20)
text = st.one_of(filler, st.builds(lambda a, s, b: f"{a} {s} {b}", filler, secret, filler))
docs = st.recursive(st.one_of(st.integers(-10**6, 10**6), st.booleans(), st.none(), text),
                    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["a", "b", "note", "n"]), inner, max_size=4)),
                    max_leaves=12)
record = st.tuples(st.one_of(st.none(), st.binary(max_size=8)),  # key
                   st.one_of(docs.map(lambda d: json.dumps(d).encode()), text.map(str.encode)),  # value: JSON or text
                   st.lists(st.tuples(st.sampled_from(["h1", "h2", "trace"]), st.one_of(st.none(), st.binary(max_size=6))), max_size=3))


@st.composite
def batches(draw: Any) -> tuple[bytes, dict[str, Any]]:
    transactional = draw(st.booleans())
    idempotent = transactional or draw(st.booleans())
    meta = {
        "codec": draw(st.sampled_from(sorted(_CODECS))), "base_offset": draw(st.integers(0, 10**9)),
        "producer_id": draw(st.integers(0, 10**6)) if idempotent else -1,
        "producer_epoch": draw(st.integers(0, 100)) if idempotent else -1,
        "base_sequence": draw(st.integers(0, 10**5)) if idempotent else -1,
        "transactional": transactional,
    }
    recs = draw(st.lists(record, min_size=1, max_size=12))
    b = DefaultRecordBatchBuilder(magic=2, compression_type=_CODECS[meta["codec"]], is_transactional=transactional,
                                  producer_id=meta["producer_id"], producer_epoch=meta["producer_epoch"],
                                  base_sequence=meta["base_sequence"], batch_size=1 << 30)
    base_ts = draw(st.integers(1_600_000_000_000, 1_800_000_000_000))
    for i, (k, v, h) in enumerate(recs):
        b.append(i, timestamp=base_ts + draw(st.integers(0, 10_000)), key=k, value=v, headers=h)
    data = bytearray(b.build())
    data[0:8] = meta["base_offset"].to_bytes(8, "big")  # the base offset is not under the CRC
    return bytes(data), meta


def _read(data: bytes) -> list[tuple[Any, list[Any]]]:
    out, mr = [], MemoryRecords(data)
    while (batch := mr.next_batch()) is not None:
        batch.validate_crc()
        out.append((batch, list(batch)))
    return out


def _check(data: bytes, masked: bytes) -> None:
    before, after = _read(data), _read(masked)
    assert len(before) == len(after)
    for (b0, r0), (b1, r1) in zip(before, after, strict=True):
        for field in ("base_offset", "producer_id", "producer_epoch", "base_sequence", "is_transactional",
                      "compression_type", "timestamp_type", "leader_epoch", "last_offset_delta", "max_timestamp",
                      "first_timestamp", "records_count", "is_control_batch"):
            assert getattr(b0, field) == getattr(b1, field), field
        assert len(r0) == len(r1)
        for x, y in zip(r0, r1, strict=True):
            assert (x.offset, x.timestamp, x.key, x.headers) == (y.offset, y.timestamp, y.key, y.headers)
            value = y.value.decode()
            for s in CARDS + SSNS:
                assert s not in value
            for e in EMAILS:
                assert e not in value
            assert "grace.hopper" not in value


def test_masked_fetch_partitions_keep_everything_but_the_matched_values() -> None:
    R = API_TABLE[1].response
    T = R.FetchableTopicResponse

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(batches(), min_size=1, max_size=3))
    def check(drawn: list[tuple[bytes, dict[str, Any]]]) -> None:
        data = b"".join(d for d, _ in drawn)
        body = R[12](throttle_time_ms=0, error_code=0, session_id=0, responses=[T(topic="t", partitions=[T.PartitionData(
            partition_index=0, error_code=0, high_watermark=1, last_stable_offset=1, log_start_offset=0,
            aborted_transactions=[], preferred_read_replica=-1, records=data)])])
        counts = mask_fetch(body, 12, {"t": ("t", PLAN)}, LIMIT)
        assert not counts.errors
        _check(data, body.responses[0].partitions[0].records)

    check()


def test_masked_produce_records_keep_everything_but_the_matched_values() -> None:
    P = API_TABLE[0].request
    plan = Masking(MaskingConfig()).plan(RULES, "produce")

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(batches())
    def check(drawn: tuple[bytes, dict[str, Any]]) -> None:
        data, _meta = drawn
        body = P[9](transactional_id=None, acks=-1, timeout_ms=1000, topic_data=[
            P.TopicProduceData(name="t", partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=data)])])
        result = mask_produce(body, {0: ("t", plan)}, LIMIT)
        assert not result.refused
        _check(data, result.records.get((0, 0), data))

    check()
