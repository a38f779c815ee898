# A platform team's policy for the acceptance tests: decided on the principal's groups.
package gatekeeper

default decision := {"action": "deny", "reason": "no rule allows this"}

writable := {"orders-writers": {"orders"}}

readable := {"orders-readers": {"orders"}, "orders-writers": {"orders", "payments"}}

immutable := {"audit.log"}

housekeeping := {"api_versions", "authenticate", "find_coordinator", "list_topics", "list_groups", "describe_cluster", "init_producer", "join_group", "commit_offset", "fetch_offset"}

decision := {"action": "allow", "reason": "housekeeping", "ttl": "1s"} if {
	input.operation in housekeeping
	input.resource.type != "topic"
} else := {"action": "deny", "reason": sprintf("topic %s is immutable: it can never be deleted or truncated", [input.resource.name]), "error": "policy_violation"} if {
	input.operation in {"delete_topic", "delete_records"}
	input.resource.name in immutable
} else := {"action": "allow", "reason": "public groups may be described by anyone", "ttl": "1s"} if {
	input.operation == "describe_group"
	startswith(input.resource.name, "pub-")
} else := {"action": "allow", "reason": "platform team", "ttl": "1s"} if {
	"platform" in input.principal.groups
} else := {"action": "allow", "reason": "writer", "ttl": "1s"} if {
	input.operation in {"produce", "describe_topic"}
	some g in input.principal.groups
	input.resource.name in writable[g]
} else := {"action": "allow", "reason": "reader", "ttl": "1s"} if {
	input.operation in {"consume", "describe_topic", "commit_offset", "fetch_offset", "list_offsets"}
	some g in input.principal.groups
	input.resource.name in readable[g]
} else := {"action": "deny", "reason": sprintf("%s may not %s topic %s", [input.principal.sub, input.operation, input.resource.name])} if {
	input.resource.type == "topic"
}
