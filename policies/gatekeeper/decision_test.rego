package gatekeeper_test

import data.gatekeeper
import data.gatekeeper.inputs_test as fixtures

config := {
	"default_ttl": "7s",
	"always_allowed": ["api_versions", "authenticate", "find_coordinator"],
	"immutable_topics": ["audit.**", "ledger"],
	"grants": [
		{
			"principals": {"groups": ["orders-writers"]},
			"resources": {"type": "topic", "patterns": ["orders", "orders.*"]},
			"operations": ["produce", "describe_topic"],
		},
		{
			"principals": {"subs": ["svc-audit-reader"]},
			"resources": {"type": "topic", "patterns": ["audit.*"]},
			"operations": ["consume", "describe_topic"],
		},
		{
			"principals": {"groups": ["analytics-readers"]},
			"resources": {"type": "group", "patterns": ["analytics-*"]},
			"operations": ["join_group", "commit_offset", "fetch_offset", "describe_group"],
		},
		{
			"principals": "*",
			"resources": {"type": "topic", "patterns": ["public.**"]},
			"operations": ["consume", "describe_topic"],
		},
		{
			"principals": {"groups": ["orders-writers"]},
			"resources": {"type": "transactional_id", "patterns": ["orders-tx-?"]},
			"operations": ["init_producer", "transactional_write"],
		},
		{
			"principals": {"groups": ["sre"]},
			"resources": {"type": "cluster", "patterns": ["kafka-cluster"]},
			"operations": ["describe_cluster", "describe_cluster_config"],
		},
		{
			"principals": {"groups": ["platform"]},
			"resources": {"type": "topic", "patterns": ["**"]},
			"operations": ["*"],
		},
		{
			"principals": {"groups": ["kafka-admins"]},
			"resources": {"type": "cluster", "patterns": ["kafka-cluster"]},
			"operations": ["alter_cluster_config", "describe_cluster_config"],
		},
		{
			"principals": {"groups": ["analytics-readers"]},
			"resources": {"type": "share_group", "patterns": ["analytics-*"]},
			"operations": ["join_group", "consume", "describe_group", "fetch_offset"],
		},
	],
}

decide(policy_input) := d if {
	d := gatekeeper.decision with input as policy_input with data.gatekeeper_config as config
}

decide_as(op, rtype, name, sub, groups) := decide(fixtures.policy_input(op, rtype, name, sub, groups))

allow(reason) := {"action": "allow", "reason": reason, "ttl": "7s"}

deny(reason) := {"action": "deny", "reason": reason, "ttl": "7s"}

violation(reason) := {"action": "deny", "error": "policy_violation", "reason": reason, "ttl": "7s"}

# -- grants --------------------------------------------------------------------------------------

test_group_grant_allows_its_operations if {
	decide_as("produce", "topic", "orders", "svc-orders", ["orders-writers"]) == allow(`grant 0 allows produce on topic "orders"`)
	decide_as("describe_topic", "topic", "orders.eu", "svc-orders", ["orders-writers"]).action == "allow"
}

test_near_miss_topic_names_are_denied if {
	decide_as("produce", "topic", "orders-x", "svc-orders", ["orders-writers"]) == deny(`no grant allows produce on topic "orders-x" for svc-orders (groups: orders-writers)`)
	every name in ["ordersx", "xorders", "orders.eu.x", "Orders", "orders.eu-x.y"] {
		decide_as("produce", "topic", name, "svc-orders", ["orders-writers"]).action == "deny"
	}
}

test_wrong_group_is_denied if {
	decide_as("produce", "topic", "orders", "svc-orders", ["orders-readers"]) == deny(`no grant allows produce on topic "orders" for svc-orders (groups: orders-readers)`)
	decide_as("produce", "topic", "orders", "svc-orders", ["orders-writers-old", "Orders-Writers"]).action == "deny"
	decide_as("produce", "topic", "orders", "svc-orders", []) == deny(`no grant allows produce on topic "orders" for svc-orders (groups: none)`)
}

test_operation_outside_the_grant_is_denied if {
	decide_as("consume", "topic", "orders", "svc-orders", ["orders-writers"]).action == "deny"
	decide_as("delete_topic", "topic", "orders", "svc-orders", ["orders-writers"]).action == "deny"
}

test_grant_by_sub if {
	decide_as("consume", "topic", "audit.logins", "svc-audit-reader", []) == allow(`grant 1 allows consume on topic "audit.logins"`)
	decide_as("consume", "topic", "audit.logins", "svc-audit-reader-2", []).action == "deny"
	decide_as("consume", "topic", "audit.logins.eu", "svc-audit-reader", []).action == "deny"
}

test_subs_and_groups_are_different_namespaces if {
	# A group that happens to be called like a granted sub gets nothing.
	decide_as("consume", "topic", "audit.logins", "someone", ["svc-audit-reader"]).action == "deny"

	# A sub that happens to be called like a granted group gets nothing.
	decide_as("produce", "topic", "orders", "orders-writers", []).action == "deny"
}

test_grant_to_any_principal_includes_anonymous if {
	decide(fixtures.anonymous_input("consume", "topic", "public.news")) == allow(`grant 3 allows consume on topic "public.news"`)
	decide(fixtures.anonymous_input("consume", "topic", "public.news.eu")).action == "allow"
	decide(fixtures.anonymous_input("produce", "topic", "public.news")) == deny(`no grant allows produce on topic "public.news" for anonymous (groups: none)`)
	decide(fixtures.anonymous_input("consume", "topic", "public")).action == "deny"
}

test_group_resources if {
	decide_as("join_group", "group", "analytics-eu", "svc-analytics", ["analytics-readers"]) == allow(`grant 2 allows join_group on group "analytics-eu"`)
	decide_as("commit_offset", "group", "analytics-eu", "svc-analytics", ["analytics-readers"]).action == "allow"
	decide_as("fetch_offset", "group", "analytics-eu", "svc-analytics", ["analytics-readers"]).action == "allow"
	decide_as("describe_group", "group", "analytics-eu", "svc-analytics", ["analytics-readers"]).action == "allow"
	decide_as("delete_group", "group", "analytics-eu", "svc-analytics", ["analytics-readers"]).action == "deny"
	decide_as("join_group", "group", "analytics", "svc-analytics", ["analytics-readers"]).action == "deny"
	decide_as("join_group", "group", "analytics-eu.x", "svc-analytics", ["analytics-readers"]).action == "deny"
}

