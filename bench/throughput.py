"""Throughput and produce latency through Gatekeeper, as a ratio of direct-to-broker.

    ~/.cache/gatekeeper/venv/bin/python bench/throughput.py [--records N] [--rounds R]
        [--producer-prop KEY=VALUE ...] [--throughput N] [--policy allow-all|default] [--audit]
        [--gateway-env KEY=VALUE ...]
        [--json FILE] [--keep-logs] [--quick]

Starts a real single-node Kafka broker and Gatekeeper in front of it (a real ``twistd -n
gatekeeper`` process, log level info; the allow-all engine, or with ``--policy default`` the
default policy library on the embedded engine with a grant for the benchmark's topics), then runs Kafka's own
ProducerPerformance and ConsumerPerformance tools with 1 KiB records, unthrottled, acks=all.
Every round measures both paths, direct to the broker and through Gatekeeper, alternating which
goes first (round 1 direct first, round 2 Gatekeeper first, ...). Each path produces to a fresh
3-partition topic (created directly on the broker), then consumes exactly that topic through the
same path. A warm-up pass over both paths comes first and is not reported.

Prints a table per round and a summary: records/s and MB/s for produce and consume, produce
latency (avg, p99), and the ratio Gatekeeper/direct as the median over rounds of the per-round
ratios (throughput: 1.0 = no cost, higher is better; latency: 1.0 = no cost, lower is better),
with the interval that holds the true median ratio with 95% confidence (``bench/stats.py``; from
6 rounds on: single rounds scatter by ±15-25% on a shared 2-core machine, so judge a target by
where that interval lies, not by the median alone).
Also Gatekeeper's CPU time (utime+stime of the twistd process) per 1,000 records and how busy
that process and the whole machine were while each tool ran: Gatekeeper near 100% of a core
means its reactor is the limit; the machine near 100% means the proxy competes for CPU.

This is a benchmark, not a test: only ratios measured in one run on one machine mean anything.
Exit status: 0 ok; 1 the run completed but Gatekeeper logged warnings/errors or counted rejected
requests (printed); 2 the run failed (broker, gateway or a tool); 130 interrupted. The broker and
the gateway are always stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs

# Run as `python bench/throughput.py`: the harness is a package at the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stats import median_interval  # noqa: E402
from harness.broker import KafkaBroker  # noqa: E402
from harness.gateway import TwistdGateway  # noqa: E402
from harness.javatools import (  # noqa: E402
    ConsumerPerfResult,
    JavaToolError,
    ProducerPerfResult,
    consumer_perf,
    producer_perf,
)
from harness.ports import LOOPBACK  # noqa: E402

RECORD_SIZE = 1024
PARTITIONS = 3
DEFAULT_RECORDS = 200_000
DEFAULT_ROUNDS = 3
DEFAULT_WARMUP = 50_000
QUICK = {"records": 20_000, "rounds": 1, "warmup": 5_000}
DIRECT, GATEKEEPER = "direct", "gatekeeper"
PATHS = (DIRECT, GATEKEEPER)
PHASES = ("produce", "consume")
DEFAULT_PRODUCER_PROPS = {"acks": "all"}
# Counters on Gatekeeper's /metrics that should stay at zero during a benchmark.
ERROR_METRICS = ("gatekeeper_rejected_total", "gatekeeper_upstream_errors_total",
                 "gatekeeper_engine_errors_total")
# Gatekeeper log lines that mean something went wrong (twistd's "[namespace#level]" format).
PROBLEM_MARKERS = ("#warn]", "#error]", "#critical]", "Traceback", "Unhandled", "closing connection")

T = TypeVar("T")


class BenchError(RuntimeError):
    """The benchmark could not run to the end; the message says which step failed and why."""


# -- configuration ------------------------------------------------------------------------------


@attrs.frozen
class BenchConfig:
    records: int
    rounds: int
    warmup_records: int
    producer_props: dict[str, str]
    throughput: int
    json_path: Path | None
    keep_logs: bool
    audit: bool = False
    audit_fsync: str | None = None
    gateway_env: dict[str, str] = attrs.field(factory=dict)
    policy: str = "allow-all"


def parse_assignment(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (a command-line option's argument) as a pair; argparse's error otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def parse_args(argv: Sequence[str] | None) -> BenchConfig:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=DEFAULT_RECORDS,
                    help=f"records per produce/consume run (default {DEFAULT_RECORDS:,})")
    ap.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                    help=f"rounds, each measuring both paths (default {DEFAULT_ROUNDS})")
    ap.add_argument("--warmup-records", type=int, default=DEFAULT_WARMUP,
                    help=f"records of the unreported warm-up per path (default {DEFAULT_WARMUP:,};"
                         " 0 = none)")
    ap.add_argument("--producer-prop", type=parse_assignment, action="append", default=[],
                    metavar="KEY=VALUE",
                    help="producer property (repeatable), over the default acks=all")
    ap.add_argument("--throughput", type=int, default=-1, metavar="RECORDS_PER_S",
                    help="producer throttle, records/s (default -1: unlimited)")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the gateway and broker work directories (logs) and print them")
    ap.add_argument("--audit", action="store_true",
                    help="compare Gatekeeper with an audit trail (file sink, fsync always) against"
                         " Gatekeeper without one, instead of Gatekeeper against direct")
    ap.add_argument("--audit-fsync", choices=["always", "interval", "never"],
                    help="with --audit: the file sink's fsync policy (default: the config default)")
    ap.add_argument("--gateway-env", type=parse_assignment, action="append", default=[], metavar="KEY=VALUE",
                    help="set in Gatekeeper's environment (repeatable; every Gatekeeper of the run),"
                         " e.g. a malloc setting: docs/performance.md")
    ap.add_argument("--policy", choices=["allow-all", "default"], default="allow-all",
                    help="Gatekeeper's policy: the allow-all engine (default), or the default policy"
                         " library (policies/) on the embedded engine with a grant for the bench's"
                         " topics and groups (every request decided by Rego; the cache warm after"
                         " the first)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: {records:,} records, {rounds} round, {warmup:,} warm-up"
                         .format(**QUICK))
    args = ap.parse_args(argv)
    if args.quick:
        args.records, args.rounds, args.warmup_records = (
            QUICK["records"], QUICK["rounds"], QUICK["warmup"])
    if args.records <= 0 or args.rounds <= 0 or args.warmup_records < 0:
        ap.error("--records and --rounds must be positive, --warmup-records not negative")
    return BenchConfig(
        records=args.records, rounds=args.rounds, warmup_records=args.warmup_records,
        producer_props={**DEFAULT_PRODUCER_PROPS, **dict(args.producer_prop)},
        throughput=args.throughput, json_path=args.json, keep_logs=args.keep_logs, audit=args.audit,
        audit_fsync=args.audit_fsync, policy=args.policy, gateway_env=dict(args.gateway_env),
    )


# -- measurements -------------------------------------------------------------------------------


@attrs.frozen
class PhaseCost:
    """CPU used while one tool ran: Gatekeeper's seconds (0 on direct runs), the host's busy
    fraction (all cores), the wall time, and the Gatekeeper log lines that look like trouble."""

    gk_cpu_s: float
    host_busy: float
    wall_s: float
    problems: tuple[str, ...] = ()


@attrs.frozen
class PathRun:
    """One path in one round: a produce run, then a consume run of the same topic."""

    round: int
    path: str
    topic: str
    records: int
    produce: ProducerPerfResult
    consume: ConsumerPerfResult
    produce_cost: PhaseCost
    consume_cost: PhaseCost

    def seconds(self, phase: str) -> float:
        """How long the tool itself measured the phase (no JVM start-up)."""
        if phase == "produce":
            rps = self.produce.records_per_sec
            return self.records / rps if rps else 0.0
        return (self.consume.fetch_time_ms + self.consume.rebalance_time_ms) / 1000.0

    def cost(self, phase: str) -> PhaseCost:
        return self.produce_cost if phase == "produce" else self.consume_cost

    def cpu_ms_per_1k(self, phase: str) -> float:
        return 1e6 * self.cost(phase).gk_cpu_s / self.records

    def cpu_busy(self, phase: str) -> float:
        """Gatekeeper CPU / the tool's measured duration (1.0 = one core fully used)."""
        seconds = self.seconds(phase)
        return self.cost(phase).gk_cpu_s / seconds if seconds else 0.0


