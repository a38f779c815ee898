package gatekeeper.examples.immutable_topics_test

import data.gatekeeper
import data.gatekeeper.examples.immutable_topics
import data.gatekeeper.inputs_test as fixtures

# The library's configuration in these tests: platform may do anything to any topic, and the
# library's own immutable_topics is empty, so only the example's rule is at work.
config := {
	"default_ttl": "9s",
	"grants": [{"principals": {"groups": ["platform"]}, "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["*"]}],
}

decide(policy_input) := d if {
	d := immutable_topics.decision with input as policy_input with data.gatekeeper_config as config
}

decide_as(op, rtype, name, sub, groups) := decide(fixtures.policy_input(op, rtype, name, sub, groups))

alter(name, configs) := fixtures.with_overrides("alter_topic_config", "topic", name, "ops", ["platform"], {"request": {"configs": configs}})

test_deleting_an_immutable_topic_is_a_violation_even_with_a_wildcard_grant if {
	decide_as("delete_topic", "topic", "ledger", "ops", ["platform"]) == {
		"action": "deny",
		"error": "policy_violation",
		"reason": `topic "ledger" is immutable: delete_topic would delete its records`,
		"ttl": "9s",
	}
	decide_as("delete_records", "topic", "ledger.2026", "ops", ["platform"]).error == "policy_violation"
	decide_as("delete_records", "topic", "audit.logins.eu", "ops", ["platform"]).error == "policy_violation"
}

test_changing_retention_is_a_violation if {
	decide(alter("ledger", {"retention.ms": "86400000", "segment.ms": "1"})) == {
		"action": "deny",
		"error": "policy_violation",
		"reason": `topic "ledger" is immutable: changing retention.ms would let the broker delete its records`,
		"ttl": "9s",
	}
	decide(alter("ledger", {"cleanup.policy": "delete", "retention.bytes": "1"})).reason == `topic "ledger" is immutable: changing cleanup.policy, retention.bytes would let the broker delete its records`
}

test_other_changes_and_writes_follow_the_grants if {
	decide(alter("ledger", {"max.message.bytes": "2097152"})) == {
		"action": "allow",
		"reason": `grant 0 allows alter_topic_config on topic "ledger"`,
		"ttl": "9s",
	}
	decide_as("produce", "topic", "ledger", "ops", ["platform"]).action == "allow"
	decide_as("create_partitions", "topic", "ledger", "ops", ["platform"]).action == "allow"
	decide_as("produce", "topic", "ledger", "svc", []).action == "deny"
}

test_near_miss_names_are_not_immutable if {
	every name in ["ledgers", "ledger-archive", "audit", "audit-x", "x.ledger"] {
		decide_as("delete_topic", "topic", name, "ops", ["platform"]).action == "allow"
		decide(alter(name, {"retention.ms": "1"})).action == "allow"
	}
}

test_legacy_alter_configs_is_a_violation if {
	# AlterConfigs (API key 33) replaces the topic's whole config, so it deletes its retention override.
	legacy := object.union(alter("ledger", {"max.message.bytes": "1"}), {"api": {"key": 33, "name": "AlterConfigs", "version": 2}})
	decide(legacy).reason == `topic "ledger" is immutable: AlterConfigs replaces every config of the topic, which would let the broker delete its records: use IncrementalAlterConfigs`
	decide(object.union(legacy, {"resource": {"name": "ledgers"}})).action == "allow"
}

broker(name, configs) := fixtures.with_overrides("alter_cluster_config", "cluster", fixtures.cluster, "ops", ["platform"], {"request": {
	"configs": configs,
	"config_resource": {"type": "broker", "name": name},
}})

# The library's configuration plus platform's grant on the cluster.
cluster_config := object.union(config, {"grants": array.concat(config.grants, [{
	"principals": {"groups": ["platform"]},
	"resources": {"type": "cluster", "patterns": ["kafka-cluster"]},
	"operations": ["*"],
}])})

decide_cluster(policy_input) := d if {
	d := immutable_topics.decision with input as policy_input with data.gatekeeper_config as cluster_config
}

test_broker_retention_is_a_violation if {
	decide_cluster(broker("", {"log.retention.ms": "1"})) == {
		"action": "deny",
		"error": "policy_violation",
		"reason": "the cluster-wide broker default: changing log.retention.ms would let the broker delete records of immutable topics",
		"ttl": "9s",
	}
	decide_cluster(broker("3", {"log.cleanup.policy": "compact", "log.retention.hours": null})).reason == `broker "3": changing log.cleanup.policy, log.retention.hours would let the broker delete records of immutable topics`
	legacy := object.union(broker("3", {"num.io.threads": "8"}), {"api": {"key": 33, "name": "AlterConfigs", "version": 2}})
	decide_cluster(legacy).reason == `broker "3": AlterConfigs replaces every dynamic config of the broker, which would let it delete records of immutable topics: use IncrementalAlterConfigs`

	# Near misses: other broker configs, other config resources.
	decide_cluster(broker("3", {"log.segment.bytes": "1", "log.retention.check.interval.ms": "1"})) == {
		"action": "allow",
		"reason": `grant 1 allows alter_cluster_config on cluster "kafka-cluster"`,
		"ttl": "9s",
	}
	decide_cluster(object.union(broker("3", {"log.retention.ms": "1"}), {"request": {"config_resource": {"type": "broker_logger"}}})).action == "allow"
}

test_without_a_grant_it_is_still_a_violation_not_an_authorization_failure if {
	decide_as("delete_topic", "topic", "ledger", "mallory", []).error == "policy_violation"
}

test_only_topics_are_immutable if {
	decide_as("delete_group", "group", "ledger", "ops", ["platform"]) == {
		"action": "deny",
		"reason": `no grant allows delete_group on group "ledger" for ops (groups: platform)`,
		"ttl": "9s",
	}
}

test_with_the_shipped_data if {
	immutable_topics.decision.error == "policy_violation" with input as fixtures.policy_input("delete_topic", "topic", "ledger.2026", "ops", ["platform"])
	immutable_topics.decision.action == "allow" with input as fixtures.policy_input("delete_topic", "topic", "orders", "ops", ["platform"])
}

test_every_operation_gets_exactly_one_well_formed_decision if {
	every op, types in fixtures.operations {
		every rtype in types {
			every name in ["ledger", "orders"] {
				fixtures.well_formed(decide_as(op, rtype, name, "ops", ["platform"]))
			}
		}
	}
	decide({}).reason == "not a Gatekeeper policy input (see docs/policy-input.md)"
}

# -- the same idea as a configuration of the default library (data.json beside this file) --------

library_decision(op, name) := d if {
	d := gatekeeper.decision with input as fixtures.policy_input(op, "topic", name, "svc", ["platform"])
		with data.gatekeeper_config as data.examples.immutable_topics.gatekeeper_config
}

test_data_json_for_the_default_library if {
	library_decision("delete_topic", "ledger").error == "policy_violation"
	library_decision("delete_records", "ledger.2026").error == "policy_violation"
	library_decision("delete_topic", "ledgers").action == "allow"
	library_decision("produce", "ledger").action == "allow"
}
