# Tests of the default library on Pulsar names (decision.rego, Pulsar names): full topic names,
# their globs, partitions, non-persistent topics, namespaces and tenants, immutable topics
# through the admin API. Same package as decision_test.rego: allow, deny and violation are there.
package gatekeeper_test

import data.gatekeeper
import data.gatekeeper.inputs_test as fixtures

pulsar_config := {
	"default_ttl": "7s",
	"immutable_topics": ["persistent://public/default/ledger", "persistent://finance/*/audit-*", "audit.**"],
	"grants": [
		{
			"principals": {"groups": ["orders-writers"]},
			"resources": {"type": "topic", "patterns": ["persistent://public/default/orders-*", "orders"]},
			"operations": ["produce", "describe_topic"],
		},
		{
			"principals": {"groups": ["readers"]},
			"resources": {"type": "topic", "patterns": ["*://public/events/**"]},
			"operations": ["consume"],
		},
		{
			"principals": {"groups": ["ns-admins"]},
			"resources": {"type": "namespace", "patterns": ["public/*"]},
			"operations": ["list_topics", "describe_namespace", "delete_namespace"],
		},
		{
			"principals": {"groups": ["tenant-admins"]},
			"resources": {"type": "tenant", "patterns": ["*"]},
			"operations": ["delete_tenant"],
		},
		{
			"principals": {"groups": ["platform"]},
			"resources": {"type": "topic", "patterns": ["**"]},
			"operations": ["*"],
		},
	],
	"masking": [{
		"name": "cards",
		"topics": ["persistent://public/default/payments"],
		"direction": "consume",
		"mask": [{"detector": "credit_card", "masker": "last4"}],
	}],
}

pulsar_decide(op, rtype, name, groups) := d if {
	d := gatekeeper.decision with input as fixtures.pulsar_input(op, rtype, name, "svc", groups)
		with data.gatekeeper_config as pulsar_config
}

# The decision for a Pulsar alter_topic_config by a platform member with this request.
pulsar_alter(name, request) := d if {
	policy_input := object.union(object.remove(fixtures.pulsar_input("alter_topic_config", "topic", name, "svc", ["platform"]), {"request"}), {"request": request})
	d := gatekeeper.decision with input as policy_input with data.gatekeeper_config as pulsar_config
}

# -- globs on full names -------------------------------------------------------------------------

test_pulsar_glob_matches_full_names_in_its_namespace if {
	pulsar_decide("produce", "topic", "persistent://public/default/orders-1", ["orders-writers"]) == allow(`grant 0 allows produce on topic "persistent://public/default/orders-1"`)
	pulsar_decide("produce", "topic", "persistent://public/default/orders-eu.x", ["orders-writers"]).action == "allow"
}

test_pulsar_glob_does_not_reach_other_namespaces_or_domains if {
	every name in [
		"persistent://public/other/orders-1",
		"persistent://other/default/orders-1",
		"non-persistent://public/default/orders-1",
		"persistent://public/default/orders",
		"persistent://public/default/orders-1/x",
		"persistent://public/default/xorders-1",
		"persistent://public/default-x/orders-1",
	] {
		pulsar_decide("produce", "topic", name, ["orders-writers"]) == deny(sprintf("no grant allows produce on topic %q for svc (groups: orders-writers)", [name]))
	}
}

test_pulsar_double_star_stays_in_its_namespace_and_star_domain_covers_both if {
	pulsar_decide("consume", "topic", "persistent://public/events/a.b.c", ["readers"]).action == "allow"
	pulsar_decide("consume", "topic", "non-persistent://public/events/clicks", ["readers"]).action == "allow"
	pulsar_decide("consume", "topic", "persistent://public/events-x/clicks", ["readers"]).action == "deny"

	# A legacy name (tenant/cluster/namespace/topic) has one part more: "**" does not cross into it.
	pulsar_decide("consume", "topic", "persistent://public/events/ns/clicks", ["readers"]).action == "deny"
}

test_kafka_patterns_do_not_match_pulsar_full_names_except_bare_double_star if {
	# "orders" (Kafka-style) is "persistent://public/default/orders" for a short name, nothing else.
	pulsar_decide("produce", "topic", "persistent://public/default/orders", ["orders-writers"]).action == "deny"
	pulsar_decide("produce", "topic", "persistent://public/default/orders-partition-0", ["orders-writers"]).action == "deny"
	pulsar_decide("produce", "topic", "persistent://t/ns/x", ["platform"]).action == "allow"
}

test_pulsar_short_names_are_read_as_the_broker_reads_them if {
	pulsar_decide("produce", "topic", "orders-1", ["orders-writers"]).action == "allow"
	pulsar_decide("produce", "topic", "public/default/orders-1", ["orders-writers"]).action == "allow"
	pulsar_decide("produce", "topic", "public/other/orders-1", ["orders-writers"]).action == "deny"
	pulsar_decide("delete_topic", "topic", "ledger", ["platform"]).error == "policy_violation"
}

# -- partitions ----------------------------------------------------------------------------------

test_pulsar_partition_is_decided_as_its_partitioned_topic if {
	# A pattern naming the partitioned topic exactly covers its partitions.
	pulsar_decide("delete_topic", "topic", "persistent://public/default/ledger-partition-0", ["platform"]) == violation(`topic "persistent://public/default/ledger-partition-0" is immutable: delete_topic is never allowed on it`)
	pulsar_decide("delete_records", "topic", "persistent://public/default/ledger-partition-12", ["platform"]).error == "policy_violation"
	pulsar_decide("consume", "topic", "persistent://public/default/payments-partition-3", ["platform"]).action == "mask"
}

