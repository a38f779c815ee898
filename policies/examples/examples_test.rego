package gatekeeper_examples_test

# The example configurations (policies/examples/*/data.json) with the default library.

import data.gatekeeper

input_for(op, rtype, name, sub, groups) := {
	"version": 1, "protocol": "kafka", "operation": op,
	"api": {"key": 0, "name": "Produce", "version": 9},
	"principal": {"sub": sub, "issuer": null, "groups": groups, "claims": {}, "mechanism": "OAUTHBEARER"},
	"resource": {"type": rtype, "name": name},
	"client": {"id": "c", "address": "127.0.0.1"},
	"session": {"id": "s", "started_at": "2026-11-23T10:00:00Z"},
	"request": {}, "grants": [], "time": "2026-11-23T10:00:03Z",
}

action(example, op, rtype, name, sub, groups) := d.action if {
	d := gatekeeper.decision with input as input_for(op, rtype, name, sub, groups)
		with data.gatekeeper_config as data.examples[example].gatekeeper_config
}

error_of(example, op, name, groups) := d.error if {
	d := gatekeeper.decision with input as input_for(op, "topic", name, "svc", groups)
		with data.gatekeeper_config as data.examples[example].gatekeeper_config
}

test_team_allowlists if {
	action("team_allowlists", "produce", "topic", "orders.created", "svc", ["team-orders"]) == "allow"
	action("team_allowlists", "produce", "topic", "payments.settled", "svc", ["team-orders"]) == "deny"
	action("team_allowlists", "join_group", "group", "payments-reporting", "svc", ["team-orders"]) == "deny"
	action("team_allowlists", "join_group", "group", "payments-reporting", "svc", ["team-payments"]) == "allow"
}

test_readonly_audit if {
	action("readonly_audit", "consume", "topic", "audit.logins", "anyone", []) == "allow"
	action("readonly_audit", "produce", "topic", "audit.logins", "anyone", []) == "deny"
	action("readonly_audit", "produce", "topic", "audit.logins", "svc-audit-writer", []) == "allow"
	error_of("readonly_audit", "delete_topic", "audit.logins", []) == "policy_violation"
}

test_write_only_ingestion if {
	action("write_only_ingestion", "produce", "topic", "ingest.clicks", "anyone", []) == "allow"
	action("write_only_ingestion", "consume", "topic", "ingest.clicks", "anyone", []) == "deny"
	action("write_only_ingestion", "consume", "topic", "ingest.clicks", "svc", ["ingestion-pipeline"]) == "allow"
	action("write_only_ingestion", "join_group", "group", "someone-else", "svc", ["ingestion-pipeline"]) == "deny"
}

test_immutable_topics if {
	error_of("immutable_topics", "delete_topic", "ledger", ["platform"]) == "policy_violation"
	error_of("immutable_topics", "delete_records", "ledger.2026", ["platform"]) == "policy_violation"
	action("immutable_topics", "delete_topic", "topic", "ledgers", "svc", ["platform"]) == "allow"
	action("immutable_topics", "produce", "topic", "ledger", "svc", ["platform"]) == "allow"
}
