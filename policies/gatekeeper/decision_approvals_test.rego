# Tests of the default library's approval rules (decision.rego, Approvals). Same package as
# decision_test.rego: config, allow, deny, violation, raw_cards and shipped are there.
package gatekeeper_test

import data.gatekeeper
import data.gatekeeper.inputs_test as fixtures

payments_writes := {
	"name": "payments-writes",
	"reason": "writes to payments.* outside the payments team",
	"operations": ["produce"],
	"resources": {"type": "topic", "patterns": ["payments.*"]},
	"exempt": {"groups": ["payments"]},
	"approvers": ["group:payments-leads"],
	"grant_ttl": "30m",
	"wait": "20s",
}

audit_config := {
	"name": "audit-config",
	"reason": "two people from security change an audit topic's config",
	"operations": ["alter_topic_config"],
	"resources": {"type": "topic", "patterns": ["audit.*"]},
	"always": true,
	"approvers": ["group:security"],
	"approvals_required": 2,
	"grant_ttl": "15m",
	"wait": "25s",
}

new_groups := {
	"name": "new-groups",
	"operations": ["join_group"],
	"resources": {"type": "group", "patterns": ["**"]},
	"unless_known_group": true,
	"always": true,
	"approvers": ["group:platform-oncall"],
}

regulated_offsets := {
	"name": "regulated-offsets",
	"reason": "a new consumer group on a regulated topic",
	"operations": ["fetch_offset"],
	"resources": {"type": "topic", "patterns": ["regulated.*"]},
	"unless_known_group": true,
	"always": true,
	"approvers": ["user:dana", "user:erin"],
	"approvals_required": 2,
}

# No name or reason: named by its index (4).
sandbox := {
	"operations": ["*"],
	"resources": {"type": "topic", "patterns": ["sandbox.**"]},
	"approvers": ["user:sam"],
}

approval_rules := [payments_writes, audit_config, new_groups, regulated_offsets, sandbox]

approvals_config := object.union(config, {
	"approvals": approval_rules,
	"known_groups": ["analytics-daily", "analytics-hourly", "orders-*"],
})

decide_approvals(policy_input) := d if {
	d := gatekeeper.decision with input as policy_input with data.gatekeeper_config as approvals_config
}

decide_approvals_as(op, rtype, name, sub, groups) := decide_approvals(fixtures.policy_input(op, rtype, name, sub, groups))

decide_with_approvals(policy_input, rules) := d if {
	d := gatekeeper.decision with input as policy_input
		with data.gatekeeper_config as object.union(approvals_config, {"approvals": rules})
}

approve(reason, approval) := {"action": "approve", "approval": approval, "reason": reason, "ttl": "7s"}

payments_approval := {"approvers": ["group:payments-leads"], "approvals_required": 1, "grant_ttl": "30m", "wait": "20s"}

security_approval := {"approvers": ["group:security"], "approvals_required": 2, "grant_ttl": "15m", "wait": "25s"}

# -- opening a way where no grant allows ---------------------------------------------------------

test_a_request_no_grant_allows_waits_for_approval if {
	decide_approvals_as("produce", "topic", "payments.eu", "svc-x", ["team-x"]) == approve(
		`produce on topic "payments.eu" by svc-x (groups: team-x) needs approval by group:payments-leads (approval rule "payments-writes": writes to payments.* outside the payments team)`,
		payments_approval,
	)
	fixtures.well_formed(decide_approvals_as("produce", "topic", "payments.eu", "svc-x", ["team-x"]))
}

test_a_request_a_grant_allows_stays_allowed if {
	# payments-writes has no "always": platform's wildcard grant allows as before.
	decide_approvals_as("produce", "topic", "payments.eu", "ops", ["platform"]) == allow(`grant 6 allows produce on topic "payments.eu"`)
}

