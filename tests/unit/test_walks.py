"""The in-place walks over hot response bodies, checked against the full decoder (the
reference) for every version they cover, whole and cut short."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.kafka.codec import (
    API_TABLE,
    CodecError,
    decode_request,
    decode_response_body,
    parse_request_header,
)
from gatekeeper.kafka.records import batch_spans, count_records, records_span
from gatekeeper.kafka.walks import (
    FetchedPartition,
    ProducedPartition,
    _walk_produce_request,  # the general walk, beside the fast one
    fetch_response_partitions,
    partition_records,
    produce_request,
    produce_response_read,
    produce_response_tagged,
)

SPEC = API_TABLE[0]
VERSIONS = range(3, 14)

_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
_message = st.one_of(st.none(), st.text(max_size=30))
_partition = st.fixed_dictionaries({
    "index": st.integers(0, 2**31 - 1), "error_code": st.integers(-1, 120), "base_offset": st.integers(-1, 2**62),
    "log_append_time_ms": st.integers(-1, 2**41), "log_start_offset": st.integers(-1, 2**40),
    "record_errors": st.lists(st.tuples(st.integers(0, 1000), _message), max_size=2), "error_message": _message,
    "leader": st.one_of(st.none(), st.tuples(st.integers(-1, 10), st.integers(-1, 10))),
})
_topic = st.tuples(_names, st.uuids(), st.lists(_partition, max_size=3))


def _frame(version: int, topics: list[tuple[str, uuid.UUID, list[dict]]], throttle: int = 0,
           endpoints: Sequence[tuple[int, str, int, str | None]] = ()) -> bytes:
    R = SPEC.response[version]
    T = R.TopicProduceResponse
    P = T.PartitionProduceResponse
    out = []
    for name, topic_id, partitions in topics:
        parts = []
        for p in partitions:
            fields = {k: v for k, v in p.items() if k not in ("record_errors", "leader")}
            fields["record_errors"] = [P.BatchIndexAndErrorMessage(batch_index=i, batch_index_error_message=m)
                                       for i, m in p["record_errors"]]
            if p["leader"] is not None and version >= 10:
                fields["current_leader"] = P.LeaderIdAndEpoch(leader_id=p["leader"][0], leader_epoch=p["leader"][1])
            parts.append(P(**fields))
        out.append(T(topic_id=topic_id, partition_responses=parts) if version >= 13 else T(name=name, partition_responses=parts))
    nodes = {"node_endpoints": [R.NodeEndpoint(node_id=n, host=h, port=p, rack=r) for n, h, p, r in endpoints]} if version >= 10 else {}
    body = bytes(R(responses=out, throttle_time_ms=throttle, **nodes).encode(version=version))
    header = struct.pack(">i", 7) + (b"\x00" if SPEC.response_header_version(version) else b"")
    return header + body


def _reference(frame: bytes, version: int) -> tuple[int, list[ProducedPartition]]:
    head, body = decode_response_body(frame, SPEC, version)
    start = len(head)
    return start, [ProducedPartition(t.topic_id if version >= 13 else t.name, p.index, p.error_code, p.base_offset)
                   for t in body.responses for p in t.partition_responses]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VERSIONS), st.lists(_topic, max_size=3), st.integers(0, 2**31 - 1))
def test_the_walk_reads_what_the_decoder_reads(version: int, topics: list, throttle: int) -> None:
    frame = _frame(version, topics, throttle)
    start, expected = _reference(frame, version)
    assert produce_response_read(frame, start, version)[0] == expected
    assert produce_response_read(memoryview(frame), start, version)[0] == expected


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(VERSIONS), st.lists(_topic, min_size=1, max_size=2))
def test_a_body_cut_short_is_a_codec_error_never_a_wrong_answer(version: int, topics: list) -> None:
    frame = _frame(version, topics)
    start, _expected = _reference(frame, version)
    for end in range(start, len(frame)):
        with pytest.raises(CodecError):
            produce_response_read(frame[:end], start, version)


_endpoint = st.tuples(st.integers(0, 2**31 - 1), _names, st.integers(0, 65535), st.one_of(st.none(), _names))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VERSIONS), st.lists(_topic, max_size=3), st.lists(_endpoint, max_size=2))
def test_the_tag_walk_finds_node_endpoints_exactly_where_the_decoder_does(version: int, topics: list, endpoints: list) -> None:
    frame = _frame(version, topics, endpoints=endpoints)
    head, body = decode_response_body(frame, SPEC, version)
    expected = bool(getattr(body, "node_endpoints", None))
    assert expected == (version >= 10 and bool(endpoints))
    assert produce_response_tagged(frame, len(head), version) is expected
    assert produce_response_tagged(memoryview(frame), len(head), version) is expected
    # The audit trail's one walk: the same partitions, and "untagged" only where there are no tags.
    partitions, untagged = produce_response_read(frame, len(head), version)
    assert partitions == _reference(frame, version)[1]
    assert not (untagged and expected)


def test_the_usual_answer_is_read_untagged_in_one_walk() -> None:
    plain = {"index": 1, "error_code": 0, "base_offset": 7, "log_append_time_ms": -1, "log_start_offset": 0,
             "record_errors": [], "error_message": None, "leader": None}
    topics = [("orders", uuid.uuid4(), [plain])]
    for version in (10, 12, 13):
        frame = _frame(version, topics)
        start = len(decode_response_body(frame, SPEC, version)[0])
        assert produce_response_read(frame, start, version) == (_reference(frame, version)[1], True)
        tagged = _frame(version, topics, endpoints=[(1, "broker-1", 9092, None)])
        start = len(decode_response_body(tagged, SPEC, version)[0])
        assert produce_response_read(tagged, start, version) == (_reference(tagged, version)[1], False)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(range(10, 14)), st.lists(_topic, max_size=2), st.lists(_endpoint, min_size=1, max_size=2))
def test_an_answer_with_node_endpoints_cut_short_is_a_codec_error(version: int, topics: list, endpoints: list) -> None:
    frame = _frame(version, topics, endpoints=endpoints)
    start = len(decode_response_body(frame, SPEC, version)[0])
    for end in range(start, len(frame)):
        with pytest.raises(CodecError):
            produce_response_tagged(frame[:end], start, version)


def test_versions_it_does_not_walk_are_refused() -> None:
    for version in (0, 1, 2, 14):
        with pytest.raises(CodecError, match="not walked"):
            produce_response_read(b"", 0, version)


def test_an_array_longer_than_the_frame_is_refused_before_reading_it() -> None:
    frame = struct.pack(">i", 7) + struct.pack(">i", 1_000_000) + b"\x00" * 8
    with pytest.raises(CodecError):
        produce_response_read(frame, 4, 8)


# -- Fetch ---------------------------------------------------------------------------------------

FETCH = API_TABLE[1]
FETCH_VERSIONS = range(4, 19)
_fetched = st.fixed_dictionaries({
    "partition_index": st.integers(0, 2**31 - 1), "error_code": st.integers(-1, 120),
    "high_watermark": st.integers(-1, 2**62), "last_stable_offset": st.integers(-1, 2**40),
    "log_start_offset": st.integers(-1, 2**40), "aborted": st.one_of(st.none(), st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)), max_size=2)),
    "preferred_read_replica": st.integers(-1, 5), "records": st.one_of(st.none(), st.binary(max_size=40)),
    "leader": st.one_of(st.none(), st.tuples(st.integers(-1, 10), st.integers(-1, 10))),
})
_fetch_topic = st.tuples(_names, st.uuids(), st.lists(_fetched, max_size=3))


def _fetch_frame(version: int, topics: list[tuple[str, uuid.UUID, list[dict]]]) -> bytes:
    R = FETCH.response[version]
    T = R.FetchableTopicResponse
    P = T.PartitionData
    out = []
    for name, topic_id, partitions in topics:
        parts = []
        for p in partitions:
            fields = {k: v for k, v in p.items() if k not in ("aborted", "leader")}
            fields["aborted_transactions"] = None if p["aborted"] is None else [
                P.AbortedTransaction(producer_id=a, first_offset=b) for a, b in p["aborted"]]
            if p["leader"] is not None and version >= 12:
                fields["current_leader"] = P.LeaderIdAndEpoch(leader_id=p["leader"][0], leader_epoch=p["leader"][1])
            parts.append(P(**fields))
        out.append(T(topic_id=topic_id, partitions=parts) if version >= 13 else T(topic=name, partitions=parts))
    body = bytes(R(throttle_time_ms=0, error_code=0, session_id=3, responses=out).encode(version=version))
    header = struct.pack(">i", 7) + (b"\x00" if FETCH.response_header_version(version) else b"")
    return header + body


def _fetch_reference(frame: bytes, version: int) -> tuple[int, list[tuple]]:
    head, body = decode_response_body(frame, FETCH, version)
    return len(head), [(t.topic_id if version >= 13 else t.topic, p.partition_index, p.error_code,
                        None if p.records is None else bytes(p.records))
                       for t in body.responses for p in t.partitions]


def _plain(parts: list[FetchedPartition]) -> list[tuple]:
    return [(p.topic, p.partition, p.error_code, None if p.records is None else bytes(p.records)) for p in parts]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FETCH_VERSIONS), st.lists(_fetch_topic, max_size=3))
def test_the_fetch_walk_reads_what_the_decoder_reads(version: int, topics: list) -> None:
    frame = _fetch_frame(version, topics)
    start, expected = _fetch_reference(frame, version)
    assert _plain(fetch_response_partitions(frame, start, version)) == expected


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(FETCH_VERSIONS), st.lists(_fetch_topic, min_size=1, max_size=2))
def test_a_fetch_body_cut_short_is_a_codec_error(version: int, topics: list) -> None:
    frame = _fetch_frame(version, topics)
    start, _expected = _fetch_reference(frame, version)
    for end in range(start, len(frame)):
        with pytest.raises(CodecError):
            fetch_response_partitions(frame[:end], start, version)


_batch = st.tuples(st.integers(-2**63, 2**63 - 1), st.integers(-3, 120), st.sampled_from([0, 1, 2, 3]),
                   st.integers(-2**31, 2**31 - 1), st.binary(max_size=80))


def _record_data(batches: list, cut: int, tail: bytes) -> bytes:
    """Record data shaped like batches (any length, magic byte and count), cut short or not."""
    data = b""
    for base, length, magic, count, filler in batches:
        head = struct.pack(">qi", base, length) + b"\x00\x00\x00\x00" + bytes([magic])
        body = (filler + bytes(60))[:44] + struct.pack(">i", count) + filler
        data += head + body[:max(0, length - 5)]
    return (data + tail)[:cut] if cut < len(data) else data + tail


@settings(max_examples=400, deadline=None)
@given(st.lists(_batch, max_size=4), st.integers(0, 400), st.binary(max_size=3))
def test_counting_records_agrees_with_the_batch_walk(batches: list, cut: int, tail: bytes) -> None:
    """``count_records`` (the Produce hot path, no generator) counts what ``batch_spans`` walks,
    whatever the bytes: lengths out of bounds, legacy magic bytes, negative counts, a cut."""
    data = _record_data(batches, cut, tail)
    assert count_records(data) == sum(c for _f, _l, c in batch_spans(data))
    assert count_records(memoryview(data)) == count_records(data)


@settings(max_examples=400, deadline=None)
@given(st.lists(_batch, max_size=4), st.integers(0, 400), st.binary(max_size=3))
def test_the_records_span_is_the_batch_walk_summed_up(batches: list, cut: int, tail: bytes) -> None:
    """``records_span`` (every batch of every audited Fetch answer) gives the first offset of
    the first batch, the last of the last and the records of all, as ``batch_spans`` walks them."""
    data = _record_data(batches, cut, tail)
    spans = list(batch_spans(data))
    expected = (spans[0][0], spans[-1][1], sum(c for _f, _l, c in spans)) if spans else None
    assert records_span(data) == expected
    assert records_span(memoryview(data)) == expected


def test_topic_ids_are_built_once_and_the_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from gatekeeper.kafka import walks

    monkeypatch.setattr(walks, "_IDS", {})
    monkeypatch.setattr(walks, "_MAX_IDS", 3)
    raw = [uuid.uuid4().bytes for _ in range(4)]
    first = walks.topic_id(raw[0])
    assert first == uuid.UUID(bytes=raw[0]) and walks.topic_id(bytes(raw[0])) is first
    for r in raw[1:]:
        assert walks.topic_id(r) == uuid.UUID(bytes=r)
    assert len(walks._IDS) <= 3  # emptied once full, then filled again
    with pytest.raises(ValueError):
        walks.topic_id(b"short")


# -- Produce requests ------------------------------------------------------------------------------

PRODUCE_REQUEST = API_TABLE[0].request
# Record sets: any bytes, or shaped like batches (so the walk's record counts are not all 0).
_produced = st.tuples(st.integers(-(2**31), 2**31 - 1),
                      st.one_of(st.none(), st.binary(max_size=40),
                                st.builds(_record_data, st.lists(_batch, max_size=2), st.integers(0, 200), st.binary(max_size=2))))
_produce_topic = st.tuples(_names, st.uuids(), st.lists(_produced, max_size=3))


def _produce_request_frame(version: int, txn: str | None, acks: int, topics: list) -> bytes:
    P = PRODUCE_REQUEST
    T = P.TopicProduceData
    data = [T(**({"topic_id": i} if version >= 13 else {"name": n}),
              partition_data=[T.PartitionProduceData(index=x, records=r) for x, r in parts]) for n, i, parts in topics]
    message = P[version](transactional_id=txn, acks=acks, timeout_ms=1500, topic_data=data)
    message.with_header(correlation_id=3, client_id="walk")
    return bytes(message.encode(version=version, header=True))


def _decoded_fields(frame: bytes) -> Any:
    """The request as the decoder reads it, in the walk's shape; None when it refuses it."""
    try:
        header, _spec, body, trailing = decode_request(frame)
    except CodecError:
        return None
    by_id = header.api_version >= 13
    return (body.transactional_id, body.acks, body.timeout_ms,
            [(None if by_id else t.name, t.topic_id if by_id else None,
              [(p.index, None if p.records is None else bytes(p.records), count_records(p.records), partition_records(p))
               for p in t.partition_data]) for t in body.topic_data],
            len(frame) - trailing)


