# Everything allowed: for tests of what Gatekeeper normalizes whatever the policy says.
package gatekeeper

default decision := {"action": "allow", "reason": "open", "ttl": "5s"}
