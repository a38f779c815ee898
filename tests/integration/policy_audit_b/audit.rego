# The candidate policy of the what-if test: audited.orders takes no more writes, and
# audit-denied.* is opened.
package gatekeeper

import rego.v1

default decision := {"action": "allow", "reason": "open", "ttl": "60s"}

decision := {"action": "deny", "reason": "orders are frozen", "ttl": "60s"} if {
	input.operation == "produce"
	input.resource.name == "audited.orders"
}
