"""Rewriting Kafka record batches (format v2, magic 2): the byte-level half of masking.

``rewrite(data, fn, ...)`` walks the batches of a Produce partition's or a Fetch partition's
record data, shows every record to ``fn`` (which may return a new key, value and headers),
and re-encodes the batches in which ``fn`` changed something: recompressed with the same codec
(and, for snappy, the same framing), length and CRC-32C recomputed, every other field kept.
Everything else is kept as the input's bytes: control batches (never shown to ``fn``) and
batches in which ``fn`` changed nothing.

Security: raw bytes never leave where a rewrite was asked for. Every batch has its CRC
verified first (a corrupt batch is refused, never re-encoded into a valid one), the records of
every batch shown to ``fn`` must add up exactly to its count and length, and anything that
cannot be read in full raises a ``BatchError``; a truncated trailing batch of a Fetch response
is dropped, not forwarded. Records are read as the Java client reads them (any negative length
is null, a varint is at most 5 bytes, 10 for the timestamp delta), so what ``fn`` sees is what
a consumer will read. Control batches (transaction markers) are written by brokers only: one in
a Produce request is refused by the broker ("Clients are not allowed to write control
records"); ``Rewritten.control`` counts them for a caller that refuses them itself.

Pure: no I/O, no shared state; safe to call from any thread.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Literal

import attrs
import google_crc32c

from gatekeeper.kafka import compression
from gatekeeper.kafka.compression import NONE, SNAPPY

__all__ = [
    "BatchError",
    "CorruptBatch",
    "LegacyFormat",
    "Record",
    "Rewritten",
    "UnsupportedCodec",
    "build_batch",
    "rewrite",
]

Headers = tuple[tuple[str, bytes | None], ...]
Change = tuple[bytes | None, bytes | None, Headers]

# Batch header: BaseOffset, Length, PartitionLeaderEpoch, Magic, CRC, Attributes,
# LastOffsetDelta, BaseTimestamp, MaxTimestamp, ProducerId, ProducerEpoch, BaseSequence, Count.
_HEAD = struct.Struct(">qiib")  # up to the CRC
_TAIL = struct.Struct(">hiqqqhii")  # attributes .. record count: what the CRC covers first
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_CRC_AT, _ATTRS_AT, _COUNT_AT, _RECORDS_AT = 17, 21, 57, 61
_MAGIC_AT = 16  # the same place in a v0/v1 message set
_MIN_LENGTH = _RECORDS_AT - 12  # a v2 batch's length field when it holds no records
_LEGACY_MIN_LENGTH = 14  # a v0 message's, the smallest anything can be (as the broker checks)
_CONTROL = 0x20
_TRANSACTIONAL = 0x10
_LOG_APPEND_TIME = 0x08


class BatchError(ValueError):
    """The record data cannot be rewritten. Its sender's fault (the client's on Produce, the
    broker's on Fetch): the caller refuses the request or drops the partition, and never
    forwards the data. ``position`` is the batch's byte offset in the data."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (batch at byte {position})")
        self.position = position


class LegacyFormat(BatchError):
    """A message set of format v0/v1 (magic 0 or 1), which is not rewritten."""


class CorruptBatch(BatchError):
    """A batch that is not valid: bad length, CRC-32C mismatch, records that do not add up to
    the count, a varint or field overrunning its record, a payload that does not decompress or
    inflates beyond the limit, or a truncated batch where only complete ones are allowed."""


class UnsupportedCodec(BatchError):
    """A batch compressed with a codec Kafka does not define."""


@attrs.frozen
class Record:
    """One record as ``fn`` sees it. ``fn`` may change key, value and headers only; the other
    fields are kept whatever it returns. The batch's base offset plus ``offset_delta`` is the
    record's offset (on Produce the base offset is 0, assigned by the broker).

    Header names are decoded as UTF-8 with ``surrogateescape``, so a name that is not valid
    UTF-8 still round-trips to its bytes; header order is the record's."""

    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    offset_delta: int = 0
    timestamp_delta: int = 0
    attributes: int = 0


