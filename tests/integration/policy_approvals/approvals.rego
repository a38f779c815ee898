# The approval tests' policy: everything allowed, except that
# - producing to guarded.* needs an approval from group:leads (or a live grant from one);
# - producing to longgrant.* needs one, for a 10-minute grant;
# - producing to twoperson.* needs two approvals from group:leads;
# - joining a consumer group named new-* needs an approval from group:leads (newlong-*: for 10 minutes:
#   a member heartbeats as long as it stays, each heartbeat a join_group decided on the grant).
package gatekeeper

import rego.v1

default decision := {"action": "allow", "reason": "open", "ttl": "60s"}

_granted if {
	some grant in input.grants
	grant.operation == input.operation
	grant.resource == input.resource
	time.parse_rfc3339_ns(grant.expires_at) > time.parse_rfc3339_ns(input.time)
}

_approval(required) := {"approvers": ["group:leads"], "grant_ttl": "4s", "wait": "8s", "approvals_required": required}

_long_approval := {"approvers": ["group:leads"], "grant_ttl": "10m", "wait": "8s"}

decision := {"action": "allow", "reason": "approved grant", "ttl": "0ms"} if {
	_granted
} else := {"action": "approve", "reason": "writes to guarded topics need a lead's approval", "approval": _approval(1), "ttl": "0ms"} if {
	input.operation == "produce"
	startswith(input.resource.name, "guarded.")
} else := {"action": "approve", "reason": "a long grant", "approval": _long_approval, "ttl": "0ms"} if {
	input.operation == "produce"
	startswith(input.resource.name, "longgrant.")
} else := {"action": "approve", "reason": "two leads must approve", "approval": _approval(2), "ttl": "0ms"} if {
	input.operation == "produce"
	startswith(input.resource.name, "twoperson.")
} else := {"action": "approve", "reason": "new consumer groups need a lead's approval", "approval": _approval(1), "ttl": "0ms"} if {
	input.operation == "join_group"
	startswith(input.resource.name, "new-")
} else := {"action": "approve", "reason": "a long-lived new group", "approval": _long_approval, "ttl": "0ms"} if {
	input.operation == "join_group"
	startswith(input.resource.name, "newlong-")
}