test_the_exempt_are_denied_as_before if {
	# The payments team has no grant in this config: exempt from the rule, so plainly denied.
	decide_approvals_as("produce", "topic", "payments.eu", "svc-payments", ["payments"]) == deny(`no grant allows produce on topic "payments.eu" for svc-payments (groups: payments)`)

	# Near miss: a group named like the exempt one is not exempt.
	decide_approvals_as("produce", "topic", "payments.eu", "svc-payments", ["payments-eu"]).action == "approve"
}

test_approval_rules_name_operations_and_resources_like_grants if {
	every name in ["payments", "payments.eu.x", "payments-eu", "xpayments.eu"] {
		decide_approvals_as("produce", "topic", name, "svc-x", ["team-x"]).action == "deny"
	}
	decide_approvals_as("consume", "topic", "payments.eu", "svc-x", ["team-x"]) == deny(`no grant allows consume on topic "payments.eu" for svc-x (groups: team-x)`)
	decide_approvals_as("describe_group", "group", "payments.eu", "svc-x", ["team-x"]).action == "deny"
}

test_rule_principals_narrow_it if {
	rule := object.union(payments_writes, {"principals": {"groups": ["contractors"]}})
	i := fixtures.policy_input("produce", "topic", "payments.eu", "svc-x", ["team-x"])
	decide_with_approvals(i, [rule]).action == "deny"
	decide_with_approvals(object.union(i, {"principal": {"groups": ["contractors"]}}), [rule]).action == "approve"
	by_sub := object.union(payments_writes, {"principals": {"subs": ["svc-x"]}})
	decide_with_approvals(i, [by_sub]).action == "approve"
	nobody := object.union(payments_writes, {"exempt": "*"})
	decide_with_approvals(i, [nobody]).action == "deny"
}

test_approvals_required_defaults_to_one_and_the_optional_keys_are_left_out if {
	rule := object.remove(payments_writes, ["grant_ttl", "wait"])
	d := decide_with_approvals(fixtures.policy_input("produce", "topic", "payments.eu", "svc-x", []), [rule])
	d.approval == {"approvers": ["group:payments-leads"], "approvals_required": 1}
	fixtures.well_formed(d)
}

test_a_rule_without_a_name_is_named_by_its_index if {
	decide_approvals_as("create_topic", "topic", "sandbox.tmp", "svc-x", []) == approve(
		`create_topic on topic "sandbox.tmp" by svc-x (groups: none) needs approval by user:sam (approval rule 4)`,
		{"approvers": ["user:sam"], "approvals_required": 1},
	)
}

test_a_star_does_not_cover_cluster_administration if {
	rule := {"operations": ["*"], "resources": {"type": "cluster", "patterns": ["kafka-cluster"]}, "approvers": ["group:sre"]}
	i := fixtures.policy_input("describe_cluster", "cluster", fixtures.cluster, "svc-x", [])
	decide_with_approvals(i, [rule]).action == "approve"
	every op in ["alter_acls", "elect_leaders", "alter_user_credentials"] {
		d := decide_with_approvals(object.union(i, {"operation": op}), [rule])
		d.action == "deny"
		contains(d.reason, "cluster administration")
	}
	named := object.union(rule, {"operations": ["elect_leaders"]})
	decide_with_approvals(object.union(i, {"operation": "elect_leaders"}), [named]).action == "approve"
}

test_always_allowed_operations_are_never_held if {
	rule := {"operations": ["*"], "resources": {"type": "group", "patterns": ["**"]}, "always": true, "approvers": ["group:sre"]}
	decide_with_approvals(fixtures.policy_input("find_coordinator", "group", "g", "svc-x", []), [rule]) == allow("find_coordinator is allowed to every client")
	decide_with_approvals(fixtures.policy_input("describe_group", "group", "g", "svc-x", []), [rule]).action == "approve"
}