test_share_group_resources if {
	decide_as("join_group", "share_group", "analytics-q", "svc-analytics", ["analytics-readers"]) == allow(`grant 8 allows join_group on share_group "analytics-q"`)
	decide_as("consume", "share_group", "analytics-q", "svc-analytics", ["analytics-readers"]).action == "allow"
	decide_as("describe_group", "share_group", "analytics-q", "svc-analytics", ["analytics-readers"]).action == "allow"
	decide_as("fetch_offset", "share_group", "analytics-q", "svc-analytics", ["analytics-readers"]).action == "allow"

	# Near misses: offsets the grant does not name, another group name, another principal.
	decide_as("commit_offset", "share_group", "analytics-q", "svc-analytics", ["analytics-readers"]).action == "deny"
	decide_as("delete_offsets", "share_group", "analytics-q", "svc-analytics", ["analytics-readers"]).action == "deny"
	decide_as("join_group", "share_group", "orders-q", "svc-analytics", ["analytics-readers"]).action == "deny"
	decide_as("join_group", "share_group", "analytics-q", "svc-orders", ["orders-writers"]).action == "deny"
}

test_a_consumer_group_grant_does_not_cover_a_share_group if {
	# The group grant names commit_offset on analytics-*; the share group grant does not.
	decide_as("commit_offset", "group", "analytics-q", "svc-analytics", ["analytics-readers"]).action == "allow"
	decide_as("commit_offset", "share_group", "analytics-q", "svc-analytics", ["analytics-readers"]) == deny(`no grant allows commit_offset on share_group "analytics-q" for svc-analytics (groups: analytics-readers)`)
}

test_resource_type_must_match if {
	# Same name, but a topic: the group grant does not apply.
	decide_as("commit_offset", "topic", "analytics-eu", "svc-analytics", ["analytics-readers"]) == deny(`no grant allows commit_offset on topic "analytics-eu" for svc-analytics (groups: analytics-readers)`)

	# The topic grant for platform does not reach groups.
	decide_as("join_group", "group", "orders", "ops", ["platform"]).action == "deny"
}

test_transactional_id_resources if {
	decide_as("init_producer", "transactional_id", "orders-tx-1", "svc-orders", ["orders-writers"]) == allow(`grant 4 allows init_producer on transactional_id "orders-tx-1"`)
	decide_as("transactional_write", "transactional_id", "orders-tx-1", "svc-orders", ["orders-writers"]).action == "allow"

	# "?" is exactly one character.
	decide_as("init_producer", "transactional_id", "orders-tx-12", "svc-orders", ["orders-writers"]).action == "deny"
	decide_as("init_producer", "transactional_id", "orders-tx-1", "svc-payments", ["payments-writers"]).action == "deny"
	decide_as("describe_transaction", "transactional_id", "orders-tx-1", "svc-orders", ["orders-writers"]).action == "deny"
}

test_cluster_resources if {
	decide_as("describe_cluster", "cluster", fixtures.cluster, "alice", ["sre"]) == allow(`grant 5 allows describe_cluster on cluster "kafka-cluster"`)
	decide_as("alter_cluster_config", "cluster", fixtures.cluster, "alice", ["sre"]).action == "deny"
	decide_as("describe_cluster", "cluster", fixtures.cluster, "bob", ["platform"]) == deny(`no grant allows describe_cluster on cluster "kafka-cluster" for bob (groups: platform)`)
}

test_wildcard_operations if {
	every op in ["create_topic", "delete_topic", "delete_records", "create_partitions", "alter_topic_config", "produce", "consume"] {
		decide_as(op, "topic", "payments.settled", "ops", ["platform"]).action == "allow"
	}
	decide_as("delete_topic", "topic", "payments.settled", "ops", ["platform"]) == allow(`grant 6 allows delete_topic on topic "payments.settled"`)
}

test_always_allowed_operations if {
	decide(fixtures.anonymous_input("api_versions", "cluster", fixtures.cluster)) == allow("api_versions is allowed to every client")
	decide(fixtures.anonymous_input("find_coordinator", "group", "any-group")).action == "allow"
	decide(fixtures.anonymous_input("find_coordinator", "transactional_id", "any-tx")).action == "allow"

	# Not in always_allowed: list_topics, describe_cluster.
	decide(fixtures.anonymous_input("list_topics", "cluster", fixtures.cluster)).action == "deny"
	decide(fixtures.anonymous_input("describe_cluster", "cluster", fixtures.cluster)).action == "deny"
}

test_overlapping_grants_give_one_decision_from_the_first if {
	# Grants 0 and 6 both allow this; the decision names the first and is not a conflict.
	decide_as("produce", "topic", "orders", "svc", ["platform", "orders-writers"]) == allow(`grant 0 allows produce on topic "orders"`)
}

# -- globs ---------------------------------------------------------------------------------------

test_glob_star_stays_within_one_dot_separated_part if {
	decide_as("consume", "topic", "audit.logins", "svc-audit-reader", []).action == "allow"
	decide_as("consume", "topic", "audit.logins.eu", "svc-audit-reader", []).action == "deny"
}

test_glob_double_star_crosses_dots if {
	decide(fixtures.anonymous_input("consume", "topic", "public.a.b.c")).action == "allow"
	decide(fixtures.anonymous_input("consume", "topic", "publicity.a")).action == "deny"
}

# -- immutable topics ----------------------------------------------------------------------------

test_deleting_an_immutable_topic_is_a_policy_violation_even_with_a_wildcard_grant if {
	decide_as("delete_topic", "topic", "audit.logins", "ops", ["platform"]) == violation(`topic "audit.logins" is immutable: delete_topic is never allowed on it`)
	decide_as("delete_records", "topic", "ledger", "ops", ["platform"]) == violation(`topic "ledger" is immutable: delete_records is never allowed on it`)
	decide_as("delete_topic", "topic", "audit.a.b", "ops", ["platform"]).error == "policy_violation"
}

test_immutable_topics_near_misses_are_not_immutable if {
	every name in ["ledger-2", "ledger.eu", "ledgers", "audit", "audits.x"] {
		decide_as("delete_topic", "topic", name, "ops", ["platform"]) == allow(sprintf("grant 6 allows delete_topic on topic %q", [name]))
	}
}

test_immutable_is_a_violation_without_any_grant_too if {
	decide_as("delete_topic", "topic", "ledger", "mallory", []) == violation(`topic "ledger" is immutable: delete_topic is never allowed on it`)
}

test_immutable_beats_a_time_boxed_grant if {
	grant := {"operation": "delete_records", "resource": {"type": "topic", "name": "ledger"}, "expires_at": "2026-11-23T08:00:00Z"}
	i := fixtures.with_overrides("delete_records", "topic", "ledger", "ops", [], {"grants": [grant]})
	decide(i).error == "policy_violation"
}

test_immutable_beats_always_allowed if {
	d := gatekeeper.decision with input as fixtures.policy_input("delete_topic", "topic", "ledger", "ops", [])
		with data.gatekeeper_config as object.union(config, {"always_allowed": ["delete_topic"]})
	d.error == "policy_violation"
}

