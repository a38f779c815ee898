"""The compression codecs of Kafka record batches, with decompression bounded in size.

Pure functions over bytes. ``decompress`` never produces more than ``limit`` bytes (plus one
chunk of at most ``_STEP`` while it finds out): a small payload that inflates beyond the limit
(a decompression bomb) raises ``OutputLimit``; data a codec cannot read raises ``CodecError``;
an attribute value that names no codec raises ``UnknownCodec``.

What each codec is on the wire, and what is written back:

- gzip (1): one or more gzip members (Java's GZIPInputStream reads concatenated members).
- snappy (2): the Java client writes snappy-java's stream framing (an 8-byte magic
  ``\\x82SNAPPY\\x00``, two int32 version fields, then blocks of int32 length + raw snappy);
  other clients may write one raw snappy block. Both are read; ``compress`` writes the framing
  it is given (``xerial_header`` of the input) so a rewritten batch keeps its framing.
- lz4 (3): one LZ4 frame. Written with independent 64 KiB blocks and no content size or
  checksums, as the Java client does: the Java reader decompresses each block on its own and
  would fail on linked blocks.
- zstd (4): one or more zstd frames, with or without a content size (streamed, so a declared
  content size is never trusted for allocation).
"""

from __future__ import annotations

import struct
import zlib

import cramjam
import lz4.frame
import zstandard

__all__ = [
    "CODEC_NAMES",
    "GZIP",
    "GZIP_LEVEL",
    "LZ4",
    "NONE",
    "SNAPPY",
    "XERIAL_HEADER",
    "ZSTD",
    "ZSTD_LEVEL",
    "CodecError",
    "OutputLimit",
    "UnknownCodec",
    "compress",
    "decompress",
    "xerial_header",
]

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}

# zstd at the Java client's default level (compression.zstd.level 3), lz4 with the fast
# compressor as Java at its default. gzip at level 1, not Java's 6: level 6 costs about 10 us
# per 1 KiB JSON record, half the masking path's budget, for an output about 20% smaller on JSON.
GZIP_LEVEL = 1
ZSTD_LEVEL = 3

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)  # what snappy-java writes
_XERIAL_BLOCK = 32 * 1024  # snappy-java's default block size, used by the Java producer
_I32 = struct.Struct(">i")
_STEP = 1 << 22  # decompressed bytes asked for at a time by the streaming decoders


class CodecError(ValueError):
    """The compressed payload is not valid data for its codec (truncated, corrupt, or with
    trailing bytes)."""


class OutputLimit(ValueError):
    """Decompressing would produce more than the allowed number of bytes."""


class UnknownCodec(ValueError):
    """The batch attributes name a codec that Kafka does not define (5-7)."""


def decompress(codec: int, data: bytes | memoryview, limit: int) -> bytes:
    """``data`` decompressed with ``codec``, at most ``limit`` bytes of it."""
    try:
        if codec == GZIP:
            return _gunzip(data, limit)
        if codec == SNAPPY:
            return _unsnappy(data, limit)
        if codec == LZ4:
            return _unlz4(data, limit)
        if codec == ZSTD:
            return _unzstd(data, limit)
    except (zlib.error, zstandard.ZstdError, RuntimeError, cramjam.DecompressionError) as exc:
        # lz4.frame raises RuntimeError for a malformed frame.
        raise CodecError(f"{CODEC_NAMES[codec]} payload does not decompress: {exc}") from None
    raise UnknownCodec(f"codec {codec} is not one of Kafka's (0-4)")


def compress(codec: int, data: bytes, xerial: bytes | None = XERIAL_HEADER) -> bytes:
    """``data`` compressed with ``codec``; snappy in the stream framing with the header
    ``xerial`` (the input's, from ``xerial_header``), or as one raw block if it is None."""
    if codec == GZIP:
        return zlib.compress(data, GZIP_LEVEL, wbits=31)
    if codec == SNAPPY:
        if xerial is None:
            return bytes(cramjam.snappy.compress_raw(data))
        parts = [xerial]
        view = memoryview(data)
        for start in range(0, len(data), _XERIAL_BLOCK):
            block = bytes(cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK]))
            parts.append(_I32.pack(len(block)))
            parts.append(block)
        return b"".join(parts)
    if codec == LZ4:
        return lz4.frame.compress(
            data,
            block_size=lz4.frame.BLOCKSIZE_MAX64KB,
            block_linked=False,
            content_checksum=False,
            store_size=False,
        )
    if codec == ZSTD:
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    raise UnknownCodec(f"codec {codec} is not one of Kafka's (1-4)")


def xerial_header(data: bytes | memoryview) -> bytes | None:
    """The 16-byte stream header of snappy-java framing if ``data`` has one, else None (raw)."""
    if len(data) >= 16 and bytes(data[:8]) == _XERIAL_MAGIC:
        return bytes(data[:16])
    return None


