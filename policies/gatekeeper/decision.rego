# METADATA
# title: Gatekeeper default policy library
# description: |
#   Default deny, configured with data rather than code. data.gatekeeper_config holds grants
#   (principals -> resource patterns -> operations), immutable topics, the operations every
#   client needs to connect, masking rules (what an allowed produce or consume of a topic
#   masks), approval rules (which requests wait for someone to approve them, and who), the
#   consumer groups that are known, and the decision ttl; input.grants holds time-boxed grants
#   from approvals. The configuration's shape is in policies/README.md, the input contract in
#   docs/policy-input.md.
#
#   The decision is one rule with an ordered else-chain, plus a default: whatever the input and
#   the data, it has exactly one value (never undefined, never a conflict). One module: the
#   opa engine pushes modules one at a time, so parts of one package that call each other
#   cannot live in separate files.
#
#   input.time is read for one thing only, whether a time-boxed grant is still live, and a
#   decision made on such a grant (an allow, a mask, or the denial of a malformed masking rule)
#   has a ttl that ends when the grant does; a denial or an approve for want of a live grant
#   holds for ever, since an expired grant stays expired. So the decision cache may leave the
#   time out of its key (ttl_covers_time below; docs/policy-engines.md, Cache).
# custom:
#   gatekeeper:
#     ttl_covers_time: true
package gatekeeper

# METADATA
# title: decision
# description: |
#   The decision for one policy input, matching gatekeeper/schemas/decision.schema.json.
#   In order: an immutable topic's truncation (or the deletion of a Pulsar namespace or tenant
#   that may hold one), or a broker config change that could truncate it, is a policy violation (whatever the grants say); a malformed approval rule naming the
#   request denies it; then an always-allowed operation, a configured grant (unless an "always"
#   approval rule holds the request) or a live time-boxed grant allows - as a mask where masking
#   rules apply to the produce or consume (denied instead while a rule naming the topic is
#   malformed); else an approval rule that holds the request asks for approval (denied instead
#   where no one could give it, or a masking rule would deny it once approved); anything else is
#   denied with a reason naming the request and the principal. The default only applies to an
#   input that does not follow the contract.
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
} else := {"action": "deny", "reason": _cap(_approval_fault), "ttl": _ttl} if {
	_approval_fault
} else := {"action": "deny", "reason": _cap(_masking_fault), "ttl": _allow.ttl} if {
	_allow
	_masking_fault
} else := {
	"action": "mask",
	"mask": _mask_items,
	"reason": _cap(sprintf("%s; masked by %s", [_allow.reason, concat("; ", _masking_reasons)])),
	"ttl": _allow.ttl,
} if {
	_allow
	count(_mask_items) > 0
} else := {"action": "allow", "reason": _cap(_allow.reason), "ttl": _allow.ttl} if {
	_allow
} else := {"action": "deny", "reason": _cap(_masking_fault), "ttl": _ttl} if {
	# Approving would not help: once granted, the request would be denied for this.
	_approval
	_masking_fault
} else := {"action": "deny", "reason": _cap(_approval_refused), "ttl": _ttl} if {
	_approval
	_approval_refused
} else := {
	"action": "approve",
	"approval": _approval.approval,
	"reason": _cap(_approval.reason),
	"ttl": _ttl,
} if {
	_approval
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
	_resource_named_by(_config_list("immutable_topics"))
} else := sprintf("%s %q may hold immutable topics (%s): %s is never allowed on it", [
	input.resource.type, input.resource.name, concat(", ", _immutable_inside), input.operation,
]) if {
	# Deleting a Pulsar namespace or tenant deletes its topics (with force, whatever they hold).
	input.operation in {"delete_namespace", "delete_tenant"}
	count(_immutable_inside) > 0
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
	key in _topic_truncating_configs
])

# Pulsar's topic policies (the admin API's alter_topic_config names them in request.configs)
# whose change can delete messages: retention, message TTL (expires unread messages), backlog
# quotas (their consumer_backlog_eviction policy) and inactive-topic policies (delete the topic).
_pulsar_truncating_policies := {"retention", "messageTTL", "backlogQuota", "backlogQuotaMap", "inactiveTopicPolicies"}