test_changing_retention_of_an_immutable_topic_is_a_violation if {
	retention := fixtures.with_overrides("alter_topic_config", "topic", "ledger", "ops", ["platform"], {"request": {"configs": {"retention.ms": "1000"}}})
	decide(retention) == violation(`topic "ledger" is immutable: alter_topic_config may not change retention.ms`)

	several := fixtures.with_overrides("alter_topic_config", "topic", "audit.logins", "ops", ["platform"], {"request": {"configs": {
		"retention.bytes": "1",
		"cleanup.policy": "compact",
		"max.message.bytes": "1",
	}}})
	decide(several) == violation(`topic "audit.logins" is immutable: alter_topic_config may not change cleanup.policy, retention.bytes`)

	# IncrementalAlterConfigs DELETE (back to the broker default) changes retention too.
	reset := fixtures.with_overrides("alter_topic_config", "topic", "ledger", "ops", ["platform"], {"request": {"configs": {"retention.ms": null}}})
	decide(reset).error == "policy_violation"
}

test_other_config_changes_on_immutable_topics_follow_the_grants if {
	# The fixture's alter_topic_config changes max.message.bytes only.
	decide_as("alter_topic_config", "topic", "ledger", "ops", ["platform"]) == allow(`grant 6 allows alter_topic_config on topic "ledger"`)
	decide_as("alter_topic_config", "topic", "ledger", "svc-orders", ["orders-writers"]).action == "deny"
	not decide_as("alter_topic_config", "topic", "ledger", "svc-orders", ["orders-writers"]).error
}

test_retention_changes_on_other_topics_follow_the_grants if {
	i := fixtures.with_overrides("alter_topic_config", "topic", "ledger-archive", "ops", ["platform"], {"request": {"configs": {"retention.ms": "1"}}})
	decide(i).action == "allow"
}

test_immutable_applies_to_topics_only if {
	d := decide_as("delete_group", "group", "ledger", "ops", ["platform"])
	d.action == "deny"
	not d.error
}

test_legacy_alter_configs_on_an_immutable_topic_is_a_violation if {
	# AlterConfigs (API key 33) replaces the topic's whole config: leaving retention.ms out
	# deletes the topic's override of it, and the broker default applies.
	legacy := {"api": {"key": 33, "name": "AlterConfigs", "version": 2}}
	i := fixtures.with_overrides("alter_topic_config", "topic", "ledger", "ops", ["platform"], legacy)
	decide(i) == violation(concat(" ", [
		`topic "ledger" is immutable: AlterConfigs replaces every config of the topic, so it resets`,
		"retention.ms, retention.bytes and cleanup.policy to the broker defaults: change its other",
		"configs with IncrementalAlterConfigs",
	]))

	# One that names a truncating config says so.
	named := object.union(i, {"request": {"configs": {"retention.ms": "-1"}}})
	decide(named) == violation(`topic "ledger" is immutable: alter_topic_config may not change retention.ms`)

	# Near misses: legacy AlterConfigs on a mutable topic, IncrementalAlterConfigs on an immutable one.
	decide(fixtures.with_overrides("alter_topic_config", "topic", "ledger-2", "ops", ["platform"], legacy)).action == "allow"
	decide_as("alter_topic_config", "topic", "ledger", "ops", ["platform"]).action == "allow"
}

# -- broker configs that reach immutable topics --------------------------------------------------

# An alter_cluster_config of broker `name` ("" is the cluster-wide default) by a member of
# kafka-admins (granted alter_cluster_config by grant 7), with configs added to the fixture's
# log.cleaner.threads.
broker_change(name, configs) := fixtures.with_overrides(
	"alter_cluster_config", "cluster", fixtures.cluster, "kim", ["kafka-admins"],
	{"request": {"configs": configs, "config_resource": {"type": "broker", "name": name}}},
)

broker_violation(broker, keys) := violation(sprintf(
	"%s: alter_cluster_config may not change %s while topics are immutable (audit.**, ledger): it applies to every topic without an override of its own",
	[broker, keys],
))

test_broker_retention_change_is_a_violation_while_topics_are_immutable if {
	decide(broker_change("1", {"log.retention.ms": "3600000"})) == broker_violation(`broker "1"`, "log.retention.ms")
	decide(broker_change("", {"log.retention.ms": "3600000"})) == broker_violation("the cluster-wide broker default", "log.retention.ms")
	every key in ["log.retention.ms", "log.retention.minutes", "log.retention.hours", "log.retention.bytes", "log.cleanup.policy"] {
		decide(broker_change("", {key: "1"})) == broker_violation("the cluster-wide broker default", key)
		decide(broker_change("2", {key: "1"})).error == "policy_violation"
	}

	# Only the truncating keys are named, sorted; a DELETE (null, back to the static config) counts.
	several := broker_change("1", {"log.retention.hours": null, "log.cleanup.policy": "compact", "num.io.threads": "8"})
	decide(several) == broker_violation(`broker "1"`, "log.cleanup.policy, log.retention.hours")

	# Even validate_only: the topic rule does not exempt it either.
	validate_only := object.union(broker_change("1", {"log.retention.bytes": "1"}), {"request": {"validate_only": true}})
	decide(validate_only).error == "policy_violation"
}

test_immutability_beats_every_grant_on_broker_retention if {
	# kafka-admins hold a grant naming alter_cluster_config; a wildcard grant, always_allowed and a
	# time-boxed grant do not lift it either, and without any grant it is still a violation.
	change := broker_change("", {"log.retention.ms": "1"})
	decide(change).error == "policy_violation"
	wildcard := {"principals": "*", "resources": {"type": "cluster", "patterns": ["**"]}, "operations": ["*"]}
	d := gatekeeper.decision with input as change
		with data.gatekeeper_config as object.union(config, {"grants": [wildcard], "always_allowed": ["alter_cluster_config"]})
	d.error == "policy_violation"
	grant := {"operation": "alter_cluster_config", "resource": {"type": "cluster", "name": fixtures.cluster}, "expires_at": "2026-11-23T09:00:00Z"}
	decide(object.union(change, {"grants": [grant]})).error == "policy_violation"
	decide(object.union(change, {"principal": {"sub": "mallory", "groups": []}})).error == "policy_violation"
}

test_unrelated_broker_configs_follow_the_grants if {
	# The fixture changes log.cleaner.threads only.
	decide(broker_change("1", {})) == allow(`grant 7 allows alter_cluster_config on cluster "kafka-cluster"`)
	decide(broker_change("", {})).action == "allow"

	# Near misses: broker configs that do not set a topic's retention or cleanup policy.
	every key in [
		"log.retention.check.interval.ms", "log.segment.bytes", "log.roll.hours", "log.local.retention.ms",
		"log.cleaner.delete.retention.ms", "retention.ms", "log.retention", "log.retention.ms.x",
	] {
		decide(broker_change("1", {key: "1"})).action == "allow"
	}

	# Without a grant, an unrelated change is an ordinary authorization denial.
	d := decide(object.union(broker_change("1", {}), {"principal": {"sub": "alice", "groups": ["sre"]}}))
	d == deny(`no grant allows alter_cluster_config on cluster "kafka-cluster" for alice (groups: sre)`)
}

