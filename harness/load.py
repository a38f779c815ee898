"""Load through ``twistd gatekeeper`` against a real broker: many concurrent client connections,
a 100 MB+ Fetch response and a JWKS of thousands of keys, with a probe measuring reactor stalls.

    python -m harness.load            # the short version (what the integration test runs)
    python -m harness.load --long     # 1,000 connections; prints the sizing table

The connections come from several client processes (``--worker``, started by this module), each
holding confluent-kafka (librdkafka) producers and consumers: producer *i* writes unique keys
(``<run>-<worker>-<i>-<seq>``, acks=all, idempotent) to partition *i*, consumer *i* reads that
partition from the beginning (assigned, no group). Every client's principal is allowed by the
policy (embedded engine). Afterwards the topic is read straight from the broker and accounted as
the fault tests do (``harness.accounting``): acknowledged ⊆ stored by key, no duplicates.

The probe is a plain socket sending ApiVersions through Gatekeeper every 10 ms; its longest
round trip is the longest time Gatekeeper's reactor kept every connection waiting. Gatekeeper
forwards ApiVersions to the broker (and trims the answer), so during the client run a second
probe sends the same straight to the broker: a stall both probes saw at the same time is the
broker's (or the machine's), not Gatekeeper's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from harness.accounting import Accounting, account, checksum, record_value
from harness.broker import KafkaBroker
from harness.gateway import TwistdGateway
from harness.ledger import read_back

__all__ = ["LONG", "SHORT", "LoadProfile", "Probe", "jwks_document", "run_jwks", "run_large_fetch", "run_load", "start_broker"]

PRINCIPALS = {name: {"sub": f"svc-{name}", "groups": ["load"]} for name in ("load-producer", "load-consumer", "load-fetch", "load-probe")}
POLICY = """\
# The load tests' policy: the "load" group may do anything.
package gatekeeper

default decision := {"action": "deny", "reason": "not in the load group"}

decision := {"action": "allow", "reason": "load group", "ttl": "60s"} if {
	"load" in input.principal.groups
}
"""
_QUIET = {"log_level": 0}


@attrs.frozen
class LoadProfile:
    workers: int  # client processes
    producers: int  # per worker (each: one producer, its partition)
    consumers: int  # per worker
    rate: float  # records a second per producer
    seconds: float  # producing time
    size: int = 200  # value bytes
    fetch_mb: int = 110  # the large Fetch response
    jwks_keys: int = 5000
    stall_bound: float = 2.0  # seconds: the longest probe round trip the test accepts
    # The client processes' niceness. Hundreds of librdkafka clients (four threads or so each)
    # on the gateway's own two cores took most of the CPU from it: Gatekeeper, runnable, waited
    # for a core ten times as long as it ran, and the figures measured that contention. Clients
    # of a real deployment are not on Gatekeeper's machine; here they run at a lower priority.
    client_nice: int = 10


SHORT = LoadProfile(workers=2, producers=25, consumers=25, rate=20, seconds=20)
LONG = LoadProfile(workers=4, producers=63, consumers=63, rate=20, seconds=60)


def start_broker() -> KafkaBroker:
    """A broker of this run's own: Fetch responses up to 256 MiB."""
    broker = KafkaBroker(heap="1g", startup_timeout=180, extra_config={"fetch.max.bytes": str(256 * 1024 * 1024)})
    broker.start()
    return broker


def gateway_extra(workdir: Path, jwks_file: Path | None = None) -> dict[str, Any]:
    policies = workdir / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    (policies / "load.rego").write_text(POLICY)
    identity: dict[str, Any] = {"client_id_principals": PRINCIPALS}
    if jwks_file is not None:
        identity["jwt"] = {"issuer": "https://idp.load.test", "audience": "kafka-gatekeeper", "jwks_file": str(jwks_file)}
    return {
        # The first Produce of hundreds of producers at once all miss the decision cache: on a
        # busy 2-core machine the embedded engine's queue took longer than the default 250 ms
        # timeout (those were denied, fail closed). The timeout is raised for the load.
        "policy": {"engine": "embedded", "policies": str(policies), "timeout": "5s"},
        "identity": identity,
        # Every load client connects from 127.0.0.1: the per-address cap (default 1,000) is
        # raised to let them all in, the per-listener cap left at its default (10,000).
        "limits": {"max_connections_per_address": 5000},
    }


# -- the probe ---------------------------------------------------------------------------------

