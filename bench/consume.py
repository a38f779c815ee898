"""Consume only: Kafka's ConsumerPerformance direct and through one ``twistd gatekeeper``.

    ~/.cache/gatekeeper/venv/bin/python bench/consume.py [--records N] [--rounds R] [--audit]

Starts a real single-node broker, writes ``--records`` records of 1 KiB to a 3-partition topic
once (directly), then each round reads them all from the beginning with a new consumer group,
direct and through Gatekeeper (allow-all; with ``--audit``, with a file-sink audit trail, which
reads every Fetch answer's offsets), alternating which goes first. Prints per round and as
medians: records/s, the ratio Gatekeeper/direct (with its 95% interval from 6 rounds on,
``bench/stats.py``), Gatekeeper's CPU per 1,000 records split into user and kernel time, and the
share of the broker's bytes Gatekeeper moved in the kernel (``gatekeeper_spliced_bytes_total``).

Faster than ``bench/throughput.py`` for work on the Fetch path: nothing is produced between
rounds. To compare two versions of Gatekeeper, run it once with each on ``PYTHONPATH`` (the
twistd child inherits it) and compare the CPU figures of runs made back to back: only figures of
one run, or of runs close together on an idle machine, mean anything.
Exit status: 0 ok; 2 the run failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stats import median_interval  # noqa: E402
from bench.throughput import audit_extra  # noqa: E402
from harness.broker import KafkaBroker  # noqa: E402
from harness.gateway import TwistdGateway  # noqa: E402
from harness.javatools import consumer_perf, producer_perf  # noqa: E402

TOPIC = "bench-consume"


def _times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--audit", action="store_true", help="Gatekeeper with a file-sink audit trail")
    args = ap.parse_args(argv)
    broker = KafkaBroker()
    broker.start()
    try:
        broker.create_topic(TOPIC, partitions=3)
        producer_perf(broker.bootstrap, TOPIC, num_records=args.records, record_size=1024,
                      properties={"acks": "all"})
        work = Path(tempfile.mkdtemp(prefix="gk-consume-"))
        with TwistdGateway(work, broker.bootstrap, extra=audit_extra(work) if args.audit else None) as gw:
            assert gw.proc is not None
            consumer_perf(gw.bootstrap, TOPIC, num_records=args.records, group="warm-up")
            rows = []
            print(f"{'round':>5}  {'direct rec/s':>12}  {'gk rec/s':>10}  {'ratio':>6}  {'gk user ms/1k':>13}  "
                  f"{'gk kernel ms/1k':>15}  {'spliced':>7}", flush=True)
            for r in range(args.rounds):
                rates: dict[str, float] = {}
                for path in (("direct", "gatekeeper") if r % 2 == 0 else ("gatekeeper", "direct")):
                    bootstrap = broker.bootstrap if path == "direct" else gw.bootstrap
                    spliced0 = gw.metric('gatekeeper_spliced_bytes_total{to="socket"')
                    moved0 = gw.metric('gatekeeper_bytes_total{direction="from_broker"')
                    u0, s0 = _times(gw.proc.pid)
                    result = consumer_perf(bootstrap, TOPIC, num_records=args.records, group=f"{path}-{r}-{time.time_ns()}")
                    u1, s1 = _times(gw.proc.pid)
                    rates[path] = result.records_per_sec
                    if path == "gatekeeper":
                        moved = gw.metric('gatekeeper_bytes_total{direction="from_broker"') - moved0
                        share = (gw.metric('gatekeeper_spliced_bytes_total{to="socket"') - spliced0) / moved if moved else 0.0
                        per_1k = 1000 / args.records * 1000  # seconds -> ms per 1,000 records
                        user, kernel = (u1 - u0) * per_1k, (s1 - s0) * per_1k
                ratio = rates["gatekeeper"] / rates["direct"]
                rows.append((ratio, user, kernel, share))
                print(f"{r + 1:>5}  {rates['direct']:>12,.0f}  {rates['gatekeeper']:>10,.0f}  {ratio:>6.3f}  "
                      f"{user:>13.2f}  {kernel:>15.2f}  {share:>7.1%}", flush=True)
    finally:
        broker.stop()
    ratios = [row[0] for row in rows]
    interval = median_interval(ratios)
    print(f"\nconsume ratio gatekeeper/direct: median {statistics.median(ratios):.3f}"
          + (f" (95% {interval[0]:.3f}-{interval[1]:.3f})" if interval else " (fewer than 6 rounds: no interval)"))
    user = statistics.median(row[1] for row in rows)
    kernel = statistics.median(row[2] for row in rows)
    print(f"Gatekeeper CPU per 1,000 records of 1 KiB: user {user:.2f} ms + kernel {kernel:.2f} ms "
          f"(medians; /proc ticks of {1000 / os.sysconf('SC_CLK_TCK'):.0f} ms, so +-{1000 / os.sysconf('SC_CLK_TCK') / args.records * 1000:.2f} "
          f"ms per figure); moved in the kernel: {statistics.median(row[3] for row in rows):.1%} of the broker's bytes")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a failed run: say why, exit 2
        print(f"bench/consume.py: the run failed: {e}", file=sys.stderr)
        sys.exit(2)
