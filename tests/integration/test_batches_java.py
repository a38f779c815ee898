"""Rewritten record batches read by Kafka's own Java record code (no broker needed).

Batches written by the Java client's builder and compressors (gzip, snappy-java's framing,
Kafka's LZ4 frame, zstd-jni's streamed frames) are rewritten by ``gatekeeper.kafka.batches``
and read back by ``tests/integration/java/BatchCheck.java``: every batch validates (CRC,
sizes), every record decompresses and reads as the callback left it, every other field is the
original's. The same for batches our builder writes (raw snappy among them).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import zstandard

from gatekeeper.kafka import compression
from gatekeeper.kafka.batches import Record, build_batch, rewrite
from harness import deps
from tests.integration.javaprobe import compile_java, log4j_config

pytestmark = pytest.mark.integration

SOURCE = Path(__file__).resolve().parent / "java" / "BatchCheck.java"
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def java(*args: str) -> str:
    classpath = f"{deps.kafka_classpath()}:{compile_java(SOURCE, 'BatchCheck')}"
    proc = subprocess.run(
        [deps.java_executable(), "-Xmx256m", "-XX:+UseSerialGC",
         f"-Dlog4j2.configurationFile={log4j_config()}", "-cp", classpath, "BatchCheck", *args],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def java_read(*files: Path) -> dict[str, list[dict[str, Any]]]:
    """What the Java reader makes of each file: batch lines and record lines, in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] = []
    for line in java("read", *map(str, files)).splitlines():
        item = json.loads(line)
        if "file" in item:
            current = out.setdefault(item["file"], [])
        else:
            current.append(item)
    return out


def mask(record: Record) -> Any:
    if record.offset_delta % 2:
        return None
    headers = record.headers + (("masked", b"1"),) if record.offset_delta % 4 == 0 else record.headers
    return record.key, None if record.value is None else b"****", headers


def expected(original: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Java reading of an original batch, with ``mask`` applied to it."""
    out = []
    base = None
    for item in original:
        if "batch" in item:
            base = item["batch"]["base_offset"]
            out.append(item)
            continue
        assert base is not None
        delta = item["offset"] - base
        item = dict(item)
        if delta % 2 == 0:
            item["value"] = None if item["value"] is None else b"****".hex()
            if delta % 4 == 0:
                item["headers"] = [*item["headers"], ["masked", b"1".hex()]]
        out.append(item)
    return out


def test_batches_the_java_client_writes_are_rewritten_as_it_reads_them(tmp_path: Path) -> None:
    java("write", str(tmp_path))
    originals = [tmp_path / f"{codec}.bin" for codec in CODECS]
    rewritten = []
    for path, codec in zip(originals, CODECS, strict=True):
        data = path.read_bytes()
        assert data[22] & 0x07 == CODECS.index(codec)
        if codec == "snappy":
            assert compression.xerial_header(data[61:]) is not None  # snappy-java's framing
        if codec == "zstd":
            assert zstandard.frame_content_size(data[61:]) == -1  # streamed: no content size
        result = rewrite(data, mask, complete_only=True, max_decompressed=1 << 24)
        assert (result.batches, result.records, result.changed) == (1, 50, 25)
        if codec == "snappy":
            assert compression.xerial_header(result.data[61:]) == data[61:77]
        out = tmp_path / f"{codec}.masked.bin"
        out.write_bytes(result.data)
        rewritten.append(out)
    read = java_read(*originals, *rewritten)
    for codec in CODECS:
        original = read[f"{codec}.bin"]
        assert original[0]["batch"]["codec"] == codec and len(original) == 51
        assert read[f"{codec}.masked.bin"] == expected(original)


def test_batches_we_build_and_rewrite_are_read_by_the_java_client(tmp_path: Path) -> None:
    records = [
        Record(b"k%d" % i if i % 3 else None, b"secret value %d " % i * 30 if i % 5 else None,
               (("h", b"v"), ("n", None)) if i % 2 else (), i, i * 7)
        for i in range(40)
    ]
    variants = {f"{c}": {"codec": i} for i, c in enumerate(CODECS)}
    variants["snappy-raw"] = {"codec": compression.SNAPPY, "snappy_framing": "raw"}
    files = []
    fetch = b""
    for name, options in variants.items():
        batch = build_batch(
            records, base_offset=500, partition_leader_epoch=2, base_timestamp=1_700_000_000_000,
            producer_id=77, producer_epoch=1, base_sequence=3, **options,
        )
        fetch += batch
        result = rewrite(batch, mask, complete_only=True, max_decompressed=1 << 24)
        assert result.changed == 20
        for suffix, data in (("bin", batch), ("masked.bin", result.data)):
            path = tmp_path / f"{name}.{suffix}"
            path.write_bytes(data)
            files.append(path)
    # A Fetch response cut in its last batch: the whole batches rewritten, the cut one dropped.
    cut = rewrite(fetch[:-10], mask, complete_only=False, max_decompressed=1 << 24)
    assert cut.batches == len(variants) - 1 and cut.dropped_tail == len(batch) - 10
    (tmp_path / "fetch.masked.bin").write_bytes(cut.data)
    read = java_read(*files, tmp_path / "fetch.masked.bin")
    for name in variants:
        original = read[f"{name}.bin"]
        assert len(original) == 41 and original[0]["batch"]["codec"] == name.split("-")[0]
        assert read[f"{name}.masked.bin"] == expected(original)
        assert b"secret".hex() not in json.dumps(read[f"{name}.masked.bin"][1::2])
    assert read["fetch.masked.bin"] == [
        line for name in list(variants)[:-1] for line in read[f"{name}.masked.bin"]
    ]
