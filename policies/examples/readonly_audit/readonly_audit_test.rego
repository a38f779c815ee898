package gatekeeper.examples.readonly_audit_test

import data.gatekeeper
import data.gatekeeper.examples.readonly_audit
import data.gatekeeper.inputs_test as fixtures

# The library's configuration in these tests: platform may do anything to any topic.
config := {
	"default_ttl": "9s",
	"always_allowed": ["api_versions", "find_coordinator"],
	"grants": [
		{"principals": {"groups": ["platform"]}, "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["*"]},
		{"principals": "*", "resources": {"type": "group", "patterns": ["audit-readers-*"]}, "operations": ["join_group", "commit_offset", "fetch_offset"]},
	],
}

decide(policy_input) := d if {
	d := readonly_audit.decision with input as policy_input with data.gatekeeper_config as config
}

decide_as(op, rtype, name, sub, groups) := decide(fixtures.policy_input(op, rtype, name, sub, groups))

test_everyone_reads_audit_topics if {
	decide(fixtures.anonymous_input("consume", "topic", "audit.logins")) == {
		"action": "allow",
		"reason": `topic "audit.logins" is an audit topic: consume is allowed to everyone`,
		"ttl": "9s",
	}
	every op in ["consume", "describe_topic", "describe_topic_config", "fetch_offset", "commit_offset"] {
		decide_as(op, "topic", "audit.logins.eu", "svc-anyone", []).action == "allow"
	}
	decide_as("consume", "topic", "audit", "svc-anyone", []).action == "allow"
}

test_nobody_writes_audit_topics_not_even_with_a_wildcard_grant if {
	decide_as("produce", "topic", "audit.logins", "ops", ["platform"]) == {
		"action": "deny",
		"error": "policy_violation",
		"reason": `topic "audit.logins" is an audit topic, read-only for everyone: produce is not allowed`,
		"ttl": "9s",
	}
	every op in ["produce", "create_topic", "delete_topic", "delete_records", "create_partitions", "alter_topic_config", "delete_offsets"] {
		decide_as(op, "topic", "audit.logins", "ops", ["platform"]).error == "policy_violation"
	}
}

test_near_miss_names_are_not_audit_topics if {
	every name in ["audits", "audit-log", "x.audit", "auditlog.x"] {
		decide_as("produce", "topic", name, "ops", ["platform"]) == {
			"action": "allow",
			"reason": sprintf("grant 0 allows produce on topic %q", [name]),
			"ttl": "9s",
		}
		decide(fixtures.anonymous_input("consume", "topic", name)).action == "deny"
	}
}

test_audit_readers_consumer_groups_are_the_librarys_business if {
	decide_as("join_group", "group", "audit-readers-soc", "svc-soc", []) == {
		"action": "allow",
		"reason": `grant 1 allows join_group on group "audit-readers-soc"`,
		"ttl": "9s",
	}
	decide_as("join_group", "group", "audit.logins", "svc-soc", []).action == "deny"
}

test_everything_else_is_the_library_decision if {
	every i in [
		fixtures.policy_input("produce", "topic", "orders", "ops", ["platform"]),
		fixtures.policy_input("produce", "topic", "orders", "svc", []),
		fixtures.policy_input("delete_group", "group", "audit.logins", "ops", ["platform"]),
		fixtures.anonymous_input("api_versions", "cluster", fixtures.cluster),
	] {
		decide(i) == gatekeeper.decision with input as i with data.gatekeeper_config as config
	}
}

test_ttl_follows_the_library if {
	d := readonly_audit.decision with input as fixtures.anonymous_input("consume", "topic", "audit.logins")
		with data.gatekeeper_config as {}
	d.ttl == "5s"
}

test_with_the_shipped_data if {
	readonly_audit.decision.error == "policy_violation" with input as fixtures.policy_input("produce", "topic", "audit.logins", "ops", ["platform"])
	readonly_audit.decision.action == "allow" with input as fixtures.policy_input("produce", "topic", "orders", "svc-orders", ["orders-writers"])
}

test_every_operation_gets_exactly_one_well_formed_decision if {
	every op, types in fixtures.operations {
		every rtype in types {
			every name in ["audit.logins", "orders", "audit-readers-1"] {
				fixtures.well_formed(decide_as(op, rtype, name, "ops", ["platform"]))
			}
		}
	}
	decide({}).reason == "not a Gatekeeper policy input (see docs/policy-input.md)"
}

# -- the same idea as a configuration of the default library (data.json beside this file) --------

library_decision(op, name, sub) := d if {
	d := gatekeeper.decision with input as fixtures.policy_input(op, "topic", name, sub, [])
		with data.gatekeeper_config as data.examples.readonly_audit.gatekeeper_config
}

test_data_json_for_the_default_library if {
	library_decision("consume", "audit.logins", "anyone").action == "allow"
	library_decision("produce", "audit.logins", "anyone").action == "deny"

	# The data variant keeps one writer (the code variant has none).
	library_decision("produce", "audit.logins", "svc-audit-writer").action == "allow"
	library_decision("delete_topic", "audit.logins", "svc-audit-writer").error == "policy_violation"
}
