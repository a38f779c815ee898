# METADATA
# title: Example - read-only audit topics
# description: |
#   A guardrail in front of the default library: audit topics are read-only for everyone.
#   Anyone may read them (consume, describe, fetch and commit offsets); nobody may write,
#   delete, truncate, repartition or reconfigure them through Gatekeeper, whatever the grants
#   say (the audit pipeline writes to the brokers directly). Everything else - including the
#   consumer groups audit readers use - is decided by data.gatekeeper.decision, configured with
#   data.gatekeeper_config as usual.
#
#   Use it with  policy.decision: gatekeeper/examples/readonly_audit/decision
package gatekeeper.examples.readonly_audit

# Globs with "." as the delimiter: "audit.**" is every topic under audit.
audit_topics := ["audit", "audit.**"]

# Operations on a topic that only read it. Anything else on an audit topic is refused.
read_operations := {"consume", "describe_topic", "describe_topic_config", "fetch_offset", "commit_offset"}

# METADATA
# title: decision
# description: Reads of audit topics are allowed, anything else on them is a policy violation; the rest is the library's.
# entrypoint: true
default decision := {
	"action": "deny",
	"reason": "not a Gatekeeper policy input (see docs/policy-input.md)",
	"ttl": "5s",
}

decision := {
	"action": "allow",
	"reason": sprintf("topic %q is an audit topic: %s is allowed to everyone", [input.resource.name, input.operation]),
	"ttl": _ttl,
} if {
	_audit_topic
	input.operation in read_operations
} else := {
	"action": "deny",
	"error": "policy_violation",
	"reason": sprintf("topic %q is an audit topic, read-only for everyone: %s is not allowed", [input.resource.name, input.operation]),
	"ttl": _ttl,
} if {
	_audit_topic
} else := data.gatekeeper.decision

_audit_topic if {
	input.resource.type == "topic"
	some pattern in audit_topics
	glob.match(pattern, ["."], input.resource.name)
}

# The library's ttl (its default_ttl), so both kinds of decision are cached alike.
default _ttl := "5s"

_ttl := data.gatekeeper.decision.ttl