test_other_config_resources_are_not_brokers if {
	every rtype in ["broker_logger", "client_metrics", "config_resource_64"] {
		i := fixtures.with_overrides("alter_cluster_config", "cluster", fixtures.cluster, "kim", ["kafka-admins"], {"request": {
			"configs": {"log.retention.ms": "1"},
			"config_resource": {"type": rtype, "name": "1"},
		}})
		decide(i).action == "allow"
	}
}

test_broker_retention_changes_follow_the_grants_without_immutable_topics if {
	change := broker_change("", {"log.retention.ms": "1"})
	every immutable in [[], [7, null, {"pattern": "ledger"}]] {
		d := gatekeeper.decision with input as change with data.gatekeeper_config as object.union(config, {"immutable_topics": immutable})
		d == allow(`grant 7 allows alter_cluster_config on cluster "kafka-cluster"`)
	}
	d := gatekeeper.decision with input as change with data.gatekeeper_config as object.remove(config, ["immutable_topics"])
	d.action == "allow"
}

test_legacy_alter_configs_on_a_broker_is_a_violation_while_topics_are_immutable if {
	# AlterConfigs (API key 33) replaces the broker's whole dynamic config, so leaving
	# log.retention.ms out deletes a dynamic override of it.
	legacy := object.union(broker_change("", {}), {"api": {"key": 33, "name": "AlterConfigs", "version": 2}})
	decide(legacy) == violation(concat("", [
		"the cluster-wide broker default: AlterConfigs replaces every dynamic config of the broker, so it resets ",
		"log.cleanup.policy, log.retention.bytes, log.retention.hours, log.retention.minutes, log.retention.ms ",
		"while topics are immutable (audit.**, ledger): change other broker configs with IncrementalAlterConfigs",
	]))
	decide(object.union(legacy, {"request": {"configs": {"log.retention.ms": "-1"}}})) == broker_violation("the cluster-wide broker default", "log.retention.ms")

	# Near miss: without immutable topics it follows the grants.
	d := gatekeeper.decision with input as legacy with data.gatekeeper_config as object.union(config, {"immutable_topics": []})
	d.action == "allow"
}

test_shipped_data_protects_immutable_topics_from_broker_retention if {
	change := fixtures.with_overrides("alter_cluster_config", "cluster", fixtures.cluster, "ops", ["platform"], {"request": {
		"configs": {"log.retention.hours": "1"},
		"config_resource": {"type": "broker", "name": ""},
	}})
	shipped(change).error == "policy_violation"
	shipped(fixtures.policy_input("alter_cluster_config", "cluster", fixtures.cluster, "ops", ["platform"])).action == "allow"
}

# -- time-boxed grants ---------------------------------------------------------------------------

payments_grant := {"operation": "produce", "resource": {"type": "topic", "name": "payments"}, "expires_at": "2026-11-23T07:30:00Z"}

with_grants(grants) := fixtures.with_overrides("produce", "topic", "payments", "svc-x", ["team-x"], {"grants": grants})

test_time_boxed_grant_allows_until_it_expires if {
	decide(with_grants([payments_grant])) == allow(`time-boxed grant for produce on topic "payments" until 2026-11-23T07:30:00Z`)
	decide(object.union(with_grants([payments_grant]), {"time": "2026-11-23T07:29:59.999Z"})).action == "allow"
}

test_time_boxed_grant_expired_is_denied if {
	decide(object.union(with_grants([payments_grant]), {"time": "2026-11-23T07:30:00.001Z"})) == deny(`no grant allows produce on topic "payments" for svc-x (groups: team-x)`)

	# Expiry is exclusive.
	decide(object.union(with_grants([payments_grant]), {"time": "2026-11-23T07:30:00Z"})).action == "deny"
}

test_time_boxed_grant_compares_instants_not_strings if {
	# 08:30+01:00 is 07:30Z: still five minutes to go at 07:24:49Z.
	grant := object.union(payments_grant, {"expires_at": "2026-11-23T08:30:00+01:00"})
	decide(with_grants([grant])).action == "allow"

	# 06:30+01:00 is 05:30Z: expired.
	decide(with_grants([object.union(payments_grant, {"expires_at": "2026-11-23T06:30:00+01:00"})])).action == "deny"
}

payments_grant_at(t) := decide(object.union(with_grants([payments_grant]), {"time": t}))

test_time_boxed_grant_allow_is_not_cached_past_the_grant if {
	# The decision's ttl (how long Gatekeeper may cache it) ends when the grant does.
	payments_grant_at("2026-11-23T07:24:49.689Z").ttl == "7s"
	payments_grant_at("2026-11-23T07:29:53Z").ttl == "7s"
	payments_grant_at("2026-11-23T07:29:53.001Z") == {
		"action": "allow",
		"reason": `time-boxed grant for produce on topic "payments" until 2026-11-23T07:30:00Z`,
		"ttl": "6999ms",
	}
	payments_grant_at("2026-11-23T07:29:59.999Z").ttl == "1ms"
	payments_grant_at("2026-11-23T08:29:58.5+01:00").ttl == "1500ms"
}

# The ttl of the payments grant's allow a minute before it expires, with another default ttl.
payments_grant_ttl(default_ttl) := d.ttl if {
	near := object.union(with_grants([payments_grant]), {"time": "2026-11-23T07:29:00Z"})
	d := gatekeeper.decision with input as near with data.gatekeeper_config as object.union(config, {"default_ttl": default_ttl})
}

test_time_boxed_grant_ttl_with_other_default_ttls if {
	payments_grant_ttl("2m") == "60000ms"
	payments_grant_ttl("1.5s") == "1.5s"
	payments_grant_ttl("250ms") == "250ms"
	payments_grant_ttl("0s") == "0s"

	# A malformed default ttl stays as it is, so this decision is refused like every other.
	payments_grant_ttl("5 seconds") == "5 seconds"
	payments_grant_ttl("1d") == "1d"
}

test_time_boxed_grant_is_for_exactly_that_operation_and_resource if {
	decide(fixtures.with_overrides("produce", "topic", "payments-2", "svc-x", [], {"grants": [payments_grant]})).action == "deny"
	decide(fixtures.with_overrides("consume", "topic", "payments", "svc-x", [], {"grants": [payments_grant]})).action == "deny"
	decide(fixtures.with_overrides("produce", "group", "payments", "svc-x", [], {"grants": [payments_grant]})).action == "deny"
}

test_several_live_time_boxed_grants_give_one_decision if {
	later := object.union(payments_grant, {"expires_at": "2026-11-23T09:00:00Z"})
	decide(with_grants([payments_grant, later])).reason == `time-boxed grant for produce on topic "payments" until 2026-11-23T07:30:00Z`
	decide(with_grants([later, payments_grant])).reason == `time-boxed grant for produce on topic "payments" until 2026-11-23T09:00:00Z`
}

