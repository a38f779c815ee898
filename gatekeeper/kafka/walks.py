"""Read-only walks over hot Kafka bodies: the few fields Gatekeeper needs, read in place,
without building kafka-python's message objects. Responses: the outcome of a Produce or Fetch
for the audit trail, and whether a Produce answer carries addresses to rewrite. Requests: a
Produce request's topics, partitions and record sets, which is all its operations read.

The full decoder (``codec.decode_request`` / ``codec.decode_response_body``) stays the
reference: property tests check a walk against it for every version it covers, and a body a
walk cannot read raises ``CodecError`` as the decoder would.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any, NamedTuple

from gatekeeper.kafka.codec import CodecError
from gatekeeper.kafka.records import count_records

__all__ = ["FetchedPartition", "ProduceData", "ProducePartitionData", "ProduceRequestView", "ProducedPartition",
           "fetch_response_partitions", "partition_records", "produce_request",
           "produce_response_read", "produce_response_tagged", "topic_id"]

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_PARTITION_HEAD = struct.Struct(">ihq")  # partition, error code, base offset (Produce) / high watermark (Fetch)
_ACKS_TIMEOUT = struct.Struct(">hi")  # a Produce request's acks and timeout
# A Produce v9+ partition without record errors, error message or tagged fields: partition,
# error code, base offset, log append time, log start offset, then the empty array (1), the
# null string (0) and no tags (0).
_PRODUCED_FLEXIBLE = struct.Struct(">ihqqqBBB")
_NO_ERRORS = b"\x01\x00\x00"
# Topic ids seen in answers, by their 16 bytes: a cluster has few topics, and building a UUID
# (about 0.7 µs) for every topic of every Produce v13+ answer the audit trail reads costs more
# than looking one up. Emptied when it grows past _MAX_IDS (ids of deleted topics pile up).
_IDS: dict[bytes, uuid.UUID] = {}
_MAX_IDS = 4096


def topic_id(raw: bytes) -> uuid.UUID:
    """The UUID of a topic id's 16 bytes (the same object for the same bytes, while cached)."""
    found = _IDS.get(raw)
    if found is None:
        if len(_IDS) >= _MAX_IDS:
            _IDS.clear()
        found = _IDS[raw] = uuid.UUID(bytes=raw)
    return found


class ProducedPartition(NamedTuple):
    """One partition of a Produce response: ``topic`` is its name, or its id from v13 on. (A
    named tuple, not attrs: one is made per partition of every response, and a tuple is made
    several times faster.)"""

    topic: str | uuid.UUID
    partition: int
    error_code: int
    base_offset: int


class FetchedPartition(NamedTuple):
    """One partition of a Fetch response: ``topic`` is its name, or its id from v13 on;
    ``records`` a view of its record set in the frame (None when null)."""

    topic: str | uuid.UUID
    partition: int
    error_code: int
    records: memoryview | None


class ProducePartitionData:
    """One partition of a Produce request: its index, a view of its record set (no copy) and the
    number of records in it, counted once here for the policy input and the audit trail's
    outcome alike."""

    __slots__ = ("count", "index", "records")

    def __init__(self, index: int, records: memoryview | None) -> None:
        self.index, self.records = index, records
        self.count = count_records(records)

    def __repr__(self) -> str:
        return f"ProducePartitionData(index={self.index}, records={None if self.records is None else len(self.records)} bytes)"


def partition_records(partition: Any) -> int:
    """The number of records in one partition of a Produce request: walked (counted by the
    walk) or decoded (a kafka-python object, counted now)."""
    if type(partition) is ProducePartitionData:
        return partition.count
    return count_records(partition.records)


class ProduceData(NamedTuple):
    """One topic of a Produce request: by ``name`` before v13, by ``topic_id`` from v13 on (the
    other is None)."""

    name: str | None
    topic_id: uuid.UUID | None
    partition_data: list[ProducePartitionData]


class ProduceRequestView(NamedTuple):
    """What a Produce request's operations read, under the decoded body's own field names."""

    transactional_id: str | None
    acks: int
    timeout_ms: int
    topic_data: list[ProduceData]


