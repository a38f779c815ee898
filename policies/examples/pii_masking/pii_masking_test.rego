package gatekeeper.examples.pii_masking_test

import data.gatekeeper
import data.gatekeeper.examples.pii_masking
import data.gatekeeper.inputs_test as fixtures

# The library's configuration in these tests: who may read and write is decided here.
config := {
	"default_ttl": "9s",
	"grants": [
		{"principals": {"groups": ["analytics-readers", "orders-owners"]}, "resources": {"type": "topic", "patterns": ["orders", "orders.*"]}, "operations": ["consume", "describe_topic"]},
		{"principals": {"groups": ["orders-writers"]}, "resources": {"type": "topic", "patterns": ["orders", "orders.*"]}, "operations": ["produce"]},
		{"principals": {"groups": ["payments-writers"]}, "resources": {"type": "topic", "patterns": ["payments.*"]}, "operations": ["produce", "consume"]},
		{"principals": {"groups": ["analytics-readers"]}, "resources": {"type": "group", "patterns": ["analytics-*"]}, "operations": ["join_group"]},
	],
}

decide(policy_input) := d if {
	d := pii_masking.decision with input as policy_input with data.gatekeeper_config as config
}

decide_as(op, rtype, name, sub, groups) := decide(fixtures.policy_input(op, rtype, name, sub, groups))

orders_mask := [
	{"field": "$.payment.card_number", "masker": "last4"},
	{"field": "$..ssn", "masker": "redact"},
	{"detector": "email", "masker": "hash"},
]

payments_mask := [{"detector": "credit_card", "masker": "last4", "on_error": "deny"}]

test_readers_outside_the_owners_get_card_numbers_ssns_and_emails_masked if {
	decide_as("consume", "topic", "orders", "svc-analytics", ["analytics-readers"]) == {
		"action": "mask",
		"mask": orders_mask,
		"reason": `grant 0 allows consume on topic "orders"; topic "orders" carries PII: outside orders-owners, card numbers show their last 4 digits, SSNs are redacted and e-mail addresses hashed`,
		"ttl": "9s",
	}
	decide_as("consume", "topic", "orders.eu", "svc-analytics", ["analytics-readers", "orders-owners-eu"]).mask == orders_mask
}

test_owners_read_orders_raw if {
	decide_as("consume", "topic", "orders", "svc-billing", ["orders-owners"]) == {
		"action": "allow",
		"reason": `grant 0 allows consume on topic "orders"`,
		"ttl": "9s",
	}
	decide_as("consume", "topic", "orders.eu", "svc-billing", ["analytics-readers", "orders-owners"]).action == "allow"
}

test_orders_writes_and_other_operations_are_not_masked if {
	decide_as("produce", "topic", "orders", "svc-orders", ["orders-writers"]) == {
		"action": "allow",
		"reason": `grant 1 allows produce on topic "orders"`,
		"ttl": "9s",
	}
	decide_as("describe_topic", "topic", "orders", "svc-analytics", ["analytics-readers"]).action == "allow"
	decide_as("join_group", "group", "analytics-orders", "svc-analytics", ["analytics-readers"]).action == "allow"
}

