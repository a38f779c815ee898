"""Masking throughput through Gatekeeper: masked MB/s per core, and the ratio to unmasked traffic.

    ~/.cache/gatekeeper/venv/bin/python bench/masking.py [--records N] [--rounds R]
        [--compression lz4] [--json FILE] [--quick]

Starts a real single-node Kafka broker and a real ``twistd -n gatekeeper`` in front of it with
the policy in ``bench/policy_masking/``: records produced to ``pmask.*`` are masked before
the broker stores them, records consumed from ``cmask.*`` are masked before the client gets
them, and ``plain.*`` is not masked at all. The records are 1 KiB JSON documents with three
fields to mask (a card number, an SSN, an e-mail address), produced by Kafka's own
ProducerPerformance tool from a payload file and read by ConsumerPerformance.

Each round measures, alternating which goes first:
  produce: N records through Gatekeeper to ``pmask.rK`` (masked) and to ``plain.rK`` (not);
  consume: N records through Gatekeeper from ``cmask.rK`` (written raw, straight to the broker,
           not measured; masked on the way out) and from ``plain.rK`` (not masked).
Prints, per direction: the tool's MB/s for masked and unmasked traffic and their ratio, and the
masked MB/s per core of Gatekeeper CPU (record bytes / Gatekeeper's CPU seconds while the tool
ran) — the median over rounds. During the masked consume a probe on another connection sends a
Metadata request every 20 ms and the report gives its p50/p99 latency (against the same probe
during the unmasked consume): how much a large masked Fetch response delays other clients.

This is a benchmark, not a test: only ratios measured in one run on one machine mean anything.
Exit status 0 ok, 1 Gatekeeper logged problems, 2 the run failed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput import (  # noqa: E402
    BenchError,
    GatewayWatch,
    _step,
    format_table,
    is_problem,
    measured,
    metric_problems,
)
from harness.broker import KafkaBroker  # noqa: E402
from harness.gateway import TwistdGateway  # noqa: E402
from harness.javatools import consumer_perf, producer_perf  # noqa: E402

POLICY = Path(__file__).parent / "policy_masking"
RECORD_SIZE = 1024
PARTITIONS = 3
PAYLOADS = 200


def payload(i: int, rng: random.Random) -> str:
    """A 1 KiB JSON record with three fields to mask and filler that is left alone."""
    doc: dict[str, Any] = {
        "order_id": i, "card": "4111 1111 1111 1111", "ssn": "123-45-6789",
        "customer": {"email": f"user{i}@example.com", "name": f"Customer {i}", "tier": "gold"},
        "items": [{"sku": f"SKU-{rng.randrange(10**6):06d}", "qty": rng.randrange(1, 9), "price": rng.randrange(100, 99999) / 100}
                  for _ in range(6)],
        "note": "",
    }
    text = json.dumps(doc)
    doc["note"] = "x" * max(0, RECORD_SIZE - len(text))
    return json.dumps(doc)


def write_payloads(path: Path) -> None:
    rng = random.Random(7)
    path.write_text("\n".join(payload(i, rng) for i in range(PAYLOADS)))


class Probe(threading.Thread):
    """Metadata requests on a connection of their own every 20 ms; their latencies."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        from tests.integration.rawkafka import RawKafka

        with RawKafka(self.bootstrap, client_id="probe") as conn:
            while not self.stop.is_set():
                start = time.perf_counter()
                conn.request(3, 12, topics=[], allow_auto_topic_creation=False)
                self.latencies.append(time.perf_counter() - start)
                self.stop.wait(0.02)

    def result(self) -> tuple[float, float]:
        self.stop.set()
        self.join(10)
        ms = sorted(1000 * x for x in self.latencies) or [0.0]
        return ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def run(args: argparse.Namespace, workdir: Path) -> int:
    payloads = workdir / "payloads.txt"
    write_payloads(payloads)
    key = workdir / "hash.key"
    key.write_bytes(b"bench-key-" * 4)
    key.chmod(0o600)
    broker = KafkaBroker()
    gateway: TwistdGateway | None = None
    try:
        _step("starting the Kafka broker")
        broker.start()
        extra = {"policy": {"engine": "embedded", "policies": str(POLICY)}, "masking": {"hash_key_file": str(key)}}
        gateway = TwistdGateway(workdir / "gk", broker.bootstrap, level="info", extra=extra).start()
        watch = GatewayWatch(gateway)
        props = {"acks": "all", "compression.type": args.compression, "linger.ms": "5", "batch.size": "262144"}
        perf_args = ["--payload-file", str(payloads)]
        results: dict[str, list[dict[str, float]]] = {"produce": [], "consume": []}
        for rnd in range(0, args.rounds + 1):  # round 0 warms up and is not reported
            n = args.records if rnd else max(2000, args.records // 10)
            for t in (f"pmask.r{rnd}", f"cmask.r{rnd}", f"plain.r{rnd}"):
                broker.create_topic(t, partitions=PARTITIONS)
            _step(f"round {rnd}{' (warm-up)' if not rnd else ''}: {n:,} records")
            # The raw records that the masked consume reads: written straight to the broker.
            producer_perf(broker.bootstrap, f"cmask.r{rnd}", num_records=n, record_size=None, properties=props, extra_args=perf_args)
            order = ("masked", "plain") if rnd % 2 else ("plain", "masked")
            row: dict[str, dict[str, float]] = {"produce": {}, "consume": {}}
            for kind in order:
                topic = f"pmask.r{rnd}" if kind == "masked" else f"plain.r{rnd}"
                res, cost = measured(f"produce {kind}", watch, lambda topic=topic, n=n: producer_perf(
                    gateway.bootstrap, topic, num_records=n, record_size=None, properties=props, extra_args=perf_args))  # type: ignore[union-attr]
                row["produce"][kind] = res.mb_per_sec
                row["produce"][f"{kind}_cpu"] = cost.gk_cpu_s
            for kind in order:
                topic = f"cmask.r{rnd}" if kind == "masked" else f"plain.r{rnd}"
                probe = Probe(gateway.bootstrap)
                probe.start()
                res, cost = measured(f"consume {kind}", watch, lambda topic=topic, n=n: consumer_perf(
                    gateway.bootstrap, topic, num_records=n, group=f"perf-{topic}"))  # type: ignore[union-attr]
                p50, p99 = probe.result()
                row["consume"][kind] = res.fetch_mb_per_sec
                row["consume"][f"{kind}_cpu"] = cost.gk_cpu_s
                row["consume"][f"{kind}_probe_p50"], row["consume"][f"{kind}_probe_p99"] = p50, p99
            mb = n * RECORD_SIZE / 1e6
            for direction in ("produce", "consume"):
                r = row[direction]
                r["ratio"] = r["masked"] / r["plain"] if r["plain"] else 0.0
                r["masked_mb_per_core"] = mb / r["masked_cpu"] if r["masked_cpu"] else 0.0
                r["plain_mb_per_core"] = mb / r["plain_cpu"] if r["plain_cpu"] else 0.0
                if rnd:
                    results[direction].append(r)
            _step("  " + "; ".join(f"{d}: masked {row[d]['masked']:.1f} MB/s, plain {row[d]['plain']:.1f} MB/s, "
                                   f"{row[d]['masked_mb_per_core']:.1f} MB/s per core masked" for d in ("produce", "consume")))
        problems = [ln for ln in gateway.log_path.read_text(errors="replace").splitlines() if is_problem(ln)]
        problems += metric_problems(gateway)
        masked_records = gateway.metric("gatekeeper_masked_records_total")
    finally:
        if gateway is not None:
            gateway.stop()
        broker.stop()
    summary = {}
    rows = []
    for direction, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        summary[direction] = med
        rows.append([direction, f"{med['plain']:.1f}", f"{med['masked']:.1f}", f"{med['ratio']:.3f}",
                     f"{med['plain_mb_per_core']:.1f}", f"{med['masked_mb_per_core']:.1f}"])
    print()
    print(f"Masking, {args.records:,} records of 1 KiB JSON (3 fields masked), {args.compression}, median of {args.rounds} rounds")
    print(format_table(["direction", "plain MB/s", "masked MB/s", "masked/plain", "plain MB/s per GK core",
                        "masked MB/s per GK core"], rows))
    c = summary["consume"]
    print(f"\n  other clients during consume (Metadata probe): plain p50 {c['plain_probe_p50']:.1f} ms p99 {c['plain_probe_p99']:.1f} ms; "
          f"masked p50 {c['masked_probe_p50']:.1f} ms p99 {c['masked_probe_p99']:.1f} ms")
    print(f"  records masked (Gatekeeper's counter): {masked_records:,.0f}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if problems:
        print("\nGatekeeper reported problems:")
        for p in problems[:20]:
            print("  " + p)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compression", default="lz4", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true", help="20,000 records, 1 round")
    args = ap.parse_args(argv)
    if args.quick:
        args.records, args.rounds = 20_000, 1
    with tempfile.TemporaryDirectory(prefix="gk-bench-masking-") as tmp:
        try:
            return run(args, Path(tmp))
        except (BenchError, Exception) as e:
            print(f"benchmark failed: {e}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
