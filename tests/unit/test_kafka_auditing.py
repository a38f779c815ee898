"""What the audit trail records of Kafka requests: the operations' enforcement and the offsets
a Fetch returned, from the values alone."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest

from gatekeeper.api import Decision, Operation, Resource
from gatekeeper.audit.shapes import decision_fields
from gatekeeper.kafka.apis.base import UNKNOWN_TOPIC_ID_PREFIX
from gatekeeper.kafka.auditing import (
    DecisionMemo,
    RequestDraft,
    mark_masked,
    operation_entries,
    produce_outcome,
)
from gatekeeper.kafka.batches import Record, build_batch
from gatekeeper.kafka.codec import API_TABLE, decode_request
from gatekeeper.kafka.records import records_span
from gatekeeper.kafka.walks import ProducedPartition


def _entries() -> list[dict]:
    ops = [Operation("consume", Resource("topic", t)) for t in ("pii", "plain", "secret")]
    inputs = [{"operation": "consume", "resource": {"type": "topic", "name": t}} for t in ("pii", "plain", "secret")]
    decisions = [Decision("allow"), Decision("allow"), Decision("deny", reason="no")]
    return operation_entries(ops, inputs, decisions, [decision_fields(d, None) for d in decisions])


def test_masked_topics_are_recorded_as_masked_with_their_counts_and_nothing_else_changes() -> None:
    entries = _entries()
    mark_masked(entries, "consume", {"pii": (3, 7), "secret": (1, 1)})
    assert [e["enforced"] for e in entries] == [
        {"result": "masked", "masked_records": 3, "masked_fields": 7},
        {"result": "forwarded"},
        {"result": "denied", "error_code": 29},  # a denied topic stays denied
    ]
    untouched = _entries()
    mark_masked(untouched, "produce", {"pii": (3, 7)})  # another operation's counts
    mark_masked(untouched, "consume", None)
    assert untouched == _entries()


def test_a_request_draft_is_built_into_the_record_it_stood_for() -> None:
    ops = [Operation("consume", Resource("topic", t)) for t in ("pii", "plain", "secret")]
    inputs = [{"operation": "consume", "resource": {"type": "topic", "name": t}} for t in ("pii", "plain", "secret")]
    decisions = [Decision("allow"), Decision("allow"), Decision("deny", reason="no")]
    fields = {"session": "s1", "correlation_id": 4}
    held = {"id": "a1", "status": "approved", "waited_ms": 12}
    memo = DecisionMemo()
    draft = RequestDraft(fields, ops, inputs, decisions, [memo.fields(d, "sha256:r1") for d in decisions],
                         approvals=[None, held, None])
    draft.consume_masked = {"pii": (3, 7)}
    record = draft.record({"from": "broker"}, 1.5)
    expected = _entries()
    mark_masked(expected, "consume", {"pii": (3, 7)})
    for e in expected:
        e["decision"]["revision"] = "sha256:r1"
    expected[1]["enforced"] = {**expected[1]["enforced"], "approval": held}
    assert record == {"session": "s1", "correlation_id": 4, "operations": expected, "outcome": {"from": "broker"},
                      "latency_ms": 1.5}
    assert fields == {"session": "s1", "correlation_id": 4}  # the draft's own fields are not changed
    # An acks=0 produce that was denied: dropped, not denied (no answer carries its error).
    produce = RequestDraft({}, [Operation("produce", Resource("topic", "t"))],
                           [{"operation": "produce", "resource": {"type": "topic", "name": "t"}}],
                           [Decision("deny", reason="no")], [decision_fields(Decision("deny", reason="no"), None)],
                           expects_response=False,
                           produce_masked={"t": (1, 1)})
    assert produce.record({"from": "none"}, 0.0)["operations"][0]["enforced"] == {"result": "dropped"}


def test_a_connections_decisions_are_made_into_record_fields_once_per_decision_and_revision() -> None:
    memo = DecisionMemo()
    allow, deny = Decision("allow", reason="ok"), Decision("deny", reason="no", error="policy_violation")
    first = memo.fields(allow, "sha256:a")
    assert first == decision_fields(allow, "sha256:a")
    assert memo.fields(allow, "sha256:a") is first  # the cached decision, again
    assert memo.fields(allow, "sha256:b") == decision_fields(allow, "sha256:b")  # a reload: the new revision
    assert memo.fields(Decision("allow", reason="ok"), "sha256:a") == first  # an equal decision, its own fields
    assert memo.fields(deny, None) == decision_fields(deny, None)
    many = [Decision("allow", reason=str(i)) for i in range(200)]  # bounded: still right past its size
    assert [memo.fields(d, None)["reason"] for d in many] == [str(i) for i in range(200)]


def test_records_that_share_a_decisions_fields_do_not_change_each_other() -> None:
    op = Operation("produce", Resource("topic", "t"))
    policy_input = {"operation": "produce", "resource": {"type": "topic", "name": "t"}}
    memo, allow = DecisionMemo(), Decision("allow")

    def draft(**kw: Any) -> RequestDraft:
        return RequestDraft({}, [op], [policy_input], [allow], [memo.fields(allow, None)], **kw)

    held = draft(approvals=[{"id": "a1", "status": "approved", "waited_ms": 3}]).record({"from": "broker"}, 0.0)
    masked = draft(produce_masked={"t": (2, 4)}).record({"from": "broker"}, 0.0)
    plain = draft().record({"from": "broker"}, 0.0)
    assert held["operations"][0]["enforced"] == {"result": "forwarded",
                                                 "approval": {"id": "a1", "status": "approved", "waited_ms": 3}}
    assert masked["operations"][0]["enforced"] == {"result": "masked", "masked_records": 2, "masked_fields": 4}
    assert plain["operations"][0]["enforced"] == {"result": "forwarded"}
    assert plain["operations"][0]["decision"] == decision_fields(allow, None)


def test_fetch_offsets_span_the_complete_batches_only() -> None:
    def batch(base: int, n: int) -> bytes:
        return build_batch([Record(key=None, value=b"v", offset_delta=i) for i in range(n)], base_offset=base)

    data = batch(10, 3) + batch(13, 2)
    assert records_span(data) == (10, 14, 5)
    assert records_span(data + batch(15, 4)[:-5]) == (10, 14, 5)  # a truncated trailing batch is not counted
    assert records_span(b"") is None


def _produce_body(version: int, topics: dict[str, uuid.UUID], counts: dict[int, int]) -> Any:
    """A Produce request body as the codec decodes it: each topic's partitions with ``counts`` records."""
    spec = API_TABLE[0]
    R = spec.request[version]
    T = R.TopicProduceData
    P = T.PartitionProduceData
    data = [T(**({"topic_id": tid} if version >= 13 else {"name": name}), partition_data=[
        P(index=i, records=build_batch([Record(key=None, value=b"v", offset_delta=j) for j in range(n)]))
        for i, n in counts.items()]) for name, tid in topics.items()]
    body = R(transactional_id=None, acks=-1, timeout_ms=1000, topic_data=data)
    header = struct.pack(">hhih", 0, version, 7, 0) + (b"\x00" if version >= 9 else b"")
    _header, _spec, decoded, _trailing = decode_request(header + body.encode(version=version))
    return decoded