# Everything compared, as (label, getter, higher_is_better).
METRICS: tuple[tuple[str, Callable[[PathRun], float], bool], ...] = (
    ("produce records/s", lambda r: r.produce.records_per_sec, True),
    ("produce MB/s", lambda r: r.produce.mb_per_sec, True),
    ("produce latency avg ms", lambda r: r.produce.avg_latency_ms, False),
    ("produce latency p99 ms", lambda r: r.produce.p99_ms, False),
    ("consume records/s", lambda r: r.consume.records_per_sec, True),
    ("consume MB/s", lambda r: r.consume.mb_per_sec, True),
    ("consume fetch-only MB/s", lambda r: r.consume.fetch_mb_per_sec, True),
)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def host_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


class GatewayWatch:
    """The twistd process: its CPU time, whether it still runs, the new lines of its log."""

    def __init__(self, gateway: TwistdGateway) -> None:
        self.gateway = gateway
        self._log_offset = 0

    @property
    def pid(self) -> int:
        """The twistd pid; raises :class:`BenchError` if it is not running."""
        proc = self.gateway.proc
        if proc is None or proc.poll() is not None:
            raise BenchError(f"Gatekeeper is not running ({self.status()})\n"
                             f"{self.gateway.log_tail()}")
        return proc.pid

    def status(self) -> str:
        proc = self.gateway.proc
        if proc is None:
            return "stopped"
        return "running" if proc.poll() is None else f"exited with code {proc.returncode}"

    def new_problems(self) -> tuple[str, ...]:
        """Problem lines logged since the last call."""
        try:
            with open(self.gateway.log_path, "rb") as handle:
                handle.seek(self._log_offset)
                data = handle.read()
        except OSError:
            return ()
        self._log_offset += len(data)
        return tuple(ln for ln in data.decode("utf-8", "replace").splitlines() if is_problem(ln))