test_the_first_rule_in_data_order_decides if {
	strict := object.union(payments_writes, {"name": "strict", "approvers": ["group:security"], "approvals_required": 2})
	i := fixtures.policy_input("produce", "topic", "payments.eu", "svc-x", [])
	decide_with_approvals(i, [payments_writes, strict]).approval == payments_approval
	decide_with_approvals(i, [strict, payments_writes]).approval.approvals_required == 2
}

# -- once approved: the time-boxed grant ---------------------------------------------------------

payments_eu_grant := {
	"id": "g-1",
	"operation": "produce",
	"resource": {"type": "topic", "name": "payments.eu"},
	"expires_at": "2026-11-23T07:54:49.689Z",
	"approved_by": ["user:lee"],
	"approval_id": "a-1",
}

test_an_approved_request_is_allowed_by_its_grant_until_it_expires if {
	i := fixtures.with_overrides("produce", "topic", "payments.eu", "svc-x", ["team-x"], {"grants": [payments_eu_grant]})
	decide_approvals(i) == allow(`time-boxed grant for produce on topic "payments.eu" until 2026-11-23T07:54:49.689Z`)
	decide_approvals(object.union(i, {"time": "2026-11-23T07:54:49Z"})).ttl == "689ms"

	# Expired: back to waiting for approval.
	decide_approvals(object.union(i, {"time": "2026-11-23T07:54:49.689Z"})).action == "approve"

	# The grant is for exactly that operation and resource.
	other := fixtures.with_overrides("produce", "topic", "payments.us", "svc-x", ["team-x"], {"grants": [payments_eu_grant]})
	decide_approvals(other).action == "approve"
}

test_an_approved_request_is_masked_where_masking_rules_apply if {
	masking := {"name": "cards", "topics": ["payments.*"], "direction": "produce", "mask": [raw_cards]}
	i := fixtures.with_overrides("produce", "topic", "payments.eu", "svc-x", ["team-x"], {"grants": [payments_eu_grant]})
	d := gatekeeper.decision with input as i with data.gatekeeper_config as object.union(approvals_config, {"masking": [masking]})
	d.action == "mask"
	d.mask == [raw_cards]
}

# -- always ----------------------------------------------------------------------------------------

test_an_always_rule_holds_even_where_a_grant_allows if {
	decide_approvals_as("alter_topic_config", "topic", "audit.logins", "ops", ["platform"]) == approve(
		`alter_topic_config on topic "audit.logins" by ops (groups: platform) needs 2 approvals by group:security (approval rule "audit-config": two people from security change an audit topic's config)`,
		security_approval,
	)

	# And where none does.
	decide_approvals_as("alter_topic_config", "topic", "audit.logins", "svc-x", []).approval == security_approval

	# Near misses: another operation, a topic audit.* does not match.
	decide_approvals_as("describe_topic", "topic", "audit.logins", "ops", ["platform"]).action == "allow"
	decide_approvals_as("alter_topic_config", "topic", "audit.logins.eu", "ops", ["platform"]) == allow(`grant 6 allows alter_topic_config on topic "audit.logins.eu"`)
}

test_an_always_rule_is_lifted_by_a_time_boxed_grant_whose_ttl_ends_the_allow if {
	grant := {"operation": "alter_topic_config", "resource": {"type": "topic", "name": "audit.logins"}, "expires_at": "2026-11-23T07:25:00Z"}
	i := fixtures.with_overrides("alter_topic_config", "topic", "audit.logins", "ops", ["platform"], {"grants": [grant]})
	decide_approvals(i) == {
		"action": "allow",
		"reason": `time-boxed grant for alter_topic_config on topic "audit.logins" until 2026-11-23T07:25:00Z`,
		"ttl": "7s",
	}
	decide_approvals(object.union(i, {"time": "2026-11-23T07:24:58.5Z"})).ttl == "1500ms"
	decide_approvals(object.union(i, {"time": "2026-11-23T07:25:00Z"})).action == "approve"
}

