"""Read-only walks over Kafka record data (message sets and v2 record batches).

Only the batch headers are read: counting records never decompresses anything.
"""

from __future__ import annotations

import struct

__all__ = ["count_records"]

_I32 = struct.Struct(">i")


def count_records(data: bytes | memoryview | None) -> int:
    """Number of records in ``data``: the batches' record counts (v2) or messages (v0/v1).

    Stops at a truncated trailing batch, as the broker does with a partial fetch.
    """
    if not data:
        return 0
    view = memoryview(data)
    pos, total, n = 0, 0, len(view)
    while pos + 17 <= n:
        (length,) = _I32.unpack_from(view, pos + 8)
        end = pos + 12 + length
        if length < 0 or end > n:
            break
        magic = view[pos + 16]
        if magic >= 2:
            if pos + 61 > n:
                break
            (count,) = _I32.unpack_from(view, pos + 57)
            total += max(count, 0)
        else:
            total += 1
        pos = end
    return total