# Warnings the benchmark causes on purpose: it measures the data path under allow-all.
EXPECTED_WARNINGS = ("policy.engine is allow-all",)


def is_problem(line: str) -> bool:
    return any(marker in line for marker in PROBLEM_MARKERS) and not any(w in line for w in EXPECTED_WARNINGS)


def measured(what: str, watch: GatewayWatch | None, call: Callable[[], T]) -> tuple[T, PhaseCost]:
    """Run one tool (``call``) and measure CPU around it; a tool or Gatekeeper failure raises
    :class:`BenchError` naming ``what``."""
    if watch is not None:
        watch.new_problems()
    gk_before = cpu_seconds(watch.pid) if watch else 0.0
    host_before, wall_before = host_ticks(), time.monotonic()
    try:
        result = call()
    except (JavaToolError, subprocess.TimeoutExpired, OSError) as exc:
        gk = ""
        if watch is not None:
            gk = f"\n--- Gatekeeper ({watch.status()}), log tail ---\n{watch.gateway.log_tail(20)}"
        raise BenchError(f"{what} failed: {exc}{gk}") from exc
    wall = time.monotonic() - wall_before
    busy, total = (a - b for a, b in zip(host_ticks(), host_before, strict=True))
    gk_cpu = cpu_seconds(watch.pid) - gk_before if watch else 0.0
    problems = watch.new_problems() if watch else ()
    return result, PhaseCost(gk_cpu, busy / total if total else 0.0, wall, problems)