test_a_policy_violation_is_never_approvable if {
	retention := fixtures.with_overrides("alter_topic_config", "topic", "audit.logins", "ops", ["platform"], {"request": {"configs": {"retention.ms": "1"}}})
	decide_approvals(retention) == violation(`topic "audit.logins" is immutable: alter_topic_config may not change retention.ms`)
	grant := {"operation": "alter_topic_config", "resource": {"type": "topic", "name": "audit.logins"}, "expires_at": "2026-11-23T09:00:00Z"}
	decide_approvals(object.union(retention, {"grants": [grant]})).error == "policy_violation"
	rule := {"operations": ["delete_topic"], "resources": {"type": "topic", "patterns": ["ledger"]}, "approvers": ["group:sre"]}
	decide_with_approvals(fixtures.policy_input("delete_topic", "topic", "ledger", "svc-x", []), [rule]).error == "policy_violation"
}

test_an_always_rule_and_an_opening_rule_on_a_granted_request if {
	# Only the always rule holds a request a grant allows, wherever it is in the list.
	opening := object.union(audit_config, {"name": "opening", "always": false, "approvers": ["group:anyone"], "approvals_required": 1})
	i := fixtures.policy_input("alter_topic_config", "topic", "audit.logins", "ops", ["platform"])
	decide_with_approvals(i, [opening, audit_config]).approval == security_approval

	# Without a grant, the first of the two.
	decide_with_approvals(object.union(i, {"principal": {"groups": []}}), [opening, audit_config]).approval.approvers == ["group:anyone"]
}

# -- consumer groups that are not known ----------------------------------------------------------

test_joining_a_group_that_is_not_known_waits_for_approval if {
	decide_approvals_as("join_group", "group", "analytics-eu", "svc-analytics", ["analytics-readers"]) == approve(
		`join_group on group "analytics-eu" by svc-analytics (groups: analytics-readers) needs approval by group:platform-oncall (approval rule "new-groups")`,
		{"approvers": ["group:platform-oncall"], "approvals_required": 1},
	)
	decide_approvals_as("join_group", "group", "analytics-daily", "svc-analytics", ["analytics-readers"]) == allow(`grant 2 allows join_group on group "analytics-daily"`)

	# Known, without a grant: an ordinary denial (the rule holds only groups that are not known).
	decide_approvals_as("join_group", "group", "orders-app", "svc-x", []) == deny(`no grant allows join_group on group "orders-app" for svc-x (groups: none)`)
	decide_approvals_as("join_group", "group", "orders", "svc-x", []).action == "approve"

	# Other group operations follow the grants.
	decide_approvals_as("commit_offset", "group", "analytics-eu", "svc-analytics", ["analytics-readers"]).action == "allow"
}

test_a_new_consumer_group_of_the_kip_848_protocol_waits_for_approval_as_with_join_group if {
	decide_approvals(fixtures.heartbeat_input("join_group", "group", "analytics-eu", "svc-analytics", ["analytics-readers"], "join")).action == "approve"
	decide_approvals(fixtures.heartbeat_input("join_group", "group", "analytics-daily", "svc-analytics", ["analytics-readers"], "join")) == allow(`grant 2 allows join_group on group "analytics-daily"`)
}

test_without_known_groups_every_group_is_new if {
	d := gatekeeper.decision with input as fixtures.policy_input("join_group", "group", "analytics-daily", "svc-analytics", ["analytics-readers"])
		with data.gatekeeper_config as object.remove(approvals_config, ["known_groups"])
	d.action == "approve"
}

regulated_fetch(group, sub) := fixtures.with_overrides("fetch_offset", "topic", "regulated.trades", sub, ["platform"], {"request": {"group": group, "partitions": [0]}})

