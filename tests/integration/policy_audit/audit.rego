# The audit tests' policy: everything allowed except producing to audit-denied.*.
package gatekeeper

import rego.v1

default decision := {"action": "allow", "reason": "open", "ttl": "60s"}

decision := {"action": "deny", "reason": "audit-denied topics take no writes", "ttl": "60s"} if {
	input.operation == "produce"
	startswith(input.resource.name, "audit-denied.")
}
