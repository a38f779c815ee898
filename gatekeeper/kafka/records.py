"""Read-only walks over Kafka record data (message sets and v2 record batches).

Only the batch headers are read: counting records never decompresses anything.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

__all__ = ["batch_spans", "count_records", "records_span"]

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
# A v2 batch header: base offset, length, magic, last offset delta, record count (the rest skipped).
_V2_HEAD = struct.Struct(">qi4xB6xi30xi")


def batch_spans(data: bytes | memoryview | None) -> Iterator[tuple[int, int, int]]:
    """(first offset, last offset, records) of each complete batch (v2) or message (v0/v1) in
    ``data``, reading only the headers. Stops at a truncated trailing batch, as the broker does
    with a partial fetch."""
    if not data:
        return
    view = memoryview(data)
    pos, n = 0, len(view)
    while pos + 17 <= n:
        (length,) = _I32.unpack_from(view, pos + 8)
        end = pos + 12 + length
        if length < 0 or end > n:
            break
        (base,) = _I64.unpack_from(view, pos)
        if view[pos + 16] >= 2:
            if pos + 61 > n:
                break
            (last_delta,) = _I32.unpack_from(view, pos + 23)
            (count,) = _I32.unpack_from(view, pos + 57)
            yield base, base + last_delta, max(count, 0)
        else:  # a legacy message (or a compressed wrapper): its offset is its last
            yield base, base, 1
        pos = end


def count_records(data: bytes | memoryview | None) -> int:
    """Number of records in ``data``: the batches' record counts (v2) or messages (v0/v1)."""
    span = records_span(data)
    return 0 if span is None else span[2]


def records_span(data: bytes | memoryview | None) -> tuple[int, int, int] | None:
    """(first offset, last offset, records) over the complete batches in ``data``, None when it
    holds none: what ``batch_spans`` gives summed up, in one loop without a generator and one
    read per v2 batch header (it runs over every partition of every Produce request and every
    batch of every Fetch answer the audit trail records; a unit test compares them)."""
    if not data:
        return None
    pos, n, total = 0, len(data), 0
    first = last = None
    while pos + 17 <= n:
        if pos + 61 <= n:
            base, length, magic, last_delta, count = _V2_HEAD.unpack_from(data, pos)
        else:
            (base,) = _I64.unpack_from(data, pos)
            (length,) = _I32.unpack_from(data, pos + 8)
            magic, last_delta, count = data[pos + 16], 0, 0
        end = pos + 12 + length
        if length < 0 or end > n:
            break
        if magic >= 2:
            if pos + 61 > n:
                break
            last = base + last_delta
            total += max(count, 0)
        else:
            last = base
            total += 1
        if first is None:
            first = base
        pos = end
    return None if first is None or last is None else (first, last, total)
