# The share group tests' policy: everything allowed, except that
# - no one consumes sdenied.* (its share group heartbeats and share fetches are refused);
# - records consumed from smask.* are masked (the card number's last four digits kept);
# - share groups named forbidden-* are refused to everyone;
# - only the "platform" group may alter or delete share group offsets;
# - share groups named hidden-* are not described (nor listed) to anyone outside "platform".
package gatekeeper

import rego.v1

default decision := {"action": "allow", "reason": "open", "ttl": "60s"}

_platform if "platform" in input.principal.groups

decision := {"action": "deny", "reason": "sdenied.* is not consumed", "ttl": "60s"} if {
	input.operation == "consume"
	input.resource.type == "topic"
	startswith(input.resource.name, "sdenied.")
} else := {"action": "deny", "reason": "forbidden share group", "ttl": "60s"} if {
	input.resource.type == "share_group"
	startswith(input.resource.name, "forbidden-")
} else := {"action": "deny", "reason": "share group offsets are the platform's", "ttl": "60s"} if {
	input.resource.type == "share_group"
	input.operation in {"commit_offset", "delete_offsets"}
	not _platform
} else := {"action": "deny", "reason": "hidden share group", "ttl": "60s"} if {
	input.resource.type == "share_group"
	input.operation == "describe_group"
	startswith(input.resource.name, "hidden-")
	not _platform
} else := {"action": "mask", "reason": "cards are masked", "ttl": "60s", "mask": [
	{"field": "$.card", "masker": "last4"},
]} if {
	input.operation == "consume"
	input.resource.type == "topic"
	startswith(input.resource.name, "smask.")
}