class Probe(threading.Thread):
    """ApiVersions v0 round trips through Gatekeeper every ``interval`` seconds; keeps each
    (start time, round trip)."""

    def __init__(self, address: str, interval: float = 0.01) -> None:
        super().__init__(name="probe", daemon=True)
        host, port = address.rsplit(":", 1)
        self.address = (host, int(port))
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self.errors: Counter[str] = Counter()
        self._halt = threading.Event()

    def longest(self, start: float = 0.0, end: float = float("inf")) -> float:
        return max((rtt for t, rtt in self.samples if start <= t <= end), default=0.0)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def run(self) -> None:
        cid = 0
        client = b"load-probe"
        while not self._halt.is_set():
            try:
                with socket.create_connection(self.address, timeout=30) as s:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    while not self._halt.is_set():
                        cid += 1
                        body = struct.pack(">hhih", 18, 0, cid, len(client)) + client
                        t0 = time.monotonic()
                        s.sendall(struct.pack(">i", len(body)) + body)
                        (n,) = struct.unpack(">i", _read(s, 4))
                        _read(s, n)
                        t1 = time.monotonic()
                        self.samples.append((t0, t1 - t0))
                        self._halt.wait(max(0.0, self.interval - (t1 - t0)))
            except OSError as e:
                self.errors[type(e).__name__] += 1
                self._halt.wait(0.1)