_topic_truncating_configs := _pulsar_truncating_policies if {
	input.protocol == "pulsar"
} else := _truncating_configs

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
	# An approval rule that holds the request "always" leaves only a time-boxed grant to allow it.
	not _approval_always
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
	_resource_named_by(resources.patterns)
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

# One of patterns names the input's resource (grants, approval rules, immutable and masked
# topics). Pulsar's topics, namespaces and tenants are matched as Pulsar names, everything else
# (every Kafka resource, Pulsar subscriptions) with the globs above.
_resource_named_by(patterns) if {
	not _pulsar_resource
	_matches_any(patterns, input.resource.name)
}

_resource_named_by(patterns) if {
	_pulsar_resource
	some pattern in patterns
	_pulsar_glob(pattern, _pulsar_name)
}

_pulsar_resource if {
	input.protocol == "pulsar"
	input.resource.type in {"topic", "namespace", "tenant"}
	is_string(input.resource.name)
}

# -- Pulsar names --------------------------------------------------------------------------------
#
# A Pulsar topic is matched by its full name, "persistent://tenant/namespace/topic" (or
# "non-persistent://..."), with "/" as the glob delimiter: "*" matches within one of tenant,
# namespace and topic, never across a "/" (nor does "**" in a pattern with a "/": such a pattern
# matches only names of as many "/"-separated parts, so no glob reaches into another namespace).
# "persistent://public/default/orders-*" matches "persistent://public/default/orders-1", not
# "persistent://public/other/orders-1"; "*://public/default/orders" names the persistent and the
# non-persistent topic; a bare "**" still matches every name. A short name is read as the broker
# reads it ("orders" is "persistent://public/default/orders", "t/ns/orders" is
# "persistent://t/ns/orders"). A partition of a partitioned topic ("orders-partition-3", which
# the broker serves as a topic of its own) is matched by its partitioned topic's name, so it is
# granted, immutable and masked exactly as "orders" is. Namespaces ("tenant/namespace") and
# tenants are matched with the same globs.

_pulsar_glob(pattern, name) if {
	is_string(pattern)
	not contains(pattern, "/")
	glob.match(pattern, ["/"], name)
}

_pulsar_glob(pattern, name) if {
	is_string(pattern)
	contains(pattern, "/")
	count(split(pattern, "/")) == count(split(name, "/"))
	glob.match(pattern, ["/"], name)
}

_pulsar_name := _partitioned_topic(_full_topic_name(input.resource.name)) if {
	input.resource.type == "topic"
} else := input.resource.name

_full_topic_name(name) := name if {
	contains(name, "://")
} else := concat("", ["persistent://public/default/", name]) if {
	not contains(name, "/")
} else := concat("", ["persistent://", name]) if {
	count(split(name, "/")) == 3
} else := name

# The partitioned topic a partition belongs to, as the broker reads "<topic>-partition-<n>":
# n after the last "-partition-", a canonical int (no sign, no leading zero); else the name.
_partitioned_topic(name) := concat("-partition-", array.slice(parts, 0, count(parts) - 1)) if {
	parts := split(name, "-partition-")
	count(parts) > 1
	index := parts[count(parts) - 1]
	regex.match(`^(0|[1-9][0-9]{0,9})$`, index)
	to_number(index) <= 2147483647
} else := name

# The immutable topic patterns that could name a topic inside the namespace or tenant the
# input names: Pulsar patterns whose tenant (and namespace) parts match it, and a bare "**".
_immutable_inside := [pattern |
	input.protocol == "pulsar"
	some pattern in _immutable_patterns
	_pattern_covers_container(pattern)
]

_pattern_covers_container(pattern) if pattern == "**"

_pattern_covers_container(pattern) if {
	input.resource.type == "namespace"
	parts := split(pattern, "/")
	count(parts) == 5
	parts[1] == ""
	endswith(parts[0], ":")
	glob.match(concat("/", [parts[2], parts[3]]), ["/"], input.resource.name)
}

