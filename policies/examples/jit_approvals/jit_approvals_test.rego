package gatekeeper.examples.jit_approvals_test

import data.gatekeeper
import data.gatekeeper.examples.jit_approvals
import data.gatekeeper.inputs_test as fixtures

# The library's configuration in these tests: who may do what without asking.
config := {
	"default_ttl": "9s",
	"always_allowed": ["api_versions", "find_coordinator"],
	"immutable_topics": ["audit.**"],
	"grants": [
		{"principals": {"groups": ["payments"]}, "resources": {"type": "topic", "patterns": ["payments.*"]}, "operations": ["produce", "describe_topic"]},
		{"principals": {"groups": ["platform"]}, "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["*"]},
		{"principals": {"groups": ["risk-analysts"]}, "resources": {"type": "topic", "patterns": ["regulated.*"]}, "operations": ["consume", "fetch_offset", "commit_offset"]},
	],
}

decide(policy_input) := d if {
	d := jit_approvals.decision with input as policy_input with data.gatekeeper_config as config
}

decide_as(op, rtype, name, sub, groups) := decide(fixtures.policy_input(op, rtype, name, sub, groups))

payments_approval := {"approvers": ["group:payments-leads"], "approvals_required": 1, "grant_ttl": "30m", "wait": "20s"}

regulated_approval := {"approvers": ["group:data-governance"], "approvals_required": 1, "grant_ttl": "8h", "wait": "20s"}

security_approval := {"approvers": ["group:security"], "approvals_required": 2, "grant_ttl": "15m", "wait": "25s"}

payments_why := `a write to "payments.eu" outside group payments needs approval by a payments lead`

# -- payments: writes outside the team ------------------------------------------------------------

test_a_write_to_payments_outside_the_team_waits_for_a_payments_lead if {
	decide_as("produce", "topic", "payments.eu", "svc-x", ["team-x"]) == {
		"action": "approve",
		"approval": payments_approval,
		"reason": sprintf("produce on topic \"payments.eu\" by svc-x (groups: team-x): %s", [payments_why]),
		"ttl": "9s",
	}

	# Whatever the grants say: platform's wildcard grant too.
	decide_as("produce", "topic", "payments.eu", "ops", ["platform"]).approval == payments_approval
	decide_as("produce", "topic", "payments.eu", "svc-y", []).reason == sprintf("produce on topic \"payments.eu\" by svc-y (groups: none): %s", [payments_why])
}

test_the_payments_team_writes_without_asking if {
	decide_as("produce", "topic", "payments.eu", "svc-payments", ["payments"]) == {
		"action": "allow",
		"reason": `grant 0 allows produce on topic "payments.eu"`,
		"ttl": "9s",
	}

	# Near miss: a group named like the team's is not the team.
	decide_as("produce", "topic", "payments.eu", "svc-payments", ["payments-eu"]).action == "approve"
}

test_other_operations_and_topics_are_the_librarys if {
	decide_as("consume", "topic", "payments.eu", "ops", ["platform"]) == {"action": "allow", "reason": `grant 1 allows consume on topic "payments.eu"`, "ttl": "9s"}
	decide_as("consume", "topic", "payments.eu", "svc-x", []).action == "deny"
	every name in ["payments", "payments.eu.x", "payments-eu"] {
		decide_as("produce", "topic", name, "ops", ["platform"]).action == "allow"
		decide_as("produce", "topic", name, "svc-x", []).action == "deny"
	}
}

# -- once approved --------------------------------------------------------------------------------

payments_grant := {
	"id": "g-7",
	"operation": "produce",
	"resource": {"type": "topic", "name": "payments.eu"},
	"expires_at": "2026-11-23T07:54:49.689Z",
	"approved_by": ["user:lee"],
	"approval_id": "a-7",
}

test_the_grant_of_an_approval_lets_the_next_attempt_through_until_it_expires if {
	i := fixtures.with_overrides("produce", "topic", "payments.eu", "svc-x", ["team-x"], {"grants": [payments_grant]})
	decide(i) == {
		"action": "allow",
		"reason": sprintf("time-boxed grant for produce on topic \"payments.eu\" until 2026-11-23T07:54:49.689Z; %s: approved until 2026-11-23T07:54:49.689Z", [payments_why]),
		"ttl": "9s",
	}
	decide(object.union(i, {"time": "2026-11-23T07:54:48Z"})).ttl == "1689ms"
	decide(object.union(i, {"time": "2026-11-23T07:54:49.689Z"})).action == "approve"
}

test_a_grant_of_the_library_is_cached_no_longer_than_the_approval if {
	# Platform is allowed by grant 1, whose ttl the example cuts to the approval's end.
	i := fixtures.with_overrides("produce", "topic", "payments.eu", "ops", ["platform"], {"grants": [payments_grant], "time": "2026-11-23T07:54:47.189Z"})
	decide(i) == {
		"action": "allow",
		"reason": sprintf("grant 1 allows produce on topic \"payments.eu\"; %s: approved until 2026-11-23T07:54:49.689Z", [payments_why]),
		"ttl": "2500ms",
	}
}

test_a_grant_for_something_else_does_not_count if {
	other := object.union(payments_grant, {"resource": {"name": "payments.us"}})
	decide(fixtures.with_overrides("produce", "topic", "payments.eu", "svc-x", [], {"grants": [other]})).action == "approve"
	consume := object.union(payments_grant, {"operation": "consume"})
	decide(fixtures.with_overrides("produce", "topic", "payments.eu", "svc-x", [], {"grants": [consume]})).action == "approve"
}

# -- regulated topics: consumer groups that are not known ----------------------------------------

regulated_fetch(group, sub, groups) := fixtures.with_overrides("fetch_offset", "topic", "regulated.trades", sub, groups, {"request": {"group": group, "partitions": [0, 1]}})

test_a_new_consumer_group_on_a_regulated_topic_waits_for_data_governance if {
	decide(regulated_fetch("risk-adhoc", "svc-risk", ["risk-analysts"])) == {
		"action": "approve",
		"approval": regulated_approval,
		"reason": `fetch_offset on topic "regulated.trades" by svc-risk (groups: risk-analysts): consumer group "risk-adhoc" is new on regulated topic "regulated.trades" and needs approval by data governance`,
		"ttl": "9s",
	}
	decide(regulated_fetch("risk-adhoc", "ops", ["platform"])).action == "approve"
}

test_known_consumer_groups_and_other_operations_are_the_librarys if {
	decide(regulated_fetch("regulated-reporting", "svc-risk", ["risk-analysts"])) == {
		"action": "allow",
		"reason": `grant 2 allows fetch_offset on topic "regulated.trades"`,
		"ttl": "9s",
	}
	decide(regulated_fetch("regulated-archive-2026", "svc-risk", ["risk-analysts"])).action == "allow"
	decide(regulated_fetch("regulated-reporting-2", "svc-risk", ["risk-analysts"])).action == "approve"
	decide_as("consume", "topic", "regulated.trades", "svc-risk", ["risk-analysts"]).action == "allow"
	commit := fixtures.with_overrides("commit_offset", "topic", "regulated.trades", "svc-risk", ["risk-analysts"], {"request": {"group": "risk-adhoc", "partitions": [0]}})
	decide(commit).action == "allow"

	# The group's own resource is not a regulated topic; nor is a near-miss topic.
	decide_as("fetch_offset", "group", "risk-adhoc", "svc-risk", ["risk-analysts"]).action == "deny"
	decide(object.union(regulated_fetch("risk-adhoc", "ops", ["platform"]), {"resource": {"name": "regulated.trades.eu"}})).action == "allow"
}

# -- audit topics: the two-person rule ------------------------------------------------------------

test_an_audit_topic_config_change_waits_for_two_from_security if {
	decide_as("alter_topic_config", "topic", "audit.logins", "ops", ["platform"]) == {
		"action": "approve",
		"approval": security_approval,
		"reason": `alter_topic_config on topic "audit.logins" by ops (groups: platform): a config change of audit topic "audit.logins" needs two approvals from security`,
		"ttl": "9s",
	}
	decide_as("describe_topic", "topic", "audit.logins", "ops", ["platform"]).action == "allow"
	decide_as("alter_topic_config", "topic", "audit.logins.eu", "ops", ["platform"]).action == "allow"
}

test_what_the_library_denies_even_once_approved_is_not_worth_an_approval if {
	# The library's immutable topics: a retention change is never allowed, approved or not.
	retention := fixtures.with_overrides("alter_topic_config", "topic", "audit.logins", "ops", ["platform"], {"request": {"configs": {"retention.ms": "1"}}})
	decide(retention) == {
		"action": "deny",
		"error": "policy_violation",
		"reason": `topic "audit.logins" is immutable: alter_topic_config may not change retention.ms`,
		"ttl": "9s",
	}
	grant := {"operation": "alter_topic_config", "resource": {"type": "topic", "name": "audit.logins"}, "expires_at": "2026-11-23T09:00:00Z"}
	decide(object.union(retention, {"grants": [grant]})).error == "policy_violation"

	# A malformed masking rule of the library denies the payments writes it names, once allowed:
	# so no approval is asked, and the library's denial stands.
	broken := {"name": "cards", "topics": ["payments.*"], "direction": "writes", "mask": [{"detector": "credit_card", "masker": "last4"}]}
	d := jit_approvals.decision with input as fixtures.policy_input("produce", "topic", "payments.eu", "svc-x", [])
		with data.gatekeeper_config as object.union(config, {"masking": [broken]})
	d == {"action": "deny", "reason": `no grant allows produce on topic "payments.eu" for svc-x (groups: none)`, "ttl": "9s"}
	granted := jit_approvals.decision with input as fixtures.policy_input("produce", "topic", "payments.eu", "ops", ["platform"])
		with data.gatekeeper_config as object.union(config, {"masking": [broken]})
	granted.action == "deny"
	startswith(granted.reason, `masking rule "cards" names topic "payments.eu"`)
}

test_an_approved_write_keeps_the_librarys_mask if {
	masking := {"name": "cards", "topics": ["payments.*"], "direction": "produce", "mask": [{"detector": "credit_card", "masker": "last4"}]}
	i := fixtures.with_overrides("produce", "topic", "payments.eu", "svc-x", [], {"grants": [payments_grant]})
	d := jit_approvals.decision with input as i with data.gatekeeper_config as object.union(config, {"masking": [masking]})
	d.action == "mask"
	d.mask == masking.mask
	endswith(d.reason, ": approved until 2026-11-23T07:54:49.689Z")
}

test_an_anonymous_client_is_never_offered_an_approval if {
	decide(fixtures.anonymous_input("produce", "topic", "payments.eu")) == {
		"action": "deny",
		"reason": sprintf("produce on topic \"payments.eu\": %s, which is never asked for an anonymous client: a grant to anonymous would be every unauthenticated client's; authenticate", [payments_why]),
		"ttl": "9s",
	}
}

test_the_librarys_own_approvals_come_after if {
	rule := {"name": "sandbox", "operations": ["create_topic"], "resources": {"type": "topic", "patterns": ["sandbox.*"]}, "approvers": ["user:sam"]}
	d := jit_approvals.decision with input as fixtures.policy_input("create_topic", "topic", "sandbox.tmp", "svc-x", [])
		with data.gatekeeper_config as object.union(config, {"approvals": [rule]})
	d.approval == {"approvers": ["user:sam"], "approvals_required": 1}
	startswith(d.reason, `create_topic on topic "sandbox.tmp" by svc-x (groups: none) needs approval by user:sam`)
}

test_every_operation_gets_exactly_one_well_formed_decision if {
	every op, types in fixtures.operations {
		every rtype in types {
			every who in [["svc-x", ["team-x"]], ["ops", ["platform"]], ["svc-payments", ["payments"]], ["anonymous", []]] {
				every name in ["payments.eu", "regulated.trades", "audit.logins", "risk-adhoc"] {
					fixtures.well_formed(decide(fixtures.with_overrides(op, rtype, name, who[0], who[1], {"request": {"group": "risk-adhoc"}})))
				}
			}
		}
	}
	decide({}).reason == "not a Gatekeeper policy input (see docs/policy-input.md)"
}

test_with_the_shipped_data if {
	# policies/data.json holds no approvals; platform may write anywhere, yet waits for a payments lead here.
	jit_approvals.decision.approval == payments_approval with input as fixtures.policy_input("produce", "topic", "payments.settled", "ops", ["platform"])
	jit_approvals.decision.action == "allow" with input as fixtures.policy_input("produce", "topic", "orders", "svc-orders", ["orders-writers"])
	jit_approvals.decision.action == "deny" with input as fixtures.policy_input("produce", "topic", "orders", "svc-x", [])
}

# -- the same idea as a configuration of the default library (data.json beside this file) --------

library_decision(policy_input) := d if {
	d := gatekeeper.decision with input as policy_input
		with data.gatekeeper_config as data.examples.jit_approvals.gatekeeper_config
}

library_as(op, rtype, name, sub, groups) := library_decision(fixtures.policy_input(op, rtype, name, sub, groups))

test_data_json_for_the_default_library if {
	library_as("produce", "topic", "payments.eu", "svc-x", ["team-x"]) == {
		"action": "approve",
		"approval": payments_approval,
		"reason": `produce on topic "payments.eu" by svc-x (groups: team-x) needs approval by group:payments-leads (approval rule "payments-writes": writes to payments.* outside the payments team are approved by a payments lead)`,
		"ttl": "5s",
	}
	library_as("produce", "topic", "payments.eu", "ops", ["platform"]).approval == payments_approval
	library_as("produce", "topic", "payments.eu", "svc-payments", ["payments"]).action == "allow"
	library_as("produce", "topic", "payments.eu.x", "svc-x", []).action == "deny"

	library_decision(regulated_fetch("risk-adhoc", "svc-risk", ["risk-analysts"])).approval == regulated_approval
	library_decision(regulated_fetch("regulated-archive-1", "svc-risk", ["risk-analysts"])).action == "allow"
	library_as("consume", "topic", "regulated.trades", "svc-risk", ["risk-analysts"]).action == "allow"

	library_as("alter_topic_config", "topic", "audit.logins", "ops", ["platform"]) == {
		"action": "approve",
		"approval": security_approval,
		"reason": `alter_topic_config on topic "audit.logins" by ops (groups: platform) needs 2 approvals by group:security (approval rule "audit-config-two-person": two people from security approve a config change of an audit topic)`,
		"ttl": "5s",
	}
	retention := fixtures.with_overrides("alter_topic_config", "topic", "audit.logins", "ops", ["platform"], {"request": {"configs": {"retention.ms": "1"}}})
	library_decision(retention).error == "policy_violation"

	i := fixtures.with_overrides("produce", "topic", "payments.eu", "svc-x", ["team-x"], {"grants": [payments_grant]})
	library_decision(i).reason == `time-boxed grant for produce on topic "payments.eu" until 2026-11-23T07:54:49.689Z`
}
