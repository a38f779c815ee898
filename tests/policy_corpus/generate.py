"""Regenerate the decision corpus: inputs across the default library and its example configs,
with the decisions the real OPA gives today. Run it after an intended policy change and review
the diff; tests/integration/test_engines_agree.py holds both engines to these decisions.

    ~/.cache/gatekeeper/venv/bin/python tests/policy_corpus/generate.py
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script: harness/ is at the repository root

from harness.deps import ensure_opa  # noqa: E402

OUT = Path(__file__).resolve().parent

OPS = [("produce", "topic"), ("consume", "topic"), ("describe_topic", "topic"), ("delete_topic", "topic"),
       ("delete_records", "topic"), ("join_group", "group"), ("commit_offset", "group"), ("api_versions", "cluster"),
       ("describe_cluster", "cluster"), ("init_producer", "transactional_id"), ("join_group", "share_group"),
       ("consume", "share_group"), ("commit_offset", "share_group")]
NAMES = {"topic": ["orders", "orders.eu", "orders.eu.x", "orders-x", "audit.logins", "ledger", "ingest.clicks", "payments.settled"],
         "group": ["analytics-1", "orders-app", "ingestion-pipeline", "payments-reporting"],
         "share_group": ["analytics-queue", "orders-app"],
         "cluster": ["kafka-cluster"], "transactional_id": ["tx-orders"]}
PRINCIPALS = [("svc-orders", ["orders-writers", "team-orders"]), ("svc-analytics", ["analytics-readers"]),
              ("ops", ["platform"]), ("anonymous", []), ("svc-audit-writer", ["ingestion-pipeline"])]


def doc(op: str, rtype: str, name: str, sub: str, groups: list[str], extra: dict | None = None) -> dict:
    d = {"version": 1, "protocol": "kafka", "operation": op, "api": {"key": 0, "name": "Produce", "version": 9},
         "principal": {"sub": sub, "issuer": "https://idp.example", "groups": groups, "claims": {}, "mechanism": "OAUTHBEARER"},
         "resource": {"type": rtype, "name": name}, "client": {"id": "corpus", "address": "127.0.0.1"},
         "session": {"id": "01CORPUS", "started_at": "2026-11-23T10:00:00Z"}, "request": {}, "grants": [],
         "time": "2026-11-23T10:00:03Z"}
    d.update(extra or {})
    return d


def opa_decision(data: Path, policy_input: dict) -> dict:
    cmd = [str(ensure_opa()), "eval", "--format", "json", "--stdin-input", "-d", str(ROOT / "policies" / "gatekeeper"),
           "-d", str(data), "data.gatekeeper.decision"]
    out = subprocess.run(cmd, input=json.dumps(policy_input), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["result"][0]["expressions"][0]["value"]


def build(name: str, data: Path, inputs: list[tuple[str, dict]]) -> None:
    cases = [{"name": n, "input": i, "expected": opa_decision(data, i)} for n, i in inputs]
    (OUT / f"{name}.json").write_text(json.dumps({"policy": "gatekeeper/decision", "data": str(data.relative_to(ROOT)),
                                                   "cases": cases}, indent=1) + "\n")
    actions = [c["expected"]["action"] for c in cases]
    print(f"{name}: {len(cases)} cases, {actions.count('allow')} allowed, {actions.count('mask')} masked, {actions.count('approve')} held for approval")


def main() -> None:
    inputs = []
    for (op, rtype), (sub, groups) in itertools.product(OPS, PRINCIPALS):
        for resource in NAMES[rtype][:4 if rtype == "topic" and op not in ("delete_topic", "produce") else None]:
            inputs.append((f"{op}-{rtype}-{resource}-{sub}", doc(op, rtype, resource, sub, groups)))
    grant = {"operation": "produce", "resource": {"type": "topic", "name": "payments.settled"}, "expires_at": "2026-11-23T10:05:00Z"}
    inputs.append(("time-boxed-grant-valid", doc("produce", "topic", "payments.settled", "svc-x", [], {"grants": [grant]})))
    inputs.append(("time-boxed-grant-expired", doc("produce", "topic", "payments.settled", "svc-x", [], {"grants": [grant], "time": "2026-11-23T11:00:00Z"})))
    inputs.append(("retention-on-immutable", doc("alter_topic_config", "topic", "ledger", "ops", ["platform"], {"request": {"configs": {"retention.ms": "1"}}})))
    inputs.append(("other-config-on-immutable", doc("alter_topic_config", "topic", "ledger", "ops", ["platform"], {"request": {"configs": {"max.message.bytes": "1"}}})))
    # Broker configs that set every topic's retention (and near misses), on one broker and on the
    # cluster-wide default, with IncrementalAlterConfigs and with legacy AlterConfigs.
    apis = {"incremental": {"key": 44, "name": "IncrementalAlterConfigs", "version": 1},
            "legacy": {"key": 33, "name": "AlterConfigs", "version": 2}}
    keys = ["log.retention.ms", "log.retention.minutes", "log.retention.hours", "log.retention.bytes", "log.cleanup.policy",
            "log.cleaner.threads", "log.segment.bytes"]
    for (sub, groups), broker, key, (kind, api) in itertools.product(PRINCIPALS, ["", "1"], keys, apis.items()):
        request = {"configs": {key: "1"}, "validate_only": False, "config_resource": {"type": "broker", "name": broker}}
        inputs.append((f"alter_cluster_config-broker-{broker or 'default'}-{key}-{kind}-{sub}",
                       doc("alter_cluster_config", "cluster", "kafka-cluster", sub, groups, {"api": api, "request": request})))
    for (sub, groups), topic in itertools.product(PRINCIPALS, ["ledger", "audit.logins", "orders"]):
        request = {"configs": {"max.message.bytes": "1"}, "validate_only": False}
        inputs.append((f"alter_topic_config-legacy-{topic}-{sub}",
                       doc("alter_topic_config", "topic", topic, sub, groups, {"api": apis["legacy"], "request": request})))
    # Reads and writes that masking rules may turn into masks (policies/examples/pii_masking/data.json
    # masks orders for everyone outside orders-owners, and card numbers written to payments.*), with
    # the near misses: owners, other operations, other topics, principals without a grant.
    masking = []
    readers = [*PRINCIPALS[:4], ("svc-billing", ["orders-owners"]), ("svc-report", ["analytics-readers", "orders-owners"]),
               ("svc-payments", ["payments-writers"])]
    for (sub, groups), op, topic in itertools.product(readers, ["consume", "produce", "describe_topic"],
                                                      ["orders", "orders.eu", "orders.eu.x", "payments.settled", "payments"]):
        masking.append((f"masking-{op}-{topic}-{sub}", doc(op, "topic", topic, sub, groups)))
    grant = {"operation": "consume", "resource": {"type": "topic", "name": "orders"}, "expires_at": "2026-11-23T10:00:04.5Z"}
    masking.append(("masking-time-boxed-grant", doc("consume", "topic", "orders", "svc-x", [], {"grants": [grant]})))
    build("default_library", ROOT / "policies" / "data.json", inputs + masking + approvals())
    for example in sorted(p.name for p in (ROOT / "policies" / "examples").iterdir() if p.is_dir()):
        sample = [(n, i) for n, i in inputs if i["resource"]["type"] in ("topic", "group")][::3]
        build(f"example_{example}", ROOT / "policies" / "examples" / example / "data.json", sample + masking + approvals())


def approvals() -> list[tuple[str, dict]]:
    """Requests approval rules may hold (policies/examples/jit_approvals/data.json): writes to
    payments.* outside the payments team, consumer groups that are not known fetching offsets of a
    regulated topic, config changes of audit topics (two approvers); the same once approved (a
    live time-boxed grant), after the grant expired; near misses and anonymous clients."""
    who = [("svc-x", ["team-x"]), ("svc-payments", ["payments"]), ("ops", ["platform"]), ("svc-risk", ["risk-analysts"])]
    anonymous: dict[str, Any] = {"principal": {"sub": "anonymous", "issuer": None, "groups": [], "claims": {}, "mechanism": "NONE"}}
    cases: list[tuple[str, dict]] = []
    for (sub, groups), topic in itertools.product(who, ["payments.settled", "payments", "payments.eu.x"]):
        cases.append((f"approvals-produce-{topic}-{sub}", doc("produce", "topic", topic, sub, groups)))
    for (sub, groups), group in itertools.product(who, ["risk-adhoc", "regulated-reporting", "regulated-archive-7", "regulated-reporting-2"]):
        offsets = {"group": group, "partitions": [0, 1]}
        cases.append((f"approvals-fetch_offset-regulated.trades-{group}-{sub}",
                       doc("fetch_offset", "topic", "regulated.trades", sub, groups, {"request": offsets})))
    for (sub, groups), topic in itertools.product(who, ["audit.logins", "audit.logins.eu"]):
        for kind, key in (("other", "max.message.bytes"), ("retention", "retention.ms")):
            request: dict[str, Any] = {"configs": {key: "1"}, "validate_only": False}
            cases.append((f"approvals-alter_topic_config-{kind}-{topic}-{sub}",
                          doc("alter_topic_config", "topic", topic, sub, groups,
                              {"api": {"key": 44, "name": "IncrementalAlterConfigs", "version": 1}, "request": request})))
    for (sub, groups), op in itertools.product(who, ["consume", "join_group"]):
        rtype, name = ("topic", "regulated.trades") if op == "consume" else ("group", "risk-adhoc")
        cases.append((f"approvals-{op}-{name}-{sub}", doc(op, rtype, name, sub, groups)))
    cases.append(("approvals-anonymous-produce-payments", doc("produce", "topic", "payments.settled", "anonymous", [], anonymous)))
    cases.append(("approvals-anonymous-audit-config", doc("alter_topic_config", "topic", "audit.logins", "anonymous", [], anonymous)))
    grant = {"id": "g-1", "operation": "produce", "resource": {"type": "topic", "name": "payments.settled"},
             "expires_at": "2026-11-23T10:00:05.5Z", "approved_by": ["user:lee"], "approval_id": "a-1"}
    for (sub, groups), (when, t) in itertools.product(who[:3:2], [("live", "2026-11-23T10:00:03Z"), ("expired", "2026-11-23T10:00:06Z")]):
        cases.append((f"approvals-approved-produce-{when}-{sub}",
                      doc("produce", "topic", "payments.settled", sub, groups, {"grants": [grant], "time": t})))
    audit = {**grant, "operation": "alter_topic_config", "resource": {"type": "topic", "name": "audit.logins"}}
    cases.append(("approvals-approved-audit-config", doc("alter_topic_config", "topic", "audit.logins", "ops", ["platform"],
                                                         {"grants": [audit], "request": {"configs": {"max.message.bytes": "1"}}})))
    return cases


if __name__ == "__main__":
    main()