test_malformed_time_boxed_grants_are_ignored if {
	decide(with_grants([
		"produce",
		{"operation": "produce"},
		{"operation": "produce", "resource": "payments", "expires_at": "2026-11-23T09:00:00Z"},
		{"operation": "produce", "resource": {"type": "topic", "name": "payments"}, "expires_at": 1795420000},
	])).action == "deny"
}

test_config_grant_is_named_before_a_time_boxed_one if {
	grant := {"operation": "produce", "resource": {"type": "topic", "name": "orders"}, "expires_at": "2026-11-23T09:00:00Z"}
	i := fixtures.with_overrides("produce", "topic", "orders", "svc-orders", ["orders-writers"], {"grants": [grant]})
	decide(i).reason == `grant 0 allows produce on topic "orders"`
}

# -- the decision's shape ------------------------------------------------------------------------

test_every_operation_gets_exactly_one_well_formed_decision if {
	every op, types in fixtures.operations {
		every rtype in types {
			every who in [["svc-orders", ["orders-writers"]], ["ops", ["platform", "sre"]], ["anonymous", []]] {
				every name in ["orders", "ledger", "analytics-eu"] {
					fixtures.well_formed(decide_as(op, rtype, name, who[0], who[1]))
				}
			}
		}
	}
}

test_authorization_denials_carry_no_error_key if {
	d := decide_as("produce", "topic", "payments", "svc", [])
	object.keys(d) == {"action", "reason", "ttl"}
}

test_long_reasons_are_capped_at_the_schema_limit if {
	sub := concat("", [s | some _ in numbers.range(1, 300); s := "abcd"])
	d := decide_as("produce", "topic", "payments", sub, ["g1", "g2"])
	count(d.reason) == 1024
	endswith(d.reason, "...")
	fixtures.well_formed(d)
}

test_input_outside_the_contract_gets_the_default_deny if {
	default_deny := {"action": "deny", "reason": "not a Gatekeeper policy input (see docs/policy-input.md)", "ttl": "5s"}
	decide({}) == default_deny
	decide({"operation": "produce"}) == default_deny
	decide(object.remove(fixtures.policy_input("produce", "topic", "payments", "svc", []), ["principal"])) == default_deny
}

# -- configuration -------------------------------------------------------------------------------

test_no_configuration_denies_everything if {
	d := gatekeeper.decision with input as fixtures.policy_input("produce", "topic", "orders", "svc", ["orders-writers"])
		with data.gatekeeper_config as {}
	d == {"action": "deny", "reason": `no grant allows produce on topic "orders" for svc (groups: orders-writers)`, "ttl": "5s"}
}

test_configuration_of_the_wrong_type_denies_everything if {
	every bad in ["grants", [], {"grants": {"0": config.grants[0]}, "default_ttl": 5}] {
		d := gatekeeper.decision with input as fixtures.policy_input("produce", "topic", "orders", "svc", ["orders-writers"])
			with data.gatekeeper_config as bad
		d.action == "deny"
		d.ttl == "5s"
	}
}

test_malformed_grants_allow_nothing if {
	open := {"type": "topic", "patterns": ["**"]}
	bad := {"grants": [
		"everything",
		{"principals": "*", "operations": ["*"]},
		{"principals": "*", "resources": {"type": "topic", "patterns": "**"}, "operations": ["*"]},
		{"principals": "*", "resources": open, "operations": "*"},
		{"principals": ["*"], "resources": open, "operations": ["*"]},
		{"principals": {"groups": "orders-writers"}, "resources": open, "operations": ["*"]},
		{"principals": {"subs": "svc"}, "resources": open, "operations": ["*"]},
		{"principals": "*", "resources": {"type": "topic", "patterns": [1, null]}, "operations": ["*"]},
	]}
	d := gatekeeper.decision with input as fixtures.policy_input("produce", "topic", "orders", "svc", ["orders-writers"])
		with data.gatekeeper_config as bad
	d.action == "deny"
}

# -- the shipped example configuration (policies/data.json, loaded by opa test) ----------------------

shipped(policy_input) := d if {
	d := gatekeeper.decision with input as policy_input
}

test_shipped_data_orders_and_analytics if {
	shipped(fixtures.policy_input("produce", "topic", "orders.eu", "svc-orders", ["orders-writers"])).action == "allow"
	shipped(fixtures.policy_input("consume", "topic", "orders.eu", "svc-orders", ["orders-writers"])).action == "deny"
	shipped(fixtures.policy_input("consume", "topic", "orders.eu", "svc-analytics", ["analytics-readers"])).action == "allow"
	shipped(fixtures.policy_input("join_group", "group", "analytics-daily", "svc-analytics", ["analytics-readers"])).action == "allow"
	shipped(fixtures.policy_input("join_group", "group", "orders-app", "svc-analytics", ["analytics-readers"])).action == "deny"
}

test_shipped_data_producers_and_transactions if {
	# Every producer is idempotent by default: InitProducerId on the cluster is granted to all.
	shipped(fixtures.anonymous_input("init_producer", "cluster", fixtures.cluster)).action == "allow"

	# A transactional id is not: only its owners may init (and so fence) it.
	shipped(fixtures.policy_input("init_producer", "transactional_id", "orders-tx", "svc-orders", ["orders-writers"])).action == "allow"
	shipped(fixtures.policy_input("init_producer", "transactional_id", "orders-tx", "svc-analytics", ["analytics-readers"])).action == "deny"
	shipped(fixtures.policy_input("init_producer", "transactional_id", "tx-orders", "svc-orders", ["orders-writers"])).action == "deny"
}

test_shipped_data_audit_topics_are_immutable if {
	shipped(fixtures.policy_input("delete_topic", "topic", "audit.logins", "ops", ["platform"])).error == "policy_violation"
	shipped(fixtures.policy_input("consume", "topic", "audit.logins", "eve", ["auditors"])).action == "allow"
	shipped(fixtures.policy_input("produce", "topic", "audit.logins", "eve", ["auditors"])).action == "deny"
}

test_cluster_administration_needs_a_grant_naming_it if {
	# A wildcard grant on the cluster covers describe_cluster, not the administration below.
	wildcard := {"principals": {"groups": ["platform"]}, "resources": {"type": "cluster", "patterns": ["**"]}, "operations": ["*"]}
	base := fixtures.policy_input("describe_cluster", "cluster", fixtures.cluster, "ops", ["platform"])
	allowed := gatekeeper.decision with input as base with data.gatekeeper_config as object.union(config, {"grants": [wildcard]})
	allowed.action == "allow"
	every op in ["alter_acls", "alter_user_credentials", "elect_leaders", "reassign_partitions", "update_features", "alter_client_quotas"] {
		d := gatekeeper.decision with input as object.union(base, {"operation": op})
			with data.gatekeeper_config as object.union(config, {"grants": [wildcard]})
		d.action == "deny"
		contains(d.reason, "cluster administration")
	}
	named := {"principals": {"groups": ["platform"]}, "resources": {"type": "cluster", "patterns": ["**"]}, "operations": ["elect_leaders"]}
	d := gatekeeper.decision with input as object.union(base, {"operation": "elect_leaders"})
		with data.gatekeeper_config as object.union(config, {"grants": [wildcard, named]})
	d.action == "allow"
}

