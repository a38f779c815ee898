"""The record-batch parsing and rewriting the mask path adds, and the read-only walks.

Input: the first byte picks the mode, the rest is record data (one partition's ``records``):
  bit 0: Fetch (an incomplete trailing batch is dropped) or Produce (refused);
  bit 1: every record rewritten (keys and values replaced, batches re-encoded and
         recompressed) or the mask plan applied (JSON field and e-mail detector);
  bits 2-4: with the plan, a codec for ``compression.decompress`` of the data as a payload.
A rewritten result must parse again to the same number of records.
"""

from __future__ import annotations

from fuzz.common import mask_plan
from gatekeeper.kafka import batches, compression
from gatekeeper.kafka.records import batch_spans, count_records
from gatekeeper.masking import RecordRefused

EXPECTED = (batches.BatchError, RecordRefused)
_LIMIT = 1 << 20
_PLAN = mask_plan()


def _replace(record: batches.Record) -> batches.Change:
    value = None if record.value is None else b"x" * (len(record.value) % 7)
    return record.key, value, record.headers + (("masked", b"1"),)


def _plan(record: batches.Record) -> batches.Change | None:
    result = _PLAN.apply(record.key, record.value, record.headers)
    return (result.key, result.value, result.headers) if result.changed else None


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, records = data[0], data[1:]
    list(batch_spans(records))
    count_records(records)
    if mode & 2:
        try:
            compression.decompress((mode >> 2) & 7, records, _LIMIT)
        except (compression.CodecError, compression.OutputLimit, compression.UnknownCodec):
            pass
    fetch = bool(mode & 1)
    done = batches.rewrite(records, _plan if mode & 2 else _replace, complete_only=not fetch, max_decompressed=_LIMIT)
    if done.changed:
        again = batches.rewrite(done.data, lambda r: None, complete_only=True, max_decompressed=4 * _LIMIT)
        if again.records != done.records:
            raise AssertionError(f"rewritten data holds {again.records} records, not {done.records}")