test_near_miss_topics_are_not_orders if {
	every name in ["orders-x", "orders.eu.x", "ordersx", "x.orders"] {
		d := pii_masking.decision with input as fixtures.policy_input("consume", "topic", name, "svc-analytics", ["analytics-readers"])
			with data.gatekeeper_config as {"grants": [{"principals": "*", "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["*"]}]}
		d.action == "allow"
	}
}

test_no_raw_card_number_is_written_to_payments if {
	decide_as("produce", "topic", "payments.settled", "svc-payments", ["payments-writers"]) == {
		"action": "mask",
		"mask": payments_mask,
		"reason": `grant 2 allows produce on topic "payments.settled"; no raw card number is written to topic "payments.settled": card numbers keep their last 4 digits`,
		"ttl": "9s",
	}

	# Whoever writes: owners of orders too.
	decide_as("produce", "topic", "payments.refunds", "svc-payments", ["payments-writers", "orders-owners"]).mask == payments_mask

	# Reading payments, and writing near-miss topics, are the library's.
	decide_as("consume", "topic", "payments.settled", "svc-payments", ["payments-writers"]).action == "allow"
	d := pii_masking.decision with input as fixtures.policy_input("produce", "topic", "payments", "svc", [])
		with data.gatekeeper_config as {"grants": [{"principals": "*", "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["*"]}]}
	d.action == "allow"
}

test_denials_stay_denials if {
	decide_as("consume", "topic", "orders", "svc-x", ["marketing"]) == {
		"action": "deny",
		"reason": `no grant allows consume on topic "orders" for svc-x (groups: marketing)`,
		"ttl": "9s",
	}
	decide_as("produce", "topic", "payments.settled", "svc-analytics", ["analytics-readers"]).action == "deny"
	decide_as("produce", "topic", "orders", "svc-analytics", ["analytics-readers"]).action == "deny"
}

test_the_librarys_own_masks_come_first if {
	rule := {"name": "notes", "topics": ["orders"], "direction": "consume", "mask": [{"field": "$.notes", "masker": "redact"}]}
	d := pii_masking.decision with input as fixtures.policy_input("consume", "topic", "orders", "svc-analytics", ["analytics-readers"])
		with data.gatekeeper_config as object.union(config, {"masking": [rule]})
	d.mask == array.concat(rule.mask, orders_mask)
	startswith(d.reason, `grant 0 allows consume on topic "orders"; masked by masking rule "notes"; topic "orders" carries PII`)

	# An owner is not exempt from the library's rule, only from this example's.
	owner := pii_masking.decision with input as fixtures.policy_input("consume", "topic", "orders", "svc-billing", ["orders-owners"])
		with data.gatekeeper_config as object.union(config, {"masking": [rule]})
	owner.mask == rule.mask
}

test_time_boxed_grant_ttl_is_kept if {
	grant := {"operation": "consume", "resource": {"type": "topic", "name": "orders"}, "expires_at": "2026-11-23T07:30:00Z"}
	i := fixtures.with_overrides("consume", "topic", "orders", "svc-x", [], {"grants": [grant], "time": "2026-11-23T07:29:58Z"})
	d := decide(i)
	d.action == "mask"
	d.ttl == "2000ms"
}

test_every_operation_gets_exactly_one_well_formed_decision if {
	every op, types in fixtures.operations {
		every rtype in types {
			every who in [["svc-analytics", ["analytics-readers"]], ["svc-billing", ["orders-owners"]], ["svc-payments", ["payments-writers"]]] {
				every name in ["orders", "orders.eu", "payments.settled", "analytics-1"] {
					fixtures.well_formed(decide_as(op, rtype, name, who[0], who[1]))
				}
			}
		}
	}
	decide({}).reason == "not a Gatekeeper policy input (see docs/policy-input.md)"
}

test_with_the_shipped_data if {
	# policies/data.json masks nothing of its own and grants analytics-readers consume on orders.
	pii_masking.decision.mask == orders_mask with input as fixtures.policy_input("consume", "topic", "orders", "svc-analytics", ["analytics-readers"])
	pii_masking.decision.mask == payments_mask with input as fixtures.policy_input("produce", "topic", "payments.settled", "ops", ["platform"])
	pii_masking.decision.action == "allow" with input as fixtures.policy_input("produce", "topic", "orders", "svc-orders", ["orders-writers"])
}

# -- the same idea as a configuration of the default library (data.json beside this file) --------

library_decision(op, name, sub, groups) := d if {
	d := gatekeeper.decision with input as fixtures.policy_input(op, "topic", name, sub, groups)
		with data.gatekeeper_config as data.examples.pii_masking.gatekeeper_config
}

test_data_json_for_the_default_library if {
	library_decision("consume", "orders", "svc-analytics", ["analytics-readers"]) == {
		"action": "mask",
		"mask": orders_mask,
		"reason": `grant 1 allows consume on topic "orders"; masked by masking rule "orders-pii": outside orders-owners, card numbers show their last 4 digits, SSNs are redacted and e-mail addresses hashed`,
		"ttl": "5s",
	}
	library_decision("consume", "orders.eu", "svc-billing", ["orders-owners"]).action == "allow"
	library_decision("consume", "orders", "ops", ["platform"]).mask == orders_mask
	library_decision("produce", "orders", "svc-orders", ["orders-writers"]).action == "allow"
	library_decision("produce", "payments.settled", "svc-payments", ["payments-writers"]) == {
		"action": "mask",
		"mask": payments_mask,
		"reason": `grant 3 allows produce on topic "payments.settled"; masked by masking rule "payments-no-raw-cards": no raw card number is written to payments.*`,
		"ttl": "5s",
	}
	library_decision("consume", "payments.settled", "ops", ["platform"]).action == "allow"
	library_decision("consume", "orders", "svc-orders", ["orders-writers"]).action == "deny"
	library_decision("produce", "payments.settled", "svc-analytics", ["analytics-readers"]).action == "deny"
}
