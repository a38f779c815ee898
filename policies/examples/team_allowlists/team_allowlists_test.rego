package gatekeeper.examples.team_allowlists_test

import data.gatekeeper
import data.gatekeeper.examples.team_allowlists
import data.gatekeeper.inputs_test as fixtures

decide_as(op, rtype, name, sub, groups) := d if {
	d := team_allowlists.decision with input as fixtures.policy_input(op, rtype, name, sub, groups)
}

allow(reason) := {"action": "allow", "reason": reason, "ttl": "5s"}

deny(reason) := {"action": "deny", "reason": reason, "ttl": "5s"}

test_members_use_their_teams_topics if {
	decide_as("produce", "topic", "orders.created", "svc-orders", ["team-orders"]) == allow(`topic "orders.created" is on the allow-list of team team-orders`)
	every op in ["produce", "consume", "describe_topic", "describe_topic_config", "commit_offset", "fetch_offset"] {
		decide_as(op, "topic", "orders", "svc-orders", ["team-orders"]).action == "allow"
	}
}

test_other_teams_topics_are_denied if {
	decide_as("produce", "topic", "payments.settled", "svc-orders", ["team-orders"]) == deny(`no allow-list of svc-orders's teams (team-orders) allows produce on topic "payments.settled"`)
}

test_near_miss_names_are_denied if {
	every name in ["orders-x", "ordersx", "order", "xorders.created", "payments-orders"] {
		decide_as("produce", "topic", name, "svc-orders", ["team-orders"]).action == "deny"
	}
}

test_principals_in_no_team_are_denied if {
	decide_as("consume", "topic", "orders", "svc-x", ["orders"]) == deny(`no allow-list of svc-x's teams (none) allows consume on topic "orders"`)
	decide_as("consume", "topic", "orders", "svc-x", ["team-order", "Team-Orders"]).action == "deny"
	team_allowlists.decision.action == "deny" with input as fixtures.anonymous_input("consume", "topic", "orders")
}

test_administration_is_not_a_member_operation if {
	every op in ["create_topic", "delete_topic", "delete_records", "create_partitions", "alter_topic_config"] {
		decide_as(op, "topic", "orders.created", "svc-orders", ["team-orders"]) == deny(sprintf(
			`no allow-list of svc-orders's teams (team-orders) allows %s on topic "orders.created"`,
			[op],
		))
	}
	decide_as("delete_group", "group", "orders-app", "svc-orders", ["team-orders"]).action == "deny"
}

test_groups_and_transactional_ids if {
	decide_as("join_group", "group", "orders-app", "svc-orders", ["team-orders"]) == allow(`group "orders-app" is on the allow-list of team team-orders`)
	decide_as("join_group", "group", "payments-reporting", "svc-orders", ["team-orders"]).action == "deny"
	decide_as("join_group", "group", "payments-reporting", "svc-payments", ["team-payments"]).action == "allow"
	decide_as("init_producer", "transactional_id", "payments-tx-1", "svc-payments", ["team-payments"]).action == "allow"
	decide_as("init_producer", "transactional_id", "payments-tx-1", "svc-orders", ["team-orders"]).action == "deny"

	# A topic pattern does not reach groups of the same name.
	decide_as("join_group", "group", "orders", "svc-orders", ["team-orders"]).action == "deny"
}

test_member_of_two_teams_gets_both_lists_and_one_decision if {
	groups := ["team-payments", "team-orders"]
	decide_as("produce", "topic", "orders.created", "svc-both", groups).action == "allow"
	decide_as("produce", "topic", "payments.settled", "svc-both", groups).action == "allow"
	decide_as("produce", "topic", "ledger", "svc-both", groups) == deny(`no allow-list of svc-both's teams (team-orders, team-payments) allows produce on topic "ledger"`)
}

test_housekeeping_and_idempotent_producers_for_everyone if {
	team_allowlists.decision == allow("find_coordinator is allowed to every client") with input as fixtures.anonymous_input("find_coordinator", "group", "anything")
	team_allowlists.decision.action == "allow" with input as fixtures.anonymous_input("list_topics", "cluster", fixtures.cluster)
	team_allowlists.decision == allow("an idempotent producer is allowed to every client") with input as fixtures.anonymous_input("init_producer", "cluster", fixtures.cluster)
	team_allowlists.decision.action == "deny" with input as fixtures.anonymous_input("alter_acls", "cluster", fixtures.cluster)
}

test_teams_can_be_replaced if {
	mine := {"team-search": {"topics": ["search.**"], "groups": [], "transactional_ids": []}}
	d := team_allowlists.decision with input as fixtures.policy_input("consume", "topic", "search.queries", "svc", ["team-search"])
		with team_allowlists.teams as mine
	d.action == "allow"
}

test_every_operation_gets_exactly_one_well_formed_decision if {
	every op, types in fixtures.operations {
		every rtype in types {
			every groups in [["team-orders"], ["team-orders", "team-payments"], []] {
				fixtures.well_formed(decide_as(op, rtype, "orders-1", "svc", groups))
			}
		}
	}
	team_allowlists.decision.reason == "not a Gatekeeper policy input (see docs/policy-input.md)" with input as {}
}

# -- the same idea as a configuration of the default library (data.json beside this file) --------

library_action(op, rtype, name, groups) := d.action if {
	d := gatekeeper.decision with input as fixtures.policy_input(op, rtype, name, "svc", groups)
		with data.gatekeeper_config as data.examples.team_allowlists.gatekeeper_config
}

test_data_json_for_the_default_library if {
	library_action("produce", "topic", "orders.created", ["team-orders"]) == "allow"
	library_action("produce", "topic", "payments.settled", ["team-orders"]) == "deny"
	library_action("join_group", "group", "payments-reporting", ["team-orders"]) == "deny"
	library_action("join_group", "group", "payments-reporting", ["team-payments"]) == "allow"
}