def _gunzip(data: bytes | memoryview, limit: int) -> bytes:
    out: list[bytes] = []
    total = 0
    rest: bytes | memoryview = data
    while True:
        d = zlib.decompressobj(wbits=31)
        chunk = d.decompress(rest, limit - total + 1)
        total += len(chunk)
        if total > limit:
            raise OutputLimit(f"gzip payload inflates beyond {limit} bytes")
        if not d.eof:
            raise CodecError("gzip payload is truncated")
        out.append(chunk)
        rest = d.unused_data
        if not rest:
            return b"".join(out)


def _unsnappy(data: bytes | memoryview, limit: int) -> bytes:
    if xerial_header(data) is None:
        _check_raw_length(data, 0, len(data), limit)
        return bytes(cramjam.snappy.decompress_raw(data))
    view = memoryview(data)
    out: list[bytes] = []
    total, pos, n = 0, 16, len(view)
    while pos < n:
        if pos + 4 > n:
            raise CodecError("snappy block length is truncated")
        (size,) = _I32.unpack_from(view, pos)
        pos += 4
        if size < 0 or pos + size > n:
            raise CodecError(f"snappy block of {size} bytes overruns the payload")
        total += _check_raw_length(view, pos, pos + size, limit - total)
        out.append(bytes(cramjam.snappy.decompress_raw(view[pos : pos + size])))
        pos += size
    return b"".join(out)


def _check_raw_length(data: bytes | memoryview, pos: int, end: int, limit: int) -> int:
    """The uncompressed length a raw snappy block declares (a varint at its start): refused
    before decompressing if it is over ``limit``."""
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 28:
            raise CodecError("snappy block has no valid length")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    if value > limit:
        raise OutputLimit(f"snappy payload declares {value} bytes, more than {limit}")
    return value


def _unlz4(data: bytes | memoryview, limit: int) -> bytes:
    d = lz4.frame.LZ4FrameDecompressor()
    out: list[bytes] = []
    total = 0
    chunk = d.decompress(data, max_length=_STEP)
    while True:
        total += len(chunk)
        if total > limit:
            raise OutputLimit(f"lz4 payload inflates beyond {limit} bytes")
        out.append(chunk)
        if d.eof:
            break
        if d.needs_input:
            raise CodecError("lz4 frame is truncated")
        chunk = d.decompress(b"", max_length=_STEP)
    if d.unused_data:
        # The Java reader stops at the end of the first frame: bytes after it are not records.
        raise CodecError("lz4 payload has bytes after its frame")
    return b"".join(out)


def _unzstd(data: bytes | memoryview, limit: int) -> bytes:
    _check_zstd_frames(data)
    out: list[bytes] = []
    total = 0
    reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
    with reader:
        while True:
            chunk = reader.read(_STEP)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise OutputLimit(f"zstd payload inflates beyond {limit} bytes")
            out.append(chunk)
    return b"".join(out)


_ZSTD_MAGIC = 0xFD2FB528
_LE32 = struct.Struct("<I")
_DID_SIZE = (0, 1, 2, 4)
_FCS_SIZE = (0, 2, 4, 8)


def _check_zstd_frames(data: bytes | memoryview) -> None:
    """Refuse a zstd payload whose frames are truncated or followed by other bytes.

    The streaming decoder returns what it could decode from a truncated frame without an
    error, so the frame structure is walked first: headers and block headers only, no
    decompression (one step per block of up to 128 KiB of output).
    """
    view = memoryview(data)
    pos, n = 0, len(view)
    if n == 0:
        raise CodecError("zstd payload is empty")
    while pos < n:
        if pos + 4 > n:
            raise CodecError("zstd payload has bytes after its frames")
        (magic,) = _LE32.unpack_from(view, pos)
        pos += 4
        if magic & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame
            if pos + 4 > n:
                raise CodecError("zstd skippable frame is truncated")
            (size,) = _LE32.unpack_from(view, pos)
            pos += 4 + size
            continue
        if magic != _ZSTD_MAGIC:
            raise CodecError("zstd payload has bytes after its frames")
        if pos >= n:
            raise CodecError("zstd frame header is truncated")
        fhd = view[pos]
        single_segment = (fhd >> 5) & 1
        fcs_flag = fhd >> 6
        fcs = _FCS_SIZE[fcs_flag] if fcs_flag or not single_segment else 1
        pos += 1 + (0 if single_segment else 1) + _DID_SIZE[fhd & 3] + fcs
        while True:
            if pos + 3 > n:
                raise CodecError("zstd frame is truncated")
            header = view[pos] | view[pos + 1] << 8 | view[pos + 2] << 16
            pos += 3
            kind = (header >> 1) & 3
            if kind == 3:
                raise CodecError("zstd block of reserved type")
            pos += 1 if kind == 1 else header >> 3
            if header & 1:
                break
        if fhd & 4:  # content checksum
            pos += 4
    if pos != n:
        raise CodecError("zstd frame is truncated")
