"""Pulsar throughput through Gatekeeper, as a ratio of direct-to-broker.

    ~/.cache/gatekeeper/venv/bin/python bench/pulsar_throughput.py [--messages N] [--size BYTES]
        [--rounds R] [--no-batching] [--json FILE] [--quick]

Starts a real Pulsar standalone broker (``harness.pulsar``) and Gatekeeper in front of it (a
real ``twistd -n gatekeeper`` process with one ``protocol: pulsar`` listener, the embedded
policy engine and a policy that allows everything, so every PRODUCER, SEND and SUBSCRIBE is put
to the policy as in production; log level info). Pulsar's own perf tool is not among the
broker's jars, so the load is Pulsar's C++ client (``pulsar-client``) in this process: a
producer sends N messages with ``send_async`` (batching on unless ``--no-batching``) and
flushes; a consumer then reads the same topic back from the earliest message, acknowledging each.
Every round measures both paths, direct and through Gatekeeper, alternating which goes first;
each path uses a fresh topic. A warm-up pass over both paths comes first and is not reported.

Prints, per round and as the median over rounds: messages/s and MB/s for produce and consume
on each path, the ratio Gatekeeper/direct (1.0 = no cost, higher is better), and Gatekeeper's
CPU time (utime+stime of the twistd process) per 1,000 messages. The client runs in the same
process as this script, so its own cost is the same on both paths.

This is a benchmark, not a test: only ratios measured in one run on one machine mean anything.
Exit status: 0 ok; 2 the run failed; 130 interrupted. The broker and the gateway are always
stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

# Run as `python bench/pulsar_throughput.py`: the harness is a package at the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.gateway import TwistdGateway  # noqa: E402
from harness.ports import LOOPBACK, free_port, free_port_range  # noqa: E402
from harness.pulsar import PulsarBroker  # noqa: E402

DIRECT, GATEKEEPER = "direct", "gatekeeper"
PHASES = ("produce", "consume")
ALLOW_ALL = """
package gatekeeper

