"""Write the decision corpus (policies/corpus/<name>/cases.json) from the tables below.

Every expected decision here is written by hand, from what the policy is meant to do; none is
taken from an engine. check.py then holds OPA to them (and the engine tests hold both engines):

    ~/.cache/gatekeeper/venv/bin/python policies/corpus/build.py
    ~/.cache/gatekeeper/venv/bin/python policies/corpus/check.py

Each corpus sits in a directory of its own because `opa test policies/` and `opa eval -d
policies/` load every *.json under policies/ as data, merging the files of one directory at one
path: two corpus files side by side would collide.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# The Kafka API and the request keys Gatekeeper sends with each operation (docs/policy-input.md).
KAFKA: dict[str, tuple[tuple[int, str, int], dict[str, Any]]] = {
    "produce": ((0, "Produce", 9), {"acks": -1, "partitions": [0, 2], "record_count": 120, "bytes": 48211}),
    "consume": ((1, "Fetch", 13), {"partitions": [0, 1, 2], "isolation_level": 1}),
    "describe_topic": ((3, "Metadata", 12), {"allow_auto_topic_creation": False}),
    "list_topics": ((3, "Metadata", 12), {}),
    "create_topic": ((19, "CreateTopics", 7), {"num_partitions": 3, "replication_factor": 3, "configs": {}, "validate_only": False}),
    "delete_topic": ((20, "DeleteTopics", 6), {}),
    "delete_records": ((21, "DeleteRecords", 2), {"partitions": [0]}),
    "create_partitions": ((37, "CreatePartitions", 3), {"count": 6}),
    "commit_offset": ((8, "OffsetCommit", 8), {"group": "analytics-daily", "partitions": [0]}),
    "fetch_offset": ((9, "OffsetFetch", 8), {"all_topics": False}),
    "delete_offsets": ((47, "OffsetDelete", 0), {}),
    "find_coordinator": ((10, "FindCoordinator", 4), {}),
    "join_group": ((11, "JoinGroup", 9), {}),
    "describe_group": ((15, "DescribeGroups", 5), {}),
    "delete_group": ((42, "DeleteGroups", 2), {}),
    "list_groups": ((16, "ListGroups", 4), {}),
    "init_producer": ((22, "InitProducerId", 4), {"transactional": False}),
    "transactional_write": ((26, "EndTxn", 3), {"committed": True}),
    "describe_transaction": ((65, "DescribeTransactions", 0), {}),
    "describe_topic_config": ((32, "DescribeConfigs", 4), {"keys": ["retention.ms"]}),
    "alter_topic_config": ((44, "IncrementalAlterConfigs", 1), {"configs": {"max.message.bytes": "2097152"}, "validate_only": False}),
    "describe_group_config": ((32, "DescribeConfigs", 4), {"keys": None}),
    "alter_cluster_config": ((44, "IncrementalAlterConfigs", 1),
                             {"configs": {"log.cleaner.threads": "2"}, "validate_only": False, "config_resource": {"type": "broker", "name": "1"}}),
    "alter_acls": ((30, "CreateAcls", 3), {"creations": 1}),
    "describe_cluster": ((60, "DescribeCluster", 1), {}),
    "api_versions": ((18, "ApiVersions", 3), {}),
    "elect_leaders": ((43, "ElectLeaders", 2), {"topics": None}),
}

ANONYMOUS = ("anonymous", None)
CLUSTER = "kafka-cluster"
DEFAULT_REASON = "not a Gatekeeper policy input (see docs/policy-input.md)"


def policy_input(op: str, rtype: str, name: str, who: tuple[str, list[str] | None], **overrides: Any) -> dict[str, Any]:
    """A complete policy input; who is (sub, groups), or ANONYMOUS."""
    (key, api_name, version), request = KAFKA[op]
    sub, groups = who
    if groups is None:
        principal = {"sub": sub, "issuer": None, "groups": [], "claims": {}, "mechanism": "NONE"}
    else:
        principal = {"sub": sub, "issuer": "https://idp.example.com/", "groups": groups,
                     "claims": {"sub": sub, "groups": groups, "exp": 1795420000}, "mechanism": "OAUTHBEARER"}
    doc = {
        "version": 1, "protocol": "kafka", "operation": op,
        "api": {"key": key, "name": api_name, "version": version},
        "principal": principal,
        "resource": {"type": rtype, "name": name},
        "client": {"id": "rdkafka", "address": "10.20.30.40"},
        "session": {"id": "01JDBQ3V9ZKQ6X8G2M4N7P5R1T", "started_at": "2026-11-23T07:24:49.596Z"},
        "request": dict(request),
        "grants": [],
        "time": "2026-11-23T07:24:49.689Z",
    }
    doc.update(overrides)
    return doc


class Corpus:
    def __init__(self, name: str, policy: str, data: str | dict[str, Any] | None, ttl: str) -> None:
        self.name, self.policy, self.data, self.ttl = name, policy, data, ttl
        self.cases: list[dict[str, Any]] = []

    def allow(self, reason: str) -> dict[str, Any]:
        return {"action": "allow", "reason": reason, "ttl": self.ttl}

    def deny(self, reason: str) -> dict[str, Any]:
        return {"action": "deny", "reason": reason, "ttl": self.ttl}

    def violation(self, reason: str) -> dict[str, Any]:
        return {"action": "deny", "error": "policy_violation", "reason": reason, "ttl": self.ttl}

    def mask(self, reason: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"action": "mask", "mask": items, "reason": reason, "ttl": self.ttl}

    def case(self, name: str, expected: dict[str, Any], op: str, rtype: str, rname: str,
             who: tuple[str, list[str] | None], **overrides: Any) -> None:
        assert name not in {c["name"] for c in self.cases}, name
        self.cases.append({"name": name, "input": policy_input(op, rtype, rname, who, **overrides), "expected": expected})

    def write(self) -> None:
        out = HERE / self.name / "cases.json"
        out.parent.mkdir(exist_ok=True)
        doc = {"policy": self.policy, "data": self.data, "cases": self.cases}
        out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        print(f"{out.relative_to(HERE.parent.parent)}: {len(self.cases)} cases")


LEGACY_ALTER_CONFIGS = {"key": 33, "name": "AlterConfigs", "version": 2}
BROKER_KEYS = ("log.cleanup.policy", "log.retention.bytes", "log.retention.hours", "log.retention.minutes", "log.retention.ms")


def broker_request(name: str, configs: dict[str, Any]) -> dict[str, Any]:
    """The request of an alter_cluster_config of broker ``name`` ("" is the cluster-wide default)."""
    return {"configs": configs, "validate_only": False, "config_resource": {"type": "broker", "name": name}}


def broker_violation(broker: str, keys: str, immutable: str) -> str:
    return (f"{broker}: alter_cluster_config may not change {keys} while topics are immutable ({immutable}): "
            "it applies to every topic without an override of its own")


def legacy_broker_violation(broker: str, immutable: str) -> str:
    return (f"{broker}: AlterConfigs replaces every dynamic config of the broker, so it resets {', '.join(BROKER_KEYS)} "
            f"while topics are immutable ({immutable}): change other broker configs with IncrementalAlterConfigs")


def legacy_topic_violation(topic: str) -> str:
    return (f"topic {json.dumps(topic)} is immutable: AlterConfigs replaces every config of the topic, so it resets "
            "retention.ms, retention.bytes and cleanup.policy to the broker defaults: change its other configs with "
            "IncrementalAlterConfigs")


def no_grant(op: str, rtype: str, name: str, sub: str, groups: list[str] | None) -> str:
    return f'no grant allows {op} on {rtype} {json.dumps(name)} for {sub} (groups: {", ".join(groups or []) or "none"})'


def not_named(op: str, rtype: str, name: str, sub: str, groups: list[str] | None) -> str:
    """Cluster administration that a "*" grant does not cover."""
    return (f'no grant names {op} on {rtype} {json.dumps(name)} for {sub} (groups: {", ".join(groups or []) or "none"}): '
            'it is cluster administration, which a "*" grant does not cover')


def default_library() -> Corpus:
    """The default library with the shipped example configuration, policies/data.json."""
    c = Corpus("default_library", "gatekeeper/decision", "policies/data.json", "5s")
    writer = ("svc-orders", ["orders-writers"])
    analyst = ("svc-analytics", ["analytics-readers"])
    auditor = ("eve", ["auditors"])
    ops = ("ops", ["platform"])
    a, d, v = c.allow, c.deny, c.violation
    c.case("produce-orders-by-writer", a('grant 0 allows produce on topic "orders"'), "produce", "topic", "orders", writer)
    c.case("produce-orders.eu-one-level", a('grant 0 allows produce on topic "orders.eu"'), "produce", "topic", "orders.eu", writer)
    c.case("produce-orders.eu.x-two-levels", d(no_grant("produce", "topic", "orders.eu.x", *writer)), "produce", "topic", "orders.eu.x", writer)
    c.case("produce-orders-x-near-miss", d(no_grant("produce", "topic", "orders-x", *writer)), "produce", "topic", "orders-x", writer)
    c.case("produce-orders-wrong-group", d(no_grant("produce", "topic", "orders", *analyst)), "produce", "topic", "orders", analyst)
    c.case("produce-orders-anonymous", d(no_grant("produce", "topic", "orders", "anonymous", [])), "produce", "topic", "orders", ANONYMOUS)
    c.case("consume-orders-by-writer-wrong-operation", d(no_grant("consume", "topic", "orders", *writer)), "consume", "topic", "orders", writer)
    c.case("consume-orders.eu-by-analyst", a('grant 1 allows consume on topic "orders.eu"'), "consume", "topic", "orders.eu", analyst)
    c.case("commit_offset-topic-orders-by-analyst", a('grant 1 allows commit_offset on topic "orders"'),
           "commit_offset", "topic", "orders", analyst)
    c.case("join_group-analytics-daily", a('grant 2 allows join_group on group "analytics-daily"'), "join_group", "group", "analytics-daily", analyst)
    c.case("fetch_offset-group-analytics-daily", a('grant 2 allows fetch_offset on group "analytics-daily"'),
           "fetch_offset", "group", "analytics-daily", analyst)
    c.case("join_group-analytics-near-miss", d(no_grant("join_group", "group", "analytics", *analyst)), "join_group", "group", "analytics", analyst)
    c.case("join_group-analytics-daily-wrong-group", d(no_grant("join_group", "group", "analytics-daily", *writer)),
           "join_group", "group", "analytics-daily", writer)
    c.case("delete_group-not-granted", d(no_grant("delete_group", "group", "analytics-daily", *analyst)),
           "delete_group", "group", "analytics-daily", analyst)
    # Kafka 4's consumer group protocol (KIP-848): a ConsumerGroupHeartbeat is decided by the
    # same grants as JoinGroup and Fetch.
    hb = {"key": 68, "name": "ConsumerGroupHeartbeat", "version": 1}
    c.case("heartbeat-join_group-analytics-daily", a('grant 2 allows join_group on group "analytics-daily"'),
           "join_group", "group", "analytics-daily", analyst, api=hb,
           request={"group_type": "consumer", "subscription": {"topics": ["orders.eu"], "regex": None}})
    c.case("heartbeat-leave-not-granted", d(no_grant("join_group", "group", "orders-app", *analyst)),
           "join_group", "group", "orders-app", analyst, api=hb, request={"group_type": "consumer", "leaving": True})
    c.case("heartbeat-consume-subscribed", a('grant 1 allows consume on topic "orders.eu"'), "consume", "topic", "orders.eu", analyst,
           api=hb, request={"group": "analytics-daily", "source": "subscription"})
    c.case("heartbeat-regex-match-not-granted", d(no_grant("describe_topic", "topic", "payments.eu", *analyst)),
           "describe_topic", "topic", "payments.eu", analyst, api=hb,
           request={"group": "analytics-daily", "source": "regex", "regex": ".*\\.eu", "resolving": True})
    c.case("heartbeat-assigned-not-granted", d(no_grant("consume", "topic", "payments.eu", *analyst)),
           "consume", "topic", "payments.eu", analyst, api=hb, request={"group": "analytics-daily", "source": "assignment"})
    c.case("consume-topic-named-like-a-group", d(no_grant("consume", "topic", "analytics-daily", *analyst)),
           "consume", "topic", "analytics-daily", analyst)
    c.case("consume-audit-by-auditor", a('grant 3 allows consume on topic "audit.logins.eu"'), "consume", "topic", "audit.logins.eu", auditor)
    c.case("produce-audit-by-auditor", d(no_grant("produce", "topic", "audit.logins", *auditor)), "produce", "topic", "audit.logins", auditor)
    c.case("delete_topic-audit-by-platform-immutable", v('topic "audit.logins" is immutable: delete_topic is never allowed on it'),
           "delete_topic", "topic", "audit.logins", ops)
    c.case("delete_records-ledger-by-platform-immutable", v('topic "ledger" is immutable: delete_records is never allowed on it'),
           "delete_records", "topic", "ledger", ops)
    c.case("delete_topic-ledger-anonymous-immutable", v('topic "ledger" is immutable: delete_topic is never allowed on it'),
           "delete_topic", "topic", "ledger", ANONYMOUS)
    c.case("delete_topic-ledger-2-not-immutable", a('grant 4 allows delete_topic on topic "ledger-2"'), "delete_topic", "topic", "ledger-2", ops)
    c.case("alter-retention-on-immutable", v('topic "ledger" is immutable: alter_topic_config may not change retention.ms'),
           "alter_topic_config", "topic", "ledger", ops,
           request={"configs": {"retention.ms": "1000", "segment.ms": "60000"}, "validate_only": False})
    c.case("alter-other-config-on-immutable", a('grant 4 allows alter_topic_config on topic "ledger"'), "alter_topic_config", "topic", "ledger", ops)
    c.case("create_topic-by-platform", a('grant 4 allows create_topic on topic "orders.new"'), "create_topic", "topic", "orders.new", ops)
    c.case("produce-orders-two-grants-first-wins", a('grant 0 allows produce on topic "orders"'),
           "produce", "topic", "orders", ("svc-both", ["platform", "orders-writers"]))
    c.case("describe_group_config-by-platform", a('grant 5 allows describe_group_config on group "analytics-daily"'),
           "describe_group_config", "group", "analytics-daily", ops)
    c.case("api_versions-anonymous", a("api_versions is allowed to every client"), "api_versions", "cluster", CLUSTER, ANONYMOUS)
    c.case("find_coordinator-group-anonymous", a("find_coordinator is allowed to every client"), "find_coordinator", "group", "any", ANONYMOUS)
    c.case("find_coordinator-transactional_id", a("find_coordinator is allowed to every client"),
           "find_coordinator", "transactional_id", "orders-tx", writer)
    c.case("list_topics-anonymous", a("list_topics is allowed to every client"), "list_topics", "cluster", CLUSTER, ANONYMOUS)
    c.case("describe_cluster-anonymous", a("describe_cluster is allowed to every client"), "describe_cluster", "cluster", CLUSTER, ANONYMOUS)
    c.case("list_groups-anonymous", d(no_grant("list_groups", "cluster", CLUSTER, "anonymous", [])), "list_groups", "cluster", CLUSTER, ANONYMOUS)
    c.case("elect_leaders-anonymous", d(not_named("elect_leaders", "cluster", CLUSTER, "anonymous", [])), "elect_leaders", "cluster", CLUSTER, ANONYMOUS)
    c.case("elect_leaders-by-platform-wildcard", d(not_named("elect_leaders", "cluster", CLUSTER, *ops)), "elect_leaders", "cluster", CLUSTER, ops)
    c.case("alter_acls-by-platform-wildcard", d(not_named("alter_acls", "cluster", CLUSTER, *ops)), "alter_acls", "cluster", CLUSTER, ops)
    c.case("alter_acls-by-writer", d(not_named("alter_acls", "cluster", CLUSTER, *writer)), "alter_acls", "cluster", CLUSTER, writer)
    c.case("init_producer-idempotent-anonymous", a('grant 7 allows init_producer on cluster "kafka-cluster"'),
           "init_producer", "cluster", CLUSTER, ANONYMOUS)
    c.case("init_producer-transactional-by-owner", a('grant 8 allows init_producer on transactional_id "orders-tx"'),
           "init_producer", "transactional_id", "orders-tx", writer, request={"transactional": True})
    c.case("init_producer-transactional-by-other", d(no_grant("init_producer", "transactional_id", "orders-tx", *analyst)),
           "init_producer", "transactional_id", "orders-tx", analyst, request={"transactional": True})
    c.case("init_producer-transactional-near-miss", d(no_grant("init_producer", "transactional_id", "tx-orders", *writer)),
           "init_producer", "transactional_id", "tx-orders", writer, request={"transactional": True})
    c.case("transactional_write-by-owner", a('grant 8 allows transactional_write on transactional_id "orders-tx"'),
           "transactional_write", "transactional_id", "orders-tx", writer)
    c.case("describe_transaction-by-platform", a('grant 9 allows describe_transaction on transactional_id "payments-tx"'),
           "describe_transaction", "transactional_id", "payments-tx", ops)
    c.case("alter-retention-on-mutable-topic", a('grant 4 allows alter_topic_config on topic "ledger-archive"'),
           "alter_topic_config", "topic", "ledger-archive", ops, request={"configs": {"retention.ms": "1000"}, "validate_only": False})
    c.case("legacy-alter-configs-on-immutable", v(legacy_topic_violation("ledger")), "alter_topic_config", "topic", "ledger", ops,
           api=LEGACY_ALTER_CONFIGS)
    c.case("legacy-alter-configs-on-immutable-naming-retention", v('topic "ledger" is immutable: alter_topic_config may not change retention.ms'),
           "alter_topic_config", "topic", "ledger", ops, api=LEGACY_ALTER_CONFIGS,
           request={"configs": {"retention.ms": "-1", "max.message.bytes": "1"}, "validate_only": False})
    c.case("legacy-alter-configs-on-mutable", a('grant 4 allows alter_topic_config on topic "orders"'), "alter_topic_config", "topic", "orders", ops,
           api=LEGACY_ALTER_CONFIGS)
    immutable = "audit.**, ledger"
    default = "the cluster-wide broker default"
    c.case("broker-default-retention-by-platform", v(broker_violation(default, "log.retention.ms", immutable)),
           "alter_cluster_config", "cluster", CLUSTER, ops, request=broker_request("", {"log.retention.ms": "3600000"}))
    c.case("broker-retention-hours-delete", v(broker_violation('broker "1"', "log.retention.hours", immutable)),
           "alter_cluster_config", "cluster", CLUSTER, ops, request=broker_request("1", {"log.retention.hours": None}))
    c.case("broker-retention-several-keys", v(broker_violation('broker "2"', "log.cleanup.policy, log.retention.bytes, log.retention.minutes", immutable)),
           "alter_cluster_config", "cluster", CLUSTER, ops,
           request=broker_request("2", {"num.io.threads": "8", "log.retention.minutes": "5", "log.retention.bytes": "1",
                                        "log.cleanup.policy": "compact"}))
    c.case("broker-retention-without-a-grant", v(broker_violation(default, "log.retention.bytes", immutable)),
           "alter_cluster_config", "cluster", CLUSTER, writer, request=broker_request("", {"log.retention.bytes": "1"}))
    c.case("broker-retention-validate-only", v(broker_violation('broker "1"', "log.cleanup.policy", immutable)),
           "alter_cluster_config", "cluster", CLUSTER, ops, request={**broker_request("1", {"log.cleanup.policy": "compact"}), "validate_only": True})
    c.case("broker-retention-time-boxed-grant", v(broker_violation(default, "log.retention.ms", immutable)),
           "alter_cluster_config", "cluster", CLUSTER, ("svc-x", []), request=broker_request("", {"log.retention.ms": "1"}),
           grants=[{"operation": "alter_cluster_config", "resource": {"type": "cluster", "name": CLUSTER}, "expires_at": "2026-11-23T09:00:00Z"}])
    c.case("broker-unrelated-config", a('grant 6 allows alter_cluster_config on cluster "kafka-cluster"'),
           "alter_cluster_config", "cluster", CLUSTER, ops)
    c.case("broker-near-miss-configs", a('grant 6 allows alter_cluster_config on cluster "kafka-cluster"'),
           "alter_cluster_config", "cluster", CLUSTER, ops,
           request=broker_request("", {"log.segment.bytes": "1048576", "log.roll.hours": "1", "log.retention.check.interval.ms": "1000",
                                       "log.local.retention.ms": "1", "log.cleaner.delete.retention.ms": "1", "retention.ms": "1"}))
    c.case("broker-unrelated-config-without-a-grant", d(no_grant("alter_cluster_config", "cluster", CLUSTER, *writer)),
           "alter_cluster_config", "cluster", CLUSTER, writer)
    c.case("broker-logger-is-not-a-broker", a('grant 6 allows alter_cluster_config on cluster "kafka-cluster"'),
           "alter_cluster_config", "cluster", CLUSTER, ops,
           request={"configs": {"log.retention.ms": "DEBUG"}, "validate_only": False, "config_resource": {"type": "broker_logger", "name": "1"}})
    c.case("legacy-alter-configs-on-a-broker", v(legacy_broker_violation('broker "1"', immutable)),
           "alter_cluster_config", "cluster", CLUSTER, ops, api=LEGACY_ALTER_CONFIGS)
    grant = {"operation": "produce", "resource": {"type": "topic", "name": "payments.settled"}, "expires_at": "2026-11-23T07:30:00Z"}
    c.case("time-boxed-grant-live", a('time-boxed grant for produce on topic "payments.settled" until 2026-11-23T07:30:00Z'),
           "produce", "topic", "payments.settled", ("svc-x", []), grants=[grant])
    c.case("time-boxed-grant-ttl-ends-with-the-grant",
           {**a('time-boxed grant for produce on topic "payments.settled" until 2026-11-23T07:30:00Z'), "ttl": "2311ms"},
           "produce", "topic", "payments.settled", ("svc-x", []), grants=[grant], time="2026-11-23T07:29:57.689Z")
    c.case("time-boxed-grant-last-millisecond-not-cached",
           {**a('time-boxed grant for produce on topic "payments.settled" until 2026-11-23T07:30:00.0005Z'), "ttl": "0ms"},
           "produce", "topic", "payments.settled", ("svc-x", []), grants=[{**grant, "expires_at": "2026-11-23T07:30:00.0005Z"}],
           time="2026-11-23T07:30:00Z")
    c.case("time-boxed-grant-expired", d(no_grant("produce", "topic", "payments.settled", "svc-x", [])),
           "produce", "topic", "payments.settled", ("svc-x", []), grants=[grant], time="2026-11-23T07:30:00.001Z")
    c.case("time-boxed-grant-other-topic", d(no_grant("produce", "topic", "payments.refunds", "svc-x", [])),
           "produce", "topic", "payments.refunds", ("svc-x", []), grants=[grant])
    c.case("time-boxed-grant-other-operation", d(no_grant("consume", "topic", "payments.settled", "svc-x", [])),
           "consume", "topic", "payments.settled", ("svc-x", []), grants=[grant])
    c.case("time-boxed-grant-does-not-lift-immutable", v('topic "ledger" is immutable: delete_topic is never allowed on it'),
           "delete_topic", "topic", "ledger", ("svc-x", []),
           grants=[{"operation": "delete_topic", "resource": {"type": "topic", "name": "ledger"}, "expires_at": "2026-11-23T09:00:00Z"}])
    return c


INLINE_CONFIG = {"gatekeeper_config": {
    "default_ttl": "30s",
    "always_allowed": ["api_versions", "authenticate", "find_coordinator"],
    "immutable_topics": ["audit.*", "ledger"],
    "grants": [
        {"principals": {"groups": ["orders-writers"]}, "resources": {"type": "topic", "patterns": ["orders", "orders.*"]},
         "operations": ["produce", "describe_topic"]},
        {"principals": {"subs": ["svc-audit-reader"]}, "resources": {"type": "topic", "patterns": ["audit.*"]},
         "operations": ["consume", "describe_topic"]},
        {"principals": "*", "resources": {"type": "topic", "patterns": ["public.**"]}, "operations": ["consume"]},
        {"principals": {"subs": ["svc-deployer"]}, "resources": {"type": "cluster", "patterns": ["kafka-cluster"]}, "operations": ["*"]},
        {"principals": {"groups": ["tx-writers"]}, "resources": {"type": "transactional_id", "patterns": ["payments-tx-?"]},
         "operations": ["init_producer", "transactional_write"]},
        {"principals": {"groups": ["analytics-*"]}, "resources": {"type": "group", "patterns": ["*"]}, "operations": ["join_group"]},
    ],
}}


def default_library_inline() -> Corpus:
    """The default library with a configuration given inline: grants by sub, to anyone, on the
    cluster and on transactional ids; a ttl of its own."""
    c = Corpus("default_library_inline", "gatekeeper/decision", INLINE_CONFIG, "30s")
    a, d, v = c.allow, c.deny, c.violation
    reader = ("svc-audit-reader", [])
    c.case("grant-by-sub", a('grant 1 allows consume on topic "audit.logins"'), "consume", "topic", "audit.logins", reader)
    c.case("grant-by-sub-near-miss-sub", d(no_grant("consume", "topic", "audit.logins", "svc-audit-reader-2", [])),
           "consume", "topic", "audit.logins", ("svc-audit-reader-2", []))
    c.case("grant-by-sub-not-by-group-of-that-name", d(no_grant("consume", "topic", "audit.logins", "x", ["svc-audit-reader"])),
           "consume", "topic", "audit.logins", ("x", ["svc-audit-reader"]))
    c.case("grant-by-sub-one-level-only", d(no_grant("consume", "topic", "audit.logins.eu", "svc-audit-reader", [])),
           "consume", "topic", "audit.logins.eu", reader)
    c.case("grant-to-anyone-anonymous", a('grant 2 allows consume on topic "public.news.eu"'), "consume", "topic", "public.news.eu", ANONYMOUS)
    c.case("grant-to-anyone-other-operation", d(no_grant("produce", "topic", "public.news", "anonymous", [])),
           "produce", "topic", "public.news", ANONYMOUS)
    c.case("grant-to-anyone-prefix-near-miss", d(no_grant("consume", "topic", "publicity", "anonymous", [])),
           "consume", "topic", "publicity", ANONYMOUS)
    c.case("cluster-grant-any-operation", a('grant 3 allows alter_cluster_config on cluster "kafka-cluster"'),
           "alter_cluster_config", "cluster", CLUSTER, ("svc-deployer", []))
    c.case("cluster-grant-does-not-reach-topics", d(no_grant("delete_topic", "topic", "orders", "svc-deployer", [])),
           "delete_topic", "topic", "orders", ("svc-deployer", []))
    c.case("transactional-id-single-char-glob", a('grant 4 allows init_producer on transactional_id "payments-tx-7"'),
           "init_producer", "transactional_id", "payments-tx-7", ("svc-pay", ["tx-writers"]), request={"transactional": True})
    c.case("transactional-id-two-chars-near-miss", d(no_grant("init_producer", "transactional_id", "payments-tx-42", "svc-pay", ["tx-writers"])),
           "init_producer", "transactional_id", "payments-tx-42", ("svc-pay", ["tx-writers"]), request={"transactional": True})
    c.case("idempotent-producer-not-granted-here", d(no_grant("init_producer", "cluster", CLUSTER, "svc-pay", ["tx-writers"])),
           "init_producer", "cluster", CLUSTER, ("svc-pay", ["tx-writers"]))
    c.case("group-patterns-in-principals-are-not-globs", d(no_grant("join_group", "group", "dash", "svc", ["analytics-eu"])),
           "join_group", "group", "dash", ("svc", ["analytics-eu"]))
    c.case("group-named-with-a-glob-character", a('grant 5 allows join_group on group "dash"'),
           "join_group", "group", "dash", ("svc", ["analytics-*"]))
    c.case("immutable-one-level-glob", v('topic "audit.logins" is immutable: delete_topic is never allowed on it'),
           "delete_topic", "topic", "audit.logins", reader)
    c.case("immutable-glob-near-miss-is-just-ungranted", d(no_grant("delete_topic", "topic", "audit.logins.eu", "svc-audit-reader", [])),
           "delete_topic", "topic", "audit.logins.eu", reader)
    c.case("immutable-several-truncating-configs",
           v('topic "ledger" is immutable: alter_topic_config may not change cleanup.policy, retention.bytes, retention.ms'),
           "alter_topic_config", "topic", "ledger", ANONYMOUS,
           request={"configs": {"retention.ms": None, "retention.bytes": "1", "cleanup.policy": "compact"}, "validate_only": True})
    c.case("broker-retention-names-these-patterns",
           v(broker_violation("the cluster-wide broker default", "log.retention.ms", "audit.*, ledger")),
           "alter_cluster_config", "cluster", CLUSTER, ("svc-deployer", []), request=broker_request("", {"log.retention.ms": "1"}))
    c.case("legacy-broker-alter-configs-names-these-patterns", v(legacy_broker_violation('broker "7"', "audit.*, ledger")),
           "alter_cluster_config", "cluster", CLUSTER, ("svc-deployer", []), api=LEGACY_ALTER_CONFIGS,
           request=broker_request("7", {"num.io.threads": "8"}))
    c.case("list_topics-not-always-allowed-here", d(no_grant("list_topics", "cluster", CLUSTER, "anonymous", [])),
           "list_topics", "cluster", CLUSTER, ANONYMOUS)
    grant = {"operation": "consume", "resource": {"type": "topic", "name": "orders"}, "expires_at": "2026-11-23T08:30:00+01:00"}
    c.case("time-boxed-grant-with-offset-live", a('time-boxed grant for consume on topic "orders" until 2026-11-23T08:30:00+01:00'),
           "consume", "topic", "orders", ("svc-y", ["oncall"]), grants=[grant])
    c.case("time-boxed-grant-with-offset-ttl-ends-with-the-grant",
           {**a('time-boxed grant for consume on topic "orders" until 2026-11-23T08:30:00+01:00'), "ttl": "12500ms"},
           "consume", "topic", "orders", ("svc-y", ["oncall"]), grants=[grant], time="2026-11-23T07:29:47.5Z")
    c.case("time-boxed-grant-with-offset-expired", d(no_grant("consume", "topic", "orders", "svc-y", ["oncall"])),
           "consume", "topic", "orders", ("svc-y", ["oncall"]), grants=[grant], time="2026-11-23T07:31:00Z")
    c.case("time-boxed-grant-first-of-two", a('time-boxed grant for consume on topic "orders" until 2026-11-23T07:40:00Z'),
           "consume", "topic", "orders", ("svc-y", ["oncall"]),
           grants=[{**grant, "expires_at": "2026-11-23T07:00:00Z"}, {**grant, "expires_at": "2026-11-23T07:40:00Z"},
                   {**grant, "expires_at": "2026-11-23T07:50:00Z"}])
    long_sub = "svc-" + "x" * 1100
    reason = no_grant("produce", "topic", "orders", long_sub, [])
    c.case("reason-capped-at-1024", d(reason[:1021] + "..."), "produce", "topic", "orders", (long_sub, []))
    c.case("reason-quotes-names", d('no grant allows join_group on group "team \\"α\\" ☃" for svc (groups: ops, ünïcode)'),
           "join_group", "group", 'team "α" ☃', ("svc", ["ops", "ünïcode"]))
    return c


def default_library_mutable() -> Corpus:
    """The default library with no immutable topics: broker retention follows the grants."""
    config = {"gatekeeper_config": {
        "grants": [{"principals": {"groups": ["platform"]}, "resources": {"type": "cluster", "patterns": ["kafka-cluster"]},
                    "operations": ["alter_cluster_config"]}],
        "immutable_topics": [],
    }}
    c = Corpus("default_library_mutable", "gatekeeper/decision", config, "5s")
    a, d = c.allow, c.deny
    ops = ("ops", ["platform"])
    granted = 'grant 0 allows alter_cluster_config on cluster "kafka-cluster"'
    c.case("broker-retention-follows-the-grants", a(granted), "alter_cluster_config", "cluster", CLUSTER, ops,
           request=broker_request("", {"log.retention.ms": "1"}))
    c.case("legacy-broker-alter-configs-follows-the-grants", a(granted), "alter_cluster_config", "cluster", CLUSTER, ops,
           api=LEGACY_ALTER_CONFIGS, request=broker_request("1", {"log.cleanup.policy": "compact"}))
    c.case("broker-retention-without-a-grant", d(no_grant("alter_cluster_config", "cluster", CLUSTER, "svc", [])),
           "alter_cluster_config", "cluster", CLUSTER, ("svc", []), request=broker_request("", {"log.retention.ms": "1"}))
    c.case("legacy-topic-alter-configs-follows-the-grants", d(no_grant("alter_topic_config", "topic", "ledger", *ops)),
           "alter_topic_config", "topic", "ledger", ops, api=LEGACY_ALTER_CONFIGS)
    return c


def team_allowlists() -> Corpus:
    c = Corpus("team_allowlists", "gatekeeper/examples/team_allowlists/decision", None, "5s")
    a, d = c.allow, c.deny
    orders = ("svc-orders", ["team-orders"])
    both = ("svc-both", ["team-payments", "team-orders"])

    def no_list(op: str, rtype: str, name: str, sub: str, teams: str) -> str:
        return f"no allow-list of {sub}'s teams ({teams}) allows {op} on {rtype} {json.dumps(name)}"

    c.case("produce-own-topic", a('topic "orders.created" is on the allow-list of team team-orders'), "produce", "topic", "orders.created", orders)
    c.case("consume-own-topic-root", a('topic "orders" is on the allow-list of team team-orders'), "consume", "topic", "orders", orders)
    c.case("produce-other-teams-topic", d(no_list("produce", "topic", "payments.settled", "svc-orders", "team-orders")),
           "produce", "topic", "payments.settled", orders)
    c.case("produce-near-miss-name", d(no_list("produce", "topic", "orders-x", "svc-orders", "team-orders")),
           "produce", "topic", "orders-x", orders)
    c.case("delete-own-topic-is-administration", d(no_list("delete_topic", "topic", "orders.created", "svc-orders", "team-orders")),
           "delete_topic", "topic", "orders.created", orders)
    c.case("no-team", d(no_list("consume", "topic", "orders", "svc-x", "none")), "consume", "topic", "orders", ("svc-x", ["orders"]))
    c.case("anonymous", d(no_list("consume", "topic", "orders", "anonymous", "none")), "consume", "topic", "orders", ANONYMOUS)
    c.case("join-own-group", a('group "orders-app" is on the allow-list of team team-orders'), "join_group", "group", "orders-app", orders)
    c.case("join-other-teams-group", d(no_list("join_group", "group", "payments-reporting", "svc-orders", "team-orders")),
           "join_group", "group", "payments-reporting", orders)
    c.case("topic-pattern-does-not-reach-groups", d(no_list("join_group", "group", "orders", "svc-orders", "team-orders")),
           "join_group", "group", "orders", orders)
    c.case("own-transactional-id", a('transactional_id "payments-tx-1" is on the allow-list of team team-payments'),
           "init_producer", "transactional_id", "payments-tx-1", ("svc-payments", ["team-payments"]), request={"transactional": True})
    c.case("two-teams-both-lists", a('topic "payments.settled" is on the allow-list of team team-payments'),
           "produce", "topic", "payments.settled", both)
    c.case("two-teams-reason-lists-both", d(no_list("produce", "topic", "ledger", "svc-both", "team-orders, team-payments")),
           "produce", "topic", "ledger", both)
    c.case("housekeeping", a("find_coordinator is allowed to every client"), "find_coordinator", "group", "anything", ANONYMOUS)
    c.case("idempotent-producer", a("an idempotent producer is allowed to every client"), "init_producer", "cluster", CLUSTER, ANONYMOUS)
    c.case("cluster-administration", d(no_list("alter_acls", "cluster", CLUSTER, "svc-orders", "team-orders")),
           "alter_acls", "cluster", CLUSTER, orders)
    return c


def readonly_audit() -> Corpus:
    c = Corpus("readonly_audit", "gatekeeper/examples/readonly_audit/decision", "policies/data.json", "5s")
    a, d, v = c.allow, c.deny, c.violation
    ops = ("ops", ["platform"])
    c.case("anyone-consumes-audit", a('topic "audit.logins" is an audit topic: consume is allowed to everyone'),
           "consume", "topic", "audit.logins", ANONYMOUS)
    c.case("anyone-describes-audit-root", a('topic "audit" is an audit topic: describe_topic is allowed to everyone'),
           "describe_topic", "topic", "audit", ("svc", []))
    c.case("produce-audit-even-platform", v('topic "audit.logins" is an audit topic, read-only for everyone: produce is not allowed'),
           "produce", "topic", "audit.logins", ops)
    c.case("alter-audit-config", v('topic "audit.logins" is an audit topic, read-only for everyone: alter_topic_config is not allowed'),
           "alter_topic_config", "topic", "audit.logins", ops)
    c.case("create-partitions-audit", v('topic "audit.a.b" is an audit topic, read-only for everyone: create_partitions is not allowed'),
           "create_partitions", "topic", "audit.a.b", ops)
    c.case("near-miss-audits-is-library", a('grant 4 allows produce on topic "audits"'), "produce", "topic", "audits", ops)
    c.case("near-miss-audits-consume-anonymous", d(no_grant("consume", "topic", "audits", "anonymous", [])),
           "consume", "topic", "audits", ANONYMOUS)
    c.case("audit-group-is-library", d(no_grant("join_group", "group", "audit.logins", "svc", [])), "join_group", "group", "audit.logins", ("svc", []))
    c.case("library-allows-orders", a('grant 0 allows produce on topic "orders"'), "produce", "topic", "orders", ("svc-orders", ["orders-writers"]))
    return c


def write_only_ingestion() -> Corpus:
    c = Corpus("write_only_ingestion", "gatekeeper/examples/write_only_ingestion/decision", "policies/data.json", "5s")
    a, d = c.allow, c.deny
    pipe = ("svc-pipeline", ["etl", "ingestion-pipeline"])
    ops = ("ops", ["platform"])
    c.case("authenticated-produces", a('topic "ingest.clicks" is an ingestion topic: produce is allowed to every authenticated client'),
           "produce", "topic", "ingest.clicks", ("svc-web", []))
    c.case("authenticated-describes", a('topic "ingest.clicks.eu" is an ingestion topic: describe_topic is allowed to every authenticated client'),
           "describe_topic", "topic", "ingest.clicks.eu", ("svc-web", ["web"]))
    c.case("anonymous-produce-is-library", d(no_grant("produce", "topic", "ingest.clicks", "anonymous", [])),
           "produce", "topic", "ingest.clicks", ANONYMOUS)
    c.case("pipeline-consumes", a('topic "ingest.clicks" is read by the ingestion-pipeline group: consume is allowed to its members'),
           "consume", "topic", "ingest.clicks", pipe)
    c.case("platform-may-not-consume", d('topic "ingest.clicks" is read by the ingestion-pipeline group only: consume is not allowed to ops'),
           "consume", "topic", "ingest.clicks", ops)
    c.case("near-miss-group-may-not-consume",
           d('topic "ingest.clicks" is read by the ingestion-pipeline group only: fetch_offset is not allowed to svc-dev'),
           "fetch_offset", "topic", "ingest.clicks", ("svc-dev", ["ingestion-pipeline-dev"]))
    c.case("pipeline-joins-its-group", a('group "ingestion-pipeline" is read by the ingestion-pipeline group: join_group is allowed to its members'),
           "join_group", "group", "ingestion-pipeline", pipe)
    c.case("others-may-not-join-pipeline-group",
           d('group "ingestion-pipeline-backfill" is read by the ingestion-pipeline group only: join_group is not allowed to ops'),
           "join_group", "group", "ingestion-pipeline-backfill", ops)
    c.case("delete-pipeline-group-is-library", a('grant 5 allows delete_group on group "ingestion-pipeline"'),
           "delete_group", "group", "ingestion-pipeline", ops)
    c.case("delete-ingestion-topic-is-library", a('grant 4 allows delete_topic on topic "ingest.clicks"'),
           "delete_topic", "topic", "ingest.clicks", ops)
    c.case("near-miss-topic-is-library", a('grant 4 allows consume on topic "ingested.clicks"'), "consume", "topic", "ingested.clicks", ops)
    return c


def immutable_topics() -> Corpus:
    c = Corpus("immutable_topics", "gatekeeper/examples/immutable_topics/decision", "policies/data.json", "5s")
    a, d, v = c.allow, c.deny, c.violation
    ops = ("ops", ["platform"])
    c.case("delete-ledger-child", v('topic "ledger.2026" is immutable: delete_topic would delete its records'),
           "delete_topic", "topic", "ledger.2026", ops)
    c.case("delete-records-ledger", v('topic "ledger" is immutable: delete_records would delete its records'),
           "delete_records", "topic", "ledger", ops)
    c.case("retention-change", v('topic "audit.logins" is immutable: changing retention.bytes would let the broker delete its records'),
           "alter_topic_config", "topic", "audit.logins", ops, request={"configs": {"retention.bytes": "1"}, "validate_only": False})
    c.case("other-config-is-library", a('grant 4 allows alter_topic_config on topic "ledger.2026"'), "alter_topic_config", "topic", "ledger.2026", ops)
    c.case("produce-is-library", a('grant 4 allows produce on topic "ledger"'), "produce", "topic", "ledger", ops)
    c.case("near-miss-ledgers", a('grant 4 allows delete_topic on topic "ledgers"'), "delete_topic", "topic", "ledgers", ops)
    c.case("no-grant-still-violation", v('topic "ledger" is immutable: delete_topic would delete its records'),
           "delete_topic", "topic", "ledger", ("mallory", []))
    c.case("groups-are-not-immutable", d(no_grant("delete_group", "group", "ledger", "svc", [])), "delete_group", "group", "ledger", ("svc", []))
    c.case("legacy-alter-configs", v('topic "ledger.2026" is immutable: AlterConfigs replaces every config of the topic, '
                                     "which would let the broker delete its records: use IncrementalAlterConfigs"),
           "alter_topic_config", "topic", "ledger.2026", ops, api=LEGACY_ALTER_CONFIGS)
    c.case("broker-default-retention", v("the cluster-wide broker default: changing log.retention.ms would let the broker delete "
                                         "records of immutable topics"),
           "alter_cluster_config", "cluster", CLUSTER, ops, request=broker_request("", {"log.retention.ms": "1"}))
    c.case("broker-retention-keys", v('broker "1": changing log.cleanup.policy, log.retention.hours would let the broker delete '
                                      "records of immutable topics"),
           "alter_cluster_config", "cluster", CLUSTER, ops,
           request=broker_request("1", {"log.retention.hours": None, "log.cleanup.policy": "compact", "num.io.threads": "8"}))
    c.case("legacy-broker-alter-configs", v('broker "1": AlterConfigs replaces every dynamic config of the broker, which would let '
                                            "it delete records of immutable topics: use IncrementalAlterConfigs"),
           "alter_cluster_config", "cluster", CLUSTER, ops, api=LEGACY_ALTER_CONFIGS)
    c.case("broker-other-config-is-library", a('grant 6 allows alter_cluster_config on cluster "kafka-cluster"'),
           "alter_cluster_config", "cluster", CLUSTER, ops)
    return c


# Mask items (decision.schema.json) used by the masking corpora.
CARD_LAST4 = {"field": "$.payment.card_number", "masker": "last4"}
SSN_REDACTED = {"field": "$..ssn", "masker": "redact"}
EMAIL_HASHED = {"detector": "email", "masker": "hash"}
RAW_CARDS = {"detector": "credit_card", "masker": "last4", "on_error": "deny"}
ORDERS_MASK = [CARD_LAST4, SSN_REDACTED, EMAIL_HASHED]
PHONE_REDACTED = {"field": "$.customer.phone", "masker": "redact", "in": "value", "on_error": "pass"}
# Every shape an item may take, passed through as written.
EVERY_ITEM_SHAPE = [
    {"field": "$.items[*].card", "masker": "last4", "options": {"keep": 4}},
    {"field": "$.items[0].card", "masker": "redact"},
    {"field": "$", "masker": "hash", "in": "key", "on_error": "redact_value"},
    {"detector": "email", "masker": "hash", "in": "header:customer-*", "on_error": "pass"},
    {"detector": "ssn", "masker": "redact", "in": "header:x-ssn", "options": {}},
]
ORDERS_PII_REASON = "outside orders-owners, card numbers show their last 4 digits, SSNs are redacted and e-mail addresses hashed"

MASKING_CONFIG = {"gatekeeper_config": {
    "grants": [
        {"principals": {"groups": ["analytics-readers", "orders-owners"]}, "resources": {"type": "topic", "patterns": ["orders", "orders.*"]},
         "operations": ["consume", "describe_topic"]},
        {"principals": {"groups": ["orders-writers"]}, "resources": {"type": "topic", "patterns": ["orders", "orders.*"]}, "operations": ["produce"]},
        {"principals": {"groups": ["payments-writers"]}, "resources": {"type": "topic", "patterns": ["payments.*"]},
         "operations": ["produce", "consume"]},
        {"principals": {"groups": ["contractors"]}, "resources": {"type": "topic", "patterns": ["public.**"]}, "operations": ["produce", "consume"]},
        {"principals": {"groups": ["platform"]}, "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["*"]},
    ],
    "masking": [
        {"name": "orders-pii", "reason": ORDERS_PII_REASON, "topics": ["orders", "orders.*"], "exempt": {"groups": ["orders-owners"]},
         "direction": "consume", "mask": ORDERS_MASK},
        {"name": "payments-no-raw-cards", "topics": ["payments.*"], "direction": "produce", "mask": [RAW_CARDS]},
        {"topics": ["public.**"], "principals": {"groups": ["contractors"]}, "direction": "both", "mask": [EMAIL_HASHED]},
        {"name": "orders-audit", "reason": "the auditor reads no phone numbers", "topics": ["orders"],
         "principals": {"subs": ["svc-auditor"]}, "direction": "both", "mask": [PHONE_REDACTED]},
        # Entries that name no topic: ignored.
        "orders-pii",
        {"topics": "orders", "direction": "consume", "mask": [CARD_LAST4]},
        {"topics": [7, None], "direction": "consume", "mask": [CARD_LAST4]},
        {"direction": "both", "mask": [CARD_LAST4]},
        # Names hr.* but is malformed: produce and consume of hr.* are denied until it is fixed.
        {"name": "hr-pii", "topics": ["hr.*"], "direction": "consumer", "mask": [SSN_REDACTED]},
        {"name": "hr-salaries", "topics": ["hr.salaries"], "direction": "consume", "mask": [{"field": "salary", "masker": "redact"}]},
        # More mask items than a decision carries.
        {"name": "bulk", "topics": ["bulk"], "direction": "both", "mask": [{"field": f"$.f{n}", "masker": "redact"} for n in range(65)]},
        {"name": "events", "topics": ["events.*"], "direction": "consume", "mask": EVERY_ITEM_SHAPE},
    ],
}}


def default_library_masking() -> Corpus:
    """The default library's masking rules (data.gatekeeper_config.masking), given inline."""
    c = Corpus("default_library_masking", "gatekeeper/decision", MASKING_CONFIG, "5s")
    a, d, m = c.allow, c.deny, c.mask
    analyst = ("svc-analytics", ["analytics-readers"])
    owner = ("svc-billing", ["orders-owners"])
    auditor = ("svc-auditor", ["analytics-readers"])
    writer = ("svc-orders", ["orders-writers"])
    payer = ("svc-payments", ["payments-writers"])
    contractor = ("alex", ["contractors"])
    ops = ("ops", ["platform"])
    pii = f'masked by masking rule "orders-pii": {ORDERS_PII_REASON}'

    def fault(rule: str, topic: str, problem: str, op: str) -> str:
        return f'masking rule "{rule}" names topic "{topic}" but {problem}: {op} is denied until the rule is fixed (policies/README.md, Masking)'

    c.case("non-owner-consume-masked", m(f'grant 0 allows consume on topic "orders"; {pii}', ORDERS_MASK), "consume", "topic", "orders", analyst)
    c.case("non-owner-consume-child-topic-masked", m(f'grant 0 allows consume on topic "orders.eu"; {pii}', ORDERS_MASK),
           "consume", "topic", "orders.eu", analyst)
    c.case("owner-consumes-raw", a('grant 0 allows consume on topic "orders.eu"'), "consume", "topic", "orders.eu", owner)
    c.case("owner-near-miss-group-masked", m(f'grant 0 allows consume on topic "orders"; {pii}', ORDERS_MASK),
           "consume", "topic", "orders", ("svc-billing", ["analytics-readers", "orders-owners-eu"]))
    c.case("platform-is-no-owner", m(f'grant 4 allows consume on topic "orders"; {pii}', ORDERS_MASK), "consume", "topic", "orders", ops)
    c.case("masking-topic-near-miss", a('grant 4 allows consume on topic "orders.eu.x"'), "consume", "topic", "orders.eu.x", ops)
    c.case("consume-direction-leaves-produce-raw", a('grant 1 allows produce on topic "orders"'), "produce", "topic", "orders", writer)
    c.case("other-operations-are-not-masked", a('grant 0 allows describe_topic on topic "orders"'), "describe_topic", "topic", "orders", analyst)
    c.case("merged-in-data-order",
           m(f'grant 0 allows consume on topic "orders"; {pii}; masking rule "orders-audit": the auditor reads no phone numbers',
             [*ORDERS_MASK, PHONE_REDACTED]),
           "consume", "topic", "orders", auditor)
    c.case("owner-exempt-from-one-rule-only",
           m('grant 0 allows consume on topic "orders"; masked by masking rule "orders-audit": the auditor reads no phone numbers',
             [PHONE_REDACTED]),
           "consume", "topic", "orders", ("svc-auditor", ["orders-owners"]))
    c.case("produce-direction-masks-writes", m('grant 2 allows produce on topic "payments.settled"; masked by masking rule "payments-no-raw-cards"',
                                               [RAW_CARDS]),
           "produce", "topic", "payments.settled", payer)
    c.case("produce-direction-leaves-consume-raw", a('grant 2 allows consume on topic "payments.settled"'), "consume", "topic", "payments.settled", payer)
    c.case("both-directions-produce", m('grant 3 allows produce on topic "public.news"; masked by masking rule 2', [EMAIL_HASHED]),
           "produce", "topic", "public.news", contractor)
    c.case("both-directions-consume", m('grant 3 allows consume on topic "public.news.eu"; masked by masking rule 2', [EMAIL_HASHED]),
           "consume", "topic", "public.news.eu", contractor)
    c.case("rule-principals-narrow-it", a('grant 4 allows consume on topic "public.news"'), "consume", "topic", "public.news", ops)
    c.case("denied-stays-denied", d(no_grant("consume", "topic", "orders", *writer)), "consume", "topic", "orders", writer)
    c.case("denied-produce-stays-denied", d(no_grant("produce", "topic", "payments.settled", "anonymous", [])),
           "produce", "topic", "payments.settled", ANONYMOUS)
    c.case("malformed-rule-denies-consume", d(fault("hr-pii", "hr.payroll", 'its direction is not "produce", "consume" or "both"', "consume")),
           "consume", "topic", "hr.payroll", ops)
    c.case("malformed-rule-denies-produce", d(fault("hr-pii", "hr.payroll", 'its direction is not "produce", "consume" or "both"', "produce")),
           "produce", "topic", "hr.payroll", ops)
    c.case("malformed-item-denies", d(fault("hr-pii", "hr.salaries", 'its direction is not "produce", "consume" or "both"', "consume")),
           "consume", "topic", "hr.salaries", ops)
    c.case("malformed-rule-leaves-other-operations", a('grant 4 allows describe_topic on topic "hr.payroll"'),
           "describe_topic", "topic", "hr.payroll", ops)
    c.case("malformed-rule-denial-keeps-its-reason", d(no_grant("consume", "topic", "hr.payroll", *analyst)), "consume", "topic", "hr.payroll", analyst)
    c.case("too-many-mask-items",
           d('masking rules give 65 mask items for produce on topic "bulk", more than the 64 a decision may carry'),
           "produce", "topic", "bulk", ops)
    c.case("every-item-shape", m('grant 4 allows consume on topic "events.clicks"; masked by masking rule "events"', EVERY_ITEM_SHAPE),
           "consume", "topic", "events.clicks", ops)
    grant = {"operation": "consume", "resource": {"type": "topic", "name": "orders"}, "expires_at": "2026-11-23T08:30:00+01:00"}
    c.case("time-boxed-grant-mask-ttl-ends-with-the-grant",
           {**m(f'time-boxed grant for consume on topic "orders" until 2026-11-23T08:30:00+01:00; {pii}', ORDERS_MASK), "ttl": "1250ms"},
           "consume", "topic", "orders", ("svc-y", ["oncall"]), grants=[grant], time="2026-11-23T07:29:58.75Z")
    hr_grant = {**grant, "resource": {"type": "topic", "name": "hr.payroll"}}
    c.case("time-boxed-grant-malformed-rule-denial-ends-with-the-grant",
           {**d(fault("hr-pii", "hr.payroll", 'its direction is not "produce", "consume" or "both"', "consume")), "ttl": "250ms"},
           "consume", "topic", "hr.payroll", ("svc-y", ["oncall"]), grants=[hr_grant], time="2026-11-23T07:29:59.75Z")
    return c


