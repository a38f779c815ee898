# METADATA
# title: Example - PII masking
# description: |
#   A guardrail in front of the default library that decides what an allowed reader or writer
#   sees, never whether it may read or write. Outside the orders-owners group, whoever the library
#   lets consume the orders topics reads card numbers as their last four digits, SSNs redacted
#   and e-mail addresses hashed; and whatever the library lets anyone produce to payments.* has
#   every card number found in it cut to its last four digits before it reaches the broker, so
#   no raw card number is ever written there. A denial stays a denial; everything else is
#   data.gatekeeper.decision, configured with data.gatekeeper_config as usual (its own masking
#   rules included: their items come first).
#
#   Use it with  policy.decision: gatekeeper/examples/pii_masking/decision
package gatekeeper.examples.pii_masking

# Globs with "." as the delimiter: "orders.*" is orders.eu, not orders.eu.x.
orders_topics := ["orders", "orders.*"]

# The identity-provider group whose members read the orders topics as they are.
owners_group := "orders-owners"

# What everyone else reads (decision.schema.json, mask items): the payment's card number by its
# path in the record, SSNs wherever they are, e-mail addresses wherever a detector finds them.
orders_mask := [
	{"field": "$.payment.card_number", "masker": "last4"},
	{"field": "$..ssn", "masker": "redact"},
	{"detector": "email", "masker": "hash"},
]

payments_topics := ["payments.*"]

# Any card number in a record written to payments.*, wherever it is; a record that cannot be
# scanned is refused (deny is also the default on produce, said here for the reader).
payments_mask := [{"detector": "credit_card", "masker": "last4", "on_error": "deny"}]

# METADATA
# title: decision
# description: The library's decision, with a mask added to its allows of orders reads by non-owners and of payments writes.
# entrypoint: true
default decision := {
	"action": "deny",
	"reason": "not a Gatekeeper policy input (see docs/policy-input.md)",
	"ttl": "5s",
}

decision := _masked(orders_mask, sprintf("topic %q carries PII: outside %s, card numbers show their last 4 digits, SSNs are redacted and e-mail addresses hashed", [input.resource.name, owners_group])) if {
	_library_lets_through
	input.operation == "consume"
	_topic_in(orders_topics)
	not owners_group in input.principal.groups
} else := _masked(payments_mask, sprintf("no raw card number is written to topic %q: card numbers keep their last 4 digits", [input.resource.name])) if {
	_library_lets_through
	input.operation == "produce"
	_topic_in(payments_topics)
} else := data.gatekeeper.decision

# An allow, or a mask of the library's own (this adds to it).
_library_lets_through if data.gatekeeper.decision.action in {"allow", "mask"}

_topic_in(patterns) if {
	input.resource.type == "topic"
	some pattern in patterns
	glob.match(pattern, ["."], input.resource.name)
}

# The library's decision turned into a mask with these items after its own, for as long as the
# library's decision holds (its ttl). More than 64 items in all would be refused as off-schema
# (and so denied); the library's own rules and these three stay far below that.
_masked(items, why) := {
	"action": "mask",
	"mask": array.concat(object.get(data.gatekeeper.decision, "mask", []), items),
	"reason": _cap(sprintf("%s; %s", [data.gatekeeper.decision.reason, why])),
	"ttl": data.gatekeeper.decision.ttl,
}

# The decision schema caps reason at 1024 characters.
_cap(reason) := reason if {
	count(reason) <= 1024
} else := concat("", [substring(reason, 0, 1021), "..."])
