"""What-if replay speed: recorded policy inputs per second against a candidate policy.

    ~/.cache/gatekeeper/venv/bin/python bench/whatif.py [--inputs 200000] [--grants 0.01] [--json FILE]

Builds a synthetic trail shaped like a busy hour of a gateway: principals whose activity
follows a Zipf law, each producing to or consuming from a few of 400 topics over many sessions
(consumers also commit and fetch offsets, join groups, list topics), times to the millisecond,
produce sizes all different, and a share of inputs (``--grants``) carrying a time-boxed grant
from an approval — the only inputs whose decision the default library reads the time for.
The decisions are recorded under policy A (the default library and its data), the trail written,
then replayed against policy B (one topic pattern revoked, another opened) on the
embedded engine:

- core: ``WhatIf.add`` for every recorded decision, then ``run`` (evaluate and compare);
- end to end: the trail (written through the audit writer and file sink: chained, signed,
  segmented) read back with ``gatekeeper.audit.reader`` as ``gatekeeper policy what-if`` does,
  then the core.

Prints inputs/s for both, with the distinct inputs and evaluations. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOPICS = [f"{team}.{name}" for team in ("orders", "payments", "clicks", "inventory", "shipping", "billing", "search", "ml")
          for name in [f"stream-{i}" for i in range(50)]]
GROUPS = {
    "orders": ["orders-writers"], "payments": ["payments-writers"], "clicks": ["clicks-writers"],
    "inventory": ["inventory-team"], "shipping": ["shipping-team"], "billing": ["billing-team"],
    "search": ["search-team"], "ml": ["analytics-readers"],
}


def _data(revoked: str | None = None, opened: str | None = None) -> dict[str, Any]:
    grants: list[dict[str, Any]] = []
    for team, groups in GROUPS.items():
        patterns = [f"{team}.*"]
        grants.append({"principals": {"groups": groups}, "resources": {"type": "topic", "patterns": patterns},
                       "operations": ["produce", "describe_topic", "consume"]})
    grants.append({"principals": {"groups": ["analytics-readers"]}, "resources": {"type": "topic", "patterns": ["orders.*", "clicks.*"]},
                   "operations": ["consume", "describe_topic", "commit_offset", "fetch_offset"]})
    grants.append({"principals": {"groups": ["analytics-readers"]}, "resources": {"type": "group", "patterns": ["analytics-*"]},
                   "operations": ["join_group", "commit_offset", "fetch_offset", "describe_group"]})
    for g in grants:
        pats = g["resources"]["patterns"]
        if revoked in pats:
            pats.remove(revoked)
            pats.append(f"{revoked.split('.')[0]}.keep-*")
        if opened and g["resources"]["type"] == "topic" and g["principals"] == {"groups": ["analytics-readers"]}:
            pats.append(opened)
    return {"gatekeeper_config": {
        "default_ttl": "5s",
        "always_allowed": ["api_versions", "authenticate", "find_coordinator", "list_topics", "describe_cluster"],
        "immutable_topics": ["audit.**"],
        "grants": grants,
    }}


def synthetic(n: int, grant_share: float, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` policy inputs over an hour."""
    rng = random.Random(seed)
    teams = list(GROUPS)
    principals = []
    for p in range(120):
        team = teams[p % len(teams)]
        reader = p % 3 == 0
        principals.append({
            "sub": f"svc-{team}-{p}", "groups": GROUPS["ml"] if reader else GROUPS[team], "reader": reader,
            "topics": rng.sample([t for t in TOPICS if t.startswith(("orders", "clicks") if reader else team)], 4),
        })
    weights = [1 / (k + 1) for k in range(len(principals))]  # Zipf
    sessions = [(f"01JBENCH{s:018d}", rng.choices(principals, weights)[0]) for s in range(3000)]
    start = 1795867200.0  # 2026-11-26T00:00:00Z
    out = []
    for k in range(n):
        sid, p = sessions[int(rng.paretovariate(1.2) * 37) % len(sessions)]
        now = start + 3600 * k / n
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        topic = rng.choice(p["topics"])
        r = rng.random()
        if p["reader"]:
            op, rtype, name = (("consume", "topic", topic) if r < 0.6 else ("commit_offset", "group", f"analytics-{p['sub']}")
                               if r < 0.85 else ("fetch_offset", "topic", topic) if r < 0.95 else ("list_topics", "cluster", "kafka-cluster"))
        else:
            op, rtype, name = ("produce", "topic", topic) if r < 0.93 else ("describe_topic", "topic", topic) if r < 0.98 else ("list_topics", "cluster", "kafka-cluster")
        grants = []
        if rng.random() < grant_share:
            name, op, rtype = rng.choice(TOPICS), "produce", "topic"
            expiry = now + rng.uniform(-600, 900)
            grants = [{"id": f"g{k}", "operation": op, "resource": {"type": rtype, "name": name},
                       "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))}]
        out.append({
            "version": 1, "protocol": "kafka", "operation": op,
            "api": {"key": 0 if op == "produce" else 1, "name": "Produce" if op == "produce" else "Fetch", "version": 9},
            "principal": {"sub": p["sub"], "issuer": "https://idp.example", "groups": p["groups"], "claims": {}, "mechanism": "OAUTHBEARER"},
            "resource": {"type": rtype, "name": name},
            "client": {"id": f"{p['sub']}-client", "address": f"10.0.{k % 7}.{k % 250}"},
            "session": {"id": sid, "started_at": "2026-11-26T00:00:00Z"},
            "request": {"acks": -1, "partitions": [0, 1, 2], "record_count": rng.randint(1, 500), "bytes": rng.randint(100, 900_000)}
            if op == "produce" else {"partitions": [0]},
            "grants": grants,
            "time": stamp,
        })
    return out


def record(inputs: list[dict[str, Any]], policy_dir: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Request records of the inputs decided under the policy (evaluated once per distinct input
    as far as the policy can tell apart: time only where a grant is carried)."""
    from gatekeeper.audit.shapes import enforced_fields, operation_entry, principal_fields
    from gatekeeper.policy.decision import DecisionError, engine_failure, parse_decision
    from gatekeeper.policy.embedded import EmbeddedEvaluator, EvaluationError
    from gatekeeper.policy.whatif import stable_key

    evaluator = EmbeddedEvaluator.load(policy_dir, data, "gatekeeper/decision")
    memo: dict[Any, dict[str, Any]] = {}
    out = []
    for inp in inputs:
        key = (stable_key(inp), inp["time"] if inp["grants"] else None)
        entry = memo.get(key)
        if entry is None:
            try:
                d = parse_decision(evaluator.evaluate(inp))
            except (EvaluationError, DecisionError) as e:
                d = engine_failure(f"denied: the policy gave no valid decision ({e})")
            entry = memo[key] = operation_entry(inp, d, "sha256:" + "a" * 64, enforced_fields("forwarded"), cached=False)
        out.append({"kind": "request", "time": inp["time"], "session": inp["session"]["id"],
                    "principal": principal_fields(inp["principal"]), "client": inp["client"], "api": inp["api"],
                    "operations": [{**entry, "input": inp}], "outcome": {"from": "broker"}, "latency_ms": 0.4})
    return out


def write_trail(directory: Path, records: list[dict[str, Any]]) -> None:
    """The records as a file trail through the real writer and file sink (chained, signed)."""
    from gatekeeper.audit.records import parse_time
    from gatekeeper.testing.audit import write_trail as write

    items = [("request", {k: v for k, v in r.items() if k not in ("kind", "time")}, parse_time(r["time"])) for r in records]
    write(directory, items, b"bench" * 8, instance="bench")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=200_000)
    ap.add_argument("--grants", type=float, default=0.01, help="share of inputs carrying a time-boxed grant")
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args(argv)

    from gatekeeper.policy.candidate import EmbeddedCandidate
    from gatekeeper.policy.recorded import RecordedDecisions
    from gatekeeper.policy.replay import TrailReader
    from gatekeeper.policy.whatif import WhatIf

    work = Path(tempfile.mkdtemp(prefix="gatekeeper-whatif-bench-"))
    try:
        library = ROOT / "policies" / "gatekeeper" / "decision.rego"
        for name, data in (("a", _data()), ("b", _data(revoked="payments.*", opened="search.*"))):
            (work / name / "gatekeeper").mkdir(parents=True)
            shutil.copy(library, work / name / "gatekeeper" / "decision.rego")
            (work / name / "data.json").write_text(json.dumps(data))
        t0 = time.perf_counter()
        inputs = synthetic(args.inputs, args.grants)
        records = record(inputs, work / "a", _data())
        trail = work / "audit"
        write_trail(trail, records)
        size = sum(f.stat().st_size for f in trail.iterdir())
        print(f"trail: {len(records):,} recorded decisions, {size / 1e6:.0f} MB in {len(list(trail.iterdir()))} "
              f"segments (built in {time.perf_counter() - t0:.1f}s)")

        results: dict[str, Any] = {"inputs": len(records), "grant_share": args.grants}
        candidate = EmbeddedCandidate.load(work / "b", work / "b" / "data.json", "gatekeeper/decision")
        t0 = time.perf_counter()
        w = WhatIf(candidate)
        for r in records:
            op = r["operations"][0]
            w.add(op["input"], op["decision"], r["session"])  # as RecordedDecisions hands them
        report = w.run()
        core = time.perf_counter() - t0
        results["core"] = {"seconds": core, "inputs_per_second": len(records) / core}

        candidate = EmbeddedCandidate.load(work / "b", work / "b" / "data.json", "gatekeeper/decision")
        t0 = time.perf_counter()
        w = WhatIf(candidate)
        for rec in RecordedDecisions(TrailReader(str(trail), None, None)):
            w.add(rec.input, rec.decision, rec.session)
        report = w.run()
        e2e = time.perf_counter() - t0
        results["end_to_end"] = {"seconds": e2e, "inputs_per_second": len(records) / e2e}
        s = report.summary
        results["report"] = {"distinct": s.distinct, "evaluations": s.evaluations, "changed": s.changed,
                             "transitions": dict(s.transitions)}
        print(f"distinct inputs {s.distinct:,}, evaluations {s.evaluations:,}, would change {s.changed:,} "
              f"({'; '.join(f'{t} {n:,}' for t, n in s.transitions)})")
        print(f"core (in memory):        {len(records) / core:>10,.0f} inputs/s ({core:.2f}s)")
        print(f"end to end (trail file): {len(records) / e2e:>10,.0f} inputs/s ({e2e:.2f}s)")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
