"""The messages of a Pulsar payload, uncompressed: one message, or a batch.

A payload whose MessageMetadata has ``num_messages_in_batch`` (even 1) is a batch: that many
entries, each ``[size u32][SingleMessageMetadata][payload_size bytes]``, and nothing after
them. Otherwise the payload is the one message's value. Pure functions over bytes.
"""

from __future__ import annotations

import struct

import attrs
from google.protobuf.message import DecodeError

from gatekeeper_pulsar import wire_pb2 as wire

__all__ = ["BatchError", "Entry", "is_batch", "read_batch", "write_batch"]

_U32 = struct.Struct(">I")


class BatchError(ValueError):
    """The uncompressed batch is not the entries its metadata says (the sender's bytes)."""


@attrs.define
class Entry:
    """One message of a batch: its metadata (``payload_size`` kept up to date by
    :func:`write_batch`) and its value."""

    metadata: wire.SingleMessageMetadata
    value: bytes


def is_batch(metadata: wire.MessageMetadata) -> bool:
    """What the clients test: a batch is a payload whose metadata carries a message count."""
    return metadata.HasField("num_messages_in_batch")


def read_batch(data: bytes, count: int) -> list[Entry]:
    """The ``count`` entries of an uncompressed batch; :class:`BatchError` when the bytes are
    not exactly that many entries."""
    if count < 1:
        raise BatchError(f"a batch of {count} messages")
    view = memoryview(data)
    entries: list[Entry] = []
    pos = 0
    for i in range(count):
        if pos + 4 > len(view):
            raise BatchError(f"the batch ends before message {i} of {count}")
        (size,) = _U32.unpack_from(view, pos)
        pos += 4
        if pos + size > len(view):
            raise BatchError(f"message {i}: metadata of {size} bytes runs past the batch")
        meta = wire.SingleMessageMetadata()
        try:
            meta.MergeFromString(view[pos : pos + size])
        except DecodeError as e:
            raise BatchError(f"message {i}: the metadata is not protobuf: {e}") from None
        pos += size
        if not meta.HasField("payload_size") or meta.payload_size < 0:
            raise BatchError(f"message {i}: the metadata has no valid payload_size")
        end = pos + meta.payload_size
        if end > len(view):
            raise BatchError(f"message {i}: a value of {meta.payload_size} bytes runs past the batch")
        entries.append(Entry(meta, bytes(view[pos:end])))
        pos = end
    if pos != len(view):
        raise BatchError(f"{len(view) - pos} bytes after the batch's {count} messages")
    return entries


def write_batch(entries: list[Entry]) -> bytes:
    """The uncompressed batch of ``entries`` (each entry's ``payload_size`` set to its value)."""
    parts: list[bytes] = []
    for e in entries:
        e.metadata.payload_size = len(e.value)
        meta = e.metadata.SerializePartialToString()
        parts += (_U32.pack(len(meta)), meta, e.value)
    return b"".join(parts)
