"""The audit trail: one hash-chained, signed record per session event, authentication, decided
request and change, written off the reactor to pluggable sinks, read back, verified, searched
and replayed (``docs/audit.md``).

``records`` holds the pure record functions (canonical form, hashes, checkpoints), ``chain`` the
chain as it grows (places, checkpoints, segment ends), ``trail`` the service the gateway calls
(``writer`` its thread, which stores what the trail chained), ``shapes`` builders of record fields, ``file_sink`` and ``kafka_sink`` the built-in
sinks, ``reader`` and ``verify`` the way back, ``cli`` the ``gatekeeper audit`` commands.
"""

from gatekeeper.audit.reader import (
    Entry,
    FileSource,
    KafkaSource,
    ReaderError,
    iter_entries,
    iter_records,
    operations,
    parse_source,
    verify,
)
from gatekeeper.audit.records import (
    CHECKPOINT,
    GENESIS,
    KINDS,
    canonical,
    format_time,
    key_id,
    make_record,
    parse_time,
    policy_revision,
    record_hash,
    serialize,
    sign_checkpoint,
    verify_checkpoint,
)
from gatekeeper.audit.shapes import (
    decision_fields,
    enforced_fields,
    fetched_partition,
    operation_entry,
    principal_fields,
    produced_partition,
    token_fields,
)
from gatekeeper.audit.trail import BLOCK, DENY, AuditTrail, Slot
from gatekeeper.audit.verify import ChainSummary, Problem, Report

__all__ = [
    "BLOCK",
    "CHECKPOINT",
    "DENY",
    "GENESIS",
    "KINDS",
    "AuditTrail",
    "ChainSummary",
    "Entry",
    "FileSource",
    "KafkaSource",
    "Problem",
    "ReaderError",
    "Report",
    "Slot",
    "canonical",
    "decision_fields",
    "enforced_fields",
    "fetched_partition",
    "format_time",
    "iter_entries",
    "iter_records",
    "key_id",
    "make_record",
    "operation_entry",
    "operations",
    "parse_source",
    "parse_time",
    "policy_revision",
    "principal_fields",
    "produced_partition",
    "record_hash",
    "serialize",
    "sign_checkpoint",
    "token_fields",
    "verify",
    "verify_checkpoint",
]