class _Reader:
    __slots__ = ("buf", "flexible", "pos")

    def __init__(self, buf: bytes | memoryview, pos: int, flexible: bool) -> None:
        self.buf, self.pos, self.flexible = buf, pos, flexible

    def need(self, n: int) -> int:
        at = self.pos
        if n < 0 or at + n > len(self.buf):
            raise CodecError("body truncated")
        self.pos = at + n
        return at

    def uvarint(self) -> int:
        buf, pos, value, shift = self.buf, self.pos, 0, 0
        while True:
            if pos >= len(buf) or shift > 28:
                raise CodecError("bad varint")
            b = buf[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                self.pos = pos
                return value
            shift += 7

    def _length(self) -> int:
        """An array's length as written: negative for null."""
        if self.flexible:
            n = self.uvarint() - 1
        else:
            (n,) = _I32.unpack_from(self.buf, self.need(4))
        if n > len(self.buf):
            raise CodecError("array longer than the frame")
        return n

    def count(self) -> int:
        """An array's length (a null array counts as none)."""
        return max(self._length(), 0)

    def string(self) -> str | None:
        n = self.uvarint() - 1 if self.flexible else _I16.unpack_from(self.buf, self.need(2))[0]
        if n < 0:
            return None
        at = self.need(n)
        try:
            return bytes(self.buf[at:at + n]).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CodecError(f"string is not UTF-8: {e}") from e

    def skip_string(self) -> None:
        n = self.uvarint() - 1 if self.flexible else _I16.unpack_from(self.buf, self.need(2))[0]
        if n > 0:
            self.need(n)

    def bytes_view(self) -> memoryview | None:
        """A (nullable) bytes field, as a view into the frame."""
        if self.flexible:
            n = self.uvarint() - 1
        else:
            (n,) = _I32.unpack_from(self.buf, self.need(4))
        if n < 0:
            return None
        at = self.need(n)
        return memoryview(self.buf)[at:at + n]

    def topic(self, by_id: bool) -> str | uuid.UUID:
        """A topic entry's topic: its id (v13+ of Produce and Fetch), or its name."""
        if by_id:
            at = self.need(16)
            return topic_id(bytes(self.buf[at:at + 16]))
        return self.string() or ""

    def skip_tags(self) -> None:
        if self.flexible:
            for _ in range(self.uvarint()):
                self.uvarint()
                self.need(self.uvarint())

    def array(self, what: str) -> int:
        """A count of entries that may not be null: a null one is refused, as by the broker."""
        n = self._length()
        if n < 0:
            raise CodecError(f"request has a null {what}, a field that is never null")
        return n


def produce_request(frame: bytes, pos: int, version: int) -> tuple[ProduceRequestView, int]:
    """The Produce request body at ``frame[pos:]`` (versions 3-13) and where it ends; record sets
    are views into ``frame``. Refuses what the decoder refuses (CodecError): a truncated body, a
    null topic name or list, a name that is not UTF-8."""
    if not 3 <= version <= 13:
        raise CodecError(f"produce request v{version} is not walked")
    if version >= 9:
        usual = _usual_produce_request(frame, pos, version >= 13)
        if usual is not None:
            return usual
    return _walk_produce_request(frame, pos, version)


def _usual_produce_request(frame: bytes, pos: int, by_id: bool) -> tuple[ProduceRequestView, int] | None:
    """A flexible (v9+) Produce request in the shape producers send: every count, name length
    and the transactional id's length in one byte, each record set's length in at most three,
    no tagged fields, no null where none may be; None for anything else (the general walk reads
    it, or says what is wrong). Straight-line reads, no reader calls: this is every produced
    batch's path."""
    end = len(frame)
    try:
        n = frame[pos] - 1
        pos += 1
        if n < 0:
            transactional_id = None
        elif n < 0x7F and pos + n <= end:
            transactional_id = frame[pos:pos + n].decode("utf-8")
            pos += n
        else:
            return None
        acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(frame, pos)
        pos += 6
        topic_count = frame[pos] - 1
        pos += 1
        if not 0 <= topic_count < 0x7F:
            return None
        view = memoryview(frame)
        topics: list[ProduceData] = []
        for _ in range(topic_count):
            if by_id:
                if pos + 16 > end:
                    return None
                name, tid = None, topic_id(frame[pos:pos + 16])
                pos += 16
            else:
                n = frame[pos] - 1
                pos += 1
                if not 0 <= n < 0x7F or pos + n > end:
                    return None
                name, tid = frame[pos:pos + n].decode("utf-8"), None
                pos += n
            partition_count = frame[pos] - 1
            pos += 1
            if not 0 <= partition_count < 0x7F:
                return None
            partitions = []
            for _ in range(partition_count):
                (index,) = _I32.unpack_from(frame, pos)
                b = frame[pos + 4]
                size, pos = b & 0x7F, pos + 5
                if b & 0x80:
                    b = frame[pos]
                    size, pos = size | (b & 0x7F) << 7, pos + 1
                    if b & 0x80:
                        b = frame[pos]
                        size, pos = size | (b & 0x7F) << 14, pos + 1
                        if b & 0x80:
                            return None
                size -= 1
                if size < 0:
                    records = None
                elif pos + size <= end:
                    records = view[pos:pos + size]
                    pos += size
                else:
                    return None
                if frame[pos]:  # the partition's tagged fields
                    return None
                pos += 1
                partitions.append(ProducePartitionData(index, records))
            if frame[pos]:  # the topic's tagged fields
                return None
            pos += 1
            topics.append(ProduceData(name, tid, partitions))
        if frame[pos]:  # the request's tagged fields
            return None
        pos += 1
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return ProduceRequestView(transactional_id, acks, timeout_ms, topics), pos


def _walk_produce_request(frame: bytes, pos: int, version: int) -> tuple[ProduceRequestView, int]:
    """The general walk, for every version and shape; CodecError for what it cannot read."""
    r = _Reader(frame, pos, version >= 9)
    by_id = version >= 13
    topics: list[ProduceData] = []
    try:
        transactional_id = r.string()
        acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(frame, r.need(6))
        for _ in range(r.array("topic list")):
            if by_id:
                at = r.need(16)
                name, tid = None, topic_id(frame[at:at + 16])
            else:
                name, tid = r.string(), None
                if name is None:
                    raise CodecError("request has a null topic name, a field that is never null")
            partitions = []
            for _ in range(r.array("partition list")):
                (index,) = _I32.unpack_from(frame, r.need(4))
                partitions.append(ProducePartitionData(index, r.bytes_view()))
                r.skip_tags()
            r.skip_tags()
            topics.append(ProduceData(name, tid, partitions))
        r.skip_tags()
    except struct.error as e:
        raise CodecError(f"produce request truncated: {e}") from e
    return ProduceRequestView(transactional_id, acks, timeout_ms, topics), r.pos


def produce_response_read(body: bytes | memoryview, pos: int, version: int) -> tuple[list[ProducedPartition], bool]:
    """Each partition of the Produce response body at ``buf[pos:]`` (versions 3-13), in order,
    and whether the walk saw the body end without tagged fields (True: the answer has no
    ``node_endpoints``, so ``produce_response_tagged`` would say False; False: not known, ask
    it). One walk where the audit trail needs both. Raises CodecError when the body is
    truncated or malformed."""
    if not 3 <= version <= 13:
        raise CodecError(f"produce response v{version} is not walked")
    out: list[ProducedPartition] = []
    if version >= 9:
        end = _usual_produce_response(body, pos, version >= 13, out)
        if end is not None:
            return out, end == len(body)
    out.clear()
    _walk_produce_response(body, pos, version, out)
    return out, False


def produce_response_tagged(body: bytes | memoryview, pos: int, version: int) -> bool:
    """Whether the Produce response body at ``buf[pos:]`` ends in tagged fields: from v10 on,
    where a broker puts KIP-951's ``node_endpoints`` (the real address of a partition's new
    leader). Raises CodecError when the body is truncated or malformed."""
    if version < 10:
        return False
    if _usual_produce_response(body, pos, version >= 13, None) == len(body):  # its shape has no tags
        return False
    return _walk_produce_response(body, pos, version, None)


def _walk_produce_response(body: bytes | memoryview, pos: int, version: int, out: list[ProducedPartition] | None) -> bool:
    """The general walk: each partition into ``out`` (when given); True when the body ends in
    tagged fields."""
    r = _Reader(body, pos, version >= 9)
    try:
        for _ in range(r.count()):
            topic = r.topic(by_id=version >= 13)
            for _ in range(r.count()):
                index, error_code, base_offset = _PARTITION_HEAD.unpack_from(body, r.need(14))
                r.need(8 if version < 5 else 16)  # log append time (v2+), log start offset (v5+)
                if version >= 8:
                    for _ in range(r.count()):  # record errors
                        r.need(4)
                        r.skip_string()
                        r.skip_tags()
                    r.skip_string()  # error message
                r.skip_tags()
                if out is not None:
                    out.append(ProducedPartition(topic, index, error_code, base_offset))
            r.skip_tags()
        r.need(4)  # throttle time (v1+)
        tags = r.pos
        r.skip_tags()
    except struct.error as e:
        raise CodecError(f"produce response truncated: {e}") from e
    return r.flexible and body[tags] != 0


def _usual_produce_response(body: bytes | memoryview, pos: int, by_id: bool, out: list[ProducedPartition] | None) -> int | None:
    """Where a flexible (v9+) Produce response in the shape a broker answers a successful
    request with ends (every count and length in one byte, no record errors, no error message,
    no tagged fields), its partitions put in ``out`` when given; None for anything else (the
    general walk reads it, or says what is wrong). One ``struct`` read per partition instead of
    a reader's calls, and nothing built when there is no ``out``."""
    try:
        topics = body[pos] - 1
        pos += 1
        if not 0 <= topics < 0x7F:
            return None
        topic: str | uuid.UUID = ""
        for _ in range(topics):
            if by_id:
                if out is not None:
                    topic = topic_id(bytes(body[pos:pos + 16]))
                pos += 16
            else:
                size = body[pos] - 1
                if not 0 <= size < 0x7F:
                    return None
                if out is not None:
                    topic = bytes(body[pos + 1:pos + 1 + size]).decode("utf-8")
                pos += 1 + size
            partitions = body[pos] - 1
            pos += 1
            if not 0 <= partitions < 0x7F:
                return None
            for _ in range(partitions):
                end = pos + _PRODUCED_FLEXIBLE.size
                if body[end - 3:end] != _NO_ERRORS:
                    return None
                if out is not None:
                    index, error_code, base_offset = _PRODUCED_FLEXIBLE.unpack_from(body, pos)[:3]
                    out.append(ProducedPartition(topic, index, error_code, base_offset))
                pos = end
            if body[pos] != 0:  # the topic's tagged fields
                return None
            pos += 1
        if body[pos + 4] != 0:  # after the throttle time: no tagged fields
            return None
    except (IndexError, struct.error, ValueError):  # ValueError: a short topic id, a name not UTF-8
        return None
    return pos + 5


def fetch_response_partitions(body: bytes | memoryview, pos: int, version: int) -> list[FetchedPartition]:
    """Each partition of the Fetch response body at ``buf[pos:]`` (versions 4-18), in order, its
    records as a view (no copy). Raises CodecError when the body is truncated or malformed."""
    if not 4 <= version <= 18:
        raise CodecError(f"fetch response v{version} is not walked")
    r = _Reader(body, pos, version >= 12)
    out: list[FetchedPartition] = []
    try:
        r.need(4 + (6 if version >= 7 else 0))  # throttle time; error code and session id (v7+)
        for _ in range(r.count()):
            topic = r.topic(by_id=version >= 13)
            for _ in range(r.count()):
                partition, error_code, _hw = _PARTITION_HEAD.unpack_from(body, r.need(14))
                r.need(8 if version < 5 else 16)  # last stable offset (v4+), log start offset (v5+)
                for _ in range(r.count()):  # aborted transactions: producer id, first offset
                    r.need(16)
                    r.skip_tags()
                if version >= 11:
                    r.need(4)  # preferred read replica
                records = r.bytes_view()
                r.skip_tags()
                out.append(FetchedPartition(topic, partition, error_code, records))
            r.skip_tags()
        r.skip_tags()
    except struct.error as e:
        raise CodecError(f"fetch response truncated: {e}") from e
    return out
