# METADATA
# title: Gatekeeper default policy library
# description: |
#   Default deny. Configured with data, not code: data.gatekeeper_config holds grants
#   (principals -> resource patterns -> operations), immutable topics, operations every
#   client needs, and the decision ttl. See policies/README.md.
package gatekeeper

default _config := {}

_config := data.gatekeeper_config

_ttl := object.get(_config, "default_ttl", "5s")

_truncating_configs := {"retention.ms", "retention.bytes", "cleanup.policy"}

# METADATA
# title: decision
# description: The decision for one policy input; always exactly one object.
# entrypoint: true
decision := _immutable_violation if {
	_immutable_violation
} else := {"action": "allow", "reason": _allow_reason, "ttl": _ttl} if {
	_allow_reason
} else := {"action": "deny", "reason": _deny_reason, "ttl": _ttl}

_immutable_violation := {
	"action": "deny",
	"error": "policy_violation",
	"reason": sprintf("topic %q is immutable: %s is never allowed on it", [input.resource.name, input.operation]),
	"ttl": _ttl,
} if {
	_immutable_topic
	_truncating
}

_immutable_topic if {
	input.resource.type == "topic"
	some pattern in object.get(_config, "immutable_topics", [])
	glob.match(pattern, ["."], input.resource.name)
}

_truncating if input.operation in {"delete_topic", "delete_records"}

_truncating if {
	input.operation == "alter_topic_config"
	some key, _ in object.get(input.request, "configs", {})
	key in _truncating_configs
}

_allow_reason := sprintf("%s is allowed to every client", [input.operation]) if {
	input.operation in object.get(_config, "always_allowed", [])
} else := sprintf("grant %d allows %s on %s %q", [i, input.operation, input.resource.type, input.resource.name]) if {
	some i, grant in object.get(_config, "grants", [])
	_grant_matches(grant)
} else := sprintf("time-boxed grant for %s on %s %q until %s", [input.operation, input.resource.type, input.resource.name, g.expires_at]) if {
	some g in input.grants
	g.operation == input.operation
	g.resource == input.resource
	time.parse_rfc3339_ns(g.expires_at) > time.parse_rfc3339_ns(input.time)
}

_grant_matches(grant) if {
	_principal_matches(grant.principals)
	grant.resources.type == input.resource.type
	some pattern in grant.resources.patterns
	glob.match(pattern, ["."], input.resource.name)
	_operation_matches(grant.operations)
}

_principal_matches(p) if p == "*"

# is_object guards: the embedded engine treats builtin errors (object.get on "*") as errors,
# not as undefined the way OPA does, so the policy never relies on that difference.
_principal_matches(p) if {
	is_object(p)
	input.principal.sub in object.get(p, "subs", [])
}

_principal_matches(p) if {
	is_object(p)
	some group in object.get(p, "groups", [])
	group in input.principal.groups
}

_operation_matches(ops) if "*" in ops

_operation_matches(ops) if input.operation in ops

_deny_reason := sprintf("no grant allows %s on %s %q for %s (groups: %s)", [
	input.operation, input.resource.type, input.resource.name, input.principal.sub,
	_groups_text,
])

_groups_text := concat(", ", input.principal.groups) if count(input.principal.groups) > 0

else := "none"
