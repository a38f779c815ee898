# METADATA
# title: Example - just-in-time approvals
# description: |
#   A guardrail in front of the default library that holds three kinds of request until someone
#   approves them, whatever the grants say:
#   - a produce to payments.* by anyone outside the payments group waits for one of
#     group:payments-leads; the approval grants that produce on that topic for 30 minutes;
#   - a consumer group that is not known fetching its offsets of a regulated.* topic (what every
#     consumer group does before it reads) waits for group:data-governance;
#   - a config change of an audit.* topic waits for two people from group:security (a
#     two-person rule).
#   An approval comes back as a time-boxed grant in input.grants, which lets the next attempt
#   through for as long as the library lets it through with that grant. Nothing here opens
#   what the library denies outright: a request the library would deny even once approved (an
#   immutable topic's truncation, a malformed masking rule) is the library's denial, not an
#   approval nobody could use. Everything else is data.gatekeeper.decision, configured with
#   data.gatekeeper_config as usual (its own approval rules included).
#
#   input.time is read only to tell whether a time-boxed grant is live, and an allow by one has a
#   ttl that ends with it (ttl_covers_time below; docs/policy-engines.md, Cache).
#
#   Use it with  policy.decision: gatekeeper/examples/jit_approvals/decision
# custom:
#   gatekeeper:
#     ttl_covers_time: true
package gatekeeper.examples.jit_approvals

# Globs with "." as the delimiter: "payments.*" is payments.eu, not payments.eu.x.
payments_topics := ["payments.*"]

# The identity-provider group whose members write to the payments topics without asking.
payments_team := "payments"

payments_approval := {"approvers": ["group:payments-leads"], "approvals_required": 1, "grant_ttl": "30m", "wait": "20s"}

regulated_topics := ["regulated.*"]

# Consumer groups that have been reviewed for the regulated topics (globs).
known_groups := ["regulated-reporting", "regulated-archive-*"]

regulated_approval := {"approvers": ["group:data-governance"], "approvals_required": 1, "grant_ttl": "8h", "wait": "20s"}

audit_topics := ["audit.*"]

# Two different members of security must approve; the requester never counts.
audit_config_approval := {"approvers": ["group:security"], "approvals_required": 2, "grant_ttl": "15m", "wait": "25s"}

# METADATA
# title: decision
# description: Payments writes outside the team, new consumer groups on regulated topics and audit topic config changes wait for approval; the rest is the library's.
# entrypoint: true
default decision := {
	"action": "deny",
	"reason": "not a Gatekeeper policy input (see docs/policy-input.md)",
	"ttl": "5s",
}

decision := _approved if {
	# Approved before: the library's allow (or mask) with the live grant, for as long as that lasts.
	_needs
	count(_live_grants) > 0
	data.gatekeeper.decision.action in {"allow", "mask"}
} else := {
	"action": "deny",
	"reason": _cap(sprintf("%s on %s %q: %s, which is never asked for an anonymous client: a grant to anonymous would be every unauthenticated client's; authenticate", [
		input.operation, input.resource.type, input.resource.name, _needs.why,
	])),
	"ttl": _ttl,
} if {
	_once_approved.action in {"allow", "mask"}
	input.principal.mechanism == "NONE"
} else := {
	"action": "approve",
	"approval": _needs.approval,
	"reason": _cap(sprintf("%s on %s %q by %s (groups: %s): %s", [
		input.operation, input.resource.type, input.resource.name, input.principal.sub, _groups_text, _needs.why,
	])),
	"ttl": _ttl,
} if {
	_once_approved.action in {"allow", "mask"}
} else := data.gatekeeper.decision

# Which approval this request needs, and why; undefined if it needs none. The first that applies.
_needs := {
	"approval": payments_approval,
	"why": sprintf("a write to %q outside group %s needs approval by a payments lead", [input.resource.name, payments_team]),
} if {
	input.operation == "produce"
	_topic_in(payments_topics)
	not payments_team in input.principal.groups
} else := {
	"approval": regulated_approval,
	"why": sprintf("consumer group %q is new on regulated topic %q and needs approval by data governance", [input.request.group, input.resource.name]),
} if {
	# Offsets of a topic are fetched and committed for a group, which the input names.
	input.operation == "fetch_offset"
	_topic_in(regulated_topics)
	is_string(input.request.group)
	not _matches(known_groups, input.request.group)
} else := {
	"approval": audit_config_approval,
	"why": sprintf("a config change of audit topic %q needs two approvals from security", [input.resource.name]),
} if {
	input.operation == "alter_topic_config"
	_topic_in(audit_topics)
}

_topic_in(patterns) if {
	input.resource.type == "topic"
	_matches(patterns, input.resource.name)
}

_matches(patterns, name) if {
	some pattern in patterns
	glob.match(pattern, ["."], name)
}

# What the library decides once this request is approved: with a live grant for exactly it (at
# the epoch, a grant that expires now). Only what the library would then let through is worth
# an approval.
_once_approved := d if {
	_needs
	grant := {"operation": input.operation, "resource": input.resource, "expires_at": input.time}
	d := data.gatekeeper.decision with input.grants as [grant] with input.time as "1970-01-01T00:00:00Z"
}

# Time-boxed grants for exactly this operation and resource, not yet expired (as the library
# reads them).
_live_grants := [grant |
	some grant in input.grants
	is_object(grant)
	grant.operation == input.operation
	is_object(grant.resource)
	grant.resource.type == input.resource.type
	grant.resource.name == input.resource.name
	is_string(grant.expires_at)
	time.parse_rfc3339_ns(grant.expires_at) > time.parse_rfc3339_ns(input.time)
]

# The library's allow with the live grant, said to be approved, cached no longer than the grant
# lasts (the library's ttl, or the whole milliseconds left if fewer).
_approved := object.union(data.gatekeeper.decision, {
	"reason": _cap(sprintf("%s; %s: approved until %s", [data.gatekeeper.decision.reason, _needs.why, _live_grants[0].expires_at])),
	"ttl": _ttl_until(_live_grants[0].expires_at),
})

_ttl_until(expires_at) := sprintf("%dms", [floor(left / 1000000)]) if {
	regex.match(`^[0-9]+(\.[0-9]+)?(ms|s|m|h)$`, _ttl)
	left := time.parse_rfc3339_ns(expires_at) - time.parse_rfc3339_ns(input.time)
	left < time.parse_duration_ns(_ttl)
} else := _ttl

# The library's ttl (its default_ttl), so both kinds of decision are cached alike.
default _ttl := "5s"

_ttl := data.gatekeeper.decision.ttl

_groups_text := concat(", ", input.principal.groups) if {
	count(input.principal.groups) > 0
} else := "none"

# The decision schema caps reason at 1024 characters.
_cap(reason) := reason if {
	count(reason) <= 1024
} else := concat("", [substring(reason, 0, 1021), "..."])