test_a_new_group_fetching_offsets_of_a_regulated_topic_waits_for_two_approvals if {
	decide_approvals(regulated_fetch("risk-adhoc", "ops")) == approve(
		`fetch_offset on topic "regulated.trades" by ops (groups: platform) needs 2 approvals by user:dana, user:erin (approval rule "regulated-offsets": a new consumer group on a regulated topic)`,
		{"approvers": ["user:dana", "user:erin"], "approvals_required": 2},
	)
	decide_approvals(regulated_fetch("analytics-daily", "ops")) == allow(`grant 6 allows fetch_offset on topic "regulated.trades"`)

	# A request about no group (a consume) is not held by such a rule; nor is another operation.
	decide_approvals_as("consume", "topic", "regulated.trades", "ops", ["platform"]).action == "allow"
	commit := fixtures.with_overrides("commit_offset", "topic", "regulated.trades", "ops", ["platform"], {"request": {"group": "risk-adhoc", "partitions": [0]}})
	decide_approvals(commit).action == "allow"
}

test_an_approval_no_one_else_could_give_is_denied if {
	decide_approvals(regulated_fetch("risk-adhoc", "dana")) == deny(concat("", [
		`fetch_offset on topic "regulated.trades" by dana needs 2 approvals by user:dana, user:erin `,
		`(approval rule "regulated-offsets": a new consumer group on a regulated topic), but only 1 of them may give it: `,
		"no one approves their own request",
	]))
	decide_approvals(regulated_fetch("risk-adhoc", "dana-2")).action == "approve"

	# A group among the approvers may have others in it.
	rule := object.union(regulated_offsets, {"approvers": ["user:dana", "group:risk"]})
	decide_with_approvals(regulated_fetch("risk-adhoc", "dana"), [rule]).action == "approve"
}

# -- anonymous clients -----------------------------------------------------------------------------

test_an_anonymous_client_is_never_offered_an_approval if {
	decide_approvals(fixtures.anonymous_input("produce", "topic", "payments.eu")) == deny(concat("", [
		`produce on topic "payments.eu" needs approval by group:payments-leads (approval rule "payments-writes": writes to payments.* `,
		"outside the payments team), which is never asked for an anonymous client: a grant to anonymous would be every ",
		"unauthenticated client's; authenticate",
	]))

	# An always rule on a request a grant lets anonymous make: denied too.
	rule := {"operations": ["consume"], "resources": {"type": "topic", "patterns": ["public.secret"]}, "always": true, "approvers": ["group:sre"]}
	d := decide_with_approvals(fixtures.anonymous_input("consume", "topic", "public.secret"), [rule])
	d.action == "deny"
	contains(d.reason, "never asked for an anonymous client")
	decide_with_approvals(fixtures.anonymous_input("consume", "topic", "public.news"), [rule]).action == "allow"
}

# -- malformed rules -------------------------------------------------------------------------------

