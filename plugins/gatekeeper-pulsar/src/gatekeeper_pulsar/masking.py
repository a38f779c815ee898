"""A mask decision applied to one Pulsar message payload (a SEND's or a MESSAGE's): a pure
function over bytes.

The payload's CRC32C is checked first (a corrupt payload is refused, never laundered into a
valid one); an encrypted or chunked message is refused (its values cannot be read, or are not
all here). The payload is decompressed with its codec (bounded by the limit), each message —
the one message, or every entry of a batch — is masked by the decision's plan (the value is
the message's payload, the key its ``partition_key``, the headers its ``properties``), and the
payload is compressed again with the same codec, ``uncompressed_size``, ``payload_size`` and the
CRC32C recomputed. Everything else (producer name, sequence ids, publish and event times, keys
and properties nothing matched, unknown metadata fields, broker entry metadata in front) is
kept. A payload nothing was masked in is returned as the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections import Counter
from typing import Any

import attrs
from google.protobuf.unknown_fields import UnknownFieldSet

from gatekeeper.masking import RecordRefused
from gatekeeper_pulsar import codecs
from gatekeeper_pulsar.batch import BatchError, is_batch, read_batch, write_batch
from gatekeeper_pulsar.framing import FrameError
from gatekeeper_pulsar.payload import MAGIC_BROKER_ENTRY_METADATA, build_payload, read_payload

__all__ = ["MaskedPayload", "PayloadRefused", "mask_payload"]

_COMPRESSION_FIELD = 8  # MessageMetadata.compression: a value the enum does not name parses as unknown
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class PayloadRefused(Exception):
    """The payload cannot be masked as the policy requires. ``kind`` is the metric label
    (``corrupt_payload``, ``corrupt_batch``, ``too_large``, ``encrypted``, ``chunked``,
    ``record_refused``); the message says why, never with the message's content."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@attrs.frozen
class MaskedPayload:
    payload: bytes  # the payload to send on (the bytes given when nothing changed)
    changed: bool
    messages: int  # messages (or a batch's own key and properties) changed
    fields: Counter[str]  # masker -> values or spans masked


def mask_payload(payload: bytes, plan: Any, limit: int) -> MaskedPayload:
    """``payload`` (a SEND's or MESSAGE's, broker entry metadata and all) masked by ``plan``
    (a :class:`gatekeeper.masking.Plan`), or :class:`PayloadRefused`."""
    try:
        info = read_payload(payload)
    except FrameError as e:
        raise PayloadRefused(f"the payload cannot be read: {e}", "corrupt_payload") from None
    if not info.checksum_ok:
        raise PayloadRefused("the payload's CRC32C checksum does not match: it is corrupt", "corrupt_payload")
    meta = info.metadata
    if len(meta.encryption_keys) or meta.encryption_algo:
        raise PayloadRefused("the message is encrypted end to end, so its values cannot be read to mask them",
                             "encrypted")
    if meta.num_chunks_from_msg > 1:
        raise PayloadRefused(f"the message is chunk {meta.chunk_id} of {meta.num_chunks_from_msg}: a chunked message "
                             "cannot be masked one chunk at a time", "chunked")
    if any(f.field_number == _COMPRESSION_FIELD for f in UnknownFieldSet(meta)):
        raise PayloadRefused("the payload's compression is none Gatekeeper knows (0-4)", "corrupt_payload")
    codec = int(meta.compression)
    if codec != codecs.NONE and not meta.HasField("uncompressed_size"):
        raise PayloadRefused(f"a {codecs.NAMES.get(codec, codec)} payload without uncompressed_size", "corrupt_payload")
    try:
        data = codecs.decompress(codec, info.body, int(meta.uncompressed_size), limit)
    except codecs.OutputLimit as e:
        raise PayloadRefused(str(e), "too_large") from None
    except codecs.CodecError as e:
        raise PayloadRefused(str(e), "corrupt_payload") from None
    fields: Counter[str] = Counter()
    messages = 0
    if is_batch(meta):
        try:
            entries = read_batch(data, int(meta.num_messages_in_batch))
        except BatchError as e:
            raise PayloadRefused(f"the batch cannot be read: {e}", "corrupt_batch") from None
        # The batch's own key and properties (key-based batching puts the key there too).
        outer = _apply(plan, meta, None, "the batch's metadata", fields)[1]
        for i, entry in enumerate(entries):
            value = None if entry.metadata.null_value else entry.value
            new, changed = _apply(plan, entry.metadata, value, f"message {i} of the batch", fields)
            if changed:
                messages += 1
                if new is not value and new is not None:
                    entry.value = new
        if not messages and not outer:
            return MaskedPayload(payload, False, 0, fields)
        new_data = write_batch(entries) if messages else data
        messages += int(outer)
    else:
        value = None if meta.null_value else data
        new, changed = _apply(plan, meta, value, "the message", fields)
        if not changed:
            return MaskedPayload(payload, False, 0, fields)
        messages = 1
        new_data = new if new is not None else data
    body = info.body if new_data is data else codecs.compress(codec, new_data)
    if codec != codecs.NONE or meta.HasField("uncompressed_size"):
        meta.uncompressed_size = len(new_data)
    return MaskedPayload(payload[: _prefix_length(payload)] + build_payload(meta, body), True, messages, fields)


def _prefix_length(payload: bytes) -> int:
    """The length of the broker entry metadata in front of the payload (0 when there is none)."""
    if len(payload) >= 6 and _U16.unpack_from(payload, 0)[0] == MAGIC_BROKER_ENTRY_METADATA:
        return 6 + int(_U32.unpack_from(payload, 2)[0])
    return 0


def _apply(plan: Any, holder: Any, value: bytes | None, where: str, fields: Counter[str]) -> tuple[bytes | None, bool]:
    """Mask one message: ``holder`` (its MessageMetadata or SingleMessageMetadata) has its key
    and properties rewritten in place when they change; the value is returned."""
    key = _key_of(holder)
    headers: list[tuple[str, bytes | None]] = [(_string(kv.key, where), _string(kv.value, where).encode())
                                               for kv in holder.properties]
    try:
        result = plan.apply(key, value, headers)
    except RecordRefused as e:
        raise PayloadRefused(f"{where} cannot be masked as the policy requires ({e})", "record_refused") from None
    if not result.changed:
        return value, False
    fields.update(result.fields)
    if result.key is not key and result.key is not None:
        if holder.partition_key_b64_encoded:
            holder.partition_key = base64.b64encode(result.key).decode("ascii")
        else:
            holder.partition_key = _text(result.key, f"{where}: the masked key")
    if result.headers is not headers:
        props = [(name, _text(data or b"", f"{where}: the masked property {name!r}")) for name, data in result.headers]
        del holder.properties[:]
        for name, text in props:
            holder.properties.add(key=name, value=text)
    return result.value, True


def _key_of(holder: Any) -> bytes | None:
    if not holder.HasField("partition_key"):
        return None
    key = _string(holder.partition_key, "the partition key")
    if holder.partition_key_b64_encoded:
        try:
            return base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raise PayloadRefused("the partition key is marked base64 but is not", "corrupt_payload") from None
    return key.encode()


def _string(value: Any, where: str) -> str:
    """A protobuf string field as read: the parser hands out bytes where they are not UTF-8."""
    if isinstance(value, str):
        return value
    raise PayloadRefused(f"{where}: a key or property is not UTF-8, which a Pulsar string field must be",
                         "corrupt_payload")


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadRefused(f"{what} is not UTF-8, which a Pulsar string field must be", "record_refused") from None
