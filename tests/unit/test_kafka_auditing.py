"""What the audit trail records of Kafka requests: the operations' enforcement and the offsets
a Fetch returned, from the values alone."""

from __future__ import annotations

from gatekeeper.api import Decision, Operation, Resource
from gatekeeper.kafka.auditing import mark_masked, operation_entries
from gatekeeper.kafka.batches import Record, build_batch
from gatekeeper.kafka.records import records_span


def _entries() -> list[dict]:
    ops = [Operation("consume", Resource("topic", t)) for t in ("pii", "plain", "secret")]
    inputs = [{"operation": "consume", "resource": {"type": "topic", "name": t}} for t in ("pii", "plain", "secret")]
    return operation_entries(ops, inputs, [Decision("allow"), Decision("allow"), Decision("deny", reason="no")], None, True)


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


def test_fetch_offsets_span_the_complete_batches_only() -> None:
    def batch(base: int, n: int) -> bytes:
        return build_batch([Record(key=None, value=b"v", offset_delta=i) for i in range(n)], base_offset=base)

    data = batch(10, 3) + batch(13, 2)
    assert records_span(data) == (10, 14, 5)
    assert records_span(data + batch(15, 4)[:-5]) == (10, 14, 5)  # a truncated trailing batch is not counted
    assert records_span(b"") is None