def _read(s: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return bytes(out)


# -- the client processes ----------------------------------------------------------------------

def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One client process: its producers and consumers, until the run ends; the figures."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

    if spec.get("nice"):
        os.nice(spec["nice"])
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    acked: dict[str, int] = {}
    failed: dict[str, str] = {}
    sent: list[str] = []
    crcs: dict[str, int] = {}

    def on_error(err: Any) -> None:
        with lock:
            errors[err.name()] += 1

    def on_delivery(err: Any, msg: Any) -> None:
        key = msg.key().decode()
        with lock:
            if err is None:
                acked[key] = crcs[key]
            else:
                failed[key] = err.name()
                errors["delivery:" + err.name()] += 1

    bootstrap, topic, w = spec["bootstrap"], spec["topic"], spec["worker"]
    base = w * max(spec["producers"], spec["consumers"])
    producers = [Producer({"bootstrap.servers": bootstrap, "client.id": "load-producer", "acks": "all",
                           "enable.idempotence": True, "linger.ms": 20, "error_cb": on_error, **_QUIET})
                 for _ in range(spec["producers"])]
    consumers = []
    for i in range(spec["consumers"]):
        c = Consumer({"bootstrap.servers": bootstrap, "client.id": "load-consumer", "group.id": f"load-{w}-{i}",
                      "enable.auto.commit": False, "fetch.wait.max.ms": 200, "error_cb": on_error, **_QUIET})
        c.assign([TopicPartition(topic, (base + i) % spec["partitions"], OFFSET_BEGINNING)])
        consumers.append(c)
    consumed: set[str] = set()
    consumed_times: list[float] = []
    stop_consuming = threading.Event()

    def consume() -> None:
        while not stop_consuming.is_set():
            got = 0
            for c in consumers:
                for msg in c.consume(500, 0):
                    if msg.error():
                        on_error(msg.error())
                        continue
                    got += 1
                    consumed.add(bytes(msg.key() or b"").decode())
                    consumed_times.append(time.time())
            if not got:
                time.sleep(0.01)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    # Everyone starts producing at the same time, once every process has its clients up.
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    interval = 1.0 / spec["rate"]
    seq = 0
    next_at = time.monotonic()
    end = next_at + spec["seconds"]
    produce_start = time.time()
    while time.monotonic() < end:
        now = time.monotonic()
        while next_at <= now:
            for j, p in enumerate(producers):
                key = f"{spec['run']}-{w}-{j}-{seq:07d}"
                value = record_value(key, spec["size"])
                crcs[key] = checksum(value)
                try:
                    p.produce(topic, value, key.encode(), partition=(base + j) % spec["partitions"], on_delivery=on_delivery)
                    sent.append(key)
                except BufferError:
                    errors["produce:BufferError"] += 1
                except KafkaException as e:  # refused at once (nothing sent)
                    errors["produce:" + e.args[0].name()] += 1
            seq += 1
            next_at += interval
        for p in producers:
            try:
                p.poll(0)
            except KafkaException as e:  # a fatal producer error (idempotence broken): counted, not a crash
                errors["poll:" + e.args[0].name()] += 1
        time.sleep(0.005)
    produce_end = time.time()
    unreported = sum(p.flush(60) for p in producers)
    # The consumers read on until they have every acknowledged key of their partitions (or time out).
    mine = {(base + i) % spec["partitions"] for i in range(spec["consumers"])}
    expected = {k for k in acked if (base + int(k.split("-")[-2])) % spec["partitions"] in mine} if spec["consumers"] else set()
    deadline = time.monotonic() + spec.get("drain", 60)
    while time.monotonic() < deadline and not expected <= consumed:
        time.sleep(0.1)
    stop_consuming.set()
    reader.join(10)
    for c in consumers:
        c.close()
    return {"acked": acked, "failed": failed, "sent": sent, "errors": dict(errors), "unreported": unreported,
            "consumed": len(consumed), "missed": len(expected - consumed), "consumed_times": consumed_times,
            "produce_start": produce_start, "produce_end": produce_end}


@attrs.frozen
class LoadResult:
    profile: LoadProfile
    connections: int  # the most gatekeeper_connections_active showed
    fds: int  # the most open file descriptors of the twistd process
    produced: int  # acknowledged records
    seconds: float
    consumed: int  # records the consumers read through Gatekeeper
    consumed_seconds: float
    accounting: Accounting
    errors: dict[str, int]
    unreported: int
    missed: int  # acknowledged records a consumer of the partition did not read
    rss_bytes: int  # the most seen
    cpu_seconds: float
    stall: float  # the longest probe round trip while the clients ran
    broker_stall: float = 0.0  # the longest round trip of the same probe straight to the broker
    engine_errors: float = 0.0  # gatekeeper_engine_errors_total at the end (each one a deny)
    reactor_lag: float = 0.0  # gatekeeper_reactor_lag_max_seconds at the end

    @property
    def ok(self) -> bool:
        return self.accounting.ok and not self.errors and not self.unreported and not self.missed


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def run_load(broker: KafkaBroker, workdir: Path, profile: LoadProfile) -> LoadResult:
    """Clients in ``profile.workers`` processes through one ``twistd gatekeeper``."""
    workdir.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:8]
    topic = f"load-{run}"
    partitions = profile.workers * max(profile.producers, profile.consumers)
    broker.create_topic(topic, partitions=partitions)
    procs: list[subprocess.Popen[bytes]] = []
    with TwistdGateway(workdir / "gatekeeper", broker.bootstrap, extra=gateway_extra(workdir)) as gw:
        assert gw.proc is not None
        probe = Probe(gw.bootstrap)
        probe.start()
        direct = Probe(broker.bootstrap)
        direct.start()
        cpu0 = gw.cpu_seconds()
        start_at = time.time() + 10 + 0.05 * (profile.producers + profile.consumers)
        outputs = []
        for w in range(profile.workers):
            spec = {"bootstrap": gw.bootstrap, "topic": topic, "partitions": partitions, "run": run, "worker": w,
                    "producers": profile.producers, "consumers": profile.consumers, "rate": profile.rate,
                    "seconds": profile.seconds, "size": profile.size, "start_at": start_at, "nice": profile.client_nice}
            out = workdir / f"worker-{w}.json"
            outputs.append(out)
            procs.append(subprocess.Popen([sys.executable, "-m", "harness.load", "--worker", json.dumps(spec), "--out", str(out)],
                                          env={**os.environ}))
        connections = fds = rss = 0
        try:
            while any(p.poll() is None for p in procs):
                try:  # /metrics is served by the same busy reactor: a slow answer is skipped
                    connections = max(connections, int(gw.metric("gatekeeper_connections_active")))
                except OSError:
                    pass
                fds = max(fds, _fds(gw.proc.pid))
                rss = max(rss, gw.rss_bytes())
                time.sleep(0.5)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        cpu = gw.cpu_seconds() - cpu0
        probe.stop()
        direct.stop()
        engine_errors = lag = float("nan")
        for _ in range(3):  # the clients are gone, but the reactor may still be catching up
            try:
                engine_errors = gw.metric("gatekeeper_engine_errors_total")
                lag = gw.metric("gatekeeper_reactor_lag_max_seconds")
                break
            except OSError:
                time.sleep(2)
        bad = [p.returncode for p in procs if p.returncode]
        if bad:
            raise RuntimeError(f"load worker(s) failed with {bad}\n{gw.log_tail()}")
        results = [json.loads(out.read_text()) for out in outputs]
    acked: dict[str, int] = {}
    failed: dict[str, str] = {}
    sent: list[str] = []
    errors: Counter[str] = Counter()
    for r in results:
        acked.update(r["acked"])
        failed.update(r["failed"])
        sent += r["sent"]
        errors.update(r["errors"])
    start = min(r["produce_start"] for r in results)
    end = max(r["produce_end"] for r in results)
    times = sorted(t for r in results for t in r["consumed_times"])
    stored = read_back(broker.bootstrap, topic, partitions)
    return LoadResult(
        profile=profile, connections=connections, fds=fds, produced=len(acked), seconds=end - start,
        consumed=sum(r["consumed"] for r in results), consumed_seconds=(times[-1] - times[0]) if len(times) > 1 else 0.0,
        accounting=account(acked, stored, failed, sent), errors=dict(errors),
        unreported=sum(r["unreported"] for r in results), missed=sum(r["missed"] for r in results),
        rss_bytes=rss, cpu_seconds=cpu, stall=probe.longest(), broker_stall=direct.longest(),
        engine_errors=engine_errors, reactor_lag=lag,
    )


