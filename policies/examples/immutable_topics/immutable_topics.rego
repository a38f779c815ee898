# METADATA
# title: Example - immutable topics, written as code
# description: |
#   A guardrail in front of the default library: records on immutable topics are never
#   deleted. Deleting such a topic, deleting its records, or changing the configs that make the
#   broker delete them (retention, cleanup policy) - on the topic, or as the broker defaults
#   that apply to every topic without an override of its own - is refused with
#   POLICY_VIOLATION, whatever the grants say. Everything else is decided by
#   data.gatekeeper.decision.
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

# The broker configs that set those for every topic without an override of its own.
broker_truncating_configs := {
	"log.retention.ms",
	"log.retention.minutes",
	"log.retention.hours",
	"log.retention.bytes",
	"log.cleanup.policy",
}

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
} else := {
	"action": "deny",
	"error": "policy_violation",
	"reason": _broker_truncation,
	"ttl": _ttl,
} if {
	_broker_truncation
} else := data.gatekeeper.decision

_immutable_topic if {
	input.resource.type == "topic"
	some pattern in immutable_topics
	glob.match(pattern, ["."], input.resource.name)
}

# What the request would do to the topic's records; undefined if it leaves them alone.
_truncation := sprintf("%s would delete its records", [input.operation]) if {
	input.operation in {"delete_topic", "delete_records"}
} else := sprintf("changing %s would let the broker delete its records", [concat(", ", _changed(truncating_configs))]) if {
	input.operation == "alter_topic_config"
	count(_changed(truncating_configs)) > 0
} else := "AlterConfigs replaces every config of the topic, which would let the broker delete its records: use IncrementalAlterConfigs" if {
	input.operation == "alter_topic_config"
	_replaces_every_config
}

# The keys of configs the request changes (a null value, back to the default, counts).
_changed(configs) := sort([key |
	is_object(input.request.configs)
	some key, _ in input.request.configs
	key in configs
])

# Legacy AlterConfigs (API key 33) replaces the whole config: the keys it leaves out are deleted.
_replaces_every_config if input.api.key == 33

# Why a change of a broker's config (an empty name: every broker's default) could delete records
# of immutable topics; undefined if it cannot. Whether a topic has an override of its own is not
# in the input, so any such change counts.
_broker_truncation := sprintf("%s: changing %s would let the broker delete records of immutable topics", [
	_broker,
	concat(", ", _changed(broker_truncating_configs)),
]) if {
	_broker_config_change
	count(_changed(broker_truncating_configs)) > 0
} else := sprintf("%s: AlterConfigs replaces every dynamic config of the broker, which would let it delete records of immutable topics: use IncrementalAlterConfigs", [_broker]) if {
	_broker_config_change
	_replaces_every_config
}

_broker_config_change if {
	input.operation == "alter_cluster_config"
	input.request.config_resource.type == "broker"
}

_broker := "the cluster-wide broker default" if {
	input.request.config_resource.name == ""
} else := sprintf("broker %q", [input.request.config_resource.name]) if {
	is_string(input.request.config_resource.name)
} else := "a broker"

# The library's ttl (its default_ttl), so both kinds of decision are cached alike.
default _ttl := "5s"

_ttl := data.gatekeeper.decision.ttl