@attrs.frozen
class Rewritten:
    """The result of ``rewrite``: the data to forward and what was done.

    ``batches`` complete batches were kept (``control`` of them control batches, passed
    untouched), ``records`` records shown to ``fn``, of which ``changed`` it returned a change
    for; ``dropped_tail`` bytes of an incomplete trailing batch were dropped (Fetch only).
    """

    data: bytes
    batches: int = 0
    records: int = 0
    changed: int = 0
    control: int = 0
    dropped_tail: int = 0


Rewrite = Callable[[Record], Change | None]


def rewrite(
    data: bytes | memoryview | None,
    fn: Rewrite,
    *,
    complete_only: bool,
    max_decompressed: int,
) -> Rewritten:
    """Show every record of ``data`` to ``fn`` and re-encode the batches it changes.

    ``fn(record)`` returns None to keep the record, or ``(key, value, headers)`` to replace
    those three (returning them unchanged still re-encodes the batch). An exception raised by
    ``fn`` propagates as it is, with a note naming the batch's base offset and the record's
    offset delta (``exc.__notes__``).

    ``complete_only``: True for Produce (an incomplete batch is a ``CorruptBatch``), False for
    Fetch (the broker cut the response at its size limit: an incomplete trailing batch is
    dropped and its size reported as ``dropped_tail``). ``max_decompressed`` bounds the bytes
    all compressed batches of ``data`` may inflate to together (decompression-bomb guard).
    """
    if not data:
        return Rewritten(b"")
    view = memoryview(data).cast("B")
    n = len(view)
    pos = 0
    out: list[bytes | memoryview] = []
    budget = max_decompressed
    batches = records = changed = control = 0
    rewritten = False
    while pos < n:
        if n - pos < _MAGIC_AT + 1:
            if complete_only:
                raise CorruptBatch(f"truncated batch header ({n - pos} bytes)", pos)
            break
        (length,) = _I32.unpack_from(view, pos + 8)
        if length < _LEGACY_MIN_LENGTH:
            raise CorruptBatch(f"batch length {length} is too small", pos)
        end = pos + 12 + length
        if end > n:
            if complete_only:
                raise CorruptBatch(f"truncated batch: {n - pos} of {12 + length} bytes", pos)
            break
        magic = view[pos + _MAGIC_AT]
        if magic < 2:
            raise LegacyFormat(f"message format v{magic} (magic {magic}) is not rewritten", pos)
        if magic != 2:
            raise CorruptBatch(f"unknown magic {magic}", pos)
        if length < _MIN_LENGTH:
            raise CorruptBatch(f"batch length {length} is too small for a v2 batch", pos)
        batches += 1
        covered = bytes(view[pos + _ATTRS_AT : end])  # what the CRC covers
        (crc,) = _U32.unpack_from(view, pos + _CRC_AT)
        if google_crc32c.value(covered) != crc:
            raise CorruptBatch("CRC-32C mismatch", pos)
        (attributes,) = _I16.unpack_from(covered, 0)
        if attributes & _CONTROL:
            control += 1
            out.append(view[pos:end])
            pos = end
            continue
        (count,) = _I32.unpack_from(covered, _COUNT_AT - _ATTRS_AT)
        if count < 0:
            raise CorruptBatch(f"negative record count {count}", pos)
        codec = attributes & 0x07
        if codec == NONE or (count == 0 and len(covered) == _RECORDS_AT - _ATTRS_AT):
            # (An empty batch, as the broker keeps for producer state, may name a codec and
            # hold no payload at all.)
            body, start = covered, _RECORDS_AT - _ATTRS_AT
        else:
            payload = memoryview(covered)[_RECORDS_AT - _ATTRS_AT :]
            body, start = _decompress(codec, payload, budget, pos), 0
            budget -= len(body)
        (base_offset,) = struct.unpack_from(">q", view, pos)
        try:
            parts, batch_changed = _walk(body, start, count, fn, base_offset)
        except _Malformed as exc:
            raise CorruptBatch(str(exc), pos) from None
        records += count
        if parts is None:
            out.append(view[pos:end])
        else:
            changed += batch_changed
            rewritten = True
            new_body = b"".join(parts)
            if codec != NONE:
                xerial = compression.xerial_header(payload) if codec == SNAPPY else None
                new_body = compression.compress(codec, new_body, xerial)
            out += _seal(view[pos : pos + _CRC_AT], covered[: _RECORDS_AT - _ATTRS_AT], new_body)
        pos = end
    if not rewritten and pos == n:
        return Rewritten(bytes(data), batches, records, changed, control, 0)
    return Rewritten(b"".join(out), batches, records, changed, control, n - pos)


