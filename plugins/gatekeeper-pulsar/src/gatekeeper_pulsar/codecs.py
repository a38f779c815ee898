"""The compression codecs of Pulsar message payloads, with decompression bounded in size.

Pure functions over bytes. Pulsar compresses a whole payload (one message, or a whole batch)
and writes its size before compression in ``MessageMetadata.uncompressed_size``, so every
codec is read as one block of exactly that size; what each is on the wire, as the C++ and the
Java clients write it:

- LZ4 (1): one raw LZ4 *block* (no frame, no stored size): ``LZ4_compress_default``.
- ZLIB (2): one zlib stream (RFC 1950), finished (final block and Adler-32) as the C++ client's
  ``compress()`` writes it, or only sync-flushed as the Java client's ``Deflater`` writes it;
  written back finished, which both read.
- ZSTD (3): one zstd frame.
- SNAPPY (4): one raw snappy block (its uncompressed length as a varint in front).

``decompress`` refuses a declared size over the limit before it inflates anything (a
decompression bomb raises :class:`OutputLimit`), and data that does not inflate to exactly the
declared size, or has bytes after its block, raises :class:`CodecError`.
"""

from __future__ import annotations

import zlib

import cramjam
import lz4.block
import zstandard

__all__ = ["LZ4", "NONE", "SNAPPY", "ZLIB", "ZSTD", "CodecError", "OutputLimit", "compress", "decompress"]

NONE, LZ4, ZLIB, ZSTD, SNAPPY = 0, 1, 2, 3, 4
NAMES = {NONE: "NONE", LZ4: "LZ4", ZLIB: "ZLIB", ZSTD: "ZSTD", SNAPPY: "SNAPPY"}
# zstd at the Java client's level (3); zlib at level 1 (its default, 6, costs several times
# more CPU per masked byte for an output a little smaller on JSON).
ZSTD_LEVEL = 3
ZLIB_LEVEL = 1


class CodecError(ValueError):
    """The compressed payload is not valid data for its codec, or not of its declared size."""


class OutputLimit(ValueError):
    """The payload declares (or inflates to) more bytes than the limit allows."""


def decompress(codec: int, data: bytes, size: int, limit: int) -> bytes:
    """``data`` decompressed with ``codec``; it must inflate to exactly ``size`` bytes, and
    ``size`` may not exceed ``limit``."""
    name = NAMES.get(codec)
    if name is None:
        raise CodecError(f"compression {codec} is not one of Pulsar's (0-4)")
    if codec == NONE:
        return data
    if size > limit:
        raise OutputLimit(f"the {name} payload declares {size} bytes uncompressed, more than "
                          f"limits.max_decompressed_bytes ({limit})")
    try:
        if codec == LZ4:
            # The output buffer is allocated at the declared size: a size no LZ4 block of this
            # length can reach (at most 255 bytes out per byte in) is refused before it is.
            if size > 256 * len(data) + 64:
                raise CodecError(f"an LZ4 block of {len(data)} bytes cannot hold {size}")
            out = lz4.block.decompress(data, uncompressed_size=size)
        elif codec == ZLIB:
            d = zlib.decompressobj()
            out = d.decompress(data, size + 1)
            # The Java client's stream is sync-flushed, never finished (no final block, no
            # Adler-32): complete when it inflates to the declared size with no input left.
            if d.unused_data or d.unconsumed_tail:
                raise CodecError("the ZLIB stream is longer than declared or has bytes after it")
        elif codec == ZSTD:
            # The frame's own content size is allocated before anything inflates: checked first.
            declared = zstandard.frame_content_size(data)
            if declared not in (-1, size):
                raise CodecError(f"the ZSTD frame declares {declared} bytes, the metadata {size}")
            out = zstandard.ZstdDecompressor().decompress(data, max_output_size=size, allow_extra_data=False)
        else:
            declared = _snappy_length(data)
            if declared != size:
                raise CodecError(f"the SNAPPY block declares {declared} bytes, the metadata {size}")
            if size > 22 * len(data) + 64:  # at most 64 bytes out per 3-byte copy: refused before allocating
                raise CodecError(f"a SNAPPY block of {len(data)} bytes cannot hold {size}")
            out = bytes(cramjam.snappy.decompress_raw(data))
    except (zlib.error, zstandard.ZstdError, lz4.block.LZ4BlockError, cramjam.DecompressionError) as e:
        raise CodecError(f"the {name} payload does not decompress: {e}") from None
    if len(out) != size:
        raise CodecError(f"the {name} payload inflates to {len(out)} bytes, the metadata says {size}")
    return bytes(out)


def compress(codec: int, data: bytes) -> bytes:
    """``data`` compressed with ``codec``, as the clients write it."""
    if codec == NONE:
        return data
    if codec == LZ4:
        return bytes(lz4.block.compress(data, store_size=False))
    if codec == ZLIB:
        return zlib.compress(data, ZLIB_LEVEL)
    if codec == ZSTD:
        return bytes(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data))
    if codec == SNAPPY:
        return bytes(cramjam.snappy.compress_raw(data))
    raise CodecError(f"compression {codec} is not one of Pulsar's (0-4)")


def _snappy_length(data: bytes) -> int:
    value, shift, pos = 0, 0, 0
    while True:
        if pos >= len(data) or shift > 28:
            raise CodecError("the SNAPPY block has no valid length")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value
        shift += 7
