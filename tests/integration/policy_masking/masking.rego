# The masking tests' policy: everything allowed, except that
# - records produced to pmask.* are masked before the broker stores them;
# - records produced to pstrict.* must be JSON (a field rule with the default on_error: deny);
# - records consumed from cmask.* are masked for every principal outside the "owners" group;
# - records consumed from plugin.* are masked by the example plugin distribution's masker and detector;
# - records consumed from unknown.* name a masker no one installed (a deny naming it).
package gatekeeper

import rego.v1

default decision := {"action": "allow", "reason": "open", "ttl": "60s"}

_owner if "owners" in input.principal.groups

decision := {"action": "mask", "reason": "PII is masked before it is stored", "ttl": "60s", "mask": [
	{"field": "$.card", "masker": "redact"},
	{"field": "$.customer.email", "masker": "hash", "options": {"length": 16}},
	{"detector": "us_ssn", "masker": "redact"},
	{"detector": "credit_card", "masker": "redact", "in": "header:note*"},
]} if {
	input.operation == "produce"
	startswith(input.resource.name, "pmask.")
} else := {"action": "mask", "reason": "records must be JSON", "ttl": "60s", "mask": [
	{"field": "$.card", "masker": "redact"},
]} if {
	input.operation == "produce"
	startswith(input.resource.name, "pstrict.")
} else := {"action": "mask", "reason": "PII is masked for non-owners", "ttl": "60s", "mask": [
	{"field": "$.card", "masker": "last4"},
	{"field": "$..ssn", "masker": "redact"},
	{"detector": "email", "masker": "email"},
	{"detector": "us_ssn", "masker": "redact"},
]} if {
	input.operation == "consume"
	startswith(input.resource.name, "cmask.")
	not _owner
} else := {"action": "mask", "reason": "names and employee ids are masked", "ttl": "60s", "mask": [
	{"field": "$.name", "masker": "initials"},
	{"detector": "employee_id", "masker": "redact"},
]} if {
	input.operation == "consume"
	startswith(input.resource.name, "plugin.")
} else := {"action": "mask", "reason": "a masker no one installed", "ttl": "60s", "mask": [
	{"field": "$.card", "masker": "no_such_masker"},
]} if {
	input.operation == "consume"
	startswith(input.resource.name, "unknown.")
}