def _walked_fields(frame: bytes, walk: Any = produce_request) -> Any:
    try:
        header, _spec = parse_request_header(frame)
        view, end = walk(frame, header.size, header.api_version)
    except CodecError:
        return None
    return (view.transactional_id, view.acks, view.timeout_ms,
            [(t.name, t.topic_id, [(p.index, None if p.records is None else bytes(p.records), p.count, partition_records(p))
                                   for p in t.partition_data])
             for t in view.topic_data], end)


_produce_request_case = st.tuples(st.sampled_from(VERSIONS), st.one_of(st.none(), _names), st.sampled_from([-1, 0, 1]),
                                  st.lists(_produce_topic, max_size=3))


@settings(max_examples=300, deadline=None)
@given(_produce_request_case)
def test_the_produce_request_walk_reads_what_the_decoder_reads(case: tuple) -> None:
    frame = _produce_request_frame(*case)
    expected = _decoded_fields(frame)
    assert expected is not None
    assert _walked_fields(frame) == expected
    assert _walked_fields(frame, _walk_produce_request) == expected  # the general walk too, whatever the shape


@settings(max_examples=600, deadline=None)
@given(_produce_request_case, st.lists(st.tuples(st.integers(8, 400), st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]) | st.integers(0, 255)),
                                       min_size=1, max_size=3), st.integers(0, 400))
