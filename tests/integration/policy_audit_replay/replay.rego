# The audit replay test's policy: everything allowed, except that records consumed from
# replay.* are masked (card to its last four digits) outside the "owners" group, and
# "outsider" may not consume them at all.
package gatekeeper

import rego.v1

default decision := {"action": "allow", "reason": "open", "ttl": "60s"}

decision := {"action": "deny", "reason": "outsiders may not read replay topics", "ttl": "60s"} if {
	input.operation == "consume"
	startswith(input.resource.name, "replay.")
	input.principal.sub == "outsider"
} else := {"action": "mask", "reason": "cards are masked outside owners", "ttl": "60s", "mask": [
	{"field": "$.card", "masker": "last4"},
]} if {
	input.operation == "consume"
	startswith(input.resource.name, "replay.")
	not "owners" in input.principal.groups
}
