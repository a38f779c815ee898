"""Record-batch rewriting speed, per codec, on one core: MB/s of 1 KiB record values.

    ~/.cache/gatekeeper/venv/bin/python bench/batches_micro.py [--records 500] [--seconds 2]

For each codec a batch of ``--records`` records with 1 KiB JSON values (compressible as real
JSON is) is rewritten by ``gatekeeper.kafka.batches.rewrite`` over and over for about
``--seconds``. Two callbacks:

- ``change``: returns a value of the same size with one byte changed, so every record is
  re-encoded and the batch recompressed (decode + re-encode; the callback does no other work);
- ``keep``: returns None (decode, CRC check and a look at every record; the batch is forwarded
  as its original bytes).

MB/s counts record values (records x 1024 bytes), not the batch's compressed size. A
benchmark, not a test: the numbers mean something only beside each other on one machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gatekeeper.kafka.batches import Record, build_batch, rewrite  # noqa: E402
from gatekeeper.kafka.compression import CODEC_NAMES  # noqa: E402

VALUE_SIZE = 1024


def _value(rng: random.Random) -> bytes:
    doc = {
        "id": rng.randrange(1 << 40),
        "customer": {"name": f"customer {rng.randrange(10**6)}", "email": f"user{rng.randrange(10**6)}@example.com"},
        "card": f"4111 1111 1111 {rng.randrange(10**4):04d}",
        "items": [{"sku": f"SKU-{rng.randrange(10**6):06d}", "qty": rng.randrange(1, 9), "price": round(rng.random() * 100, 2)} for _ in range(12)],
    }
    raw = json.dumps(doc).encode()[: VALUE_SIZE - 2]
    return raw.ljust(VALUE_SIZE, b" ")


def _change(record: Record) -> tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]:
    value = record.value or b""
    return record.key, value[:-1] + b"#", record.headers


def _keep(record: Record) -> None:
    return None


def _measure(batch: bytes, fn, seconds: float) -> tuple[float, int]:
    rewrite(batch, fn, complete_only=True, max_decompressed=64 << 20)  # warm up
    rounds, start = 0, time.perf_counter()
    while True:
        rewrite(batch, fn, complete_only=True, max_decompressed=64 << 20)
        rounds += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / rounds, rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    rng = random.Random(7)
    records = [
        Record(f"key-{i}".encode(), _value(rng), (("trace", b"%016x" % rng.randrange(1 << 64)),), i, i)
        for i in range(args.records)
    ]
    payload = args.records * VALUE_SIZE
    print(f"{args.records} records x {VALUE_SIZE} B values per batch, {payload / 1e6:.3f} MB of values")
    print(f"{'codec':8} {'batch bytes':>12} {'change MB/s':>12} {'us/record':>10} {'keep MB/s':>10} {'us/record':>10}")
    for codec, name in CODEC_NAMES.items():
        batch = build_batch(records, codec=codec, producer_id=1, producer_epoch=0, base_sequence=0)
        changed, _ = _measure(batch, _change, args.seconds)
        kept, _ = _measure(batch, _keep, args.seconds)
        print(
            f"{name:8} {len(batch):12d} {payload / changed / 1e6:12.1f} {changed / args.records * 1e6:10.2f}"
            f" {payload / kept / 1e6:10.1f} {kept / args.records * 1e6:10.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
