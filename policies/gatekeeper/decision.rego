# METADATA
# title: Gatekeeper default policy library
# description: |
#   Default deny, configured with data rather than code. data.gatekeeper_config holds grants
#   (principals -> resource patterns -> operations), immutable topics, the operations every
#   client needs to connect, and the decision ttl; input.grants holds time-boxed grants from
#   approvals. The configuration's shape is in policies/README.md, the input contract in
#   docs/policy-input.md.
#
#   The decision is one rule with an ordered else-chain, plus a default: whatever the input and
#   the data, it has exactly one value (never undefined, never a conflict).
#
#   input.time is read for one thing only, whether a time-boxed grant is still live, and an
#   allow by such a grant has a ttl that ends when the grant does (a denial for want of a live
#   grant holds for ever): so the decision cache may leave the time out of its key
#   (ttl_covers_time below; docs/policy-engines.md, Cache).
# custom:
#   gatekeeper:
#     ttl_covers_time: true
package gatekeeper

# METADATA
# title: decision
# description: |
#   The decision for one policy input, matching gatekeeper/schemas/decision.schema.json.
#   In order: an immutable topic's truncation, or a broker config change that could truncate
#   it, is a policy violation (whatever the grants say); then an always-allowed operation, a
#   configured grant or a live time-boxed grant allows;
#   anything else is denied with a reason naming the request and the principal. The default
#   only applies to an input that does not follow the contract.
# entrypoint: true
default decision := {
	"action": "deny",
	"reason": "not a Gatekeeper policy input (see docs/policy-input.md)",
	"ttl": "5s",
}

decision := {
	"action": "deny",
	"error": "policy_violation",
	"reason": _cap(_immutable_reason),
	"ttl": _ttl,
} if {
	_immutable_reason
} else := {
	"action": "deny",
	"error": "policy_violation",
	"reason": _cap(_broker_truncation),
	"ttl": _ttl,
} if {
	_broker_truncation
} else := {"action": "allow", "reason": _cap(_allow.reason), "ttl": _allow.ttl} if {
	_allow
} else := {"action": "deny", "reason": _cap(_deny_reason), "ttl": _ttl}

# -- configuration -----------------------------------------------------------------------------
#
# Every value read from data is type-checked: a malformed entry is ignored (it allows nothing),
# and neither engine ever calls a builtin on a value of the wrong type.

default _config := {}

_config := data.gatekeeper_config if is_object(data.gatekeeper_config)

default _ttl := "5s"

_ttl := _config.default_ttl if is_string(_config.default_ttl)

# _config[key] if it is an array, else [].
_config_list(key) := _config[key] if is_array(_config[key])

else := []

# -- immutable topics ----------------------------------------------------------------------------

# Topic configs whose change can delete records (shorter retention, compaction).
_truncating_configs := {"retention.ms", "retention.bytes", "cleanup.policy"}

# The broker configs that give those topic configs their value on every topic without an
# override of its own (Kafka's server synonyms of retention.ms, retention.bytes, cleanup.policy).
_truncating_broker_configs := {
	"log.retention.ms",
	"log.retention.minutes",
	"log.retention.hours",
	"log.retention.bytes",
	"log.cleanup.policy",
}

_immutable_patterns := [pattern |
	some pattern in _config_list("immutable_topics")
	is_string(pattern)
]

_immutable_reason := sprintf("topic %q is immutable: %s", [input.resource.name, _truncation]) if {
	input.resource.type == "topic"
	_matches_any(_config_list("immutable_topics"), input.resource.name)
}

_truncation := sprintf("%s is never allowed on it", [input.operation]) if {
	input.operation in {"delete_topic", "delete_records"}
} else := sprintf("alter_topic_config may not change %s", [concat(", ", _truncating_keys)]) if {
	input.operation == "alter_topic_config"
	count(_truncating_keys) > 0
} else := concat(" ", [
	"AlterConfigs replaces every config of the topic, so it resets retention.ms, retention.bytes",
	"and cleanup.policy to the broker defaults: change its other configs with IncrementalAlterConfigs",
]) if {
	input.operation == "alter_topic_config"
	_replaces_every_config
}

_truncating_keys := sort([key |
	some key, _ in _request_configs
	key in _truncating_configs
])

# Legacy AlterConfigs (API key 33) replaces the resource's whole config: every key it leaves out
# is deleted. IncrementalAlterConfigs (44) changes only the keys it names, which is why naming a
# key counts whatever its value (the input does not say whether it is a SET or a DELETE).
_replaces_every_config if input.api.key == 33

# A change to a broker's config (or, with an empty name, to every broker's default) that could
# make the broker delete records of an immutable topic: one that names a retention or cleanup
# config, or a legacy AlterConfigs, which deletes them when it leaves them out. Denied while any
# topic is immutable, since whether a topic has an override of its own is not in the input.
_broker_truncation := sprintf("%s: alter_cluster_config may not change %s while topics are immutable (%s): it applies to every topic without an override of its own", [
	_broker_named,
	concat(", ", _truncating_broker_keys),
	concat(", ", _immutable_patterns),
]) if {
	_immutable_broker_change
	count(_truncating_broker_keys) > 0
} else := sprintf("%s: AlterConfigs replaces every dynamic config of the broker, so it resets %s while topics are immutable (%s): change other broker configs with IncrementalAlterConfigs", [
	_broker_named,
	concat(", ", sort(_truncating_broker_configs)),
	concat(", ", _immutable_patterns),
]) if {
	_immutable_broker_change
	_replaces_every_config
}