@pytest.mark.parametrize("version", [12, 13])
def test_the_produce_outcome_names_each_partition_and_counts_what_was_sent(version: int) -> None:
    ids = {"orders": uuid.uuid4(), "audit": uuid.uuid4()}
    body = _produce_body(version, ids, {0: 3, 2: 5})
    asked: list[uuid.UUID] = []

    def resolve(topic_id: uuid.UUID) -> str | None:
        asked.append(topic_id)
        return {v: k for k, v in ids.items()}.get(topic_id)

    answered = [ProducedPartition(ids[t] if version >= 13 else t, p, 0, 100 + p) for t in ids for p in (0, 2)]
    answered.append(ProducedPartition(uuid.uuid4() if version >= 13 else "elsewhere", 1, 3, -1))  # not sent
    outcome = produce_outcome(body, answered, resolve, by_id=version >= 13)
    unknown = answered[-1].topic
    assert outcome == {"from": "broker", "partitions": [
        *({"topic": t, "partition": p, "error_code": 0, "base_offset": 100 + p, "record_count": {0: 3, 2: 5}[p]}
          for t in ids for p in (0, 2)),
        {"topic": f"{UNKNOWN_TOPIC_ID_PREFIX}{unknown}" if version >= 13 else "elsewhere", "partition": 1,
         "error_code": 3, "base_offset": -1, "record_count": 0}]}
    if version >= 13:
        assert sorted(asked, key=str) == sorted([*ids.values(), unknown], key=str)  # each id resolved once
    else:
        assert asked == []
