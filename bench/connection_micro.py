"""Python CPU per Produce request in the Kafka connection core, with no sockets and no threads.

    ~/.cache/gatekeeper/venv/bin/python bench/connection_micro.py [--requests N] [--audit | --trail]
        [--version 12|13] [--cold MIB] [--profile]

Feeds the sans-I/O connection core (the one ``twistd gatekeeper`` runs per client connection)
Produce requests like Kafka's ProducerPerformance sends with its defaults (3 partitions,
15 records of 1 KiB per batch, uncompressed), answers their decisions from a real
``PolicyEngine`` (allow-all backend, warm decision cache) and their broker responses with
Produce responses, and prints the microseconds of Python per request and per 1,000 records.
``--version 13`` sends Produce v13, what Kafka 4's Java producer sends: topics by id, which the
core resolves to names through its cluster view (told the benchmark topic's id up front, as a
Metadata answer passing through would); the default is v12, topics by name.
``--audit`` adds the request record's fields as the audit trail builds them (the record is
then dropped); ``--trail`` hands them to a real audit trail (file sink in a temporary
directory, fsync never) and counts this thread's side of it (rendering, queueing), not the
writer thread's. ``--profile`` prints cProfile's top functions. What this leaves out is what the kernel and Twisted's reactor cost per request:
compare with ``bench/throughput.py``'s Gatekeeper CPU per 1,000 records for that.
``--cold MIB`` writes MIB MiB of memory before each request, outside the count, so that each
request runs with the CPU caches evicted, as in a gateway whose cores run the broker's and the
clients' processes between its requests; the loop alone runs them warm, which flatters code that
is short on instructions but large (see docs/performance.md, "Compiled with Cython").
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka.record.memory_records import MemoryRecordsBuilder  # noqa: E402

from gatekeeper.api import ANONYMOUS, AdapterServices  # noqa: E402
from gatekeeper.kafka.adapter import KafkaAdapter  # noqa: E402
from gatekeeper.kafka.codec import API_TABLE  # noqa: E402
from gatekeeper.masking import Masking  # noqa: E402
from gatekeeper.metrics import gateway_metrics  # noqa: E402
from gatekeeper.policy.cache import DecisionCache  # noqa: E402
from gatekeeper.policy.engine import AllowAllBackend, PolicyEngine  # noqa: E402
from gatekeeper.testing.audit import RecordingTrail, ThreadedClock  # noqa: E402
from gatekeeper.testing.connection import RecordingIO  # noqa: E402
from gatekeeper.testing.fakes import fake_config  # noqa: E402
from gatekeeper.values import HostPort  # noqa: E402

VERSION = 12
TOPIC_ID = uuid.UUID("6f1c2a4e-3b5d-4c7e-9a8b-1d2e3f405162")
ROUND = 500  # requests built once and sent again in each round
TOPIC = "bench"
PARTITIONS = 3
RECORDS_PER_BATCH = 15
VALUE = b"x" * 1024


def batch() -> bytes:
    builder = MemoryRecordsBuilder(2, 0, 1 << 20, offset=0)
    for i in range(RECORDS_PER_BATCH):
        builder.append(timestamp=int(time.time() * 1000), key=None, value=VALUE, headers=[])
        del i
    builder.close()
    return bytes(builder.buffer())


def _topic(version: int) -> dict[str, Any]:
    return {"topic_id": TOPIC_ID} if version >= 13 else {"name": TOPIC}


def produce_request(correlation: int, records: bytes, version: int = VERSION) -> bytes:
    spec = API_TABLE[0]
    R = spec.request[version]
    T = R.TopicProduceData
    P = T.PartitionProduceData
    body = R(transactional_id=None, acks=-1, timeout_ms=30000, topic_data=[
        T(**_topic(version), partition_data=[P(index=p, records=records) for p in range(PARTITIONS)])])
    client = b"perf-producer-client"
    header = struct.pack(">hhih", 0, version, correlation, len(client)) + client + b"\x00"
    payload = header + bytes(body.encode(version=version))
    return struct.pack(">i", len(payload)) + payload


def produce_response(correlation: int, version: int = VERSION) -> bytes:
    spec = API_TABLE[0]
    R = spec.response[version]
    T = R.TopicProduceResponse
    P = T.PartitionProduceResponse
    body = R(responses=[T(**_topic(version), partition_responses=[
        P(index=p, error_code=0, base_offset=correlation * RECORDS_PER_BATCH, log_append_time_ms=-1, log_start_offset=0,
          record_errors=[], error_message=None) for p in range(PARTITIONS)])], throttle_time_ms=0)
    payload = struct.pack(">i", correlation) + b"\x00" + bytes(body.encode(version=version))
    return struct.pack(">i", len(payload)) + payload


def real_trail(clock: ThreadedClock, directory: str) -> Any:
    """A started file-sink trail on ``clock`` (the writer thread's reports run when the clock
    drains)."""
    from gatekeeper.api import AuditSinkContext
    from gatekeeper.audit.file_sink import FileSink
    from gatekeeper.audit.trail import AuditTrail

    sink = FileSink({"directory": directory, "fsync": "never"}, AuditSinkContext("file", "bench"))
    trail = AuditTrail(sink, key=b"k" * 32, instance="bench", reactor=clock, checkpoint_interval=0)
    trail.start()
    clock.run_until(lambda: trail.available)
    return trail


def run(requests: int, audit: str | None, profile: bool, version: int = VERSION, cold: int = 0) -> None:
    clock = ThreadedClock(time.time())
    scratch = tempfile.TemporaryDirectory(prefix="gk-micro-")
    trail = (RecordingTrail(keep=False) if audit == "fields" else real_trail(clock, scratch.name) if audit == "trail"
             else None)
    cfg = fake_config(listeners=[{"name": "bench", "bind": "127.0.0.1:9192", "advertised_host": "gk.example",
                                  "broker_ports": "9193-9195"}])
    metrics = gateway_metrics()
    engine = PolicyEngine(AllowAllBackend(), DecisionCache(10_000, 60.0, clock.seconds), metrics, clock, timeout=1.0)
    engine.start()
    services = AdapterServices(
        config=cfg, metrics=metrics, clock=clock.seconds, identity=None, upstream_credentials=lambda: None,
        principal_for_client_id=lambda cid: ANONYMOUS, next_bootstrap=lambda: HostPort("127.0.0.1", 19092),
        inputs_decoded=lambda inputs: None, masking=Masking(cfg.masking), audit=trail,
    )
    io = RecordingIO(clock, engine=engine, offload_inline=True, hold_raises="no approvals here",
                     close_raises="the connection core closed the connection: the benchmark's frames are wrong")
    core = io.core = KafkaAdapter(services).connection(cfg.listeners[0], None, io)
    core.start("127.0.0.1", 50000)
    core.s.cluster.observe_topics([(TOPIC_ID, TOPIC)])  # as a Metadata answer passing through would
    records = batch()
    # One round of frames, sent again and again (correlation ids repeat only once their answers
    # came): a gateway's heap does not grow by the whole run, and neither does this one's.
    frames = [produce_request(i, records, version) for i in range(ROUND)]
    answers = [produce_response(i, version) for i in range(ROUND)]
    core.client_data(frames[0])
    core.upstream_connected()
    core.upstream_data(answers[0])
    keys = [struct.unpack_from(">h", f)[0] for f in io.upstream_frames()]  # the api keys forwarded
    if keys != [0]:
        raise SystemExit(f"the first request was not forwarded as it came: {keys}")
    # Only counted from here on: keeping every forwarded frame would grow the heap by the whole
    # run (fresh pages on every allocation), which a gateway never does.
    io.keep = False
    # This thread's CPU only: a real trail's writer thread runs beside it, and waits for the
    # records of each round to be written (outside the count) so the queue never fills.
    profiler = cProfile.Profile(time.thread_time) if profile else None
    spent = 0.0
    evicted, filler = bytearray(cold << 20), bytes(cold << 20)
    rounds = max(1, (requests - 1) // ROUND)
    for r in range(rounds):
        started = time.thread_time()
        if profiler:
            profiler.enable()
        for frame, answer in zip(frames[1:] if r == 0 else frames, answers[1:] if r == 0 else answers, strict=True):
            if cold:
                spent += time.thread_time() - started
                evicted[:] = filler  # every cache line of it written: the caches hold it, not the core
                started = time.thread_time()
            core.client_data(frame)
            clock.advance(0.0001)
            core.upstream_data(answer)
        if profiler:
            profiler.disable()
        spent += time.thread_time() - started
        if audit == "trail":
            written = trail.flushed()
            clock.run_until(lambda: written.called)  # noqa: B023 - called at once
    if audit == "trail":
        stopped = trail.stop()
        clock.run_until(lambda: stopped.called)
    scratch.cleanup()
    expected = rounds * sum(len(f) for f in frames)  # the first frame went before the count
    if io.upstream_bytes != expected:
        raise SystemExit(f"{io.upstream_bytes} bytes forwarded for {expected} bytes of requests")
    per_request = spent / (rounds * len(frames) - 1) * 1e6
    per_1k = per_request * 1000 / (PARTITIONS * RECORDS_PER_BATCH) / 1000
    what = {"fields": "with audit fields", "trail": "with the audit trail", None: "without audit"}[audit]
    if cold:
        what += f", caches evicted before each request ({cold} MiB written)"
    print(f"{what}: {per_request:.1f} us of Python per Produce v{version} request "
          f"({PARTITIONS} partitions x {RECORDS_PER_BATCH} records of 1 KiB), {per_1k:.2f} ms per 1,000 records")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20_000)
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--audit", action="store_const", const="fields", dest="audit")
    how.add_argument("--trail", action="store_const", const="trail", dest="audit")
    ap.add_argument("--version", type=int, choices=(12, 13), default=VERSION,
                    help="the Produce version sent (13: topics by id, as Kafka 4's Java producer sends)")
    ap.add_argument("--cold", type=int, default=0, metavar="MIB",
                    help="write MIB MiB of memory before each request, outside the count (the caches evicted)")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    if args.cold < 0:
        ap.error("--cold must not be negative")
    run(args.requests, args.audit, args.profile, args.version, args.cold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