def test_a_produce_request_the_walk_accepts_is_read_so_by_the_decoder(case: tuple, changes: list, cut: int) -> None:
    """Damaged bytes: the walk may refuse more than the decoder (a negative count other than -1,
    which the broker refuses too, or tagged fields that run past the frame), never less, and
    never reads them differently."""
    frame = bytearray(_produce_request_frame(*case))
    for at, value in changes:
        if at < len(frame):
            frame[at] = value
    damaged = bytes(frame[:max(8, len(frame) - cut)] if cut % 3 == 0 else frame)
    for walk in (produce_request, _walk_produce_request):
        walked = _walked_fields(damaged, walk)
        if walked is not None:
            assert walked == _decoded_fields(damaged)


@settings(max_examples=60, deadline=None)
@given(_produce_request_case)
def test_a_produce_request_cut_short_is_a_codec_error(case: tuple) -> None:
    frame = _produce_request_frame(*case)
    size = parse_request_header(frame)[0].size
    for end in range(size, len(frame)):
        with pytest.raises(CodecError):
            produce_request(frame[:end], size, case[0])


def test_a_null_topic_list_is_refused_as_the_broker_refuses_it() -> None:
    frame = _produce_request_frame(9, None, -1, [])
    size = parse_request_header(frame)[0].size
    nulled = frame[:size + 1 + 6] + b"\x00" + frame[size + 1 + 6 + 1:]  # compact array length 0: null
    with pytest.raises(CodecError, match="null topic list"):
        produce_request(nulled, size, 9)
