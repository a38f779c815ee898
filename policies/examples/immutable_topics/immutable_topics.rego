# METADATA
# title: Example - immutable topics, written as code
# description: |
#   A guardrail in front of the default library: records on immutable topics are never
#   deleted. Deleting such a topic, deleting its records, or changing the configs that make the
#   broker delete them (retention, cleanup policy) is refused with POLICY_VIOLATION, whatever
#   the grants say. Everything else is decided by data.gatekeeper.decision.
#
#   The default library has the same rule built in (immutable_topics in data.gatekeeper_config);
#   this is it written out in Rego, to copy and extend - say, to also refuse create_partitions,
#   which breaks the key-to-partition mapping of a keyed ledger.
#
#   Use it with  policy.decision: gatekeeper/examples/immutable_topics/decision
package gatekeeper.examples.immutable_topics

# Globs with "." as the delimiter.
immutable_topics := ["ledger", "ledger.**", "audit.**"]

# Topic configs whose change makes the broker delete records.
truncating_configs := {"retention.ms", "retention.bytes", "cleanup.policy"}

# METADATA
# title: decision
# description: Deleting or truncating an immutable topic is a policy violation; the rest is the library's.
# entrypoint: true
default decision := {
	"action": "deny",
	"reason": "not a Gatekeeper policy input (see docs/policy-input.md)",
	"ttl": "5s",
}

decision := {
	"action": "deny",
	"error": "policy_violation",
	"reason": sprintf("topic %q is immutable: %s", [input.resource.name, _truncation]),
	"ttl": _ttl,
} if {
	_immutable_topic
	_truncation
} else := data.gatekeeper.decision

_immutable_topic if {
	input.resource.type == "topic"
	some pattern in immutable_topics
	glob.match(pattern, ["."], input.resource.name)
}

# What the request would do to the topic's records; undefined if it leaves them alone.
_truncation := sprintf("%s would delete its records", [input.operation]) if {
	input.operation in {"delete_topic", "delete_records"}
} else := sprintf("changing %s would let the broker delete its records", [concat(", ", _changed)]) if {
	input.operation == "alter_topic_config"
	count(_changed) > 0
}

_changed := sort([key |
	is_object(input.request.configs)
	some key, _ in input.request.configs
	key in truncating_configs
])

# The library's ttl (its default_ttl), so both kinds of decision are cached alike.
default _ttl := "5s"

_ttl := data.gatekeeper.decision.ttl