# -- masking -------------------------------------------------------------------------------------

card_last4 := {"field": "$.payment.card", "masker": "last4"}

ssn_redacted := {"field": "$..ssn", "masker": "redact"}

email_hashed := {"detector": "email", "masker": "hash"}

raw_cards := {"detector": "credit_card", "masker": "last4", "on_error": "deny"}

orders_pii := {
	"name": "orders-pii",
	"reason": "PII on orders is masked outside orders-owners",
	"topics": ["orders", "orders.*"],
	"exempt": {"groups": ["orders-owners"]},
	"direction": "consume",
	"mask": [card_last4, ssn_redacted],
}

no_raw_cards := {"name": "no-raw-cards", "topics": ["payments.*"], "direction": "produce", "mask": [raw_cards]}

# No name or reason: named by its index.
contractors := {
	"topics": ["public.**"],
	"principals": {"groups": ["contractors"]},
	"direction": "both",
	"mask": [email_hashed],
}

masking_config := object.union(config, {"masking": [orders_pii, no_raw_cards, contractors]})

decide_masked(op, name, sub, groups) := d if {
	d := gatekeeper.decision with input as fixtures.policy_input(op, "topic", name, sub, groups)
		with data.gatekeeper_config as masking_config
}

decide_with_masking(policy_input, rules) := d if {
	d := gatekeeper.decision with input as policy_input
		with data.gatekeeper_config as object.union(config, {"masking": rules})
}

mask(reason, items) := {"action": "mask", "mask": items, "reason": reason, "ttl": "7s"}

test_non_owner_consumer_gets_a_mask if {
	decide_masked("consume", "orders", "ops", ["platform"]) == mask(
		`grant 6 allows consume on topic "orders"; masked by masking rule "orders-pii": PII on orders is masked outside orders-owners`,
		[card_last4, ssn_redacted],
	)
	decide_masked("consume", "orders.eu", "ops", ["platform"]).action == "mask"
}

test_owner_consumes_raw if {
	decide_masked("consume", "orders", "ops", ["platform", "orders-owners"]) == allow(`grant 6 allows consume on topic "orders"`)

	# Near miss: a group named like the owners' is not exempt.
	decide_masked("consume", "orders", "ops", ["platform", "orders-owners-eu"]).action == "mask"
	decide_masked("consume", "orders", "orders-owners", ["platform"]).action == "mask"
}

test_masking_topics_are_globs_like_grants if {
	every name in ["orders-x", "orders.eu.x", "ordersx", "public"] {
		decide_masked("consume", name, "ops", ["platform", "contractors"]).action == "allow"
	}
	decide_masked("consume", "public.news.eu", "ops", ["platform", "contractors"]).action == "mask"
}

test_direction_consume_leaves_produce_raw if {
	decide_masked("produce", "orders", "svc-orders", ["orders-writers"]) == allow(`grant 0 allows produce on topic "orders"`)
}

test_direction_produce_leaves_consume_raw if {
	decide_masked("produce", "payments.settled", "ops", ["platform"]) == mask(
		`grant 6 allows produce on topic "payments.settled"; masked by masking rule "no-raw-cards"`,
		[raw_cards],
	)
	decide_masked("consume", "payments.settled", "ops", ["platform"]) == allow(`grant 6 allows consume on topic "payments.settled"`)
}

test_direction_both_masks_produce_and_consume if {
	every op in ["produce", "consume"] {
		decide_masked(op, "public.news", "ops", ["platform", "contractors"]).mask == [email_hashed]
	}
	decide_masked("produce", "public.news", "ops", ["platform", "contractors"]).reason == `grant 6 allows produce on topic "public.news"; masked by masking rule 2`
	decide_masked("consume", "public.news", "ops", ["platform", "contractors"]).reason == `grant 3 allows consume on topic "public.news"; masked by masking rule 2`
}

test_masking_principals_default_to_everyone_and_narrow_when_given if {
	# orders-pii names no principals: it applies to everyone (but its exempt).
	decide_masked("consume", "orders", "someone", ["platform"]).action == "mask"

	# Rule 2 applies to contractors only.
	decide(fixtures.anonymous_input("consume", "topic", "public.news")) == allow(`grant 3 allows consume on topic "public.news"`)
	decide_masked("consume", "public.news", "ops", ["platform"]).action == "allow"
	by_sub := object.union(contractors, {"principals": {"subs": ["anonymous"]}})
	decide_with_masking(fixtures.anonymous_input("consume", "topic", "public.news"), [by_sub]).action == "mask"
	everyone := object.union(contractors, {"principals": "*"})
	decide_with_masking(fixtures.anonymous_input("consume", "topic", "public.news"), [everyone]).action == "mask"
}

test_exempt_everyone if {
	rule := object.union(orders_pii, {"exempt": "*"})
	decide_with_masking(fixtures.policy_input("consume", "topic", "orders", "ops", ["platform"]), [rule]).action == "allow"
}

test_masking_applies_to_produce_and_consume_only if {
	every op in ["describe_topic", "delete_topic", "alter_topic_config", "commit_offset", "fetch_offset", "create_topic"] {
		decide_masked(op, "orders", "ops", ["platform"]).action == "allow"
	}

	# A group called like a masked topic is not a topic.
	rule := object.union(orders_pii, {"topics": ["**"]})
	decide_with_masking(fixtures.policy_input("join_group", "group", "orders", "svc-analytics", ["analytics-readers"]), [rule]).action == "deny"
	decide_with_masking(fixtures.policy_input("commit_offset", "group", "analytics-1", "svc-analytics", ["analytics-readers"]), [rule]).action == "allow"
}

test_denied_stays_denied if {
	# No grant lets orders-writers consume: a mask never widens access.
	decide_masked("consume", "orders", "svc-orders", ["orders-writers"]) == deny(`no grant allows consume on topic "orders" for svc-orders (groups: orders-writers)`)
	decide(fixtures.anonymous_input("produce", "topic", "public.news")).action == "deny"
	d := gatekeeper.decision with input as fixtures.anonymous_input("produce", "topic", "public.news")
		with data.gatekeeper_config as object.union(masking_config, {"masking": [object.union(contractors, {"principals": "*"})]})
	d == deny(`no grant allows produce on topic "public.news" for anonymous (groups: none)`)
}