malformed_approval_rules := [
	[object.union(payments_writes, {"approver": ["group:payments-leads"]}), "has keys it does not know (approver)"],
	[object.union(payments_writes, {"resources": {"type": "topic", "patterns": ["payments.*"], "names": ["x"]}}), "its resources have keys they do not know (names)"],
	[object.union(payments_writes, {"resources": {"type": "topic", "patterns": ["payments.*", 7]}}), "its resource patterns are not all strings"],
	[object.union(payments_writes, {"operations": "produce"}), "its operations are not a list of operation names"],
	[object.remove(payments_writes, ["operations"]), "its operations are not a list of operation names"],
	[object.union(payments_writes, {"operations": ["produce", 7]}), "its operations are not a list of operation names"],
	[object.union(payments_writes, {"name": ["payments"]}), "its name is not a string"],
	[object.union(payments_writes, {"reason": 7}), "its reason is not a string"],
	[object.union(payments_writes, {"principals": ["*"]}), `its principals are neither "*" nor {"groups": [...], "subs": [...]}`],
	[object.union(payments_writes, {"exempt": {"groups": "payments"}}), `its exempt is neither "*" nor {"groups": [...], "subs": [...]}`],
	[object.remove(payments_writes, ["approvers"]), "its approvers are not a list"],
	[object.union(payments_writes, {"approvers": "group:payments-leads"}), "its approvers are not a list"],
	[object.union(payments_writes, {"approvers": []}), "its approvers are empty"],
	[object.union(payments_writes, {"approvers": [sprintf("user:u%d", [n]) | some n in numbers.range(1, 65)]}), "its approvers are more than the 64 an approval may carry"],
	[object.union(payments_writes, {"approvers": ["group:payments-leads", "payments-leads"]}), `its approver 1 is not "group:<name>" or "user:<sub>"`],
	[object.union(payments_writes, {"approvers": ["user:"]}), `its approver 0 is not "group:<name>" or "user:<sub>"`],
	[object.union(payments_writes, {"approvers": [7]}), `its approver 0 is not "group:<name>" or "user:<sub>"`],
	[object.union(payments_writes, {"approvals_required": 0}), "its approvals_required is not a whole number from 1 to 5"],
	[object.union(payments_writes, {"approvals_required": 6}), "its approvals_required is not a whole number from 1 to 5"],
	[object.union(payments_writes, {"approvals_required": 1.5}), "its approvals_required is not a whole number from 1 to 5"],
	[object.union(payments_writes, {"approvals_required": "2"}), "its approvals_required is not a whole number from 1 to 5"],
	[
		object.union(payments_writes, {"approvers": ["user:lee", "user:lee"], "approvals_required": 2}),
		"its approvals_required is 2 but its approvers name 1 user and no group: it could never be approved",
	],
	[object.union(payments_writes, {"grant_ttl": "30 minutes"}), "its grant_ttl is not a duration (30m, 1h, 90s)"],
	[object.union(payments_writes, {"grant_ttl": 1800}), "its grant_ttl is not a duration (30m, 1h, 90s)"],
	[object.union(payments_writes, {"wait": "1d"}), "its wait is not a duration (20s, 500ms)"],
	[object.union(payments_writes, {"always": "yes"}), "its always is neither true nor false"],
	[object.union(payments_writes, {"unless_known_group": 1}), "its unless_known_group is neither true nor false"],
]

test_a_malformed_rule_naming_the_request_denies_it_for_everyone if {
	every case in malformed_approval_rules {
		every who in [["svc-x", ["team-x"]], ["ops", ["platform"]], ["svc-payments", ["payments"]]] {
			d := decide_with_approvals(fixtures.policy_input("produce", "topic", "payments.eu", who[0], who[1]), [sandbox, case[0]])
			d == deny(sprintf("%s names topic %q but %s: produce is denied until the rule is fixed (policies/README.md, Approvals)", [
				approval_label(case[0]), "payments.eu", case[1],
			]))
		}
	}
}

# The malformed rule is the second: named by its name, or by its index if the name is no string.
approval_label(rule) := `approval rule "payments-writes"` if is_string(rule.name)

else := "approval rule 1"

test_a_malformed_rule_leaves_what_it_does_not_name_alone if {
	rule := object.union(payments_writes, {"wait": "soon"})
	decide_with_approvals(fixtures.policy_input("produce", "topic", "payments", "ops", ["platform"]), [rule]).action == "allow"

	# Its operations are a list of names without consume: it does not name a consume.
	decide_with_approvals(fixtures.policy_input("consume", "topic", "payments.eu", "ops", ["platform"]), [rule]).action == "allow"

	# Operations that are no list name every operation on the resource.
	bad_ops := object.union(payments_writes, {"operations": "produce"})
	decide_with_approvals(fixtures.policy_input("consume", "topic", "payments.eu", "ops", ["platform"]), [bad_ops]).action == "deny"

	# A time-boxed grant does not lift it either; the denial does not depend on the time.
	i := fixtures.with_overrides("produce", "topic", "payments.eu", "svc-x", [], {"grants": [payments_eu_grant]})
	d := decide_with_approvals(i, [rule])
	d.action == "deny"
	d.ttl == "7s"
}