decision := {"action": "allow", "reason": "benchmark"}
"""


class BenchError(RuntimeError):
    """The benchmark could not run to the end; the message says which step failed and why."""


class PulsarGateway(TwistdGateway):
    """``twistd -n gatekeeper`` with one anonymous ``protocol: pulsar`` listener."""

    def __init__(self, workdir: Path, broker: PulsarBroker) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "gatekeeper.yaml"
        self.log_path = workdir / "gatekeeper.log"
        self.proc = None
        self.service_port, self.admin_port = free_port(), free_port()
        broker_port = free_port_range(1)[0]
        policies = workdir / "policies"
        policies.mkdir(exist_ok=True)
        (policies / "allow.rego").write_text(ALLOW_ALL)
        raw = {
            "listeners": [{"name": "pulsar", "protocol": "pulsar", "bind": f"{LOOPBACK}:{self.service_port}",
                           "advertised_host": LOOPBACK, "broker_ports": f"{broker_port}-{broker_port}",
                           "upstream": {"bootstrap_servers": [broker.address]},
                           "options": {"brokers": [broker.address]}}],
            "upstream": {"bootstrap_servers": [broker.address]},
            "policy": {"engine": "embedded", "policies": str(policies)},
            "admin": {"bind": f"{LOOPBACK}:{self.admin_port}"},
            "logging": {"level": "info"},
        }
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.listening = [self.service_port, self.admin_port]


def produce(pulsar: Any, url: str, topic: str, messages: int, size: int, batching: bool) -> float:
    """Seconds to send ``messages`` with send_async and have every one acknowledged."""
    client = pulsar.Client(url, operation_timeout_seconds=60, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
    try:
        producer = client.create_producer(topic, batching_enabled=batching, block_if_queue_full=True,
                                          max_pending_messages=5000, batching_max_publish_delay_ms=5)
        payload = b"x" * size
        failures: list[Any] = []
        done = threading.Event()
        left = [messages]
        lock = threading.Lock()

        def sent(result: Any, _msg_id: Any) -> None:
            if result != pulsar.Result.Ok:
                failures.append(result)
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    done.set()

        began = time.monotonic()
        for _ in range(messages):
            producer.send_async(payload, sent)
        producer.flush()
        if not done.wait(120):
            raise BenchError(f"produce to {url}: {left[0]} of {messages} messages never acknowledged")
        elapsed = time.monotonic() - began
        if failures:
            raise BenchError(f"produce to {url}: {len(failures)} sends failed, first {failures[0]}")
        return elapsed
    finally:
        client.close()


def consume(pulsar: Any, url: str, topic: str, messages: int) -> float:
    """Seconds to receive (and acknowledge) ``messages`` from the start of ``topic``."""
    client = pulsar.Client(url, operation_timeout_seconds=60, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
    try:
        consumer = client.subscribe(topic, "bench", initial_position=pulsar.InitialPosition.Earliest,
                                    receiver_queue_size=5000)
        began = time.monotonic()
        for _ in range(messages):
            consumer.acknowledge(consumer.receive(timeout_millis=60000))
        return time.monotonic() - began
    finally:
        client.close()


def run_path(pulsar: Any, url: str, gateway: TwistdGateway, topic: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for phase in PHASES:
        cpu_before = gateway.cpu_seconds()
        if phase == "produce":
            seconds = produce(pulsar, url, topic, args.messages, args.size, not args.no_batching)
        else:
            seconds = consume(pulsar, url, topic, args.messages)
        out[phase] = {
            "seconds": seconds,
            "messages_per_s": args.messages / seconds,
            "mb_per_s": args.messages * args.size / seconds / 1e6,
            "gk_cpu_ms_per_1k": 1e6 * (gateway.cpu_seconds() - cpu_before) / args.messages,
        }
    return out


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def report(rnd: str, direct: dict[str, Any], gk: dict[str, Any]) -> str:
    rows = [["", "direct msg/s", "direct MB/s", "gatekeeper msg/s", "gatekeeper MB/s", "ratio",
             "GK CPU ms/1k msgs"]]
    for phase in PHASES:
        d, g = direct[phase], gk[phase]
        rows.append([phase, f"{d['messages_per_s']:,.0f}", f"{d['mb_per_s']:.1f}", f"{g['messages_per_s']:,.0f}",
                     f"{g['mb_per_s']:.1f}", f"{g['messages_per_s'] / d['messages_per_s']:.2f}",
                     f"{g['gk_cpu_ms_per_1k']:.1f}"])
    return f"{rnd}\n{_table(rows)}"


def median_run(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {phase: {key: statistics.median(r[phase][key] for r in runs) for key in runs[0][phase]}
            for phase in PHASES}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000, help="messages per path and round (default 100000)")
    ap.add_argument("--size", type=int, default=1024, help="payload bytes (default 1024)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-batching", action="store_true", help="one message per SEND (batching off)")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    ap.add_argument("--quick", action="store_true", help="20,000 messages, one round")
    args = ap.parse_args(argv)
    if args.quick:
        args.messages, args.rounds = 20_000, 1
    import pulsar

    workdir = Path(tempfile.mkdtemp(prefix="gatekeeper-pulsar-bench-"))
    try:
        with PulsarBroker(heap="512m", direct_memory="512m") as broker:
            print(f"broker ready in {broker.started_in:.0f}s", flush=True)
            with PulsarGateway(workdir / "gw", broker) as gateway:
                urls = {DIRECT: broker.service_url, GATEKEEPER: f"pulsar://{LOOPBACK}:{gateway.service_port}"}
                warm = max(args.messages // 10, 1000)
                for path in (DIRECT, GATEKEEPER):
                    saved, args.messages = args.messages, warm
                    run_path(pulsar, urls[path], gateway, f"persistent://public/default/warm-{path}", args)
                    args.messages = saved
                runs: dict[str, list[dict[str, Any]]] = {DIRECT: [], GATEKEEPER: []}
                for rnd in range(1, args.rounds + 1):
                    order = (DIRECT, GATEKEEPER) if rnd % 2 else (GATEKEEPER, DIRECT)
                    for path in order:
                        topic = f"persistent://public/default/bench-r{rnd}-{path}"
                        runs[path].append(run_path(pulsar, urls[path], gateway, topic, args))
                    print(report(f"round {rnd} ({' first, '.join(order)} second)", runs[DIRECT][-1],
                                 runs[GATEKEEPER][-1]), flush=True)
                direct, gk = median_run(runs[DIRECT]), median_run(runs[GATEKEEPER])
                print(report(f"median of {args.rounds} round(s): {args.messages:,} messages of {args.size} B, "
                             f"batching {'off' if args.no_batching else 'on'}", direct, gk))
                if args.json is not None:
                    args.json.write_text(json.dumps({"messages": args.messages, "size": args.size,
                                                     "batching": not args.no_batching, "rounds": runs,
                                                     "median": {DIRECT: direct, GATEKEEPER: gk}}, indent=2))
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # the message says which step failed
        print(f"pulsar_throughput: failed: {e}", file=sys.stderr)
        return 2
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