# -- large responses ---------------------------------------------------------------------------

@attrs.frozen
class StallResult:
    what: str
    bytes: int  # the large thing's size
    seconds: float  # how long it was being processed
    stall: float  # the longest probe round trip meanwhile
    baseline: float  # the longest probe round trip before it
    reactor_lag: float  # gatekeeper_reactor_lag_max_seconds at the end
    ok: bool


def run_large_fetch(broker: KafkaBroker, workdir: Path, megabytes: int = 110) -> StallResult:
    """One consumer fetching ``megabytes`` MB in one Fetch response while the probe runs."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    topic = f"load-fetch-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=1)
    value = os.urandom(100 * 1024)  # incompressible, so the response really is this big
    count = megabytes * 1024 * 1024 // len(value) + 1
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50, "compression.type": "none", **_QUIET})
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value, str(i).encode())
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0, "the large topic was not written"
    with TwistdGateway(workdir / "gatekeeper-fetch", broker.bootstrap, extra=gateway_extra(workdir)) as gw:
        probe = Probe(gw.bootstrap)
        probe.start()
        time.sleep(3)
        before = gw.metric("gatekeeper_bytes_total{direction=\"from_broker\"")
        big = 256 * 1024 * 1024
        consumer = Consumer({"bootstrap.servers": gw.bootstrap, "client.id": "load-fetch", "group.id": f"g-{topic}",
                             "enable.auto.commit": False, "fetch.max.bytes": big, "max.partition.fetch.bytes": big,
                             "receive.message.max.bytes": big + 1024, "queued.max.messages.kbytes": 2097151,
                             "fetch.wait.max.ms": 100, **_QUIET})
        t0 = time.monotonic()
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = 0
        deadline = t0 + 120
        while got < count and time.monotonic() < deadline:
            got += sum(1 for m in consumer.consume(1000, 0.5) if not m.error())
        consumer.close()
        # And the same partition in one Fetch request (v4) on a plain socket: one response frame
        # of the whole 100 MB+.
        largest = max(_raw_fetch(gw.bootstrap, topic, big) for _ in range(3))
        t1 = time.monotonic()
        time.sleep(0.5)
        probe.stop()
        relayed = int(gw.metric("gatekeeper_bytes_total{direction=\"from_broker\"") - before)
        fetches = gw.metric("gatekeeper_requests_total{api=\"Fetch\"")
        lag = gw.metric("gatekeeper_reactor_lag_max_seconds")
    stall = probe.longest(t0, t1 + 0.5)
    print(f"   large fetch: {got}/{count} records, {relayed} bytes from the broker in {fetches:g} Fetch requests, "
          f"largest response {largest} bytes, {t1 - t0:.1f} s", file=sys.stderr, flush=True)
    return StallResult(f"Fetch responses of {largest / 2**20:.0f} MiB (librdkafka consumer, then 3 single Fetch requests)",
                       largest, t1 - t0, stall, probe.longest(0, t0), lag, got == count and largest >= megabytes * 1024 * 1024)


def _raw_fetch(address: str, topic: str, max_bytes: int) -> int:
    """One Fetch v4 of partition 0 from offset 0 through Gatekeeper: the response frame's size."""
    host, port = address.rsplit(":", 1)
    client, name = b"load-fetch", topic.encode()
    body = (struct.pack(">hhih", 1, 4, 1, len(client)) + client
            + struct.pack(">iiiibi", -1, 500, 1, max_bytes, 0, 1) + struct.pack(">h", len(name)) + name
            + struct.pack(">iiqi", 1, 0, 0, max_bytes))
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        (n,) = struct.unpack(">i", _read(s, 4))
        head = _read(s, 8)
        left = n - 8
        while left:
            chunk = s.recv(min(left, 1 << 20))
            if not chunk:
                raise ConnectionError("closed mid-response")
            left -= len(chunk)
        (cid, _throttle) = struct.unpack(">ii", head)
        assert cid == 1, cid
        return 4 + n