def build_batch(
    records: Sequence[Record],
    *,
    codec: int = NONE,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
    base_timestamp: int = 0,
    max_timestamp: int | None = None,
    log_append_time: bool = False,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    control: bool = False,
    last_offset_delta: int | None = None,
    snappy_framing: Literal["xerial", "raw"] = "xerial",
) -> bytes:
    """A v2 record batch holding ``records`` (each with its own offset and timestamp deltas),
    for tests and benchmarks. Defaults derive from the records: the last offset delta from the
    last record, the max timestamp from the largest timestamp delta. ``snappy_framing`` is
    ``"xerial"`` (the Java client's) or ``"raw"``."""
    body = b"".join(_encode_record(r.attributes, r.timestamp_delta, r.offset_delta, r.key, r.value, r.headers) for r in records)
    if snappy_framing not in ("xerial", "raw"):
        raise ValueError(f"snappy_framing must be 'xerial' or 'raw', not {snappy_framing!r}")
    if codec != NONE and records:  # no records: no payload at all, as the broker writes it
        xerial = compression.XERIAL_HEADER if snappy_framing == "xerial" else None
        body = compression.compress(codec, body, xerial)
    attributes = codec | (_TRANSACTIONAL if transactional else 0) | (_CONTROL if control else 0)
    attributes |= _LOG_APPEND_TIME if log_append_time else 0
    if last_offset_delta is None:
        last_offset_delta = records[-1].offset_delta if records else 0
    if max_timestamp is None:
        max_timestamp = base_timestamp + max((r.timestamp_delta for r in records), default=0)
    tail = _TAIL.pack(
        attributes, last_offset_delta, base_timestamp, max_timestamp,
        producer_id, producer_epoch, base_sequence, len(records),
    )
    head = _HEAD.pack(base_offset, 0, partition_leader_epoch, 2)
    return b"".join(_seal(head, tail, body))


