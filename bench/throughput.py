"""Throughput and produce latency through Gatekeeper as a ratio of direct-to-broker.

    ~/.cache/gatekeeper/venv/bin/python bench/throughput.py [--records N] [--rounds R] [--quick]

Starts a real single-node Kafka broker and Gatekeeper in front of it (a real ``twistd -n
gatekeeper`` process), then runs Kafka's own ProducerPerformance and ConsumerPerformance tools
with 1 KiB records, once direct and once through Gatekeeper per round, alternating which goes
first. Each produce writes a fresh 3-partition topic; the consume that follows reads exactly
what that path just produced, through the same path. Prints every round and the medians, with
the ratios Gatekeeper/direct (1.0 = no cost) and Gatekeeper's CPU seconds per 1,000 records.
This is a benchmark, not a test: the machine is noisy, so only ratios measured in one run mean
anything.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs

from gatekeeper.testing.broker import KafkaBroker
from gatekeeper.testing.gateway import TwistdGateway
from gatekeeper.testing.javatools import consumer_perf, producer_perf

RECORD_SIZE = 1024


@attrs.frozen
class Run:
    path: str  # "direct" | "gatekeeper"
    round: int
    produce_rps: float
    produce_mbps: float
    avg_latency_ms: float
    p99_latency_ms: float
    consume_rps: float
    consume_mbps: float
    gk_cpu_produce_s: float
    gk_cpu_consume_s: float


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def _one(path: str, rnd: int, bootstrap: str, broker: KafkaBroker, gk_pid: int, records: int) -> Run:
    topic = f"bench-{path}-{rnd}"
    broker.create_topic(topic, partitions=3)
    c0 = _cpu_seconds(gk_pid)
    p = producer_perf(bootstrap, topic, num_records=records, record_size=RECORD_SIZE, properties={"acks": "all"})
    c1 = _cpu_seconds(gk_pid)
    c = consumer_perf(bootstrap, topic, num_records=records)
    c2 = _cpu_seconds(gk_pid)
    gk = path == "gatekeeper"
    return Run(path, rnd, p.records_per_sec, p.mb_per_sec, p.avg_latency_ms, p.p99_ms,
               c.records_per_sec, c.mb_per_sec, c1 - c0 if gk else 0.0, c2 - c1 if gk else 0.0)


def _row(r: Run, records: int) -> str:
    cpu = ""
    if r.path == "gatekeeper":
        cpu = f"  gk cpu/1k rec: produce {1000 * r.gk_cpu_produce_s / records:.3f}s consume {1000 * r.gk_cpu_consume_s / records:.3f}s"
    return (f"  round {r.round} {r.path:10}  produce {r.produce_rps:9.0f} rec/s {r.produce_mbps:7.1f} MB/s"
            f"  latency avg {r.avg_latency_ms:7.1f} ms p99 {r.p99_latency_ms:6.0f} ms"
            f"  consume {r.consume_rps:9.0f} rec/s {r.consume_mbps:7.1f} MB/s{cpu}")


def _summary(runs: list[Run]) -> dict[str, Any]:
    def med(path: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs if r.path == path)

    out: dict[str, Any] = {}
    for field in ("produce_rps", "produce_mbps", "consume_rps", "consume_mbps", "avg_latency_ms", "p99_latency_ms"):
        d, g = med("direct", field), med("gatekeeper", field)
        out[field] = {"direct": d, "gatekeeper": g, "ratio": g / d if d else float("nan")}
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=300_000, help="records per produce/consume run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 20,000 records, 1 round")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    records, rounds = (20_000, 1) if args.quick else (args.records, args.rounds)
    runs: list[Run] = []
    print(f"throughput: {rounds} round(s) of {records} records of {RECORD_SIZE} B, acks=all, 3 partitions", flush=True)
    with tempfile.TemporaryDirectory(prefix="gk-bench-") as work, KafkaBroker() as broker, \
            TwistdGateway(Path(work), broker.bootstrap) as gw:
        assert gw.proc is not None
        # Warm the broker's JIT so round 1 does not favour whichever path runs second.
        _one("direct", 0, broker.bootstrap, broker, gw.proc.pid, min(records, 50_000))
        for rnd in range(1, rounds + 1):
            order = [("direct", broker.bootstrap), ("gatekeeper", gw.bootstrap)]
            if rnd % 2 == 0:
                order.reverse()
            for path, bootstrap in order:
                run = _one(path, rnd, bootstrap, broker, gw.proc.pid, records)
                runs.append(run)
                print(_row(run, records), flush=True)
        problems = [ln for ln in gw.log_path.read_text().splitlines() if "closing connection" in ln or "Traceback" in ln]
    summary = _summary(runs)
    print("\nmedians (ratio = gatekeeper / direct; throughput target >= 0.95, latency lower is better)")
    for field, v in summary.items():
        print(f"  {field:16} direct {v['direct']:10.1f}  gatekeeper {v['gatekeeper']:10.1f}  ratio {v['ratio']:.3f}")
    gk = [r for r in runs if r.path == "gatekeeper"]
    print(f"  gatekeeper CPU per 1,000 records: produce {1000 * statistics.median(r.gk_cpu_produce_s for r in gk) / records:.3f}s, "
          f"consume {1000 * statistics.median(r.gk_cpu_consume_s for r in gk) / records:.3f}s")
    if problems:
        print(f"\ngateway log had {len(problems)} problem line(s), first: {problems[0]}")
    if args.json:
        args.json.write_text(json.dumps({"records": records, "runs": [attrs.asdict(r) for r in runs], "summary": summary}, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