def run_path(
    cfg: BenchConfig, broker: KafkaBroker, watch: GatewayWatch | None, bootstrap: str,
    path: str, rnd: int, records: int,
) -> PathRun:
    """Produce ``records`` to a fresh topic through ``bootstrap``, then consume them back."""
    topic = f"bench-r{rnd}-{path}"
    create_topic(broker, topic)
    label = f"round {rnd} {path}"
    produced, produce_cost = measured(
        f"{label} produce (ProducerPerformance)", watch, lambda: producer_perf(
            bootstrap, topic, num_records=records, record_size=RECORD_SIZE,
            throughput=cfg.throughput, properties=cfg.producer_props))
    if produced.records != records:
        raise BenchError(f"{label} produce sent {produced.records} of {records} records")
    consumed, consume_cost = measured(
        f"{label} consume (ConsumerPerformance)", watch, lambda: consumer_perf(
            bootstrap, topic, num_records=records, group=f"perf-{topic}"))
    return PathRun(rnd, path, topic, records, produced, consumed, produce_cost, consume_cost)


def create_topic(broker: KafkaBroker, topic: str) -> None:
    try:
        broker.create_topic(topic, partitions=PARTITIONS, exist_ok=False)
    except Exception as exc:
        raise BenchError(f"creating topic {topic} on the broker failed: {exc!r}") from exc


def round_order(rnd: int) -> tuple[str, str]:
    """Round 1: direct first; round 2: Gatekeeper first; and so on."""
    return PATHS if rnd % 2 == 1 else (GATEKEEPER, DIRECT)


def metric_problems(gateway: TwistdGateway) -> list[str]:
    """Non-zero error counters on Gatekeeper's /metrics (rejected requests, broker errors...)."""
    url = f"http://{LOOPBACK}:{gateway.ports.admin_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError as exc:
        return [f"/metrics unreadable: {exc}"]
    problems = []
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith(ERROR_METRICS) and _float(value) > 0:
            problems.append(f"/metrics: {line}")
    return problems


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


# -- the run ------------------------------------------------------------------------------------


@attrs.frozen
class Outcome:
    runs: list[PathRun]
    problems: list[str]
    logs: list[Path]


def start_broker(broker: KafkaBroker) -> None:
    try:
        broker.start()
    except Exception as exc:
        raise BenchError(f"the Kafka broker did not start: {exc}") from exc


def audit_extra(workdir: Path, fsync: str | None = None) -> dict[str, Any]:
    """An audit trail with the file sink (its fsync policy, or the config default)."""
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "audit.key"
    key.write_bytes(os.urandom(32).hex().encode())
    key.chmod(0o600)
    audit: dict[str, Any] = {"directory": str(workdir / "trail"), "hmac_key_file": str(key), "instance": "bench"}
    if fsync:
        audit["fsync"] = fsync
    return {"audit": audit}


# The grant the default policy library needs for the benchmark's clients (no SASL: anonymous).
BENCH_GRANTS = [
    {"principals": "*", "resources": {"type": "topic", "patterns": ["bench-*"]},
     "operations": ["produce", "consume", "describe_topic", "commit_offset", "fetch_offset"]},
    {"principals": "*", "resources": {"type": "group", "patterns": ["perf-*"]},
     "operations": ["join_group", "commit_offset", "fetch_offset", "describe_group"]},
]


def policy_extra(workdir: Path, policy: str) -> dict[str, Any]:
    """The ``policy`` section for ``--policy``: nothing for allow-all (the harness's default),
    else the repository's default library on the embedded engine, with its data plus the
    benchmark's grants."""
    if policy == "allow-all":
        return {}
    root = Path(__file__).resolve().parents[1] / "policies"
    data = json.loads((root / "data.json").read_text())
    data["gatekeeper_config"]["grants"] = data["gatekeeper_config"]["grants"] + BENCH_GRANTS
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "bench-data.json"
    path.write_text(json.dumps(data))
    return {"policy": {"engine": "embedded", "policies": str(root), "data": str(path)}}


def start_gateway(workdir: Path, broker: KafkaBroker, extra: dict[str, Any] | None = None,
                  env: dict[str, str] | None = None) -> TwistdGateway:
    """A ``twistd -n gatekeeper`` (``env``: set in its environment only)."""
    try:
        gateway = TwistdGateway(workdir, broker.bootstrap, level="info", extra=extra, env=env)
    except Exception as exc:
        raise BenchError(f"could not configure Gatekeeper: {exc!r}") from exc
    try:
        gateway.start()
    except Exception as exc:
        gateway.stop()
        raise BenchError(f"Gatekeeper (twistd -n gatekeeper) did not start: {exc}") from exc
    return gateway


