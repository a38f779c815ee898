"""Record-batch rewriting speed, per codec, on one core: MB/s of 1 KiB record values.

    ~/.cache/gatekeeper/venv/bin/python bench/batches_micro.py [--records 500] [--seconds 2]

For each codec a batch of ``--records`` records with 1 KiB JSON values (compressible as real
JSON is) is rewritten by ``gatekeeper.kafka.batches.rewrite`` over and over for about
``--seconds``. Two callbacks:

- ``change``: returns a value of the same size with one byte changed, so every record is
  re-encoded and the batch recompressed (decode + re-encode; the callback does no other work);
- ``keep``: returns None (decode, CRC check and a look at every record; the batch is forwarded
  as its original bytes);
- ``json``: what a masker of one JSON field does on top of ``change`` (``json.loads``, replace
  the card number, ``json.dumps``): an idea of the whole masking path.

``--gzip-level`` sets ``compression.GZIP_LEVEL`` (1 by default; Java's default is 6).

MB/s counts record values (records x 1024 bytes), not the batch's compressed size; the time
of a batch is the median over the run. A benchmark, not a test: the numbers mean something
only beside each other on one machine.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gatekeeper.kafka import compression  # noqa: E402
from gatekeeper.kafka.batches import Record, build_batch, rewrite  # noqa: E402
from gatekeeper.kafka.compression import CODEC_NAMES  # noqa: E402

VALUE_SIZE = 1024


def _value(rng: random.Random) -> bytes:
    """A JSON document of exactly VALUE_SIZE bytes."""
    doc = {
        "id": rng.randrange(1 << 40),
        "customer": {"name": f"customer {rng.randrange(10**6)}", "email": f"user{rng.randrange(10**6)}@example.com"},
        "card": f"4111 1111 1111 {rng.randrange(10**4):04d}",
        "items": [{"sku": f"SKU-{rng.randrange(10**6):06d}", "qty": rng.randrange(1, 9), "price": round(rng.random() * 100, 2)} for _ in range(8)],
        "note": "",
    }
    doc["note"] = "x" * (VALUE_SIZE - len(json.dumps(doc).encode()))
    raw = json.dumps(doc).encode()
    assert len(raw) == VALUE_SIZE
    return raw


def _change(record: Record) -> tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]:
    value = record.value or b""
    return record.key, value[:-2] + b"#}", record.headers


def _keep(record: Record) -> None:
    return None


def _json(record: Record) -> tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]:
    doc = json.loads(record.value or b"{}")
    doc["card"] = "**** **** **** " + doc["card"][-4:]
    return record.key, json.dumps(doc).encode(), record.headers


def _measure(batch: bytes, fn: Any, seconds: float) -> float:
    """The median time of one rewrite of ``batch`` over about ``seconds`` (the median, not the
    mean: other processes on the machine show as outliers)."""
    rewrite(batch, fn, complete_only=True, max_decompressed=64 << 20)  # warm up
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = time.perf_counter()
        rewrite(batch, fn, complete_only=True, max_decompressed=64 << 20)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--gzip-level", type=int, default=compression.GZIP_LEVEL)
    args = parser.parse_args()
    compression.GZIP_LEVEL = args.gzip_level
    rng = random.Random(7)
    records = [
        Record(f"key-{i}".encode(), _value(rng), (("trace", b"%016x" % rng.randrange(1 << 64)),), i, i)
        for i in range(args.records)
    ]
    payload = args.records * VALUE_SIZE
    print(f"{args.records} records x {VALUE_SIZE} B JSON values per batch, gzip level {args.gzip_level}")
    print("MB/s of record values (us per record)")
    print(f"{'codec':8} {'batch bytes':>12} {'change':>16} {'keep':>16} {'json':>16}")
    for codec, name in CODEC_NAMES.items():
        batch = build_batch(records, codec=codec, producer_id=1, producer_epoch=0, base_sequence=0)
        cells = []
        for fn in (_change, _keep, _json):
            per_batch = _measure(batch, fn, args.seconds)
            cells.append(f"{payload / per_batch / 1e6:7.1f} ({per_batch / args.records * 1e6:5.2f})")
        print(f"{name:8} {len(batch):12d} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
