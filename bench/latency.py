"""The latency Gatekeeper adds to one Produce request, measured one request at a time.

    ~/.cache/gatekeeper/venv/bin/python bench/latency.py [--requests N] [--blocks B] [--rate R]
        [--records K] [--policy allow-all|default] [--gateway-env KEY=VALUE] [--pin]

Starts a real single-node Kafka broker and a real ``twistd -n gatekeeper`` in front of it (as
``bench/throughput.py`` does: allow-all, or ``--policy default`` for the default library on the
embedded engine), then times Produce requests (v12, acks=all, one partition, ``--records``
records of 1 KiB in one batch) from a plain socket client: send one, read its answer, send the
next. No client library, batching or linger sits between the clock and the wire, so the
difference between the paths is what Gatekeeper adds: its two extra loopback hops, its wake-ups
and its Python. Two more paths go through ``bench/relay_floor.py``'s relays: its plain epoll
loop (a Python process that only copies bytes: what any user-space proxy on this machine adds
before doing anything) and its ``twisted`` relay (Gatekeeper's shell, its reactor, dispatch,
transports, framing and writes, without the connection core: no decoding, policy or audit). The
paths take turns in ``--blocks`` blocks of ``--requests`` requests each (after an unreported
warm-up block per path), so a drift of the machine falls on all of them.

``--rate R`` paces the requests at R a second (the gateway sleeps in ``epoll_wait`` between them,
as under a light producer); 0 sends each as soon as the last answer came.

Prints, per path, the mean, median, p90, p99 and p99.9 of the round trips, what Gatekeeper adds
(the difference of each figure), each figure's spread over the blocks, and Gatekeeper's CPU time
per request (utime+stime of the twistd process over its blocks; each relay's likewise), and how
busy the whole machine was while each path's blocks ran (all cores, from ``/proc/stat``: the share of the machine the
broker, the client and the path between them took). ``--pin`` puts the broker and the client on
the first CPU and the proxies on the second, to see what sharing a core with the JVMs costs
a proxy. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka.record.memory_records import MemoryRecordsBuilder  # noqa: E402

from bench.relay_floor import process_cpu, read_exact, spawn, wait_for_port  # noqa: E402
from bench.throughput import host_ticks, parse_assignment, policy_extra, start_broker, start_gateway  # noqa: E402
from gatekeeper.kafka.codec import API_TABLE  # noqa: E402
from harness.broker import KafkaBroker  # noqa: E402

TOPIC = "bench-latency"
VERSION = 12
VALUE = b"x" * 1024
# The relays of bench/relay_floor.py run as paths of their own: the bare floor and Gatekeeper's
# shell without the connection core.
RELAYS = {"relay": "epoll", "shell": "twisted"}
PATHS = ("direct", *RELAYS, "gatekeeper")
LABELS = {"direct": "direct", "relay": "epoll relay", "shell": "Gatekeeper's shell", "gatekeeper": "Gatekeeper"}
FIGURES = ("mean", "p50", "p90", "p99", "p99.9")


def records(count: int) -> bytes:
    builder = MemoryRecordsBuilder(2, 0, 1 << 22, offset=0)
    for _ in range(count):
        builder.append(timestamp=int(time.time() * 1000), key=None, value=VALUE, headers=[])
    builder.close()
    return bytes(builder.buffer())


def produce_request(correlation: int, batch: bytes) -> bytes:
    R = API_TABLE[0].request[VERSION]
    T = R.TopicProduceData
    body = R(transactional_id=None, acks=-1, timeout_ms=30000, topic_data=[
        T(name=TOPIC, partition_data=[T.PartitionProduceData(index=0, records=batch)])])
    client = b"latency-bench"
    header = struct.pack(">hhih", 0, VERSION, correlation, len(client)) + client + b"\x00"
    payload = header + bytes(body.encode(version=VERSION))
    return struct.pack(">i", len(payload)) + payload


class Client:
    """One connection sending Produce requests one at a time."""

    def __init__(self, address: str, batch: bytes) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.batch = batch
        self.correlation = 0

    def produce(self) -> float:
        """One round trip, in seconds; raises unless the partition took the records."""
        self.correlation += 1
        frame = produce_request(self.correlation, self.batch)
        started = time.perf_counter()
        self.sock.sendall(frame)
        (size,) = struct.unpack(">i", read_exact(self.sock, 4))
        answer = read_exact(self.sock, size)
        elapsed = time.perf_counter() - started
        (correlation,) = struct.unpack_from(">i", answer)
        if correlation != self.correlation:
            raise RuntimeError(f"answer {correlation} to request {self.correlation}")
        body = API_TABLE[0].response[VERSION].decode(answer[5:])  # after the correlation id and tagged fields
        errors = [p.error_code for t in body.responses for p in t.partition_responses]
        if errors != [0]:
            raise RuntimeError(f"produce failed: error codes {errors}")
        return elapsed

    def close(self) -> None:
        self.sock.close()


def run_block(client: Client, requests: int, rate: float) -> list[float]:
    times: list[float] = []
    interval = 1.0 / rate if rate > 0 else 0.0
    next_at = time.perf_counter()
    for _ in range(requests):
        if interval:
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            next_at += interval
        times.append(client.produce())
    return times


def figures(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"mean": statistics.fmean(ordered), "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99),
            "p99.9": pct(0.999)}


def start_relay(workdir: Path, broker: KafkaBroker, variant: str) -> tuple[subprocess.Popen[bytes], str]:
    """A ``bench/relay_floor.py`` relay (``variant``: epoll, twisted) between one client and the broker."""
    port_file = workdir / f"relay-{variant}.port"
    proc = spawn("--relay", variant, str(port_file), broker.bootstrap.rsplit(":", 1)[1])
    try:
        port = wait_for_port(port_file, proc)
    except Exception:
        proc.kill()
        proc.wait()
        raise
    return proc, f"127.0.0.1:{port}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1000, help="requests per block (default 1,000)")
    ap.add_argument("--blocks", type=int, default=10, help="blocks per path, alternating (default 10)")
    ap.add_argument("--rate", type=float, default=1000.0, help="requests per second, 0: back to back (default 1,000)")
    ap.add_argument("--records", type=int, default=1, help="records of 1 KiB per request (default 1)")
    ap.add_argument("--policy", choices=["allow-all", "default"], default="default")
    ap.add_argument("--gateway-env", type=parse_assignment, action="append", default=[], metavar="KEY=VALUE",
                    help="set in Gatekeeper's environment (repeatable), e.g. a malloc setting: docs/performance.md")
    ap.add_argument("--pin", action="store_true",
                    help="the broker and this client on the first CPU, the proxies (Gatekeeper and the"
                         " relays) on the second: do they cost less with a core of their own?")
    args = ap.parse_args()
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            ap.error("--pin needs two CPUs")
        os.sched_setaffinity(0, {cpus[0]})  # the broker's JVM is started after this: it inherits it

    workdir = Path(tempfile.mkdtemp(prefix="gk-latency-"))
    broker = KafkaBroker()
    gateway = None
    relays: dict[str, subprocess.Popen[bytes]] = {}
    try:
        start_broker(broker)
        broker.create_topic(TOPIC, partitions=1)
        gateway = start_gateway(workdir, broker, policy_extra(workdir, args.policy), env=dict(args.gateway_env))
        addresses = {"direct": broker.bootstrap, "gatekeeper": gateway.bootstrap}
        for path, variant in RELAYS.items():
            relays[path], addresses[path] = start_relay(workdir, broker, variant)
        proxies = {**relays, "gatekeeper": gateway.proc}
        if args.pin:
            for proc in proxies.values():
                pin_process(proc.pid, cpus[1])
        batch = records(args.records)
        clients = {p: Client(addresses[p], batch) for p in PATHS}
        for path in PATHS:  # warm-up: connections, the decision cache, the JIT of the broker
            run_block(clients[path], min(args.requests, 500), args.rate)
        times: dict[str, list[float]] = {p: [] for p in PATHS}
        per_block: dict[str, list[dict[str, float]]] = {p: [] for p in PATHS}
        cpu = {p: [0.0, 0.0] for p in proxies}  # each proxy's user and kernel CPU over its own blocks
        busy = {p: [0, 0] for p in PATHS}  # the machine's busy and total CPU ticks over each path's blocks
        for block in range(args.blocks):
            order = PATHS[block % len(PATHS):] + PATHS[:block % len(PATHS)]
            for path in order:
                proxy = proxies.get(path)
                before = process_cpu(proxy.pid) if proxy is not None else (0.0, 0.0)
                host_before = host_ticks()
                got = run_block(clients[path], args.requests, args.rate)
                host_after = host_ticks()
                busy[path][0] += host_after[0] - host_before[0]
                busy[path][1] += host_after[1] - host_before[1]
                if proxy is not None:
                    after = process_cpu(proxy.pid)
                    cpu[path][0] += after[0] - before[0]
                    cpu[path][1] += after[1] - before[1]
                times[path] += got
                per_block[path].append(figures(got))
        for c in clients.values():
            c.close()
        memory = process_memory(gateway.proc.pid)
    finally:
        for relay in relays.values():
            relay.kill()
            relay.wait()
        if gateway is not None:
            gateway.stop()
        broker.stop()

    total = {p: figures(times[p]) for p in PATHS}
    n = args.requests * args.blocks
    rate = (f"{args.rate:,.0f} requests/s ({args.rate * args.records:,.0f} records/s)" if args.rate > 0
            else "back to back")
    print(f"\nProduce v{VERSION}, acks=all, {args.records} record(s) of 1 KiB per request, one in flight, {rate};"
          f" {args.blocks} blocks of {args.requests:,} per path, alternating; policy: {args.policy}")
    added_paths = PATHS[1:]
    print("| figure (ms) | " + " | ".join(LABELS[p] for p in PATHS) + " | "
          + " | ".join(f"{LABELS[p]} adds" for p in added_paths) + " | Gatekeeper adds, per block: min – max |")
    print("|---" * (len(PATHS) + len(added_paths) + 2) + "|")
    for f in FIGURES:
        ms = {p: total[p][f] * 1e3 for p in PATHS}
        added = [(gk[f] - dd[f]) * 1e3 for dd, gk in zip(per_block["direct"], per_block["gatekeeper"], strict=True)]
        print(f"| {f} | " + " | ".join(f"{ms[p]:.3f}" for p in PATHS) + " | "
              + " | ".join(f"{ms[p] - ms['direct']:+.3f}" for p in added_paths)
              + f" | {min(added):+.3f} – {max(added):+.3f} |")
    tick = 1e3 / os.sysconf("SC_CLK_TCK")
    print(f"\nCPU per request over each path's own blocks ({n:,} requests each; utime+stime from /proc,"
          f" counted in clock ticks of {tick:g} ms):")
    for path, (user, system) in cpu.items():
        print(f"- {LABELS[path]}: {(user + system) / n * 1e6:.0f} µs, {user / n * 1e6:.0f} user and"
              f" {system / n * 1e6:.0f} kernel")
    if args.pin:
        print(f"Pinned: the broker and the client on CPU {cpus[0]}, the proxies on CPU {cpus[1]}")
    shares = ", ".join(f"{p} {100 * b / t:.0f}%" if t else f"{p} -" for p, (b, t) in busy.items())
    print(f"The machine busy while each path ran ({os.cpu_count()} cores): {shares}")
    print(f"Gatekeeper's memory at the end: {memory}")
    return 0


def pin_process(pid: int, cpu: int) -> None:
    """Every thread of process ``pid`` on ``cpu`` alone (threads started later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


def process_memory(pid: int) -> str:
    """The resident set of a process, now and at its peak, and how much of it is in transparent
    huge pages, from ``/proc``."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    huge = sum(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
               if line.startswith("AnonHugePages:"))
    return (f"resident {status['VmRSS'].strip()} (peak {status['VmHWM'].strip()}),"
            f" of which {huge:,} kB in transparent huge pages")


if __name__ == "__main__":
    sys.exit(main())
