"""Policy decision cost: engine latency and throughput, and Kafka throughput under policy.

    ~/.cache/gatekeeper/venv/bin/python bench/decisions.py [--quick]

Part 1, the engines in-process on the real reactor: decisions/s and p50/p99 latency for a cache
hit, an OPA-server miss (a real ``opa run --server``) and an embedded miss, over policy inputs
shaped like real traffic. Part 2, Kafka: ProducerPerformance/ConsumerPerformance through two
``twistd gatekeeper`` processes in front of one broker, alternating — one with the allow-all
engine (passthrough) and one with the default policy library on the embedded engine (warm
cache) — and the ratio policy/passthrough (target >= 0.95). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python bench/decisions.py`: harness/ is at the root
POLICIES = ROOT / "policies"

BENCH_DATA = {
    "gatekeeper_config": {
        "grants": [
            {"principals": {"groups": ["bench"]}, "resources": {"type": "topic", "patterns": ["bench-*"]}, "operations": ["*"]},
            {"principals": {"groups": ["bench"]}, "resources": {"type": "group", "patterns": ["perf-*"]}, "operations": ["*"]},
            {"principals": {"groups": ["bench"]}, "resources": {"type": "cluster", "patterns": ["*"]}, "operations": ["*"]},
        ],
        "immutable_topics": ["audit.*"],
        "always_allowed": ["api_versions", "authenticate", "find_coordinator", "list_topics"],
        "default_ttl": "30s",
    }
}


def _input(i: int, distinct: bool) -> dict[str, Any]:
    topic = f"bench-{i}" if distinct else "bench-0"
    return {
        "version": 1, "protocol": "kafka", "operation": "produce",
        "api": {"key": 0, "name": "Produce", "version": 11},
        "principal": {"sub": f"svc-{i % 50 if distinct else 0}", "issuer": "https://idp.example",
                      "groups": ["bench", "other-team"], "claims": {}, "mechanism": "CLIENT_ID"},
        "resource": {"type": "topic", "name": topic},
        "client": {"id": "bench", "address": "127.0.0.1"},
        "session": {"id": "01BENCH", "started_at": "2026-11-23T00:00:00Z"},
        "request": {"acks": -1, "partitions": [0, 1, 2], "record_count": 48, "bytes": 49152},
        "grants": [], "time": "2026-11-23T00:00:01Z",
    }


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def engine_part(reactor: Any, n: int, data_path: Path, opa_url: str) -> Any:
    from twisted.internet import defer

    from gatekeeper.metrics import Metrics
    from gatekeeper.policy.cache import DecisionCache
    from gatekeeper.policy.embedded_backend import EmbeddedBackend
    from gatekeeper.policy.engine import PolicyEngine
    from gatekeeper.policy.opa import OpaBackend

    @defer.inlineCallbacks
    def measure(label: str, backend: Any, cache_entries: int, distinct: bool, concurrency: int) -> Any:
        engine = PolicyEngine(backend, DecisionCache(cache_entries, 60.0, reactor.seconds), Metrics(), reactor, timeout=5.0)
        yield engine.start()
        yield engine.decide_many([_input(0, distinct)])  # warm
        latencies: list[float] = []
        decisions: list[str] = []

        @defer.inlineCallbacks
        def one(i: int) -> Any:
            t0 = time.perf_counter()
            (d,) = yield engine.decide_many([_input(i, distinct)])
            latencies.append(time.perf_counter() - t0)
            decisions.append(d.action)

        started = time.perf_counter()
        for start in range(0, n, concurrency):
            yield defer.gatherResults([one(i) for i in range(start, min(n, start + concurrency))])
        elapsed = time.perf_counter() - started
        yield engine.stop()
        allowed = decisions.count("allow")
        print(f"  {label:28} {n / elapsed:10.0f} decisions/s   p50 {_pct(latencies, 0.5) * 1e3:8.3f} ms   "
              f"p99 {_pct(latencies, 0.99) * 1e3:8.3f} ms   ({allowed}/{len(decisions)} allowed)", flush=True)
        return {"decisions_per_s": n / elapsed, "p50_ms": _pct(latencies, 0.5) * 1e3, "p99_ms": _pct(latencies, 0.99) * 1e3}

    @defer.inlineCallbacks
    def run() -> Any:
        out = {}
        print("engines (in-process, real reactor):")
        out["cache_hit"] = yield measure("cache hit", EmbeddedBackend(POLICIES, data_path, "gatekeeper/decision", reactor), 100_000, False, 1)
        out["opa_miss"] = yield measure("OPA server miss (1 in flight)", OpaBackend(opa_url, "gatekeeper/decision", POLICIES, data_path, reactor), 0, True, 1)
        out["opa_miss_16"] = yield measure("OPA server miss (16 in flight)", OpaBackend(opa_url, "gatekeeper/decision", POLICIES, data_path, reactor), 0, True, 16)
        out["embedded_miss"] = yield measure("embedded miss", EmbeddedBackend(POLICIES, data_path, "gatekeeper/decision", reactor), 0, True, 1)
        return out

    return run()


def kafka_part(records: int, rounds: int, data_path: Path) -> dict[str, Any]:
    from harness.broker import KafkaBroker
    from harness.gateway import TwistdGateway
    from harness.javatools import consumer_perf, producer_perf

    principal = {"bench-client": {"sub": "svc-bench", "groups": ["bench"]}}
    props = {"acks": "all", "client.id": "bench-client"}
    results: dict[str, list[tuple[float, float]]] = {"passthrough": [], "policy": []}
    print(f"\nkafka: {rounds} round(s) of {records} x 1 KiB records, acks=all", flush=True)
    with tempfile.TemporaryDirectory() as work, KafkaBroker() as broker, \
            TwistdGateway(Path(work) / "pass", broker.bootstrap) as passthrough, \
            TwistdGateway(Path(work) / "pol", broker.bootstrap, extra={
                "policy": {"engine": "embedded", "policies": str(POLICIES), "data": str(data_path),
                           "cache": {"max_entries": 100000, "default_ttl": "30s"}},
                "identity": {"client_id_principals": principal}}) as policy:
        gws = {"passthrough": passthrough, "policy": policy}
        for rnd in range(rounds):
            order = ["passthrough", "policy"] if rnd % 2 == 0 else ["policy", "passthrough"]
            for name in order:
                topic = f"bench-{name}-{rnd}"
                broker.create_topic(topic, partitions=3)
                p = producer_perf(gws[name].bootstrap, topic, num_records=records, record_size=1024, properties=props)
                c = consumer_perf(gws[name].bootstrap, topic, num_records=records,
                                  properties={"client.id": "bench-client", "group.id": f"perf-{name}-{rnd}"})
                results[name].append((p.records_per_sec, c.records_per_sec))
                print(f"  round {rnd + 1} {name:12} produce {p.records_per_sec:9.0f} rec/s  consume {c.records_per_sec:9.0f} rec/s", flush=True)
        denied = policy.log_path.read_text().count("denied ")
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in results.items()}
    ratio = (med["policy"][0] / med["passthrough"][0], med["policy"][1] / med["passthrough"][1])
    print(f"  medians: produce policy/passthrough {ratio[0]:.3f}, consume {ratio[1]:.3f} (target >= 0.95); "
          f"denials logged by the policy gateway: {denied}")
    return {"medians": med, "ratio_produce": ratio[0], "ratio_consume": ratio[1], "denials": denied}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decisions", type=int, default=5000)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-kafka", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.quick:
        args.decisions, args.records, args.rounds = 500, 20_000, 1
    with tempfile.TemporaryDirectory() as work:
        data_path = Path(work) / "bench-data.json"
        data_path.write_text(json.dumps(BENCH_DATA))
        from twisted.internet import reactor, task

        from harness.opa import OpaServer

        results: dict[str, Any] = {}
        with OpaServer() as opa:
            def go(r: Any) -> Any:
                d = engine_part(r, args.decisions, data_path, opa.url)
                d.addCallback(results.update)
                return d

            try:
                task.react(lambda r: go(r))
            except SystemExit as e:
                if e.code:
                    return int(e.code)
        _ = reactor
        if not args.skip_kafka:
            results["kafka"] = kafka_part(args.records, args.rounds, data_path)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
