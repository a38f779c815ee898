"""What the audit trail records of a Kafka request: pure functions over decoded values.

The request record (``docs/audit.md``) carries, per decided operation, the policy input, the
decision and what was enforced; and the broker's outcome: for a Produce each partition's error
code, base offset and record count (so the exact records can be found again), for a Fetch each
partition's first and last offset returned. Only Produce and Fetch responses are read for it;
other APIs record that the broker answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from gatekeeper.api import Decision, Operation
from gatekeeper.audit.shapes import (
    decision_fields,
    enforced_fields,
    produced_partition,
)
from gatekeeper.kafka.apis.base import Resolve, denial_of, topic_name, withdrawn
from gatekeeper.kafka.codec import CodecError, response_header_size
from gatekeeper.kafka.records import records_span
from gatekeeper.kafka.walks import (
    FetchedPartition,
    ProducedPartition,
    fetch_response_partitions,
    partition_records,
    produce_response_read,
)

__all__ = ["AUDITED_RESPONSES", "DecisionMemo", "Outcome", "RequestDraft", "broker_outcome", "enforced", "fetch_outcome", "fetched_partitions",
           "mark_masked", "operation_entries", "produce_outcome", "read_outcome"]

AUDITED_RESPONSES = frozenset({0, 1})  # Produce, Fetch: their responses are read for the outcome

# An outcome as recorded, or how to build it from what was read of the answer (``read_outcome``).
Outcome = dict[str, Any] | Callable[[], dict[str, Any]]


# What was done with an operation, for the usual results: shared by every record that carries
# them, so never changed (a record's "enforced" is replaced, as mark_masked does, not edited).
_FORWARDED = enforced_fields("forwarded")
_DROPPED = enforced_fields("dropped")


def enforced(op: Operation, decision: Decision) -> dict[str, Any]:
    """What was done with one decided operation: forwarded (allowed, or an auto-create
    withdrawn), or denied with the Kafka error code the client got. The forwarded entry is
    shared: never edit it."""
    if decision.allowed or withdrawn(op, decision.allowed):
        return _FORWARDED
    return enforced_fields("denied", error_code=denial_of(op.resource, decision).code)


def operation_entries(ops: list[Operation], inputs: list[dict[str, Any]], decisions: list[Decision],
                      decided: list[dict[str, Any]], expects_response: bool = True) -> list[dict[str, Any]]:
    """Each decided operation of a request record (``audit.shapes.operation_entry``'s shape):
    its policy input, its decision as recorded (``decided``: ``decision_fields`` of each, or a
    ``DecisionMemo``'s, shared) and what was enforced (a denied operation of a request that
    expects no answer was dropped)."""
    out = []
    for op, policy_input, decision, fields in zip(ops, inputs, decisions, decided, strict=True):
        done = enforced(op, decision)
        if not expects_response and done["result"] == "denied":
            done = _DROPPED
        out.append({"input": policy_input, "decision": fields, "enforced": done})
    return out


def mark_masked(operations: list[dict[str, Any]], operation: str, masked: dict[str, tuple[int, int]] | None) -> None:
    """Turn the forwarded ``operation`` entries (produce or consume) of topics that had records
    masked into ``masked`` with their counts (``masked``: topic -> (records, fields))."""
    if not masked:
        return
    for item in operations:
        counts = masked.get(item["input"]["resource"]["name"]) if item["input"]["operation"] == operation else None
        if counts is not None and item["enforced"]["result"] == "forwarded":
            item["enforced"] = enforced_fields("masked", masked_records=counts[0], masked_fields=counts[1])


class DecisionMemo:
    """A connection's decisions as its records carry them (``decision_fields``), made once per
    decision and policy revision: a decision the cache holds is the very same object request
    after request. The fields are shared by the records, so never changed."""

    __slots__ = ("_made",)
    _MAX = 64

    def __init__(self) -> None:
        self._made: dict[int, tuple[Decision, str | None, dict[str, Any]]] = {}

    def fields(self, decision: Decision, revision: str | None) -> dict[str, Any]:
        made = self._made.get(id(decision))  # the decision is held while it is here: its id is its own
        if made is not None and made[0] is decision and made[1] == revision:
            return made[2]
        if len(self._made) >= self._MAX:
            self._made.clear()
        fields = decision_fields(decision, revision)
        self._made[id(decision)] = (decision, revision, fields)
        return fields


class RequestDraft:
    """A request record before it is built: what it is made of, taken when the request was
    decided (the decisions as recorded, with the policy revision in force then, and the
    approvals' waits), so the record says what held then. The data path builds it (``record``)
    only after the client has its answer: the client waits for the broker, not for the record."""

    __slots__ = ("approvals", "consume_masked", "decided", "decisions", "expects_response", "fields", "inputs", "ops",
                 "produce_masked")

    def __init__(self, fields: dict[str, Any], ops: list[Operation], inputs: list[dict[str, Any]],
                 decisions: list[Decision], decided: list[dict[str, Any]], expects_response: bool = True,
                 produce_masked: dict[str, tuple[int, int]] | None = None,
                 approvals: list[dict[str, Any] | None] | None = None) -> None:
        self.fields = fields  # session, principal, client, api, correlation_id
        self.ops, self.inputs, self.decisions = ops, inputs, decisions
        self.decided = decided  # each decision's fields (decision_fields)
        self.expects_response = expects_response
        self.produce_masked = produce_masked  # topic -> (records, fields) masked in the request
        self.consume_masked: dict[str, tuple[int, int]] | None = None  # the same, in the answer
        self.approvals = approvals  # per operation: {"id", "status", "waited_ms"} once held, else None

    def record(self, outcome: dict[str, Any], latency_ms: float) -> dict[str, Any]:
        """The request record's fields (``docs/audit.md``): what ``operation_entries`` makes of
        the operations, with the masked counts and approvals, the outcome and the latency."""
        operations = operation_entries(self.ops, self.inputs, self.decisions, self.decided, self.expects_response)
        mark_masked(operations, "produce", self.produce_masked)
        mark_masked(operations, "consume", self.consume_masked)
        if self.approvals is not None:
            for item, approval in zip(operations, self.approvals, strict=True):
                if approval is not None:
                    item["enforced"] = {**item["enforced"], "approval": approval}
        return {**self.fields, "operations": operations, "outcome": outcome, "latency_ms": latency_ms}


def produce_outcome(request_body: Any, partitions: Iterable[ProducedPartition], resolve: Resolve,
                    by_id: bool = False) -> dict[str, Any]:
    """Each partition the broker answered (``walks.produce_response_read``): its error
    code and base offset and the number of records sent (from the request), so the records can
    be read back by offset. ``by_id``: the request names its topics by id (Produce v13+), as
    its answer does: the partitions sent are matched by id, and each id is named once (a
    kafka-python field outside the decoded version costs a failed lookup first)."""
    sent: dict[tuple[Any, int], int] = {}
    for t in request_body.topic_data or ():
        topic = t.topic_id if by_id else t.name or ""
        for p in t.partition_data or ():
            sent[(topic, p.index)] = partition_records(p)
    names: dict[Any, str] = {}  # topic id -> name, resolved once per answer
    parts = []
    for topic, index, error_code, base_offset in partitions:
        if type(topic) is str:
            name = topic
        else:
            name = names.get(topic)  # type: ignore[assignment]
            if name is None:
                name = names[topic] = topic_name(None, topic, resolve)
        parts.append(produced_partition(name, index, error_code, base_offset, sent.get((topic, index), 0)))
    return {"from": "broker", "partitions": parts}


def fetch_outcome(partitions: Iterable[FetchedPartition], resolve: Resolve) -> dict[str, Any]:
    """Each partition the broker answered (``walks.fetch_response_partitions``, or
    ``fetched_partitions`` of a decoded response): error code and the first and last offset of
    the records returned (as the client received them: after masking)."""
    parts = []
    for p in partitions:
        name = p.topic if isinstance(p.topic, str) else topic_name(None, p.topic, resolve)
        entry: dict[str, Any] = {"topic": name, "partition": p.partition, "error_code": p.error_code}
        span = records_span(p.records)
        if span is not None:
            entry["first_offset"], entry["last_offset"], entry["record_count"] = span
        parts.append(entry)
    return {"from": "broker", "partitions": parts}


def fetched_partitions(response: Any, version: int) -> list[FetchedPartition]:
    """The partitions of a decoded Fetch response (the masked path decodes it anyway)."""
    out = []
    for t in response.responses or ():
        topic = t.topic_id if version >= 13 else (t.topic or "")
        for p in t.partitions or ():
            records = memoryview(p.records) if p.records is not None else None
            out.append(FetchedPartition(topic, p.partition_index, p.error_code, records))
    return out


def broker_outcome(request: Any, frame: bytes | memoryview, resolve: Resolve) -> dict[str, Any]:
    """The outcome of a Produce or Fetch ``request`` from the broker's response ``frame``,
    walked in place (CodecError when the broker's bytes do not read)."""
    return read_outcome(request, frame, resolve)[0]()


def read_outcome(request: Any, frame: bytes | memoryview, resolve: Resolve) -> tuple[Callable[[], dict[str, Any]], bool]:
    """The broker's response ``frame`` to a Produce or Fetch ``request``, walked in place now
    (CodecError when its bytes do not read): how to build the outcome from what the walk found
    (a Fetch's partitions are views of ``frame``, which must not change), and whether the walk
    saw that the answer has nothing to rewrite (a Produce answer that ends without tagged
    fields); False when it cannot tell."""
    version = request.header.api_version
    try:
        start = response_header_size(frame, request.spec, version)
        if request.header.api_key == 0:
            partitions, untagged = produce_response_read(frame, start, version)
            return partial(produce_outcome, request.fields, partitions, resolve, by_id=version >= 13), untagged
        return partial(fetch_outcome, fetch_response_partitions(frame, start, version), resolve), False
    except (CodecError, IndexError) as e:
        raise CodecError(f"broker response to {request.spec.name} v{version} does not decode: {e}") from e