def jwks_document(keys: int) -> dict[str, Any]:
    """A JWKS of ``keys`` RSA keys (one key pair under many ids: parsing costs the same)."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    return {"keys": [{**jwk, "kid": f"key-{i}", "use": "sig", "alg": "RS256"} for i in range(keys)]}


def run_jwks(broker: KafkaBroker, workdir: Path, keys: int = 5000, reloads: int = 5) -> StallResult:
    """A JWKS file of ``keys`` keys re-read ``reloads`` times (SIGHUP) while the probe runs."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "jwks.json"
    path.write_text(json.dumps(jwks_document(keys)))
    with TwistdGateway(workdir / "gatekeeper-jwks", broker.bootstrap, extra=gateway_extra(workdir, path)) as gw:
        probe = Probe(gw.bootstrap)
        probe.start()
        time.sleep(3)
        t0 = time.monotonic()
        for _ in range(reloads):
            gw.reload()
            time.sleep(1.5)
        t1 = time.monotonic()
        probe.stop()
        lag = gw.metric("gatekeeper_reactor_lag_max_seconds")
        loaded = gw.log_path.read_text(errors="replace").count(f"JWKS loaded: {keys} key(s)")
    return StallResult(f"JWKS of {keys} keys ({path.stat().st_size // 1024} KiB) re-read {reloads} times (SIGHUP)",
                       path.stat().st_size, t1 - t0, probe.longest(t0, t1), probe.longest(0, t0), lag, loaded >= reloads)


# -- the report --------------------------------------------------------------------------------

def _errors(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in Counter(counts).most_common()) or "none"


def format_load(results: Sequence[LoadResult]) -> str:
    head = ("| client processes × (producers + consumers) | connections Gatekeeper held (gauge / fds) | produced (acknowledged) "
            "| produced records/s | consumed through Gatekeeper | consumed records/s | lost / duplicates | client errors "
            "| Gatekeeper RSS (max) | Gatekeeper CPU | policy engine failures | reactor lag (max) "
            "| longest probe round trip: through Gatekeeper / straight to the broker |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        p, a = r.profile, r.accounting
        lines.append(
            f"| {p.workers} × ({p.producers} + {p.consumers}) | {r.connections} / {r.fds} | {r.produced} "
            f"| {r.produced / r.seconds:,.0f} | {r.consumed} | {r.consumed / max(r.consumed_seconds, 1e-9):,.0f} "
            f"| {len(a.lost)} / {a.duplicates} | {_errors(r.errors)} | {r.rss_bytes / 2**20:,.0f} MiB "
            f"| {r.cpu_seconds:.1f} s in {r.seconds:.0f} s ({100 * r.cpu_seconds / r.seconds:.0f}% of a core) "
            f"| {r.engine_errors:.0f} | {1000 * r.reactor_lag:.0f} ms | {1000 * r.stall:.0f} ms / {1000 * r.broker_stall:.0f} ms |")
    return "\n".join(lines)


def format_stalls(results: Sequence[StallResult]) -> str:
    head = "| large work | bytes | seconds | longest probe round trip meanwhile | before it | reactor lag (max) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        lines.append(f"| {r.what} | {r.bytes:,} | {r.seconds:.1f} | {1000 * r.stall:.0f} ms | {1000 * r.baseline:.0f} ms "
                     f"| {1000 * r.reactor_lag:.0f} ms |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="1,000 connections (the documented figures)")
    parser.add_argument("--only", nargs="+", choices=["clients", "fetch", "jwks"], help="run only these parts")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        Path(args.out).write_text(json.dumps(worker(json.loads(args.worker))))
        return 0
    profile = LONG if args.long else SHORT
    parts = args.only or ["clients", "fetch", "jwks"]
    broker = start_broker()
    loads, stalls = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="gatekeeper-load-") as tmp:
            if "clients" in parts:
                print("-- clients ...", file=sys.stderr, flush=True)
                loads.append(run_load(broker, Path(tmp) / "clients", profile))
            if "fetch" in parts:
                print("-- large fetch ...", file=sys.stderr, flush=True)
                stalls.append(run_large_fetch(broker, Path(tmp) / "fetch", profile.fetch_mb))
            if "jwks" in parts:
                print("-- large JWKS ...", file=sys.stderr, flush=True)
                stalls.append(run_jwks(broker, Path(tmp) / "jwks", profile.jwks_keys))
    finally:
        broker.stop()
    if loads:
        print(format_load(loads))
    if stalls:
        print()
        print(format_stalls(stalls))
    ok = all(r.ok for r in loads) and all(r.ok and r.stall <= profile.stall_bound for r in stalls)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
