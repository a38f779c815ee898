"""What the audit trail records of a Pulsar command: pure functions over parsed commands.

One ``request`` record per decided client command (``docs/audit.md``, ``docs/pulsar.md``):
for each operation it was decided as, the policy input, the decision and what was enforced;
and the broker's outcome, read from the command that answers it: PRODUCER_SUCCESS, SUCCESS (a
SUBSCRIBE, SEEK or UNSUBSCRIBE) or ERROR by ``request_id``, LOOKUP_RESPONSE and
PARTITIONED_METADATA_RESPONSE by ``request_id``, SEND_RECEIPT (the message id the broker stored
the SEND's message or batch under) or SEND_ERROR by producer and sequence id. A command whose
answer Gatekeeper does not read records outcome ``none``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from gatekeeper.api import Decision
from gatekeeper.audit.shapes import enforced_fields, operation_entry
from gatekeeper_pulsar import wire_pb2 as wire

__all__ = ["answer_key", "broker_answer", "correlation_of", "operation_entries"]

T = wire.BaseCommand


def answer_key(cmd: wire.BaseCommand) -> Hashable | None:
    """The key of the broker command that answers this client command (None: not read)."""
    t = cmd.type if cmd.HasField("type") else None
    if t == T.LOOKUP:
        return ("request", cmd.lookupTopic.request_id)
    if t == T.PARTITIONED_METADATA:
        return ("request", cmd.partitionMetadata.request_id)
    if t == T.PRODUCER:
        return ("request", cmd.producer.request_id)
    if t == T.SUBSCRIBE:
        return ("request", cmd.subscribe.request_id)
    if t == T.SEEK:
        return ("request", cmd.seek.request_id)
    if t == T.UNSUBSCRIBE:
        return ("request", cmd.unsubscribe.request_id)
    if t == T.SEND:
        return ("send", cmd.send.producer_id, cmd.send.sequence_id)
    return None


def correlation_of(cmd: wire.BaseCommand) -> int | None:
    """The number a client matches the answer by: the request id, or a SEND's sequence id."""
    key = answer_key(cmd)
    return None if key is None else int(key[-1])  # type: ignore[index]


def _error(error: int, message: str) -> dict[str, Any]:
    name = wire.ServerError.Name(error) if error in wire.ServerError.values() else f"ServerError {error}"
    return {"from": "broker", "error_code": int(error), "error": f"{name}: {message}" if message else name}


def broker_answer(cmd: wire.BaseCommand) -> tuple[Hashable, dict[str, Any]] | None:
    """(key, outcome) when ``cmd`` from the broker answers a client command, else None."""
    t = cmd.type if cmd.HasField("type") else None
    if t == T.PRODUCER_SUCCESS:
        return ("request", cmd.producer_success.request_id), {"from": "broker"}
    if t == T.SUCCESS:
        return ("request", cmd.success.request_id), {"from": "broker"}
    if t == T.ERROR:
        return ("request", cmd.error.request_id), _error(cmd.error.error, cmd.error.message)
    if t == T.LOOKUP_RESPONSE:
        r = cmd.lookupTopicResponse
        if r.response == wire.CommandLookupTopicResponse.Failed:
            return ("request", r.request_id), _error(r.error, r.message)
        return ("request", r.request_id), {"from": "broker"}
    if t == T.PARTITIONED_METADATA_RESPONSE:
        p = cmd.partitionMetadataResponse
        if p.response == wire.CommandPartitionedTopicMetadataResponse.Failed:
            return ("request", p.request_id), _error(p.error, p.message)
        return ("request", p.request_id), {"from": "broker"}
    if t == T.SEND_RECEIPT:
        s = cmd.send_receipt
        outcome: dict[str, Any] = {"from": "broker"}
        if s.HasField("message_id"):
            m = s.message_id
            mid = {"ledger_id": int(m.ledgerId), "entry_id": int(m.entryId)}
            if m.HasField("partition") and m.partition >= 0:
                mid["partition"] = int(m.partition)
            if m.HasField("batch_index") and m.batch_index >= 0:
                mid["batch_index"] = int(m.batch_index)
            outcome["message_id"] = mid
        return ("send", s.producer_id, s.sequence_id), outcome
    if t == T.SEND_ERROR:
        e = cmd.send_error
        return ("send", e.producer_id, e.sequence_id), _error(e.error, e.message)
    return None


def operation_entries(policy_inputs: Sequence[dict[str, Any]], decisions: Sequence[Decision], revision: str | None,
                      approvals: Sequence[dict[str, Any] | None] = (), *, forwarded: bool,
                      dropped: bool = False) -> list[dict[str, Any]]:
    """The record's operations, one per operation the command was decided as (a PRODUCER on a
    missing topic: ``produce`` and ``create_topic``), each with its own decision. What was
    enforced is the command's, as every operation must be allowed for it to go on: forwarded,
    else denied with the Pulsar ServerError the client got (AuthorizationError), or ``dropped``
    when a denied command has no answer the client reads (the connection closes);
    ``approvals[i]`` once operation ``i`` was held."""
    out = []
    for i, (policy_input, decision) in enumerate(zip(policy_inputs, decisions, strict=True)):
        approval = approvals[i] if i < len(approvals) else None
        if forwarded:
            done = enforced_fields("forwarded", approval=approval)
        elif dropped:
            done = enforced_fields("dropped", approval=approval)
        else:
            done = enforced_fields("denied", error_code=int(wire.AuthorizationError), approval=approval)
        out.append(operation_entry(policy_input, decision, revision, done))
    return out
