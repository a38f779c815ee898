# The masking benchmark's policy: pmask.* masked on produce, cmask.* masked on consume,
# everything else (plain.*, the tools' groups) allowed as it is.
package gatekeeper

import rego.v1

default decision := {"action": "allow", "reason": "open", "ttl": "60s"}

_items := [
	{"field": "$.card", "masker": "last4"},
	{"field": "$.ssn", "masker": "redact"},
	{"field": "$.customer.email", "masker": "hash", "options": {"length": 16}},
]

decision := {"action": "mask", "reason": "PII masked before it is stored", "mask": _items, "ttl": "60s"} if {
	input.operation == "produce"
	startswith(input.resource.name, "pmask.")
} else := {"action": "mask", "reason": "PII masked on the way out", "mask": _items, "ttl": "60s"} if {
	input.operation == "consume"
	startswith(input.resource.name, "cmask.")
}
