# The same rights as the broker ACLs of the differential test, written as a policy:
#   topics prefixed "pub."  READ, WRITE, DESCRIBE
#   groups prefixed "pub-"  READ (which implies DESCRIBE)
# and what Kafka lets every authenticated client do (DescribeCluster, listings filtered).
package gatekeeper

default decision := {"action": "deny", "reason": "not in the ACLs"}

decision := {"action": "allow", "reason": "as the ACLs", "ttl": "5s"} if _allowed

_topic_ops := {"describe_topic", "consume", "produce", "fetch_offset", "commit_offset"}

_group_ops := {"join_group", "commit_offset", "fetch_offset", "describe_group", "find_coordinator"}

_allowed if {
	input.resource.type == "topic"
	startswith(input.resource.name, "pub.")
	input.operation in _topic_ops
}

_allowed if {
	input.resource.type == "group"
	startswith(input.resource.name, "pub-")
	input.operation in _group_ops
}

_allowed if input.operation in {"list_topics", "list_groups", "describe_cluster", "api_versions", "authenticate"}