def default_library_masking_malformed() -> Corpus:
    """A malformed mask item in a rule naming the topic, each kind (the library type-checks each)."""
    bad_items = [
        ("not-an-object", "last4", "is not an object"),
        ("field-and-detector", {"field": "$.card", "detector": "credit_card", "masker": "last4"}, "names both a field and a detector"),
        ("neither", {"masker": "last4"}, "names neither a field nor a detector"),
        ("field-not-a-path", {"field": "payment.card", "masker": "last4"}, 'has a field that is not a JSONPath starting with "$"'),
        ("field-not-a-string", {"field": ["$.card"], "masker": "last4"}, 'has a field that is not a JSONPath starting with "$"'),
        ("detector-empty", {"detector": "", "masker": "last4"}, "has a detector that is not a name"),
        ("detector-not-a-string", {"detector": 7, "masker": "last4"}, "has a detector that is not a name"),
        ("masker-missing", {"field": "$.card"}, "has a masker that is not a name"),
        ("masker-not-a-string", {"field": "$.card", "masker": {"name": "last4"}}, "has a masker that is not a name"),
        ("options-not-an-object", {"field": "$.card", "masker": "last4", "options": [4]}, "has options that are not an object"),
        ("in-unknown", {"field": "$.card", "masker": "last4", "in": "body"}, 'has an "in" that is not value, key or header:<name>'),
        ("in-header-without-name", {"field": "$.card", "masker": "last4", "in": "header:"}, 'has an "in" that is not value, key or header:<name>'),
        ("in-not-a-string", {"field": "$.card", "masker": "last4", "in": None}, 'has an "in" that is not value, key or header:<name>'),
        ("on-error-unknown", {"field": "$.card", "masker": "last4", "on_error": "skip"}, "has an on_error that is not deny, redact_value or pass"),
        ("unknown-key", {"field": "$.card", "masker": "last4", "part": "key"}, "has keys it does not know (part)"),
    ]
    bad_rules = [
        ("unknown-rule-key", {"owners": {"groups": ["orders-owners"]}}, "has keys it does not know (owners)"),
        ("direction-missing", {"direction": None}, 'its direction is not "produce", "consume" or "both"'),
        ("principals-list", {"principals": ["platform"]}, 'its principals are neither "*" nor {"groups": [...], "subs": [...]}'),
        ("exempt-group-string", {"exempt": {"groups": "orders-owners"}}, 'its exempt is neither "*" nor {"groups": [...], "subs": [...]}'),
        ("mask-empty", {"mask": []}, "its mask is empty"),
        ("mask-object", {"mask": CARD_LAST4}, "its mask is not a list of mask items"),
        ("reason-not-a-string", {"reason": 7}, "its reason is not a string"),
    ]
    rules: list[Any] = [{"name": f"item-{name}", "topics": [f"items.{name}"], "direction": "both", "mask": [CARD_LAST4, item]}
                        for name, item, _ in bad_items]
    for name, change, _ in bad_rules:
        rule = {"name": f"rule-{name}", "topics": [f"rules.{name}"], "direction": "consume", "mask": [CARD_LAST4], **change}
        rules.append({k: v for k, v in rule.items() if v is not None})
    config = {"gatekeeper_config": {
        "grants": [{"principals": "*", "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["produce", "consume"]}],
        "masking": rules,
    }}
    c = Corpus("default_library_masking_malformed", "gatekeeper/decision", config, "5s")
    who = ("svc", [])
    for name, _, problem in bad_items:
        topic = f"items.{name}"
        c.case(f"item-{name}", c.deny(f'masking rule "item-{name}" names topic "{topic}" but its mask item 1 {problem}: consume is denied until '
                                      "the rule is fixed (policies/README.md, Masking)"), "consume", "topic", topic, who)
    for name, _, problem in bad_rules:
        topic = f"rules.{name}"
        c.case(f"rule-{name}", c.deny(f'masking rule "rule-{name}" names topic "{topic}" but {problem}: produce is denied until '
                                      "the rule is fixed (policies/README.md, Masking)"), "produce", "topic", topic, who)
    c.case("unrelated-topic-is-not-masked", c.allow('grant 0 allows consume on topic "items"'), "consume", "topic", "items", who)
    return c


def pii_masking() -> Corpus:
    """The PII masking example in front of the library with the shipped data (which masks nothing)."""
    c = Corpus("pii_masking", "gatekeeper/examples/pii_masking/decision", "policies/data.json", "5s")
    a, d, m = c.allow, c.deny, c.mask
    analyst = ("svc-analytics", ["analytics-readers"])
    ops = ("ops", ["platform"])
    pii = ("carries PII: outside orders-owners, card numbers show their last 4 digits, SSNs are redacted and e-mail addresses hashed")
    c.case("analyst-reads-orders-masked", m(f'grant 1 allows consume on topic "orders"; topic "orders" {pii}', ORDERS_MASK),
           "consume", "topic", "orders", analyst)
    c.case("analyst-reads-child-topic-masked", m(f'grant 1 allows consume on topic "orders.eu"; topic "orders.eu" {pii}', ORDERS_MASK),
           "consume", "topic", "orders.eu", analyst)
    c.case("owner-reads-raw", a('grant 1 allows consume on topic "orders"'), "consume", "topic", "orders",
           ("svc-billing", ["analytics-readers", "orders-owners"]))
    c.case("platform-reads-masked", m(f'grant 4 allows consume on topic "orders"; topic "orders" {pii}', ORDERS_MASK),
           "consume", "topic", "orders", ops)
    c.case("writer-writes-orders-raw", a('grant 0 allows produce on topic "orders"'), "produce", "topic", "orders", ("svc-orders", ["orders-writers"]))
    c.case("denied-read-stays-denied", d(no_grant("consume", "topic", "orders", "svc-orders", ["orders-writers"])),
           "consume", "topic", "orders", ("svc-orders", ["orders-writers"]))
    c.case("near-miss-topic-is-library", d(no_grant("consume", "topic", "orders-x", *analyst)), "consume", "topic", "orders-x", analyst)
    c.case("payments-write-masked",
           m('grant 4 allows produce on topic "payments.settled"; no raw card number is written to topic "payments.settled": '
             "card numbers keep their last 4 digits", [RAW_CARDS]),
           "produce", "topic", "payments.settled", ops)
    c.case("payments-read-raw", a('grant 4 allows consume on topic "payments.settled"'), "consume", "topic", "payments.settled", ops)
    c.case("payments-near-miss-raw", a('grant 4 allows produce on topic "payments"'), "produce", "topic", "payments", ops)
    c.case("denied-write-stays-denied", d(no_grant("produce", "topic", "payments.settled", *analyst)),
           "produce", "topic", "payments.settled", analyst)
    c.case("groups-are-the-librarys", a('grant 2 allows join_group on group "analytics-daily"'), "join_group", "group", "analytics-daily", analyst)
    return c


def pii_masking_data() -> Corpus:
    """The PII masking example's data.json: the same idea as a configuration of the library."""
    c = Corpus("pii_masking_data", "gatekeeper/decision", "policies/examples/pii_masking/data.json", "5s")
    a, d, m = c.allow, c.deny, c.mask
    analyst = ("svc-analytics", ["analytics-readers"])
    c.case("analyst-reads-orders-masked", m(f'grant 1 allows consume on topic "orders"; masked by masking rule "orders-pii": {ORDERS_PII_REASON}',
                                            ORDERS_MASK), "consume", "topic", "orders", analyst)
    c.case("owner-reads-raw", a('grant 1 allows consume on topic "orders.eu"'), "consume", "topic", "orders.eu", ("svc-billing", ["orders-owners"]))
    c.case("writer-writes-raw", a('grant 0 allows produce on topic "orders"'), "produce", "topic", "orders", ("svc-orders", ["orders-writers"]))
    c.case("payments-write-masked",
           m('grant 3 allows produce on topic "payments.settled"; masked by masking rule "payments-no-raw-cards": '
             "no raw card number is written to payments.*", [RAW_CARDS]),
           "produce", "topic", "payments.settled", ("svc-payments", ["payments-writers"]))
    c.case("platform-reads-payments-raw", a('grant 4 allows consume on topic "payments.settled"'), "consume", "topic", "payments.settled",
           ("ops", ["platform"]))
    c.case("denied-stays-denied", d(no_grant("consume", "topic", "orders", "svc-payments", ["payments-writers"])),
           "consume", "topic", "orders", ("svc-payments", ["payments-writers"]))
    return c


# -- approvals -------------------------------------------------------------------------------------

PAYMENTS_APPROVAL = {"approvers": ["group:payments-leads"], "approvals_required": 1, "grant_ttl": "30m", "wait": "20s"}
SECURITY_APPROVAL = {"approvers": ["group:security"], "approvals_required": 2, "grant_ttl": "15m", "wait": "25s"}
REGULATED_APPROVAL = {"approvers": ["group:data-governance"], "approvals_required": 1, "grant_ttl": "8h", "wait": "20s"}
PAYMENTS_WRITES = {"name": "payments-writes", "reason": "writes to payments.* outside the payments team",
                   "operations": ["produce"], "resources": {"type": "topic", "patterns": ["payments.*"]},
                   "exempt": {"groups": ["payments"]}, "approvers": ["group:payments-leads"], "grant_ttl": "30m", "wait": "20s"}

APPROVALS_CONFIG = {"gatekeeper_config": {
    "default_ttl": "5s",
    "always_allowed": ["api_versions", "authenticate", "find_coordinator"],
    "immutable_topics": ["audit.**"],
    "grants": [
        {"principals": {"groups": ["payments"]}, "resources": {"type": "topic", "patterns": ["payments.*"]}, "operations": ["produce"]},
        {"principals": {"groups": ["analytics-readers"]}, "resources": {"type": "group", "patterns": ["analytics-*"]},
         "operations": ["join_group", "commit_offset", "fetch_offset"]},
        {"principals": {"groups": ["platform"]}, "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["*"]},
        {"principals": {"groups": ["platform"]}, "resources": {"type": "cluster", "patterns": ["**"]}, "operations": ["*"]},
    ],
    "known_groups": ["analytics-daily", "orders-*"],
    "masking": [{"name": "cards", "topics": ["payments.*"], "direction": "produce", "mask": [RAW_CARDS]},
                {"name": "hr-pii", "topics": ["hr.*"], "direction": "sideways", "mask": [CARD_LAST4]}],
    "approvals": [
        PAYMENTS_WRITES,
        {"name": "audit-config", "reason": "two people from security change an audit topic's config",
         "operations": ["alter_topic_config"], "resources": {"type": "topic", "patterns": ["audit.*"]}, "always": True,
         "approvers": ["group:security"], "approvals_required": 2, "grant_ttl": "15m", "wait": "25s"},
        {"name": "new-groups", "operations": ["join_group"], "resources": {"type": "group", "patterns": ["**"]},
         "unless_known_group": True, "always": True, "approvers": ["group:platform-oncall"]},
        {"name": "regulated-offsets", "reason": "a new consumer group on a regulated topic",
         "operations": ["fetch_offset"], "resources": {"type": "topic", "patterns": ["regulated.*"]},
         "unless_known_group": True, "always": True, "approvers": ["user:dana", "user:erin"], "approvals_required": 2},
        {"operations": ["*"], "resources": {"type": "topic", "patterns": ["sandbox.**", "hr.*"]}, "approvers": ["user:sam"]},
        {"operations": ["*"], "resources": {"type": "cluster", "patterns": ["kafka-cluster"]}, "principals": {"groups": ["sre"]},
         "approvers": ["group:platform"], "wait": "10s"},
    ],
}}


def needs(op: str, rtype: str, name: str, sub: str, groups: list[str], what: str, approvers: str, rule: str) -> str:
    return f'{op} on {rtype} {json.dumps(name)} by {sub} (groups: {", ".join(groups) or "none"}) needs {what} by {approvers} ({rule})'


def default_library_approvals() -> Corpus:
    """The default library's approval rules (data.gatekeeper_config.approvals), given inline."""
    c = Corpus("default_library_approvals", "gatekeeper/decision", APPROVALS_CONFIG, "5s")
    a, d, v = c.allow, c.deny, c.violation

    def approve(reason: str, approval: dict[str, Any]) -> dict[str, Any]:
        return {"action": "approve", "approval": approval, "reason": reason, "ttl": "5s"}

    team_x = ("svc-x", ["team-x"])
    ops = ("ops", ["platform"])
    analyst = ("svc-analytics", ["analytics-readers"])
    payments_rule = 'approval rule "payments-writes": writes to payments.* outside the payments team'
    audit_rule = "approval rule \"audit-config\": two people from security change an audit topic's config"
    regulated_rule = 'approval rule "regulated-offsets": a new consumer group on a regulated topic'
    c.case("no-grant-waits-for-approval",
           approve(needs("produce", "topic", "payments.eu", *team_x, "approval", "group:payments-leads", payments_rule), PAYMENTS_APPROVAL),
           "produce", "topic", "payments.eu", team_x)
    c.case("granted-stays-allowed-masked", c.mask('grant 2 allows produce on topic "payments.eu"; masked by masking rule "cards"', [RAW_CARDS]),
           "produce", "topic", "payments.eu", ops)
    c.case("near-miss-exempt-group-waits",
           approve(needs("produce", "topic", "payments.eu", "svc-p", ["payments-eu"], "approval", "group:payments-leads", payments_rule),
                   PAYMENTS_APPROVAL),
           "produce", "topic", "payments.eu", ("svc-p", ["payments-eu"]))
    c.case("exempt-team-follows-its-grant", c.mask('grant 0 allows produce on topic "payments.eu"; masked by masking rule "cards"', [RAW_CARDS]),
           "produce", "topic", "payments.eu", ("svc-p", ["payments"]))
    c.case("near-miss-topic-denied", d(no_grant("produce", "topic", "payments.eu.x", *team_x)), "produce", "topic", "payments.eu.x", team_x)
    c.case("other-operation-denied", d(no_grant("consume", "topic", "payments.eu", *team_x)), "consume", "topic", "payments.eu", team_x)
    grant = {"id": "g-1", "operation": "produce", "resource": {"type": "topic", "name": "payments.eu"}, "expires_at": "2026-11-23T07:54:49.689Z",
             "approved_by": ["user:lee"], "approval_id": "a-1"}
    c.case("approved-grant-allows-masked",
           c.mask('time-boxed grant for produce on topic "payments.eu" until 2026-11-23T07:54:49.689Z; masked by masking rule "cards"', [RAW_CARDS]),
           "produce", "topic", "payments.eu", team_x, grants=[grant])
    c.case("approved-grant-ttl-ends-with-it",
           {**c.mask('time-boxed grant for produce on topic "payments.eu" until 2026-11-23T07:54:49.689Z; masked by masking rule "cards"',
                     [RAW_CARDS]), "ttl": "1500ms"},
           "produce", "topic", "payments.eu", team_x, grants=[grant], time="2026-11-23T07:54:48.189Z")
    c.case("approved-grant-expired-waits-again",
           approve(needs("produce", "topic", "payments.eu", *team_x, "approval", "group:payments-leads", payments_rule), PAYMENTS_APPROVAL),
           "produce", "topic", "payments.eu", team_x, grants=[grant], time="2026-11-23T07:54:49.689Z")
    c.case("always-holds-a-granted-request",
           approve(needs("alter_topic_config", "topic", "audit.logins", *ops, "2 approvals", "group:security", audit_rule), SECURITY_APPROVAL),
           "alter_topic_config", "topic", "audit.logins", ops)
    audit_grant = {"operation": "alter_topic_config", "resource": {"type": "topic", "name": "audit.logins"}, "expires_at": "2026-11-23T07:25:00Z"}
    c.case("always-lifted-by-a-time-boxed-grant",
           {**a('time-boxed grant for alter_topic_config on topic "audit.logins" until 2026-11-23T07:25:00Z'), "ttl": "311ms"},
           "alter_topic_config", "topic", "audit.logins", ops, grants=[audit_grant], time="2026-11-23T07:24:59.689Z")
    c.case("always-near-miss-topic", a('grant 2 allows alter_topic_config on topic "audit.logins.eu"'),
           "alter_topic_config", "topic", "audit.logins.eu", ops)
    c.case("policy-violation-never-approvable", v('topic "audit.logins" is immutable: alter_topic_config may not change retention.ms'),
           "alter_topic_config", "topic", "audit.logins", ops, request={"configs": {"retention.ms": "1"}, "validate_only": False},
           grants=[audit_grant])
    c.case("unknown-group-joining-waits",
           approve(needs("join_group", "group", "analytics-eu", *analyst, "approval", "group:platform-oncall", 'approval rule "new-groups"'),
                   {"approvers": ["group:platform-oncall"], "approvals_required": 1}),
           "join_group", "group", "analytics-eu", analyst)
    c.case("known-group-joining-allowed", a('grant 1 allows join_group on group "analytics-daily"'), "join_group", "group", "analytics-daily", analyst)
    c.case("known-group-without-grant-denied", d(no_grant("join_group", "group", "orders-app", *team_x)), "join_group", "group", "orders-app", team_x)
    c.case("other-group-operation-allowed", a('grant 1 allows commit_offset on group "analytics-eu"'), "commit_offset", "group", "analytics-eu", analyst)

    def fetch(group: str) -> dict[str, Any]:
        return {"group": group, "partitions": [0, 1]}

    c.case("new-group-on-regulated-topic-waits-for-two",
           approve(needs("fetch_offset", "topic", "regulated.trades", *ops, "2 approvals", "user:dana, user:erin", regulated_rule),
                   {"approvers": ["user:dana", "user:erin"], "approvals_required": 2}),
           "fetch_offset", "topic", "regulated.trades", ops, request=fetch("risk-adhoc"))
    c.case("known-group-on-regulated-topic-allowed", a('grant 2 allows fetch_offset on topic "regulated.trades"'),
           "fetch_offset", "topic", "regulated.trades", ops, request=fetch("orders-risk"))
    c.case("no-group-on-regulated-topic-allowed", a('grant 2 allows consume on topic "regulated.trades"'), "consume", "topic", "regulated.trades", ops)
    c.case("approver-cannot-approve-their-own",
           d('fetch_offset on topic "regulated.trades" by dana needs 2 approvals by user:dana, user:erin '
             f"({regulated_rule}), but only 1 of them may give it: no one approves their own request"),
           "fetch_offset", "topic", "regulated.trades", ("dana", ["platform"]), request=fetch("risk-adhoc"))
    c.case("anonymous-never-offered-an-approval",
           d(f'produce on topic "payments.eu" needs approval by group:payments-leads ({payments_rule}), which is never asked for an '
             "anonymous client: a grant to anonymous would be every unauthenticated client's; authenticate"),
           "produce", "topic", "payments.eu", ANONYMOUS)
    c.case("rule-named-by-its-index",
           approve(needs("create_topic", "topic", "sandbox.tmp", *team_x, "approval", "user:sam", "approval rule 4"),
                   {"approvers": ["user:sam"], "approvals_required": 1}),
           "create_topic", "topic", "sandbox.tmp", team_x)
    c.case("masking-fault-denies-instead-of-approval",
           d('masking rule "hr-pii" names topic "hr.payroll" but its direction is not "produce", "consume" or "both": '
             "consume is denied until the rule is fixed (policies/README.md, Masking)"),
           "consume", "topic", "hr.payroll", team_x)
    c.case("cluster-rule-by-principals",
           approve(needs("describe_cluster", "cluster", CLUSTER, "kim", ["sre"], "approval", "group:platform", "approval rule 5"),
                   {"approvers": ["group:platform"], "approvals_required": 1, "wait": "10s"}),
           "describe_cluster", "cluster", CLUSTER, ("kim", ["sre"]))
    c.case("star-does-not-cover-cluster-administration", d(not_named("elect_leaders", "cluster", CLUSTER, "kim", ["sre"])),
           "elect_leaders", "cluster", CLUSTER, ("kim", ["sre"]))
    c.case("cluster-rule-other-principals", d(no_grant("describe_cluster", "cluster", CLUSTER, *team_x)), "describe_cluster", "cluster", CLUSTER, team_x)
    c.case("always-allowed-never-held", a("find_coordinator is allowed to every client"), "find_coordinator", "group", "analytics-eu", analyst)
    return c


def default_library_approvals_malformed() -> Corpus:
    """A malformed approval rule naming the request, each kind: the request is denied for everyone."""
    rule = {"operations": ["produce"], "approvers": ["group:leads"]}
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("unknown-key", {"approver": ["group:leads"]}, "has keys it does not know (approver)"),
        ("resources-unknown-key", {"resources": {"names": ["x"]}}, "its resources have keys they do not know (names)"),
        ("operations-string", {"operations": "produce"}, "its operations are not a list of operation names"),
        ("name-not-a-string", {"name": 7}, "its name is not a string"),
        ("reason-not-a-string", {"reason": ["x"]}, "its reason is not a string"),
        ("principals-list", {"principals": ["*"]}, 'its principals are neither "*" nor {"groups": [...], "subs": [...]}'),
        ("exempt-group-string", {"exempt": {"groups": "leads"}}, 'its exempt is neither "*" nor {"groups": [...], "subs": [...]}'),
        ("approvers-missing", {"approvers": None}, "its approvers are not a list"),
        ("approvers-empty", {"approvers": []}, "its approvers are empty"),
        ("approver-no-prefix", {"approvers": ["group:leads", "leads"]}, 'its approver 1 is not "group:<name>" or "user:<sub>"'),
        ("approvals-required-zero", {"approvals_required": 0}, "its approvals_required is not a whole number from 1 to 5"),
        ("approvals-required-six", {"approvals_required": 6}, "its approvals_required is not a whole number from 1 to 5"),
        ("approvals-required-string", {"approvals_required": "2"}, "its approvals_required is not a whole number from 1 to 5"),
        ("too-few-users", {"approvers": ["user:lee"], "approvals_required": 2},
         "its approvals_required is 2 but its approvers name 1 user and no group: it could never be approved"),
        ("grant-ttl-words", {"grant_ttl": "30 minutes"}, "its grant_ttl is not a duration (30m, 1h, 90s)"),
        ("wait-days", {"wait": "1d"}, "its wait is not a duration (20s, 500ms)"),
        ("always-string", {"always": "yes"}, "its always is neither true nor false"),
        ("unless-known-group-number", {"unless_known_group": 1}, "its unless_known_group is neither true nor false"),
    ]
    rules: list[Any] = []
    for name, change, _ in bad:
        resources = {"type": "topic", "patterns": [f"rules.{name}"], **change.get("resources", {})}
        entry = {"name": f"rule-{name}", **rule, **change, "resources": resources}
        rules.append({k: val for k, val in entry.items() if val is not None})
    # Ignored: entries that name nothing (another type, no patterns, operations without produce or consume).
    rules += ["rule", None, {"resources": "rules.*", "approvers": []}, {"resources": {"type": "group", "patterns": ["**"]}, "approvers": 7},
              {"operations": ["delete_records"], "resources": {"type": "topic", "patterns": ["**"]}, "approvers": []}]
    config = {"gatekeeper_config": {
        "grants": [{"principals": {"groups": ["platform"]}, "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["*"]}],
        "approvals": rules,
    }}
    c = Corpus("default_library_approvals_malformed", "gatekeeper/decision", config, "5s")
    for i, (name, _, problem) in enumerate(bad):
        topic = f"rules.{name}"
        label = f"approval rule {i}" if name == "name-not-a-string" else f'approval rule "rule-{name}"'
        who = ("ops", ["platform"]) if i % 2 else ("svc-x", [])
        c.case(f"rule-{name}", c.deny(f'{label} names topic "{topic}" but {problem}: produce is denied until the rule is fixed '
                                      "(policies/README.md, Approvals)"), "produce", "topic", topic, who)
    c.case("unrelated-topic-allowed", c.allow('grant 0 allows produce on topic "rules"'), "produce", "topic", "rules", ("ops", ["platform"]))
    c.case("unrelated-operation-allowed", c.allow('grant 0 allows consume on topic "rules.wait-days"'),
           "consume", "topic", "rules.wait-days", ("ops", ["platform"]))
    c.case("ignored-entries-deny-as-before", c.deny(no_grant("consume", "topic", "x", "svc-x", [])), "consume", "topic", "x", ("svc-x", []))
    return c


def jit_approvals() -> Corpus:
    """The just-in-time approvals example in front of the library with the shipped data (no approvals of its own)."""
    c = Corpus("jit_approvals", "gatekeeper/examples/jit_approvals/decision", "policies/data.json", "5s")
    a, d, v = c.allow, c.deny, c.violation

    def approve(reason: str, approval: dict[str, Any]) -> dict[str, Any]:
        return {"action": "approve", "approval": approval, "reason": reason, "ttl": "5s"}

    ops = ("ops", ["platform"])
    why = 'a write to "payments.settled" outside group payments needs approval by a payments lead'
    c.case("payments-write-by-platform-waits",
           approve(f'produce on topic "payments.settled" by ops (groups: platform): {why}', PAYMENTS_APPROVAL),
           "produce", "topic", "payments.settled", ops)
    c.case("payments-write-without-grant-waits",
           approve(f'produce on topic "payments.settled" by svc-x (groups: none): {why}', PAYMENTS_APPROVAL),
           "produce", "topic", "payments.settled", ("svc-x", []))
    c.case("payments-team-is-the-librarys", d(no_grant("produce", "topic", "payments.settled", "svc-p", ["payments"])),
           "produce", "topic", "payments.settled", ("svc-p", ["payments"]))
    c.case("payments-near-miss-is-the-librarys", a('grant 4 allows produce on topic "payments"'), "produce", "topic", "payments", ops)
    grant = {"id": "g-2", "operation": "produce", "resource": {"type": "topic", "name": "payments.settled"},
             "expires_at": "2026-11-23T07:24:52.189Z", "approved_by": ["user:lee"], "approval_id": "a-2"}
    c.case("approved-write-allowed-until-the-grant-ends",
           {**a(f'grant 4 allows produce on topic "payments.settled"; {why}: approved until 2026-11-23T07:24:52.189Z'), "ttl": "2500ms"},
           "produce", "topic", "payments.settled", ops, grants=[grant])
    c.case("approved-write-by-time-boxed-grant",
           {**a(f'time-boxed grant for produce on topic "payments.settled" until 2026-11-23T07:24:52.189Z; {why}: '
                'approved until 2026-11-23T07:24:52.189Z'), "ttl": "2500ms"},
           "produce", "topic", "payments.settled", ("svc-x", []), grants=[grant])
    c.case("approval-expired-waits-again", approve(f'produce on topic "payments.settled" by ops (groups: platform): {why}', PAYMENTS_APPROVAL),
           "produce", "topic", "payments.settled", ops, grants=[grant], time="2026-11-23T07:24:52.189Z")
    c.case("anonymous-never-offered-an-approval",
           d(f'produce on topic "payments.settled": {why}, which is never asked for an anonymous client: a grant to anonymous would be '
             "every unauthenticated client's; authenticate"),
           "produce", "topic", "payments.settled", ANONYMOUS)
    c.case("new-group-on-regulated-topic-waits",
           approve('fetch_offset on topic "regulated.trades" by ops (groups: platform): consumer group "risk-adhoc" is new on regulated topic '
                   '"regulated.trades" and needs approval by data governance', REGULATED_APPROVAL),
           "fetch_offset", "topic", "regulated.trades", ops, request={"group": "risk-adhoc", "partitions": [0]})
    c.case("known-group-on-regulated-topic", a('grant 4 allows fetch_offset on topic "regulated.trades"'),
           "fetch_offset", "topic", "regulated.trades", ops, request={"group": "regulated-archive-7", "partitions": [0]})
    c.case("regulated-consume-is-the-librarys", a('grant 4 allows consume on topic "regulated.trades"'), "consume", "topic", "regulated.trades", ops)
    c.case("audit-config-waits-for-two",
           approve('alter_topic_config on topic "audit.logins" by ops (groups: platform): a config change of audit topic "audit.logins" needs two '
                   "approvals from security", SECURITY_APPROVAL),
           "alter_topic_config", "topic", "audit.logins", ops)
    c.case("audit-retention-stays-a-violation", v('topic "audit.logins" is immutable: alter_topic_config may not change retention.ms'),
           "alter_topic_config", "topic", "audit.logins", ops, request={"configs": {"retention.ms": "1"}, "validate_only": False})
    c.case("everything-else-is-the-librarys", a('grant 0 allows produce on topic "orders"'), "produce", "topic", "orders",
           ("svc-orders", ["orders-writers"]))
    return c


def jit_approvals_data() -> Corpus:
    """The just-in-time approvals example's data.json: the same idea as a configuration of the library."""
    c = Corpus("jit_approvals_data", "gatekeeper/decision", "policies/examples/jit_approvals/data.json", "5s")
    a, d, v = c.allow, c.deny, c.violation

    def approve(reason: str, approval: dict[str, Any]) -> dict[str, Any]:
        return {"action": "approve", "approval": approval, "reason": reason, "ttl": "5s"}

    ops = ("ops", ["platform"])
    risk = ("svc-risk", ["risk-analysts"])
    payments_rule = 'approval rule "payments-writes": writes to payments.* outside the payments team are approved by a payments lead'
    c.case("payments-write-by-platform-waits",
           approve(needs("produce", "topic", "payments.eu", *ops, "approval", "group:payments-leads", payments_rule), PAYMENTS_APPROVAL),
           "produce", "topic", "payments.eu", ops)
    c.case("payments-team-writes", a('grant 0 allows produce on topic "payments.eu"'), "produce", "topic", "payments.eu", ("svc-p", ["payments"]))
    c.case("new-group-on-regulated-topic-waits",
           approve(needs("fetch_offset", "topic", "regulated.trades", *risk, "approval", "group:data-governance",
                         'approval rule "regulated-new-groups": a consumer group new on a regulated topic is approved by data governance'),
                   REGULATED_APPROVAL),
           "fetch_offset", "topic", "regulated.trades", risk, request={"group": "risk-adhoc", "partitions": [0]})
    c.case("known-group-on-regulated-topic", a('grant 1 allows fetch_offset on topic "regulated.trades"'),
           "fetch_offset", "topic", "regulated.trades", risk, request={"group": "regulated-reporting", "partitions": [0]})
    c.case("audit-config-waits-for-two",
           approve(needs("alter_topic_config", "topic", "audit.logins", *ops, "2 approvals", "group:security",
                         'approval rule "audit-config-two-person": two people from security approve a config change of an audit topic'),
                   SECURITY_APPROVAL),
           "alter_topic_config", "topic", "audit.logins", ops)
    c.case("audit-retention-stays-a-violation", v('topic "audit.logins" is immutable: alter_topic_config may not change retention.ms'),
           "alter_topic_config", "topic", "audit.logins", ops, request={"configs": {"retention.ms": "1"}, "validate_only": False})
    grant = {"operation": "alter_topic_config", "resource": {"type": "topic", "name": "audit.logins"}, "expires_at": "2026-11-23T07:39:49.689Z"}
    c.case("approved-config-change-allowed", a('time-boxed grant for alter_topic_config on topic "audit.logins" until 2026-11-23T07:39:49.689Z'),
           "alter_topic_config", "topic", "audit.logins", ops, grants=[grant])
    c.case("no-grant-no-rule-denied", d(no_grant("consume", "topic", "payments.eu", "svc-x", [])), "consume", "topic", "payments.eu", ("svc-x", []))
    return c


# The Pulsar commands and admin calls Gatekeeper decides each operation for (docs/pulsar.md).
ADMIN = "/admin/v2/{domain}/{tenant}/{namespace}/{topic}"
PULSAR: dict[str, tuple[tuple[int, str, int], dict[str, Any]]] = {
    "produce": ((5, "PRODUCER", 21), {"producer_id": 1, "producer_name": "p-1", "encrypted": False}),
    "consume": ((4, "SUBSCRIBE", 21), {"group": "sub-1", "subscription_type": "Exclusive", "consumer_id": 1}),
    "describe_topic": ((23, "LOOKUP", 21), {"lookup": True, "authoritative": False}),
    "delete_topic": ((0, f"DELETE {ADMIN}", 2), {"force": False}),
    "delete_records": ((0, f"DELETE {ADMIN}/truncate", 2), {"admin": "truncate"}),
    "alter_topic_config": ((0, f"POST {ADMIN}/retention", 2),
                           {"keys": ["retention"], "configs": {"retention": {"retentionTimeInMinutes": 1, "retentionSizeInMB": 1}},
                            "remove": False}),
    "list_topics": ((0, "GET /admin/v2/{domain}/{tenant}/{namespace}", 2), {"domain": "persistent"}),
    "delete_namespace": ((0, "DELETE /admin/v2/namespaces/{tenant}/{namespace}", 2), {"force": True}),
    "delete_tenant": ((0, "DELETE /admin/v2/tenants/{tenant}", 2), {"force": True}),
}


def pulsar_input(op: str, rtype: str, name: str, who: tuple[str, list[str] | None], **overrides: Any) -> dict[str, Any]:
    (key, api_name, version), request = PULSAR[op]
    base = policy_input("produce", rtype, name, who)
    base.update({"protocol": "pulsar", "operation": op, "api": {"key": key, "name": api_name, "version": version},
                 "client": {"id": "pulsar-client-cpp", "address": "10.20.30.40"}, "request": dict(request)})
    base.update(overrides)
    return base


PULSAR_CONFIG = {"gatekeeper_config": {
    "default_ttl": "5s",
    "immutable_topics": ["persistent://public/default/ledger", "persistent://finance/*/audit-*", "audit.**"],
    "grants": [
        {"principals": {"groups": ["orders-writers"]},
         "resources": {"type": "topic", "patterns": ["persistent://public/default/orders-*", "orders"]},
         "operations": ["produce", "describe_topic"]},
        {"principals": {"groups": ["readers"]}, "resources": {"type": "topic", "patterns": ["*://public/events/**"]},
         "operations": ["consume"]},
        {"principals": {"groups": ["ns-admins"]}, "resources": {"type": "namespace", "patterns": ["public/*"]},
         "operations": ["list_topics", "delete_namespace"]},
        {"principals": {"groups": ["tenant-admins"]}, "resources": {"type": "tenant", "patterns": ["*"]},
         "operations": ["delete_tenant"]},
        {"principals": {"groups": ["platform"]}, "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["*"]},
    ],
}}


def default_library_pulsar() -> Corpus:
    """The default library on Pulsar names: full-name globs, partitions, non-persistent topics,
    short names, namespaces and tenants, immutable topics through the admin API."""
    c = Corpus("default_library_pulsar", "gatekeeper/decision", PULSAR_CONFIG, "5s")
    writer, reader = ("svc-orders", ["orders-writers"]), ("svc-reader", ["readers"])
    ops, ns_admin, tenant_admin = ("ops", ["platform"]), ("svc-ns", ["ns-admins"]), ("svc-tenants", ["tenant-admins"])
    a, d, v = c.allow, c.deny, c.violation

    def case(name: str, expected: dict[str, Any], op: str, rtype: str, rname: str, who: tuple[str, list[str] | None],
             **overrides: Any) -> None:
        assert name not in {x["name"] for x in c.cases}, name
        c.cases.append({"name": name, "input": pulsar_input(op, rtype, rname, who, **overrides), "expected": expected})

    orders = "persistent://public/default/orders-1"
    case("produce-globbed-full-name", a(f'grant 0 allows produce on topic "{orders}"'), "produce", "topic", orders, writer)
    case("describe-globbed-partition", a('grant 0 allows describe_topic on topic "persistent://public/default/orders-1-partition-4"'),
         "describe_topic", "topic", "persistent://public/default/orders-1-partition-4", writer)
    case("produce-short-name", a('grant 0 allows produce on topic "orders-9"'), "produce", "topic", "orders-9", writer)
    for label, name in [("other-namespace", "persistent://public/other/orders-1"), ("other-tenant", "persistent://acme/default/orders-1"),
                        ("non-persistent", "non-persistent://public/default/orders-1"), ("no-suffix", "persistent://public/default/orders"),
                        ("legacy-name", "persistent://public/default/orders-1/x"), ("namespace-prefix", "persistent://public/default-x/orders-1"),
                        ("short-other-namespace", "public/other/orders-1")]:
        case(f"produce-near-miss-{label}", d(no_grant("produce", "topic", name, *writer)), "produce", "topic", name, writer)
    case("consume-double-star-namespace", a('grant 1 allows consume on topic "persistent://public/events/a.b"'),
         "consume", "topic", "persistent://public/events/a.b", reader)
    case("consume-star-domain-non-persistent", a('grant 1 allows consume on topic "non-persistent://public/events/clicks"'),
         "consume", "topic", "non-persistent://public/events/clicks", reader)
    case("consume-double-star-not-legacy", d(no_grant("consume", "topic", "persistent://public/events/x/clicks", *reader)),
         "consume", "topic", "persistent://public/events/x/clicks", reader)
    ledger = "persistent://public/default/ledger"
    for op in ("delete_topic", "delete_records"):
        case(f"{op}-immutable", v(f'topic "{ledger}" is immutable: {op} is never allowed on it'), op, "topic", ledger, ops)
    part = f"{ledger}-partition-0"
    case("delete-immutable-partition", v(f'topic "{part}" is immutable: delete_topic is never allowed on it'), "delete_topic", "topic", part, ops)
    case("delete-immutable-glob-anonymous", v('topic "persistent://finance/eu/audit-1" is immutable: delete_topic is never allowed on it'),
         "delete_topic", "topic", "persistent://finance/eu/audit-1", ANONYMOUS)
    case("retention-immutable", v(f'topic "{ledger}" is immutable: alter_topic_config may not change retention'),
         "alter_topic_config", "topic", ledger, ops)
    ttl = {"keys": ["messageTTL"], "configs": {"messageTTL": None}, "remove": True}
    case("remove-message-ttl-immutable", v(f'topic "{ledger}" is immutable: alter_topic_config may not change messageTTL'),
         "alter_topic_config", "topic", ledger, ops, request=ttl)
    other = {"keys": ["maxProducers"], "configs": {"maxProducers": 3}, "remove": False}
    case("max-producers-immutable-allowed", a(f'grant 4 allows alter_topic_config on topic "{ledger}"'),
         "alter_topic_config", "topic", ledger, ops, request=other)
    for label, name in [("non-persistent", "non-persistent://public/default/ledger"), ("ledger-2", f"{ledger}-2"),
                        ("leading-zero-partition", f"{ledger}-partition-01"), ("too-big-partition", f"{ledger}-partition-2147483648"),
                        ("other-namespace", "persistent://public/other/ledger"), ("kafka-pattern", "persistent://public/default/audit.x")]:
        case(f"delete-not-immutable-{label}", a(f'grant 4 allows delete_topic on topic "{name}"'), "delete_topic", "topic", name, ops)
    case("delete-namespace-with-immutable",
         v(f'namespace "public/default" may hold immutable topics ({ledger}): delete_namespace is never allowed on it'),
         "delete_namespace", "namespace", "public/default", ns_admin)
    case("delete-tenant-with-immutable",
         v('tenant "finance" may hold immutable topics (persistent://finance/*/audit-*): delete_tenant is never allowed on it'),
         "delete_tenant", "tenant", "finance", tenant_admin)
    case("delete-namespace-granted", a('grant 2 allows delete_namespace on namespace "public/other"'),
         "delete_namespace", "namespace", "public/other", ns_admin)
    case("list-namespace-granted", a('grant 2 allows list_topics on namespace "public/default"'), "list_topics", "namespace", "public/default", ns_admin)
    case("list-namespace-topic-grant-is-not-a-namespace-grant", d(no_grant("list_topics", "namespace", "public/default", *ops)),
         "list_topics", "namespace", "public/default", ops)
    case("list-namespace-other-tenant", d(no_grant("list_topics", "namespace", "publicx/default", *ns_admin)),
         "list_topics", "namespace", "publicx/default", ns_admin)
    case("delete-tenant-granted", a('grant 3 allows delete_tenant on tenant "acme"'), "delete_tenant", "tenant", "acme", tenant_admin)
    kafka_part = "ledger-partition-0"
    c.case("kafka-partition-like-name-is-its-own-topic", a(f'grant 4 allows delete_topic on topic "{kafka_part}"'),
           "delete_topic", "topic", kafka_part, ops)
    c.case("kafka-immutable-unchanged", v('topic "audit.x" is immutable: delete_topic is never allowed on it'),
           "delete_topic", "topic", "audit.x", ops)
    return c


def main() -> None:
    for build in (default_library, default_library_inline, default_library_mutable, default_library_masking, default_library_masking_malformed,
                  default_library_approvals, default_library_approvals_malformed, team_allowlists, readonly_audit, write_only_ingestion,
                  immutable_topics, pii_masking, pii_masking_data, jit_approvals, jit_approvals_data, default_library_pulsar):
        build().write()


if __name__ == "__main__":
    main()