test_immutable_violation_stays_a_violation if {
	rule := object.union(orders_pii, {"topics": ["ledger"], "direction": "both"})
	i := fixtures.policy_input("delete_records", "topic", "ledger", "ops", ["platform"])
	decide_with_masking(i, [rule]).error == "policy_violation"
}

test_masking_rules_merge_in_data_order if {
	audit := {"name": "orders-audit", "topics": ["orders"], "direction": "both", "mask": [email_hashed, {"field": "$.customer.phone", "masker": "redact", "in": "value", "on_error": "pass"}]}
	i := fixtures.policy_input("consume", "topic", "orders", "ops", ["platform"])
	d := decide_with_masking(i, [orders_pii, no_raw_cards, audit])
	d.mask == [card_last4, ssn_redacted, email_hashed, {"field": "$.customer.phone", "masker": "redact", "in": "value", "on_error": "pass"}]
	d.reason == `grant 6 allows consume on topic "orders"; masked by masking rule "orders-pii": PII on orders is masked outside orders-owners; masking rule "orders-audit"`
	reversed := decide_with_masking(i, [audit, orders_pii])
	reversed.mask == [email_hashed, {"field": "$.customer.phone", "masker": "redact", "in": "value", "on_error": "pass"}, card_last4, ssn_redacted]

	# The owners are exempt from orders-pii only.
	owner := fixtures.policy_input("consume", "topic", "orders", "ops", ["platform", "orders-owners"])
	decide_with_masking(owner, [orders_pii, audit]).mask == audit.mask
}

test_mask_items_pass_through_as_written if {
	items := [
		{"field": "$.items[*].card", "masker": "last4", "options": {"keep": 4}},
		{"field": "$.items[0].card", "masker": "redact", "in": "value"},
		{"field": "$", "masker": "hash", "in": "key", "on_error": "redact_value"},
		{"detector": "email", "masker": "hash", "in": "header:customer-*", "on_error": "pass"},
	]
	rule := {"topics": ["orders"], "direction": "consume", "mask": items}
	d := decide_with_masking(fixtures.policy_input("consume", "topic", "orders", "ops", ["platform"]), [rule])
	d.mask == items
	fixtures.well_formed(d)
}

test_mask_keeps_the_ttl_of_a_time_boxed_grant if {
	grant := {"operation": "consume", "resource": {"type": "topic", "name": "orders"}, "expires_at": "2026-11-23T07:30:00Z"}
	i := fixtures.with_overrides("consume", "topic", "orders", "svc-x", [], {"grants": [grant], "time": "2026-11-23T07:29:53.001Z"})
	decide_with_masking(i, [orders_pii]) == {
		"action": "mask",
		"mask": [card_last4, ssn_redacted],
		"reason": `time-boxed grant for consume on topic "orders" until 2026-11-23T07:30:00Z; masked by masking rule "orders-pii": PII on orders is masked outside orders-owners`,
		"ttl": "6999ms",
	}
}

test_masking_entries_that_name_no_topic_are_ignored if {
	ignored := [
		"orders-pii",
		7,
		null,
		["orders"],
		{"topics": "orders", "direction": "consume", "mask": [card_last4]},
		{"direction": "consume", "mask": [card_last4]},
		{"topics": [7, null, {"glob": "orders"}], "direction": "consume", "mask": [card_last4]},
		{"topics": ["ledger"], "direction": "sideways", "mask": "everything"},
	]
	i := fixtures.policy_input("consume", "topic", "orders", "ops", ["platform"])
	decide_with_masking(i, ignored) == allow(`grant 6 allows consume on topic "orders"`)
	d := decide_with_masking(i, array.concat(ignored, [orders_pii]))
	d.mask == orders_pii.mask
	d.reason == `grant 6 allows consume on topic "orders"; masked by masking rule "orders-pii": PII on orders is masked outside orders-owners`

	# A masking list of the wrong type is ignored like any other configuration of the wrong type.
	every bad in [orders_pii, "orders-pii", {"0": orders_pii}] {
		decide_with_masking(i, bad).action == "allow"
	}
}

# A rule that names the topic but is otherwise malformed, and what the denial says is wrong.
malformed_rules := [
	[object.union(orders_pii, {"direction": "consumer"}), `its direction is not "produce", "consume" or "both"`],
	[object.remove(orders_pii, ["direction"]), `its direction is not "produce", "consume" or "both"`],
	[object.union(orders_pii, {"exempt": {"groups": "orders-owners"}}), `its exempt is neither "*" nor {"groups": [...], "subs": [...]}`],
	[object.union(orders_pii, {"exempt": ["orders-owners"]}), `its exempt is neither "*" nor {"groups": [...], "subs": [...]}`],
	[object.union(orders_pii, {"exempt": {"group": ["orders-owners"]}}), `its exempt is neither "*" nor {"groups": [...], "subs": [...]}`],
	[object.union(orders_pii, {"principals": {"subs": [7]}}), `its principals are neither "*" nor {"groups": [...], "subs": [...]}`],
	[object.union(orders_pii, {"owners": {"groups": ["orders-owners"]}}), "has keys it does not know (owners)"],
	[object.union(orders_pii, {"topics": ["orders.*", 7]}), "its topics are not all strings"],
	[object.union(orders_pii, {"name": 7}), "its name is not a string"],
	[object.union(orders_pii, {"reason": ["pii"]}), "its reason is not a string"],
	[object.union(orders_pii, {"mask": card_last4}), "its mask is not a list of mask items"],
	[object.remove(orders_pii, ["mask"]), "its mask is not a list of mask items"],
	[object.union(orders_pii, {"mask": []}), "its mask is empty"],
	[object.union(orders_pii, {"mask": [card_last4, "last4"]}), "its mask item 1 is not an object"],
	[object.union(orders_pii, {"mask": [{"field": "$.card", "detector": "credit_card", "masker": "last4"}]}), "its mask item 0 names both a field and a detector"],
	[object.union(orders_pii, {"mask": [{"masker": "last4"}]}), "its mask item 0 names neither a field nor a detector"],
	[object.union(orders_pii, {"mask": [{"field": "payment.card", "masker": "last4"}]}), `its mask item 0 has a field that is not a JSONPath starting with "$"`],
	[object.union(orders_pii, {"mask": [{"field": 7, "masker": "last4"}]}), `its mask item 0 has a field that is not a JSONPath starting with "$"`],
	[object.union(orders_pii, {"mask": [{"detector": "", "masker": "last4"}]}), "its mask item 0 has a detector that is not a name"],
	[object.union(orders_pii, {"mask": [{"field": "$.card"}]}), "its mask item 0 has a masker that is not a name"],
	[object.union(orders_pii, {"mask": [{"field": "$.card", "masker": ["last4"]}]}), "its mask item 0 has a masker that is not a name"],
	[object.union(orders_pii, {"mask": [{"field": "$.card", "masker": "last4", "options": "keep=4"}]}), "its mask item 0 has options that are not an object"],
	[object.union(orders_pii, {"mask": [{"field": "$.card", "masker": "last4", "in": "headers"}]}), `its mask item 0 has an "in" that is not value, key or header:<name>`],
	[object.union(orders_pii, {"mask": [{"field": "$.card", "masker": "last4", "in": "header:"}]}), `its mask item 0 has an "in" that is not value, key or header:<name>`],
	[object.union(orders_pii, {"mask": [{"field": "$.card", "masker": "last4", "in": 1}]}), `its mask item 0 has an "in" that is not value, key or header:<name>`],
	[object.union(orders_pii, {"mask": [{"field": "$.card", "masker": "last4", "on_error": "ignore"}]}), "its mask item 0 has an on_error that is not deny, redact_value or pass"],
	[object.union(orders_pii, {"mask": [{"field": "$.card", "masker": "last4", "where": "key"}]}), "its mask item 0 has keys it does not know (where)"],
]

