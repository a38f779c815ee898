package gatekeeper_test

import data.gatekeeper

config := {
	"default_ttl": "7s",
	"always_allowed": ["api_versions", "find_coordinator"],
	"immutable_topics": ["audit.**", "ledger"],
	"grants": [
		{"principals": {"groups": ["orders-writers"]}, "resources": {"type": "topic", "patterns": ["orders", "orders.*"]}, "operations": ["produce", "describe_topic"]},
		{"principals": {"subs": ["svc-audit"]}, "resources": {"type": "topic", "patterns": ["audit.**"]}, "operations": ["consume"]},
		{"principals": {"groups": ["readers"]}, "resources": {"type": "group", "patterns": ["readers-*"]}, "operations": ["join_group"]},
		{"principals": "*", "resources": {"type": "topic", "patterns": ["public"]}, "operations": ["consume"]},
		{"principals": {"groups": ["platform"]}, "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["*"]},
	],
}

input_for(op, rtype, name, sub, groups) := {
	"version": 1, "protocol": "kafka", "operation": op,
	"api": {"key": 0, "name": "Produce", "version": 9},
	"principal": {"sub": sub, "issuer": null, "groups": groups, "claims": {}, "mechanism": "OAUTHBEARER"},
	"resource": {"type": rtype, "name": name},
	"client": {"id": "c", "address": "127.0.0.1"},
	"session": {"id": "s", "started_at": "2026-11-23T10:00:00Z"},
	"request": {}, "grants": [], "time": "2026-11-23T10:00:03Z",
}

decide(i) := d if {
	d := gatekeeper.decision with input as i with data.gatekeeper_config as config
}

test_group_grant_allows_produce if {
	d := decide(input_for("produce", "topic", "orders", "svc-orders", ["orders-writers"]))
	d.action == "allow"
	d.ttl == "7s"
	contains(d.reason, "grant 0")
}

test_glob_one_level if {
	decide(input_for("produce", "topic", "orders.eu", "svc", ["orders-writers"])).action == "allow"
	decide(input_for("produce", "topic", "orders.eu.x", "svc", ["orders-writers"])).action == "deny"
}

test_near_miss_topic_name_is_denied if {
	d := decide(input_for("produce", "topic", "orders-x", "svc-orders", ["orders-writers"]))
	d.action == "deny"
	not d.error
	d.reason == "no grant allows produce on topic \"orders-x\" for svc-orders (groups: orders-writers)"
}

test_wrong_group_and_wrong_operation_are_denied if {
	decide(input_for("produce", "topic", "orders", "svc", ["orders-readers"])).action == "deny"
	decide(input_for("consume", "topic", "orders", "svc", ["orders-writers"])).action == "deny"
}

test_resource_type_must_match if {
	decide(input_for("join_group", "group", "readers-1", "svc", ["readers"])).action == "allow"
	decide(input_for("join_group", "topic", "readers-1", "svc", ["readers"])).action == "deny"
}

test_sub_and_any_principal if {
	decide(input_for("consume", "topic", "audit.payments", "svc-audit", [])).action == "allow"
	decide(input_for("consume", "topic", "audit.payments", "svc-other", [])).action == "deny"
	decide(input_for("consume", "topic", "public", "anonymous", [])).action == "allow"
}

test_always_allowed if {
	decide(input_for("api_versions", "cluster", "kafka-cluster", "anonymous", [])).action == "allow"
	decide(input_for("describe_cluster", "cluster", "kafka-cluster", "anonymous", [])).action == "deny"
}

test_immutable_topic_delete_is_a_policy_violation_even_for_a_wildcard_grant if {
	d := decide(input_for("delete_topic", "topic", "audit.log", "ops", ["platform"]))
	d.action == "deny"
	d.error == "policy_violation"
	contains(d.reason, "immutable")
	decide(input_for("delete_records", "topic", "ledger", "ops", ["platform"])).error == "policy_violation"
	decide(input_for("delete_topic", "topic", "ledger-2", "ops", ["platform"])).action == "allow"
}

test_retention_change_on_immutable_topic_is_refused_other_configs_are_not if {
	i := input_for("alter_topic_config", "topic", "ledger", "ops", ["platform"])
	decide(object.union(i, {"request": {"configs": {"retention.ms": "1"}}})).error == "policy_violation"
	decide(object.union(i, {"request": {"configs": {"max.message.bytes": "2000000"}}})).action == "allow"
}

test_time_boxed_grant_until_it_expires if {
	grant := {"operation": "produce", "resource": {"type": "topic", "name": "payments"}, "expires_at": "2026-11-23T10:05:00Z"}
	i := object.union(input_for("produce", "topic", "payments", "svc", []), {"grants": [grant]})
	decide(i).action == "allow"
	decide(object.union(i, {"time": "2026-11-23T10:05:01Z"})).action == "deny"
	decide(object.union(i, {"resource": {"type": "topic", "name": "payments-2"}})).action == "deny"
}

test_decision_has_only_contract_keys if {
	allowed_keys := {"action", "reason", "error", "ttl"}
	every i in [
		input_for("produce", "topic", "orders", "svc", ["orders-writers"]),
		input_for("produce", "topic", "nope", "svc", []),
		input_for("delete_topic", "topic", "ledger", "svc", ["platform"]),
	] {
		d := decide(i)
		every k, _ in d {
			k in allowed_keys
		}
		d.action in {"allow", "deny"}
	}
}

test_no_config_denies_everything if {
	d := gatekeeper.decision with input as input_for("produce", "topic", "orders", "svc", ["orders-writers"])
		with data.gatekeeper_config as {}
	d.action == "deny"
	d.ttl == "5s"
}

test_shipped_example_data_loads if {
	d := gatekeeper.decision with input as input_for("produce", "topic", "orders", "svc", ["orders-writers"])
	d.action == "allow"
}
