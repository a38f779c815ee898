"""The payload of SEND (and MESSAGE): checksum, MessageMetadata, what a policy input needs.

Layout after the command: optional broker entry metadata (magic 0x0e02, size u32, bytes), then
magic 0x0e01, CRC32C u32 over everything after it, metadata size u32, MessageMetadata, payload.
"""

from __future__ import annotations

import struct

import attrs
import google_crc32c
from google.protobuf.message import DecodeError

from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.framing import FrameError

__all__ = ["MAGIC_BROKER_ENTRY_METADATA", "MAGIC_CRC32C", "PayloadInfo", "build_payload", "read_payload"]

MAGIC_CRC32C = 0x0E01
MAGIC_BROKER_ENTRY_METADATA = 0x0E02
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


@attrs.frozen
class PayloadInfo:
    """What Gatekeeper reads of a message payload."""

    metadata: wire.MessageMetadata
    body: bytes  # after the metadata: one message, or a batch (compressed as the metadata says)
    checksum_ok: bool

    @property
    def record_count(self) -> int:
        return int(self.metadata.num_messages_in_batch) if self.metadata.HasField("num_messages_in_batch") else 1

    @property
    def encrypted(self) -> bool:
        return bool(self.metadata.encryption_algo) or len(self.metadata.encryption_keys) > 0

    @property
    def compression(self) -> str:
        return str(wire.CompressionType.Name(self.metadata.compression))


def read_payload(payload: bytes) -> PayloadInfo:
    """Read a SEND/MESSAGE payload; :class:`FrameError` when it is not one."""
    pos = 0
    if len(payload) >= 2 and _U16.unpack_from(payload, 0)[0] == MAGIC_BROKER_ENTRY_METADATA:
        if len(payload) < 6:
            raise FrameError("broker entry metadata is cut short")
        pos = 6 + _U32.unpack_from(payload, 2)[0]
    if len(payload) < pos + 10 or _U16.unpack_from(payload, pos)[0] != MAGIC_CRC32C:
        raise FrameError("the message payload does not start with the CRC32C magic 0x0e01")
    (checksum,) = _U32.unpack_from(payload, pos + 2)
    checked = payload[pos + 6 :]
    (size,) = _U32.unpack_from(payload, pos + 6)
    start = pos + 10
    if start + size > len(payload):
        raise FrameError(f"message metadata of {size} bytes runs past the payload's {len(payload) - start}")
    metadata = wire.MessageMetadata()
    try:
        metadata.MergeFromString(payload[start : start + size])
    except DecodeError as e:
        raise FrameError(f"message metadata is not protobuf: {e}") from e
    ok = google_crc32c.value(checked) == checksum
    return PayloadInfo(metadata=metadata, body=payload[start + size :], checksum_ok=ok)


def build_payload(metadata: wire.MessageMetadata, body: bytes) -> bytes:
    """A SEND payload (no broker entry metadata) with its checksum: for tests and for rewriting."""
    meta = metadata.SerializePartialToString()
    checked = _U32.pack(len(meta)) + meta + body
    return _U16.pack(MAGIC_CRC32C) + _U32.pack(google_crc32c.value(checked)) + checked