def run_benchmark(cfg: BenchConfig, workdir: Path) -> Outcome:
    """Start the broker and Gatekeeper, measure every round, stop both whatever happens."""
    broker = KafkaBroker(keep_workdir=cfg.keep_logs)
    gateway: TwistdGateway | None = None
    baseline: TwistdGateway | None = None
    try:
        _step("starting the Kafka broker")
        start_broker(broker)
        _step(f"broker at {broker.bootstrap}; starting Gatekeeper")
        if cfg.audit:
            # "direct" is Gatekeeper without audit here, "gatekeeper" the same with the trail.
            policy = policy_extra(workdir, cfg.policy)
            baseline = start_gateway(workdir / "no-audit", broker, policy, env=cfg.gateway_env)
            gateway = start_gateway(workdir / "audit", broker,
                                    {**policy, **audit_extra(workdir / "audit", cfg.audit_fsync)}, env=cfg.gateway_env)
        else:
            gateway = start_gateway(workdir, broker, policy_extra(workdir, cfg.policy), env=cfg.gateway_env)
        pid = gateway.proc.pid if gateway.proc else "?"
        _step(f"Gatekeeper at {gateway.bootstrap} (twistd pid {pid})")
        runs = measure_all(cfg, broker, gateway, baseline)
        problems = [line for line in gateway.log_path.read_text(errors="replace").splitlines()
                    if is_problem(line)]
        problems += metric_problems(gateway)
        return Outcome(runs, problems, [gateway.log_path, broker.log_path])
    finally:
        for gw in (gateway, baseline):
            if gw is not None:
                gw.stop()
        broker.stop()


def measure_all(cfg: BenchConfig, broker: KafkaBroker, gateway: TwistdGateway,
                baseline: TwistdGateway | None = None) -> list[PathRun]:
    watch = GatewayWatch(gateway)
    endpoints = {DIRECT: (broker.bootstrap, None), GATEKEEPER: (gateway.bootstrap, watch)}
    if baseline is not None:
        endpoints[DIRECT] = (baseline.bootstrap, GatewayWatch(baseline))
    if cfg.warmup_records:
        _step(f"warm-up: {cfg.warmup_records:,} records per path (not reported)")
        for path in PATHS:
            bootstrap, w = endpoints[path]
            run_path(cfg, broker, w, bootstrap, path, 0, cfg.warmup_records)
    runs: list[PathRun] = []
    for rnd in range(1, cfg.rounds + 1):
        order = round_order(rnd)
        _step(f"round {rnd}/{cfg.rounds}: {order[0]} first")
        pair: dict[str, PathRun] = {}
        for path in order:
            bootstrap, w = endpoints[path]
            pair[path] = run_path(cfg, broker, w, bootstrap, path, rnd, cfg.records)
        print_round(rnd, order, pair[DIRECT], pair[GATEKEEPER])
        runs += [pair[DIRECT], pair[GATEKEEPER]]
    return runs