def _seal(head: bytes | memoryview, tail: bytes, body: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """The parts of a batch from its first 17 bytes (base offset .. magic; the length is
    replaced), the 40 bytes from attributes to the record count, and its records: length and
    CRC computed."""
    crc = google_crc32c.extend(google_crc32c.value(tail), body)
    first = bytearray(head)
    _I32.pack_into(first, 8, _MIN_LENGTH + len(body))
    return bytes(first), _U32.pack(crc), tail, body


def _decompress(codec: int, payload: memoryview, budget: int, pos: int) -> bytes:
    try:
        return compression.decompress(codec, payload, budget)
    except compression.UnknownCodec as exc:
        raise UnsupportedCodec(str(exc), pos) from None
    except compression.OutputLimit as exc:
        raise CorruptBatch(f"decompression bomb refused: {exc}", pos) from None
    except compression.CodecError as exc:
        raise CorruptBatch(str(exc), pos) from None


class _Malformed(Exception):
    pass


def _uvarint(buf: bytes, pos: int, limit: int = 5) -> tuple[int, int]:
    """The raw (not yet zigzag-decoded) varint at ``pos``: at most 5 bytes and 32 bits, as
    Java reads an int, or ``limit`` 10 bytes for a long (the timestamp delta)."""
    value, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if limit == 5 and value > 0xFFFFFFFF:
                raise _Malformed("varint over 32 bits")
            return value, pos
        shift += 7
        if shift >= 7 * limit:
            raise _Malformed(f"varint longer than {limit} bytes")


# The record walk is the hot loop of masking: each varint is read inline, with the one- and
# two-byte cases (every length under 8 KiB, every delta under 8192) needing no call:
#     b = buf[pos]
#     if b < 0x80: z = b; pos += 1
#     elif buf[pos + 1] < 0x80: z = (b & 0x7F) | buf[pos + 1] << 7; pos += 2
#     else: z, pos = uvarint(buf, pos)       # longer, or overlong: refused
#     value = (z >> 1) ^ -(z & 1)            # zigzag


def _walk(
    buf: bytes, pos: int, count: int, fn: Rewrite, base_offset: int
) -> tuple[list[bytes] | None, int]:
    """Show the ``count`` records of ``buf`` from ``pos`` to ``fn``. Returns the parts of the
    new record data (None if ``fn`` changed nothing) and the number of records it changed."""
    end = len(buf)
    parts: list[bytes] | None = None
    run = pos  # start of the input bytes not yet copied into parts
    changed = 0
    uvarint = _uvarint
    for _ in range(count):
        length_at = pos
        try:
            b = buf[pos]
            if b < 0x80:
                z, pos = b, pos + 1
            elif buf[pos + 1] < 0x80:
                z, pos = (b & 0x7F) | buf[pos + 1] << 7, pos + 2
            else:
                z, pos = uvarint(buf, pos)
            size = (z >> 1) ^ -(z & 1)
            rec_at = pos
            rec_end = pos + size
            if size < 0 or rec_end > end:
                raise _Malformed(f"record of {size} bytes overruns the batch")
            attributes = buf[pos]
            pos += 1
            b = buf[pos]
            if b < 0x80:
                z, pos = b, pos + 1
            elif buf[pos + 1] < 0x80:
                z, pos = (b & 0x7F) | buf[pos + 1] << 7, pos + 2
            else:
                z, pos = uvarint(buf, pos, 10)
            ts_delta = (z >> 1) ^ -(z & 1)
            b = buf[pos]
            if b < 0x80:
                z, pos = b, pos + 1
            elif buf[pos + 1] < 0x80:
                z, pos = (b & 0x7F) | buf[pos + 1] << 7, pos + 2
            else:
                z, pos = uvarint(buf, pos)
            offset_delta = (z >> 1) ^ -(z & 1)
            key_at = pos
            b = buf[pos]
            if b < 0x80:
                z, pos = b, pos + 1
            elif buf[pos + 1] < 0x80:
                z, pos = (b & 0x7F) | buf[pos + 1] << 7, pos + 2
            else:
                z, pos = uvarint(buf, pos)
            if z & 1:  # negative: null (Java reads any negative length as null)
                key: bytes | None = None
            else:
                key = buf[pos : pos + (z >> 1)]
                pos += z >> 1
            value_at = pos
            b = buf[pos]
            if b < 0x80:
                z, pos = b, pos + 1
            elif buf[pos + 1] < 0x80:
                z, pos = (b & 0x7F) | buf[pos + 1] << 7, pos + 2
            else:
                z, pos = uvarint(buf, pos)
            if z & 1:
                value: bytes | None = None
            else:
                value = buf[pos : pos + (z >> 1)]
                pos += z >> 1
            headers_at = pos
            if buf[pos] == 0 and pos + 1 == rec_end:
                headers: Headers = ()
            else:
                headers = _headers(buf, pos, rec_end)
        except IndexError:
            raise _Malformed("record overruns the batch") from None
        record = Record(key, value, headers, offset_delta, ts_delta, attributes)
        try:
            change = fn(record)
        except Exception as exc:
            exc.add_note(
                f"while rewriting the record at offset delta {offset_delta} of the batch"
                f" with base offset {base_offset}"
            )
            raise
        pos = rec_end
        if change is None:
            continue
        changed += 1
        if parts is None:
            parts = []
        new_key, new_value, new_headers = change
        # What fn left as it was is copied as the input's bytes, the rest encoded.
        if new_key is key or (type(new_key) is bytes and new_key == key):
            head = buf[rec_at:value_at]  # attributes, timestamp and offset deltas, key
        else:
            head = buf[rec_at:key_at] + _nullable(new_key, "key")
        if new_value is value or (type(new_value) is bytes and new_value == value):
            size_b, data = b"", buf[value_at:headers_at]
        elif type(new_value) is bytes:
            size_b, data = _zigzag(len(new_value)), new_value
        else:
            size_b, data = _nullable(new_value, "value"), b""
        h = buf[headers_at:rec_end] if new_headers == headers else _encode_headers(new_headers)
        size = len(head) + len(size_b) + len(data) + len(h)
        parts += (buf[run:length_at], _zigzag(size), head, size_b, data, h)
        run = rec_end
    if pos != end:
        raise _Malformed(f"{end - pos} bytes after the batch's {count} records")
    if parts is not None:
        parts.append(buf[run:end])
    return parts, changed


def _headers(buf: bytes, pos: int, rec_end: int) -> Headers:
    """The headers of a record, from their count at ``pos`` to the record's end."""
    uvarint = _uvarint
    z = buf[pos]
    if z < 0x80:
        pos += 1
    else:
        z, pos = uvarint(buf, pos)
    count = (z >> 1) ^ -(z & 1)
    if count < 0 or count > (rec_end - pos) // 2:
        raise _Malformed(f"record header count {count} does not fit its record")
    out: list[tuple[str, bytes | None]] = []
    for _ in range(count):
        z = buf[pos]
        if z < 0x80:
            pos += 1
        else:
            z, pos = uvarint(buf, pos)
        end = pos + (z >> 1)
        if z & 1 or end > rec_end:
            raise _Malformed(f"record header key of {(z >> 1) ^ -(z & 1)} bytes")
        name = buf[pos:end].decode("utf-8", "surrogateescape")
        z = buf[end]
        if z < 0x80:
            pos = end + 1
        else:
            z, pos = uvarint(buf, end)
        if z & 1:  # negative: null
            out.append((name, None))
        else:
            out.append((name, buf[pos : pos + (z >> 1)]))
            pos += z >> 1
        if pos > rec_end:
            raise _Malformed("record header overruns its record")
    if pos != rec_end:
        raise _Malformed(f"record has {rec_end - pos} bytes after its headers")
    return tuple(out)


def _zigzag(value: int) -> bytes:
    z = (value << 1) ^ (value >> 63)
    if z < 0x80:
        return _SMALL[z]
    if z < 0x4000:
        return bytes(((z & 0x7F) | 0x80, z >> 7))
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]
_NULL = _zigzag(-1)


def _nullable(data: bytes | None, what: str) -> bytes:
    if data is None:
        return _NULL
    if not isinstance(data, bytes):
        raise TypeError(f"the rewrite function returned a {type(data).__name__} {what}, not bytes or None")
    return _zigzag(len(data)) + data


def _encode_headers(headers: Headers) -> bytes:
    parts = [_zigzag(len(headers))]
    for name, value in headers:
        if type(name) is not str:
            raise TypeError(f"the rewrite function returned a {type(name).__name__} header key, not str")
        raw = name.encode("utf-8", "surrogateescape")
        parts.append(_zigzag(len(raw)))
        parts.append(raw)
        parts.append(_nullable(value, f"header {name!r} value"))
    return b"".join(parts)


def _encode_record(
    attributes: int, ts_delta: int, offset_delta: int, key: bytes | None, value: bytes | None, headers: Headers
) -> bytes:
    body = b"".join((
        bytes((attributes,)), _zigzag(ts_delta), _zigzag(offset_delta),
        _nullable(key, "key"), _nullable(value, "value"), _encode_headers(headers),
    ))
    return _zigzag(len(body)) + body