_immutable_broker_change if {
	input.operation == "alter_cluster_config"
	input.request.config_resource.type == "broker"
	count(_immutable_patterns) > 0
}

_truncating_broker_keys := sort([key |
	some key, _ in _request_configs
	key in _truncating_broker_configs
])

_broker_named := "the cluster-wide broker default" if {
	input.request.config_resource.name == ""
} else := sprintf("broker %q", [input.request.config_resource.name]) if {
	is_string(input.request.config_resource.name)
} else := "a broker"

default _request_configs := {}

_request_configs := input.request.configs if is_object(input.request.configs)

# -- allowing ------------------------------------------------------------------------------------

# Why the request is allowed, and for how long that may be cached; undefined if it is not
# allowed. Ordered, so exactly one reason.
_allow := {"reason": sprintf("%s is allowed to every client", [input.operation]), "ttl": _ttl} if {
	input.operation in _config_list("always_allowed")
} else := {
	"reason": sprintf("grant %d allows %s on %s %q", [i, input.operation, input.resource.type, input.resource.name]),
	"ttl": _ttl,
} if {
	i := _matching_grants[0]
} else := {
	"reason": sprintf("time-boxed grant for %s on %s %q until %s", [
		input.operation, input.resource.type, input.resource.name, g.expires_at,
	]),
	"ttl": _ttl_until(g.expires_at),
} if {
	g := _live_time_boxed_grants[0]
}

# Indexes of the configured grants that allow this request, lowest first.
_matching_grants := [i |
	some i, grant in _config_list("grants")
	is_object(grant)
	_principal_matches(grant.principals)
	_resource_matches(grant.resources)
	_operation_matches(grant.operations)
]

_principal_matches(principals) if principals == "*"

_principal_matches(principals) if {
	is_object(principals)
	is_array(principals.subs)
	input.principal.sub in principals.subs
}

_principal_matches(principals) if {
	is_object(principals)
	is_array(principals.groups)
	some group in principals.groups
	group in input.principal.groups
}

_resource_matches(resources) if {
	is_object(resources)
	resources.type == input.resource.type
	is_array(resources.patterns)
	_matches_any(resources.patterns, input.resource.name)
}

# Cluster administration Gatekeeper's broker user can do with its own rights: a grant must name
# the operation, a "*" does not cover it (docs/security.md).
_named_only := {
	"alter_acls",
	"alter_user_credentials",
	"describe_user_credentials",
	"alter_client_quotas",
	"describe_client_quotas",
	"elect_leaders",
	"reassign_partitions",
	"list_partition_reassignments",
	"alter_replica_log_dirs",
	"describe_log_dirs",
	"describe_quorum",
	"update_features",
	"list_config_resources",
}

_operation_matches(operations) if {
	is_array(operations)
	"*" in operations
	not input.operation in _named_only
}

_operation_matches(operations) if {
	is_array(operations)
	input.operation in operations
}

# Globs with "." as the delimiter: "orders.*" matches "orders.eu", not "orders.eu.x";
# "orders.**" matches any depth; "**" matches every name.
_matches_any(patterns, name) if {
	some pattern in patterns
	is_string(pattern)
	glob.match(pattern, ["."], name)
}

# Time-boxed grants from approvals for exactly this operation and resource, not yet expired.
_live_time_boxed_grants := [grant |
	some grant in input.grants
	is_object(grant)
	grant.operation == input.operation
	is_object(grant.resource)
	grant.resource.type == input.resource.type
	grant.resource.name == input.resource.name
	is_string(grant.expires_at)
	time.parse_rfc3339_ns(grant.expires_at) > time.parse_rfc3339_ns(input.time)
]

# The ttl of a decision that holds until expires_at (a live grant's expiry, later than
# input.time): the default ttl, or the whole milliseconds left if that is shorter - "0ms" (not
# cached) in the last millisecond. A malformed default ttl is kept as it is (and refused).
_ttl_until(expires_at) := sprintf("%dms", [floor(left / 1000000)]) if {
	regex.match(`^[0-9]+(\.[0-9]+)?(ms|s|m|h)$`, _ttl)
	left := time.parse_rfc3339_ns(expires_at) - time.parse_rfc3339_ns(input.time)
	left < time.parse_duration_ns(_ttl)
} else := _ttl

# -- denying -------------------------------------------------------------------------------------

_deny_reason := sprintf("no grant names %s on %s %q for %s (groups: %s): it is cluster administration, which a \"*\" grant does not cover", [
	input.operation, input.resource.type, input.resource.name, input.principal.sub, _groups_text,
]) if {
	input.operation in _named_only
} else := sprintf("no grant allows %s on %s %q for %s (groups: %s)", [
	input.operation, input.resource.type, input.resource.name, input.principal.sub, _groups_text,
])

_groups_text := concat(", ", input.principal.groups) if {
	count(input.principal.groups) > 0
} else := "none"

# The decision schema caps reason at 1024 characters (names and group lists can be long).
_cap(reason) := reason if {
	count(reason) <= 1024
} else := concat("", [substring(reason, 0, 1021), "..."])