def _step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- reporting ----------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [str(cells[0]).ljust(widths[0])]
        parts += [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return indent + "  ".join(parts).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def _num(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.0f}%"


def _ratio(gk: float, direct: float) -> float:
    return gk / direct if direct else float("nan")


def _cpu_row(run: PathRun) -> list[str]:
    cells = [run.path]
    for phase in PHASES:
        cells.append(_pct(run.cost(phase).host_busy))
        if run.path == GATEKEEPER or run.cost(phase).gk_cpu_s:  # --audit: "direct" is a Gatekeeper too
            cells += [f"{run.cpu_ms_per_1k(phase):.1f}", _pct(run.cpu_busy(phase))]
        else:
            cells += ["-", "-"]
    return cells


ROUND_HEADERS = ("", "prod rec/s", "prod MB/s", "lat avg ms", "lat p99 ms", "cons rec/s",
                 "cons MB/s", "join ms")
CPU_HEADERS = ("CPU", "prod host", "prod gk ms/1k", "prod gk busy",
               "cons host", "cons gk ms/1k", "cons gk busy")
CPU_NOTE = ("  host = whole machine busy during the tool run (all cores, all processes, JVM start"
            " included);\n  gk ms/1k = Gatekeeper CPU ms per 1,000 records; gk busy = share of one"
            " core over the tool's measured time")


def print_round(rnd: int, order: Sequence[str], direct: PathRun, gk: PathRun) -> None:
    rows = [[run.path, *(_num(get(run)) for _, get, _ in METRICS[:6]),
             f"{run.consume.rebalance_time_ms:,.0f}"] for run in (direct, gk)]
    rows.append(["ratio gk/direct",
                 *(f"{_ratio(get(gk), get(direct)):.3f}" for _, get, _ in METRICS[:6]), ""])
    print(f"\nround {rnd} ({order[0]} first; {direct.records:,} records of {RECORD_SIZE} B)")
    print(format_table(ROUND_HEADERS, rows))
    print("  join ms = consumer group join time, included in cons rec/s\n")
    print(format_table(CPU_HEADERS, [_cpu_row(direct), _cpu_row(gk)]))
    print(CPU_NOTE, end="\n\n", flush=True)


def summarize(runs: Sequence[PathRun]) -> dict[str, Any]:
    """Per metric: median direct, median Gatekeeper, median of the per-round ratios."""
    by_round: dict[int, dict[str, PathRun]] = {}
    for run in runs:
        by_round.setdefault(run.round, {})[run.path] = run
    pairs = [(p[DIRECT], p[GATEKEEPER]) for _, p in sorted(by_round.items())]
    summary: dict[str, Any] = {}
    for label, get, higher_better in METRICS:
        ratios = [_ratio(get(g), get(d)) for d, g in pairs]
        summary[label] = {
            "direct": statistics.median(get(d) for d, _ in pairs),
            "gatekeeper": statistics.median(get(g) for _, g in pairs),
            "ratio": statistics.median(ratios),
            "ratio_95": median_interval(ratios),  # None below 6 rounds
            "ratios": ratios,
            "higher_is_better": higher_better,
        }
    gks = [g for _, g in pairs]
    for phase in PHASES:
        summary[f"cpu {phase}"] = {
            "gatekeeper_ms_per_1k_records": statistics.median(g.cpu_ms_per_1k(phase) for g in gks),
            # Non-zero only with --audit, where "direct" is Gatekeeper without the trail.
            "direct_gatekeeper_ms_per_1k_records": statistics.median(d.cpu_ms_per_1k(phase) for d, _ in pairs),
            "gatekeeper_busy_fraction": statistics.median(g.cpu_busy(phase) for g in gks),
            "host_busy_direct": statistics.median(d.cost(phase).host_busy for d, _ in pairs),
            "host_busy_gatekeeper": statistics.median(g.cost(phase).host_busy for g in gks),
        }
    return summary


def print_summary(cfg: BenchConfig, summary: dict[str, Any]) -> None:
    rows = []
    for label, _, higher_better in METRICS:
        s = summary[label]
        ratios = " ".join(f"{r:.3f}" for r in s["ratios"])
        ci = s["ratio_95"]
        rows.append([label, _num(s["direct"]), _num(s["gatekeeper"]), f"{s['ratio']:.3f}",
                     "-" if ci is None else f"{ci[0]:.3f}-{ci[1]:.3f}", "higher" if higher_better else "lower", ratios])
    print(f"summary: {cfg.rounds} round(s) x {cfg.records:,} records of {RECORD_SIZE} B, "
          f"{PARTITIONS} partitions, producer {_props(cfg.producer_props)}, {_throttle(cfg)}")
    print("  ratio = gatekeeper/direct, median of the per-round ratios (1.000 = no cost); 95% = the interval"
          " that holds the true median ratio with 95% confidence (bench/stats.py; 6 rounds or more)")
    print(f"  Gatekeeper's policy: {'the default library on the embedded engine' if cfg.policy == 'default' else 'allow-all'}")
    if cfg.gateway_env:
        print("  Gatekeeper's environment: " + " ".join(f"{k}={v}" for k, v in sorted(cfg.gateway_env.items())))
    if cfg.audit:
        print("  --audit: direct = Gatekeeper without an audit trail, gatekeeper = Gatekeeper with the"
              f" file-sink trail (one record per request, fsync {cfg.audit_fsync or 'as configured by default'})")
    print(format_table(("", "direct", "gatekeeper", "ratio", "95%", "better", "per round"), rows))
    print(f"\n  CPU, median over rounds ({os.cpu_count()} cores; Gatekeeper = twistd utime+stime):")
    for phase in PHASES:
        c = summary[f"cpu {phase}"]
        if c["direct_gatekeeper_ms_per_1k_records"]:
            print(f"    {phase}: Gatekeeper without the trail {c['direct_gatekeeper_ms_per_1k_records']:.1f} ms per"
                  " 1,000 records")
        print(f"    {phase}: Gatekeeper {c['gatekeeper_ms_per_1k_records']:.1f} ms per 1,000 records,"
              f" {_pct(c['gatekeeper_busy_fraction'])} of one core; machine busy"
              f" {_pct(c['host_busy_direct'])} direct, {_pct(c['host_busy_gatekeeper'])} via"
              " Gatekeeper")
    print("    (Gatekeeper near 100% of a core: its reactor is the limit; machine near 100%:"
          " the proxy's CPU competes with broker and client)")


def _throttle(cfg: BenchConfig) -> str:
    return "unthrottled" if cfg.throughput < 0 else f"throttled to {cfg.throughput:,} records/s"


def _props(props: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in props.items())


def print_problems(problems: Sequence[str], limit: int = 10) -> None:
    if not problems:
        print("\n  Gatekeeper log and /metrics: no warnings, errors or rejected requests")
        return
    print(f"\n  Gatekeeper log and /metrics: {len(problems)} problem line(s); "
          f"first {min(limit, len(problems))}:")
    for line in problems[:limit]:
        print(f"    {line}")


def write_json(cfg: BenchConfig, outcome: Outcome, summary: dict[str, Any]) -> None:
    assert cfg.json_path is not None
    doc = {
        "config": {**attrs.asdict(cfg), "json_path": str(cfg.json_path),
                   "record_size": RECORD_SIZE, "partitions": PARTITIONS},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "runs": [_run_json(r) for r in outcome.runs],
        "summary": summary,
        "gatekeeper_problems": outcome.problems,
    }
    cfg.json_path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\n  results written to {cfg.json_path}")


def _run_json(run: PathRun) -> dict[str, Any]:
    doc = attrs.asdict(run)
    for phase in PHASES:
        doc[f"{phase}_cost"]["gk_cpu_ms_per_1k_records"] = run.cpu_ms_per_1k(phase)
        doc[f"{phase}_cost"]["gk_busy_fraction"] = run.cpu_busy(phase)
    return doc


# -- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    print(f"throughput: {cfg.rounds} round(s) x {cfg.records:,} records of {RECORD_SIZE} B per "
          f"path, direct vs Gatekeeper alternating; producer {_props(cfg.producer_props)}, "
          f"{_throttle(cfg)}; {os.cpu_count()} CPUs", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="gk-bench-"))
    try:
        outcome = run_benchmark(cfg, workdir)
    except BenchError as exc:
        print(f"\nthroughput: FAILED: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nthroughput: interrupted", file=sys.stderr)
        return 130
    finally:
        if not cfg.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = summarize(outcome.runs)
    print_summary(cfg, summary)
    print_problems(outcome.problems)
    if cfg.keep_logs:
        print("\n  logs kept: " + ", ".join(str(p) for p in outcome.logs))
    if cfg.json_path is not None:
        write_json(cfg, outcome, summary)
    if outcome.problems:
        print("\nthroughput: completed, but Gatekeeper logged warnings/errors or rejected requests"
              " (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