test_pulsar_partition_near_misses_are_topics_of_their_own if {
	every name in [
		"persistent://public/default/ledger-partition-01",
		"persistent://public/default/ledger-partition-x",
		"persistent://public/default/ledger-partition--1",
		"persistent://public/default/ledger-partition-2147483648",
		"persistent://public/default/ledger-partition-",
		"persistent://public/default/ledger-2-partition-0",
		"persistent://public/other/ledger-partition-0",
	] {
		pulsar_decide("delete_topic", "topic", name, ["platform"]).action == "allow"
	}
	pulsar_decide("delete_topic", "topic", "persistent://public/default/ledger-partition-2147483647", ["platform"]).error == "policy_violation"
}

# -- immutable topics ----------------------------------------------------------------------------

test_pulsar_immutable_topic_is_a_policy_violation_whatever_the_grants if {
	pulsar_decide("delete_topic", "topic", "persistent://public/default/ledger", ["platform"]) == violation(`topic "persistent://public/default/ledger" is immutable: delete_topic is never allowed on it`)
	pulsar_decide("delete_topic", "topic", "persistent://finance/eu/audit-logins", ["platform"]).error == "policy_violation"
	pulsar_decide("delete_records", "topic", "persistent://finance/us/audit-x", []).error == "policy_violation"
}

test_pulsar_immutable_near_misses_are_not_immutable if {
	every name in [
		"non-persistent://public/default/ledger",
		"persistent://public/default/ledger-2",
		"persistent://public/other/ledger",
		"persistent://finance/eu/audits",
		"persistent://finance/eu/x/audit-1",
		"persistent://public/default/audit.x",
	] {
		pulsar_decide("delete_topic", "topic", name, ["platform"]) == allow(sprintf("grant 4 allows delete_topic on topic %q", [name]))
	}
}

test_pulsar_retention_policies_of_an_immutable_topic_are_a_policy_violation if {
	pulsar_decide("alter_topic_config", "topic", "persistent://public/default/ledger", ["platform"]) == violation(`topic "persistent://public/default/ledger" is immutable: alter_topic_config may not change retention`)
	d := pulsar_alter("persistent://public/default/ledger-partition-1", {"keys": ["messageTTL"], "configs": {"messageTTL": null}, "remove": true})
	d.reason == `topic "persistent://public/default/ledger-partition-1" is immutable: alter_topic_config may not change messageTTL`
}

test_pulsar_other_policies_and_kafka_keys_of_an_immutable_topic_are_allowed if {
	every configs in [{"maxProducers": 3}, {"retention.ms": "1"}, {"compactionThreshold": 1}] {
		pulsar_alter("persistent://public/default/ledger", {"keys": object.keys(configs), "configs": configs}).action == "allow"
	}
}

test_deleting_a_namespace_or_tenant_that_may_hold_immutable_topics_is_a_policy_violation if {
	pulsar_decide("delete_namespace", "namespace", "public/default", ["ns-admins"]) == violation(`namespace "public/default" may hold immutable topics (persistent://public/default/ledger): delete_namespace is never allowed on it`)
	pulsar_decide("delete_namespace", "namespace", "finance/eu", ["ns-admins"]).error == "policy_violation"
	pulsar_decide("delete_tenant", "tenant", "finance", ["tenant-admins"]) == violation(`tenant "finance" may hold immutable topics (persistent://finance/*/audit-*): delete_tenant is never allowed on it`)
}

test_deleting_a_namespace_or_tenant_without_immutable_topics_follows_the_grants if {
	pulsar_decide("delete_namespace", "namespace", "public/other", ["ns-admins"]) == allow(`grant 2 allows delete_namespace on namespace "public/other"`)
	pulsar_decide("delete_tenant", "tenant", "acme", ["tenant-admins"]).action == "allow"
	pulsar_decide("delete_namespace", "namespace", "acme/default", ["ns-admins"]).action == "deny"
}

# -- namespaces and tenants ----------------------------------------------------------------------

test_pulsar_namespaces_are_denied_unless_granted if {
	pulsar_decide("list_topics", "namespace", "public/default", ["ns-admins"]) == allow(`grant 2 allows list_topics on namespace "public/default"`)
	pulsar_decide("list_topics", "namespace", "public/default", ["orders-writers"]) == deny(`no grant allows list_topics on namespace "public/default" for svc (groups: orders-writers)`)

	# A topic grant ("**" included) names no namespace; "public/*" names no other tenant's.
	pulsar_decide("list_topics", "namespace", "public/default", ["platform"]).action == "deny"
	pulsar_decide("list_topics", "namespace", "publicx/default", ["ns-admins"]).action == "deny"
	pulsar_decide("list_topics", "namespace", "public/default/x", ["ns-admins"]).action == "deny"
}

# -- Kafka is unchanged --------------------------------------------------------------------------

test_kafka_names_keep_dot_globs_and_no_partition_reading if {
	kafka := fixtures.policy_input("delete_topic", "topic", "ledger-partition-0", "ops", ["platform"])
	d := gatekeeper.decision with input as kafka with data.gatekeeper_config as object.union(pulsar_config, {"immutable_topics": ["ledger"]})
	d.action == "allow"
	decide_as("consume", "topic", "public.a/b", "anonymous", []).action == "allow"
}
