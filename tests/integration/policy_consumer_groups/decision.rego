# The KIP-848 consumer group tests' policy: everything open, except
#   topics named *hidden*   refused for every operation, describe included (never listed)
#   topics named *nocon*    may be described, not consumed
#   group cg-denied         refused
package gatekeeper

default decision := {"action": "allow", "reason": "open in the consumer group tests", "ttl": "5s"}

decision := {
	"action": "deny",
	"reason": sprintf("%s on %s %s is refused by the consumer group tests", [input.operation, input.resource.type, input.resource.name]),
	"ttl": "5s",
} if {
	_refused
}

_refused if contains(input.resource.name, "hidden")

_refused if {
	contains(input.resource.name, "nocon")
	input.operation != "describe_topic"
}

_refused if input.resource.name == "cg-denied"