test_malformed_known_groups_deny_what_unless_known_group_rules_name if {
	every bad in ["orders-*", [7], {"groups": ["orders-*"]}] {
		d := gatekeeper.decision with input as fixtures.policy_input("join_group", "group", "orders-app", "svc-x", [])
			with data.gatekeeper_config as object.union(approvals_config, {"known_groups": bad})
		d == deny(`approval rule "new-groups" names group "orders-app" but it asks for unless_known_group but known_groups is not a list of group name patterns: join_group is denied until the rule is fixed (policies/README.md, Approvals)`)
	}
}

test_approval_entries_that_name_nothing_are_ignored if {
	ignored := [
		"payments-writes",
		7,
		null,
		[payments_writes],
		object.remove(payments_writes, ["resources"]),
		object.union(payments_writes, {"resources": "payments.*"}),
		object.union(payments_writes, {"resources": {"type": "topic", "patterns": "payments.*"}}),
		object.union(object.remove(payments_writes, ["resources"]), {"resources": {"patterns": ["payments.*"]}}),
		object.union(payments_writes, {"resources": {"type": "group", "patterns": ["payments.*"]}}),
		object.union(payments_writes, {"resources": {"type": "topic", "patterns": [7, {"glob": "payments.*"}]}}),
		object.union(payments_writes, {"operations": ["consume"], "wait": "soon"}),
		object.union(payments_writes, {"operations": [], "approvers": []}),
	]
	i := fixtures.policy_input("produce", "topic", "payments.eu", "svc-x", ["team-x"])
	decide_with_approvals(i, ignored) == deny(`no grant allows produce on topic "payments.eu" for svc-x (groups: team-x)`)
	decide_with_approvals(i, array.concat(ignored, [payments_writes])).approval == payments_approval

	# An approvals list of the wrong type is ignored like any other configuration of the wrong type.
	every bad in [payments_writes, "payments-writes", {"0": payments_writes}] {
		decide_with_approvals(i, bad).action == "deny"
	}
}

test_approving_is_not_asked_where_a_masking_rule_would_deny_anyway if {
	broken := {"name": "cards", "topics": ["payments.*"], "direction": "writes", "mask": [raw_cards]}
	i := fixtures.policy_input("produce", "topic", "payments.eu", "svc-x", ["team-x"])
	d := gatekeeper.decision with input as i with data.gatekeeper_config as object.union(approvals_config, {"masking": [broken]})
	d == deny(`masking rule "cards" names topic "payments.eu" but its direction is not "produce", "consume" or "both": produce is denied until the rule is fixed (policies/README.md, Masking)`)
}

# -- the decision's shape ------------------------------------------------------------------------

test_every_operation_gets_exactly_one_well_formed_decision_with_approvals if {
	every op, types in fixtures.operations {
		every rtype in types {
			every who in [["ops", ["platform"]], ["dana", ["payments"]], ["anonymous", []]] {
				every name in ["payments.eu", "audit.logins", "regulated.trades", "analytics-eu", "sandbox.x"] {
					d := decide_approvals(fixtures.with_overrides(op, rtype, name, who[0], who[1], {"request": {"group": "risk-adhoc"}}))
					fixtures.well_formed(d)
				}
			}
		}
	}
}

test_long_approval_reasons_are_capped if {
	sub := concat("", [s | some _ in numbers.range(1, 300); s := "abcd"])
	d := decide_approvals_as("produce", "topic", "payments.eu", sub, ["team-x"])
	d.action == "approve"
	count(d.reason) == 1024
	fixtures.well_formed(d)
}

test_shipped_data_has_no_approvals if {
	shipped(fixtures.policy_input("produce", "topic", "payments.eu", "svc-x", ["team-x"])) == {
		"action": "deny",
		"reason": `no grant allows produce on topic "payments.eu" for svc-x (groups: team-x)`,
		"ttl": "5s",
	}
}