test_a_malformed_rule_naming_the_topic_denies_its_produce_and_consume if {
	every case in malformed_rules {
		every op in ["produce", "consume"] {
			d := decide_with_masking(fixtures.policy_input(op, "topic", "orders.eu", "ops", ["platform"]), [no_raw_cards, case[0]])
			d == deny(sprintf("%s names topic %q but %s: %s is denied until the rule is fixed (policies/README.md, Masking)", [
				label(case[0]), "orders.eu", case[1], op,
			]))
		}
	}
}

# The malformed rule is the second: named by its name, or by its index if the name is no string.
label(rule) := `masking rule "orders-pii"` if is_string(rule.name)

else := "masking rule 1"

test_a_malformed_rule_denies_owners_too if {
	rule := object.union(orders_pii, {"direction": "consumer"})
	d := decide_with_masking(fixtures.policy_input("consume", "topic", "orders", "ops", ["platform", "orders-owners"]), [rule])
	d.action == "deny"
	not d.error
}

test_a_malformed_rule_without_a_name_is_named_by_its_index if {
	rule := object.remove(object.union(orders_pii, {"direction": 1}), ["name"])
	d := decide_with_masking(fixtures.policy_input("consume", "topic", "orders", "ops", ["platform"]), [no_raw_cards, orders_pii, rule])
	d == deny(`masking rule 2 names topic "orders" but its direction is not "produce", "consume" or "both": consume is denied until the rule is fixed (policies/README.md, Masking)`)
}

test_a_malformed_rule_leaves_other_topics_and_operations_alone if {
	rule := object.union(orders_pii, {"direction": "consumer"})
	decide_with_masking(fixtures.policy_input("consume", "topic", "orders-x", "ops", ["platform"]), [rule]).action == "allow"
	decide_with_masking(fixtures.policy_input("describe_topic", "topic", "orders", "ops", ["platform"]), [rule]).action == "allow"

	# A denial keeps its own reason.
	decide_with_masking(fixtures.policy_input("consume", "topic", "orders", "svc", []), [rule]) == deny(`no grant allows consume on topic "orders" for svc (groups: none)`)
}

test_more_mask_items_than_a_decision_carries_is_denied if {
	items := [{"field": sprintf("$.f%d", [n]), "masker": "redact"} | some n in numbers.range(1, 40)]
	two := [{"topics": ["orders"], "direction": "both", "mask": items}, {"topics": ["orders.*", "orders"], "direction": "consume", "mask": items}]
	i := fixtures.policy_input("consume", "topic", "orders", "ops", ["platform"])
	decide_with_masking(i, two) == deny(`masking rules give 80 mask items for consume on topic "orders", more than the 64 a decision may carry`)

	# 40 fit, and so do 64.
	decide_with_masking(fixtures.policy_input("produce", "topic", "orders", "ops", ["platform"]), two).mask == items
	sixty_four := [{"field": sprintf("$.f%d", [n]), "masker": "redact"} | some n in numbers.range(1, 64)]
	count(decide_with_masking(i, [{"topics": ["orders"], "direction": "both", "mask": sixty_four}]).mask) == 64
}

test_every_operation_gets_exactly_one_well_formed_decision_with_masking if {
	every op, types in fixtures.operations {
		every rtype in types {
			every who in [["ops", ["platform", "contractors"]], ["ops", ["platform", "orders-owners"]], ["anonymous", []]] {
				every name in ["orders", "payments.settled", "public.news"] {
					d := gatekeeper.decision with input as fixtures.policy_input(op, rtype, name, who[0], who[1])
						with data.gatekeeper_config as masking_config
					fixtures.well_formed(d)
				}
			}
		}
	}
}

test_shipped_data_has_no_masking if {
	# The quickstart's data masks nothing (policies/examples/pii_masking shows masking).
	shipped(fixtures.policy_input("consume", "topic", "orders", "svc-analytics", ["analytics-readers"])) == {
		"action": "allow",
		"reason": `grant 1 allows consume on topic "orders"`,
		"ttl": "5s",
	}
}

test_a_masking_denial_on_a_time_boxed_grant_ends_with_the_grant if {
	# After the grant the answer is another denial, but the reason changes: the ttl ends with the grant.
	grant := {"operation": "consume", "resource": {"type": "topic", "name": "orders"}, "expires_at": "2026-11-23T07:30:00Z"}
	i := fixtures.with_overrides("consume", "topic", "orders", "svc-x", [], {"grants": [grant], "time": "2026-11-23T07:29:59.5Z"})
	d := decide_with_masking(i, [object.union(orders_pii, {"direction": "consumer"})])
	d.action == "deny"
	d.ttl == "500ms"
}

# -- Kafka 4 consumer groups (KIP-848) ------------------------------------------------------------

test_consumer_group_heartbeats_are_decided_by_the_grants_of_join_group_and_consume if {
	decide(fixtures.heartbeat_input("join_group", "group", "analytics-eu", "svc-analytics", ["analytics-readers"], "join")) == allow(`grant 2 allows join_group on group "analytics-eu"`)
	decide(fixtures.heartbeat_input("join_group", "group", "analytics-eu", "svc-analytics", ["analytics-readers"], "leave")).action == "allow"
	decide(fixtures.heartbeat_input("join_group", "group", "orders-app", "svc-analytics", ["analytics-readers"], "join")).action == "deny"
	every kind in ["subscribed", "resolving", "assigned"] {
		decide(fixtures.heartbeat_input("consume", "topic", "public.events", "svc-analytics", ["analytics-readers"], kind)) == allow(`grant 3 allows consume on topic "public.events"`)
		decide(fixtures.heartbeat_input("consume", "topic", "orders.eu", "svc-analytics", ["analytics-readers"], kind)).action == "deny"
	}
	decide(fixtures.heartbeat_input("describe_topic", "topic", "orders.eu", "svc-x", ["orders-writers"], "resolving")) == allow(`grant 0 allows describe_topic on topic "orders.eu"`)
}