_pattern_covers_container(pattern) if {
	input.resource.type == "tenant"
	parts := split(pattern, "/")
	count(parts) == 5
	parts[1] == ""
	endswith(parts[0], ":")
	glob.match(parts[2], ["/"], input.resource.name)
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

# -- masking -------------------------------------------------------------------------------------
#
# data.gatekeeper_config.masking: rules that turn an allowed produce or consume of a topic into a
# mask. A rule applies when one of its topics patterns matches the topic, its direction covers
# the operation, its principals (default: everyone) match the principal and its exempt (default:
# nobody) does not. The mask items of every rule that applies are merged, in data order.
#
# Unlike a grant, a malformed masking rule cannot simply be skipped: that would hand out raw what
# the rule was meant to mask. So a rule that names the topic (an object whose topics list has a
# pattern matching it) but is otherwise malformed denies every produce and consume of the topic
# until it is fixed; only an entry that names no topic at all is ignored.

_masking_rules := _config_list("masking")

_rule_keys := {"name", "reason", "topics", "principals", "exempt", "direction", "mask"}

_mask_item_keys := {"field", "detector", "masker", "options", "in", "on_error"}

# The decision schema's bound on mask items.
_max_mask_items := 64

# Indexes of the rules that name this topic, for a produce or consume of it.
_masking_candidates := [i |
	input.resource.type == "topic"
	input.operation in {"produce", "consume"}
	some i, rule in _masking_rules
	is_object(rule)
	is_array(rule.topics)
	_resource_named_by(rule.topics)
]

# Indexes of the candidates that apply to this request, in data order.
_masking_applies := [i |
	some i in _masking_candidates
	rule := _masking_rules[i]
	not _rule_problem(rule)
	_direction_covers(rule.direction)
	_rule_principals(rule)
	not _rule_exempt(rule)
]

_mask_items := [item |
	some i in _masking_applies
	some item in _masking_rules[i].mask
]

_masking_reasons := [_rule_text(i, _masking_rules[i]) | some i in _masking_applies]

# Why masking cannot be decided for this request (then it is denied); undefined if it can.
_masking_fault := sprintf("%s names topic %q but %s: %s is denied until the rule is fixed (policies/README.md, Masking)", [
	_rule_label(i, rule), input.resource.name, _rule_problem(rule), input.operation,
]) if {
	faulty := [j | some j in _masking_candidates; _rule_problem(_masking_rules[j])]
	i := faulty[0]
	rule := _masking_rules[i]
} else := sprintf("masking rules give %d mask items for %s on topic %q, more than the %d a decision may carry", [
	count(_mask_items), input.operation, input.resource.name, _max_mask_items,
]) if {
	count(_mask_items) > _max_mask_items
}

_direction_covers(direction) if direction == "both"

_direction_covers(direction) if direction == input.operation

# The principals and exempt of masking and approval rules: everyone, and nobody, if left out.
_rule_principals(rule) if not _has_key(rule, "principals")

_rule_principals(rule) if _principal_matches(rule.principals)

_rule_exempt(rule) if _principal_matches(rule.exempt)

# What is wrong with a masking rule (the first thing found); undefined if it is well formed.
_rule_problem(rule) := sprintf("has keys it does not know (%s)", [concat(", ", _unknown_keys(rule, _rule_keys))]) if {
	count(_unknown_keys(rule, _rule_keys)) > 0
} else := "its topics are not all strings" if {
	some pattern in rule.topics
	not is_string(pattern)
} else := "its name is not a string" if {
	_has_key(rule, "name")
	not is_string(rule.name)
} else := "its reason is not a string" if {
	_has_key(rule, "reason")
	not is_string(rule.reason)
} else := `its direction is not "produce", "consume" or "both"` if {
	not object.get(rule, "direction", null) in {"produce", "consume", "both"}
} else := `its principals are neither "*" nor {"groups": [...], "subs": [...]}` if {
	_has_key(rule, "principals")
	not _well_formed_matcher(rule.principals)
} else := `its exempt is neither "*" nor {"groups": [...], "subs": [...]}` if {
	_has_key(rule, "exempt")
	not _well_formed_matcher(rule.exempt)
} else := "its mask is not a list of mask items" if {
	not is_array(object.get(rule, "mask", null))
} else := "its mask is empty" if {
	count(rule.mask) == 0
} else := sprintf("its mask item %d %s", [j, _item_problem(item)]) if {
	problems := [j | some j, item in rule.mask; _item_problem(item)]
	j := problems[0]
	item := rule.mask[j]
}

# What is wrong with a mask item, as decision.schema.json has it; undefined if it is well formed.
_item_problem(item) := "is not an object" if {
	not is_object(item)
} else := sprintf("has keys it does not know (%s)", [concat(", ", _unknown_keys(item, _mask_item_keys))]) if {
	count(_unknown_keys(item, _mask_item_keys)) > 0
} else := "names both a field and a detector" if {
	_has_key(item, "field")
	_has_key(item, "detector")
} else := `has a field that is not a JSONPath starting with "$"` if {
	_has_key(item, "field")
	not _json_path(item.field)
} else := "has a detector that is not a name" if {
	_has_key(item, "detector")
	not _name(item.detector)
} else := "names neither a field nor a detector" if {
	not _has_key(item, "field")
	not _has_key(item, "detector")
} else := "has a masker that is not a name" if {
	not _name(object.get(item, "masker", null))
} else := "has options that are not an object" if {
	_has_key(item, "options")
	not is_object(item.options)
} else := `has an "in" that is not value, key or header:<name>` if {
	_has_key(item, "in")
	not _record_part(item["in"])
} else := "has an on_error that is not deny, redact_value or pass" if {
	_has_key(item, "on_error")
	not item.on_error in {"deny", "redact_value", "pass"}
}

_unknown_keys(obj, known) := sort([key | some key, _ in obj; not key in known])

_has_key(obj, key) if _ = obj[key]

_name(value) if {
	is_string(value)
	value != ""
}

_json_path(value) if {
	is_string(value)
	startswith(value, "$")
}

_record_part(value) if {
	is_string(value)
	regex.match(`^(value|key|header:.+)$`, value)
}

# The principal matcher shape of grants: "*", or an object of groups and subs, lists of names.
_well_formed_matcher(matcher) if matcher == "*"

_well_formed_matcher(matcher) if {
	is_object(matcher)
	every key, names in matcher {
		key in {"groups", "subs"}
		is_array(names)
		every name in names {
			is_string(name)
		}
	}
}

_rule_label(i, rule) := sprintf("masking rule %q", [rule.name]) if {
	is_string(rule.name)
	rule.name != ""
} else := sprintf("masking rule %d", [i])

_rule_text(i, rule) := sprintf("%s: %s", [_rule_label(i, rule), rule.reason]) if {
	is_string(rule.reason)
	rule.reason != ""
} else := _rule_label(i, rule)

# -- approvals -----------------------------------------------------------------------------------
#
# data.gatekeeper_config.approvals: rules that answer a request with "approve" (hold it until
# someone approves it) instead of a denial for want of a grant; or, for a rule that says
# "always": true, even where a configured grant would allow it. Nothing here reads the time: an
# approval is asked only while no live time-boxed grant allows the request, and an expired grant
# stays expired. The data's shape is in policies/README.md (Approvals), the decision's in
# docs/policy-engines.md (Approve).
#
# A rule applies to a request when its resources (type and a matching pattern) and operations
# name it, its principals (default: everyone) match the principal, its exempt (default: nobody)
# does not, and - with unless_known_group - the consumer group the request is about is not in
# data.gatekeeper_config.known_groups. The first rule in data order that applies decides the
# approval. A rule without "always" only opens a way where no configured grant allows the
# request; one with "always": true holds the request even where a grant allows it.
#
# Unlike a grant, a malformed approval rule cannot simply be skipped: skipping an "always" rule
# would let through what it was written to hold. So a rule that names the request (an object
# whose resources name the resource, and whose operations, unless they are no list of names,
# include the operation) but is otherwise malformed denies the request, whoever asks, until it is
# fixed; an entry that names nothing is ignored. Operations in always_allowed (what every client
# needs to connect) are never held.

_approval_rules := _config_list("approvals")

_approval_rule_keys := {
	"name", "reason", "operations", "resources", "principals", "exempt",
	"approvers", "approvals_required", "grant_ttl", "wait", "always", "unless_known_group",
}

# The decision schema's bounds on an approval.
_max_approvers := 64

_max_approvals_required := 5

# Indexes of the rules that name this request, in data order.
_approval_candidates := [i |
	not input.operation in _config_list("always_allowed")
	some i, rule in _approval_rules
	is_object(rule)
	_resource_matches(rule.resources)
	not _operations_exclude(object.get(rule, "operations", null))
]

# A well-formed list of operations that does not cover this one ("*" covers all but cluster
# administration, as in grants).
_operations_exclude(operations) if {
	_names(operations)
	not _operation_matches(operations)
}

# Indexes of the candidates that apply to this request, in data order.
_approvals_apply := [i |
	some i in _approval_candidates
	rule := _approval_rules[i]
	not _approval_problem(rule)
	_rule_principals(rule)
	not _rule_exempt(rule)
	_group_unknown(rule)
]

# Defined when a rule that applies holds the request whatever the grants say.
_approval_always if {
	some i in _approvals_apply
	_approval_rules[i].always == true
}

# The rules that hold this request: those with "always", and the others where no configured
# grant allows it (a live time-boxed grant allows it before any of this is asked).
_approvals_holding := [i |
	some i in _approvals_apply
	_holds(_approval_rules[i])
]

_holds(rule) if rule.always == true

_holds(_) if count(_matching_grants) == 0

# The approval asked for this request (the first rule that holds it), as the decision carries
# it, and the decision's reason; undefined if no rule holds it.
_approval := {
	"approval": _approval_object(rule),
	"reason": sprintf("%s on %s %q by %s (groups: %s) needs %s by %s (%s)", [
		input.operation, input.resource.type, input.resource.name, input.principal.sub, _groups_text,
		_approvals_text(rule), concat(", ", rule.approvers), _approval_rule_text(i, rule),
	]),
} if {
	i := _approvals_holding[0]
	rule := _approval_rules[i]
}

_approval_object(rule) := object.union(
	{"approvers": rule.approvers, "approvals_required": _approvals_required(rule)},
	{key: rule[key] | some key in ["grant_ttl", "wait"]; _has_key(rule, key)},
)

_approvals_required(rule) := object.get(rule, "approvals_required", 1)

_approvals_text(rule) := "approval" if {
	_approvals_required(rule) == 1
} else := sprintf("%d approvals", [_approvals_required(rule)])

# Why the approval the request needs cannot be asked for (then it is denied); undefined if it can.
_approval_refused := sprintf("%s on %s %q needs %s by %s (%s), which is never asked for an anonymous client: a grant to anonymous would be every unauthenticated client's; authenticate", [
	input.operation, input.resource.type, input.resource.name,
	_approvals_text(rule), concat(", ", rule.approvers), _approval_rule_text(i, rule),
]) if {
	input.principal.mechanism == "NONE"
	i := _approvals_holding[0]
	rule := _approval_rules[i]
} else := sprintf("%s on %s %q by %s needs %s by %s (%s), but only %d of them may give it: no one approves their own request", [
	input.operation, input.resource.type, input.resource.name, input.principal.sub,
	_approvals_text(rule), concat(", ", rule.approvers), _approval_rule_text(i, rule), count(others),
]) if {
	i := _approvals_holding[0]
	rule := _approval_rules[i]
	not _names_a_group(rule.approvers)
	others := _users(rule.approvers) - {concat("", ["user:", input.principal.sub])}
	count(others) < _approvals_required(rule)
}

# Why a rule naming this request cannot be applied (then the request is denied); undefined if
# every rule naming it is well formed.
_approval_fault := sprintf("%s names %s %q but %s: %s is denied until the rule is fixed (policies/README.md, Approvals)", [
	_approval_rule_label(i, rule), input.resource.type, input.resource.name, _approval_problem(rule), input.operation,
]) if {
	faulty := [j | some j in _approval_candidates; _approval_problem(_approval_rules[j])]
	i := faulty[0]
	rule := _approval_rules[i]
}

# What is wrong with an approval rule (the first thing found); undefined if it is well formed.
_approval_problem(rule) := sprintf("has keys it does not know (%s)", [concat(", ", _unknown_keys(rule, _approval_rule_keys))]) if {
	count(_unknown_keys(rule, _approval_rule_keys)) > 0
} else := sprintf("its resources have keys they do not know (%s)", [concat(", ", _unknown_keys(rule.resources, {"type", "patterns"}))]) if {
	count(_unknown_keys(rule.resources, {"type", "patterns"})) > 0
} else := "its resource patterns are not all strings" if {
	some pattern in rule.resources.patterns
	not is_string(pattern)
} else := "its operations are not a list of operation names" if {
	not _names(object.get(rule, "operations", null))
} else := "its name is not a string" if {
	_has_key(rule, "name")
	not is_string(rule.name)
} else := "its reason is not a string" if {
	_has_key(rule, "reason")
	not is_string(rule.reason)
} else := `its principals are neither "*" nor {"groups": [...], "subs": [...]}` if {
	_has_key(rule, "principals")
	not _well_formed_matcher(rule.principals)
} else := `its exempt is neither "*" nor {"groups": [...], "subs": [...]}` if {
	_has_key(rule, "exempt")
	not _well_formed_matcher(rule.exempt)
} else := "its approvers are not a list" if {
	not is_array(object.get(rule, "approvers", null))
} else := "its approvers are empty" if {
	count(rule.approvers) == 0
} else := sprintf("its approvers are more than the %d an approval may carry", [_max_approvers]) if {
	count(rule.approvers) > _max_approvers
} else := sprintf(`its approver %d is not "group:<name>" or "user:<sub>"`, [j]) if {
	bad := [j | some j, approver in rule.approvers; not _approver(approver)]
	j := bad[0]
} else := sprintf("its approvals_required is not a whole number from 1 to %d", [_max_approvals_required]) if {
	_has_key(rule, "approvals_required")
	not _approvals_count(rule.approvals_required)
} else := sprintf("its approvals_required is %d but its approvers name %s and no group: it could never be approved", [
	_approvals_required(rule), _count_text(count(_users(rule.approvers)), "user"),
]) if {
	not _names_a_group(rule.approvers)
	count(_users(rule.approvers)) < _approvals_required(rule)
} else := "its grant_ttl is not a duration (30m, 1h, 90s)" if {
	_has_key(rule, "grant_ttl")
	not _duration(rule.grant_ttl)
} else := "its wait is not a duration (20s, 500ms)" if {
	_has_key(rule, "wait")
	not _duration(rule.wait)
} else := "its always is neither true nor false" if {
	_has_key(rule, "always")
	not is_boolean(rule.always)
} else := "its unless_known_group is neither true nor false" if {
	_has_key(rule, "unless_known_group")
	not is_boolean(rule.unless_known_group)
} else := "it asks for unless_known_group but known_groups is not a list of group name patterns" if {
	rule.unless_known_group == true
	_has_key(_config, "known_groups")
	not _names(_config.known_groups)
}

# A list of strings (operation names, name patterns).
_names(list) if {
	is_array(list)
	every name in list {
		is_string(name)
	}
}

_approver(approver) if {
	is_string(approver)
	regex.match(`^(group|user):.+$`, approver)
}

_approvals_count(n) if {
	is_number(n)
	n == floor(n)
	n >= 1
	n <= _max_approvals_required
}

_duration(value) if {
	is_string(value)
	regex.match(`^[0-9]+(\.[0-9]+)?(ms|s|m|h)$`, value)
}

_count_text(n, noun) := sprintf("1 %s", [noun]) if {
	n == 1
} else := sprintf("%d %ss", [n, noun])

_users(approvers) := {approver | some approver in approvers; startswith(approver, "user:")}

_names_a_group(approvers) if {
	some approver in approvers
	startswith(approver, "group:")
}

# unless_known_group: the rule holds only a request about a consumer group that is not known -
# a group resource by its name, or a topic whose offsets a group commits or fetches
# (input.request.group). A request about no group is not held by such a rule.
_group_unknown(rule) if object.get(rule, "unless_known_group", false) == false

_group_unknown(rule) if {
	rule.unless_known_group == true
	group := _request_group
	not _matches_any(_config_list("known_groups"), group)
}

_request_group := input.resource.name if {
	input.resource.type in {"group", "share_group"}
} else := input.request.group if {
	is_string(input.request.group)
} else := input.request.share_group if {
	is_string(input.request.share_group)
}

_approval_rule_label(i, rule) := sprintf("approval rule %q", [rule.name]) if {
	is_string(rule.name)
	rule.name != ""
} else := sprintf("approval rule %d", [i])

_approval_rule_text(i, rule) := sprintf("%s: %s", [_approval_rule_label(i, rule), rule.reason]) if {
	is_string(rule.reason)
	rule.reason != ""
} else := _approval_rule_label(i, rule)

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
