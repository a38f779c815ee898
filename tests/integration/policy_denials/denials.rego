# The denial matrix's policy: one refused resource per denial path, everything else open.
#   hidden.*            refused for every operation, describe included (absent from listings)
#   denied.*            may be described and its committed offsets read (so clients go on to
#                       the API under test: Produce, Fetch, admin calls), nothing else
#   denied-commit       a group that may not commit offsets; denied-fetch, not fetch them
#   client deny-idempotent   may not init an (idempotent) producer id
package gatekeeper

default decision := {"action": "allow", "reason": "open in the denial matrix", "ttl": "5s"}

decision := {
	"action": "deny",
	"reason": sprintf("%s on %s %s is refused by the denial matrix", [input.operation, input.resource.type, input.resource.name]),
	"ttl": "5s",
} if {
	_refused
}

_only_op := {"denied-commit": "commit_offset", "denied-fetch": "fetch_offset"}

_refused if startswith(input.resource.name, "hidden")

_refused if {
	startswith(input.resource.name, "denied")
	not input.operation in {"describe_topic", "find_coordinator", "fetch_offset"}
	not _only_op[input.resource.name]
}

_refused if _only_op[input.resource.name] == input.operation

_refused if {
	input.operation == "init_producer"
	input.resource.type == "cluster"
	input.client.id == "deny-idempotent"
}
