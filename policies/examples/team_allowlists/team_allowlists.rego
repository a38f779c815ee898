# METADATA
# title: Example - per-team allow-lists
# description: |
#   A policy of its own, in place of the default library: each team (an identity-provider
#   group) has an allow-list of the topics, consumer groups and transactional ids it owns, and
#   its members may use them (produce, consume, commit, transactions) but not administer them
#   (create, delete, reconfigure: that stays with the platform team, outside Gatekeeper).
#   Everything else is denied, except what every client needs to connect.
#
#   Use it with  policy.decision: gatekeeper/examples/team_allowlists/decision
#   Edit teams below: the keys are group names from the principal's token.
package gatekeeper.examples.team_allowlists

# Group -> what that team owns, as globs with "." as the delimiter (as in the default library).
teams := {
	"team-orders": {
		"topics": ["orders", "orders.**"],
		"groups": ["orders-*"],
		"transactional_ids": ["orders-*"],
	},
	"team-payments": {
		"topics": ["payments", "payments.**"],
		"groups": ["payments-*"],
		"transactional_ids": ["payments-*"],
	},
}

# What a team member may do on each kind of resource the team owns.
member_operations := {
	"topic": {"produce", "consume", "describe_topic", "describe_topic_config", "commit_offset", "fetch_offset"},
	"group": {"join_group", "commit_offset", "fetch_offset", "describe_group", "delete_offsets"},
	"transactional_id": {"init_producer", "transactional_write", "describe_transaction"},
}

# Operations every client needs to connect and find its way (on any resource).
housekeeping := {"api_versions", "authenticate", "find_coordinator", "list_topics", "describe_cluster"}

# METADATA
# title: decision
# description: Allow housekeeping, an idempotent producer, and a team's own resources; deny the rest.
# entrypoint: true
default decision := {
	"action": "deny",
	"reason": "not a Gatekeeper policy input (see docs/policy-input.md)",
	"ttl": "5s",
}

decision := {"action": "allow", "reason": sprintf("%s is allowed to every client", [input.operation]), "ttl": _ttl} if {
	input.operation in housekeeping
} else := {"action": "allow", "reason": "an idempotent producer is allowed to every client", "ttl": _ttl} if {
	# InitProducerId without a transactional id: every idempotent producer sends it.
	input.operation == "init_producer"
	input.resource.type == "cluster"
} else := {"action": "allow", "reason": _allow_reason, "ttl": _ttl} if {
	_allow_reason
} else := {"action": "deny", "reason": _deny_reason, "ttl": _ttl}

_ttl := "5s"

_resource_lists := {"topic": "topics", "group": "groups", "transactional_id": "transactional_ids"}

# The principal's teams that own this resource, sorted (the reason names the first).
_owning_teams := sort({team |
	some team in input.principal.groups
	some pattern in teams[team][_resource_lists[input.resource.type]]
	glob.match(pattern, ["."], input.resource.name)
})

_allow_reason := sprintf("%s %q is on the allow-list of team %s", [input.resource.type, input.resource.name, _owning_teams[0]]) if {
	input.operation in member_operations[input.resource.type]
}

_deny_reason := sprintf("no allow-list of %s's teams (%s) allows %s on %s %q", [
	input.principal.sub, _teams_text, input.operation, input.resource.type, input.resource.name,
])

# The principal's teams, sorted.
_member_of := sort({team | some team in input.principal.groups; teams[team]})

_teams_text := concat(", ", _member_of) if count(_member_of) > 0

else := "none"
