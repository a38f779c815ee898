"""The codecs of record batches: round trips, the framings other clients write, bounded output,
and refusal of truncated data or bytes after the end."""

from __future__ import annotations

import gzip
import os

import lz4.frame
import pytest
import zstandard
from kafka.codec import snappy_encode

from gatekeeper.kafka.compression import (
    GZIP,
    LZ4,
    SNAPPY,
    ZSTD,
    CodecError,
    OutputLimit,
    UnknownCodec,
    compress,
    decompress,
    xerial_header,
)

DATA = b'{"name": "a customer", "card": "4111 1111 1111 1111"}' * 3000 + os.urandom(5000)
LIMIT = 1 << 24


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
@pytest.mark.parametrize("data", [DATA, b"", b"x"])
def test_round_trip(codec: int, data: bytes) -> None:
    assert decompress(codec, compress(codec, data), LIMIT) == data
    assert decompress(codec, memoryview(compress(codec, data)), LIMIT) == data


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
def test_output_is_bounded(codec: int) -> None:
    bomb = compress(codec, bytes(8 << 20))
    assert len(bomb) < 400_000
    with pytest.raises(OutputLimit):
        decompress(codec, bomb, 1 << 20)
    assert len(decompress(codec, bomb, 8 << 20)) == 8 << 20


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
def test_truncated_or_trailing_bytes_are_refused(codec: int) -> None:
    payload = compress(codec, DATA)
    for bad in (payload[:-1], payload[: len(payload) // 2], payload + b"\x00\x01\x02\x03junk"):
        with pytest.raises(CodecError):
            decompress(codec, bad, LIMIT)


def test_gzip_members_concatenated_are_read() -> None:
    assert decompress(GZIP, gzip.compress(b"one ") + gzip.compress(b"two"), LIMIT) == b"one two"


def test_snappy_framings_of_other_writers() -> None:
    xerial = snappy_encode(DATA, xerial_compatible=True, xerial_blocksize=4096)
    raw = snappy_encode(DATA, xerial_compatible=False)
    assert xerial_header(xerial) == xerial[:16] and xerial_header(raw) is None
    assert decompress(SNAPPY, xerial, LIMIT) == DATA
    assert decompress(SNAPPY, raw, LIMIT) == DATA
    assert xerial_header(compress(SNAPPY, DATA, xerial[:16])) == xerial[:16]
    assert xerial_header(compress(SNAPPY, DATA, None)) is None
    # A block length that overruns the payload, a negative one.
    with pytest.raises(CodecError):
        decompress(SNAPPY, xerial[:16] + b"\x00\x10\x00\x00abc", LIMIT)
    with pytest.raises(CodecError):
        decompress(SNAPPY, xerial[:16] + b"\xff\xff\xff\xf0abc", LIMIT)


def test_raw_snappy_declaring_a_huge_length_is_refused_before_decompressing() -> None:
    declared = b"\xff\xff\xff\xff\x0f"  # 4 GiB uncompressed, says the varint
    with pytest.raises(OutputLimit, match="declares"):
        decompress(SNAPPY, declared + b"\x00" * 10, LIMIT)


def test_lz4_frames_of_other_writers() -> None:
    linked = lz4.frame.compress(DATA, block_linked=True, store_size=True, content_checksum=True)
    assert decompress(LZ4, linked, LIMIT) == DATA
    with pytest.raises(CodecError, match="after its frame"):
        decompress(LZ4, linked + linked, LIMIT)


def test_zstd_frames_of_other_writers() -> None:
    streamed = zstandard.ZstdCompressor(write_content_size=False, write_checksum=True)
    obj = streamed.compressobj()
    no_size = obj.compress(DATA) + obj.flush()
    assert zstandard.frame_content_size(no_size) == -1
    assert decompress(ZSTD, no_size, LIMIT) == DATA
    two = no_size + compress(ZSTD, b"more")
    assert decompress(ZSTD, two, LIMIT) == DATA + b"more"
    skippable = b"\x50\x2a\x4d\x18\x03\x00\x00\x00abc"
    assert decompress(ZSTD, skippable + no_size, LIMIT) == DATA
    with pytest.raises(CodecError):
        decompress(ZSTD, b"", LIMIT)


def test_unknown_codec() -> None:
    with pytest.raises(UnknownCodec):
        decompress(5, b"abc", LIMIT)
    with pytest.raises(UnknownCodec):
        compress(7, b"abc")
