"""A small audit trail decided under a real policy, for the what-if and fixtures tests."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gatekeeper.api import Decision
from gatekeeper.audit.records import parse_time
from gatekeeper.audit.shapes import enforced_fields, operation_entry, principal_fields
from gatekeeper.policy.decision import DecisionError, engine_failure, parse_decision
from gatekeeper.policy.embedded import EmbeddedEvaluator, EvaluationError

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "policies" / "gatekeeper" / "decision.rego"

ALWAYS = ["api_versions", "authenticate", "find_coordinator", "list_topics", "describe_cluster"]


def policy(tmp: Path, name: str, produce_topics: list[str]) -> Path:
    """The default library with orders-writers allowed to produce to ``produce_topics`` and
    analytics-readers to consume orders."""
    d = tmp / name
    (d / "gatekeeper").mkdir(parents=True)
    shutil.copy(LIBRARY, d / "gatekeeper" / "decision.rego")
    data = {
        "gatekeeper_config": {
            "default_ttl": "5s",
            "always_allowed": ALWAYS,
            "grants": [
                {"principals": {"groups": ["orders-writers"]},
                 "resources": {"type": "topic", "patterns": produce_topics}, "operations": ["produce", "describe_topic"]},
                {"principals": {"groups": ["analytics-readers"]},
                 "resources": {"type": "topic", "patterns": ["orders"]}, "operations": ["consume"]},
            ],
        }
    }
    (d / "data.json").write_text(json.dumps(data))
    return d


def policy_input(sub: str, groups: list[str], operation: str, topic: str, *, session: str, t: str,
                 grants: list[Any] | None = None, nbytes: int = 1000) -> dict[str, Any]:
    return {
        "version": 1, "protocol": "kafka", "operation": operation,
        "api": {"key": 0 if operation == "produce" else 1, "name": "Produce" if operation == "produce" else "Fetch", "version": 9},
        "principal": {"sub": sub, "issuer": "https://idp.example", "groups": groups, "claims": {}, "mechanism": "OAUTHBEARER"},
        "resource": {"type": "topic", "name": topic},
        "client": {"id": f"{sub}-client", "address": "127.0.0.1"},
        "session": {"id": session, "started_at": "2026-11-22T10:00:00Z"},
        "request": {"acks": -1, "partitions": [0], "record_count": 10, "bytes": nbytes} if operation == "produce" else {"partitions": [0]},
        "grants": grants or [],
        "time": t,
    }


def decide(evaluator: EmbeddedEvaluator, policy_input: Mapping[str, Any]) -> Decision:
    """The decision as the gateway makes it (strict parsing; no valid decision is a deny)."""
    try:
        return parse_decision(evaluator.evaluate(policy_input))
    except (EvaluationError, DecisionError) as e:
        return engine_failure(f"denied: the policy gave no valid decision ({e})")


def traffic() -> list[dict[str, Any]]:
    """Inputs of a few sessions: svc-orders produces to orders, payments and invoices;
    analytics consumes orders; an outsider is refused."""
    out = []
    for s in range(4):
        session = f"01JSESSION{s:016d}"
        for i in range(25):
            t = f"2026-11-22T10:{s:02d}:{i:02d}.{i * 7 % 1000:03d}Z"
            out.append(policy_input("svc-orders", ["orders-writers"], "produce", "orders", session=session, t=t, nbytes=100 + i))
            out.append(policy_input("svc-orders", ["orders-writers"], "produce", "payments", session=session, t=t))
            if i % 5 == 0:
                out.append(policy_input("svc-orders", ["orders-writers"], "produce", "invoices", session=session, t=t))
            out.append(policy_input("analytics-1", ["analytics-readers"], "consume", "orders", session=session + "A", t=t))
            if i % 10 == 0:
                out.append(policy_input("outsider", [], "consume", "payments", session=session + "X", t=t))
    return out


def records(policy_dir: Path, inputs: Iterable[Mapping[str, Any]],
            revision: str = "sha256:" + "a" * 64) -> list[tuple[str, dict[str, Any], float]]:
    """``(kind, fields, time)`` of ``request`` records (one operation each) of ``inputs``
    decided under ``policy_dir``, for ``write_trail``."""
    evaluator = EmbeddedEvaluator.load(policy_dir, json.loads((policy_dir / "data.json").read_text()), "gatekeeper/decision")
    out = []
    for inp in inputs:
        decision = decide(evaluator, inp)
        allowed = decision.action == "allow"
        enforced = enforced_fields("forwarded") if allowed else enforced_fields("denied", error_code=29)
        fields = {
            "session": inp["session"]["id"],
            "principal": principal_fields(inp["principal"]),
            "client": inp["client"], "api": inp["api"],
            "operations": [operation_entry(inp, decision, revision, enforced, cached=False)],
            "outcome": {"from": "broker" if allowed else "gatekeeper"}, "latency_ms": 0.5,
        }
        out.append(("request", fields, parse_time(inp["time"])))
    return out


KEY = b"k" * 32


def write_trail(directory: Path, items: Iterable[tuple[str, Mapping[str, Any], float]], *,
                instance: str = "gk-test", segment_bytes: int = 64 * 1024 * 1024) -> Path:
    """A file trail written through the real writer and file sink: chained, with signed start
    and stop checkpoints."""
    from gatekeeper.testing.audit import write_trail as write

    write(directory, items, KEY, instance=instance, segment_bytes=segment_bytes)
    return directory
