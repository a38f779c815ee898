# METADATA
# title: Example - write-only ingestion topics
# description: |
#   A guardrail in front of the default library: ingestion topics are an inbox. Every
#   authenticated client may write to them (and describe them, which producers need); nobody
#   may read them except the members of the ingestion-pipeline group, whatever the grants say,
#   and nobody else may join the pipeline's consumer groups (that would take its partitions).
#   Everything else - administering ingestion topics included - is decided by
#   data.gatekeeper.decision, configured with data.gatekeeper_config as usual.
#
#   Use it with  policy.decision: gatekeeper/examples/write_only_ingestion/decision
package gatekeeper.examples.write_only_ingestion

# Globs with "." as the delimiter: "ingest.**" is every topic under ingest.
ingestion_topics := ["ingest.**"]

# The identity-provider group whose members run the pipeline, and its consumer groups.
pipeline_group := "ingestion-pipeline"

pipeline_consumer_groups := ["ingestion-pipeline", "ingestion-pipeline-*"]

write_operations := {"produce", "describe_topic"}

# Reading a topic, and the offsets a consumer keeps for it.
read_operations := {"consume", "fetch_offset", "commit_offset"}

# What a consumer does with its consumer group.
group_operations := {"join_group", "fetch_offset", "commit_offset", "describe_group"}

# METADATA
# title: decision
# description: Writes to ingestion topics by anyone authenticated, reads by the pipeline only; the rest is the library's.
# entrypoint: true
default decision := {
	"action": "deny",
	"reason": "not a Gatekeeper policy input (see docs/policy-input.md)",
	"ttl": "5s",
}

decision := {
	"action": "allow",
	"reason": sprintf("topic %q is an ingestion topic: %s is allowed to every authenticated client", [input.resource.name, input.operation]),
	"ttl": _ttl,
} if {
	_ingestion_topic
	input.operation in write_operations
	input.principal.sub != "anonymous"
} else := {
	"action": "allow",
	"reason": sprintf("%s %q is read by the %s group: %s is allowed to its members", [input.resource.type, input.resource.name, pipeline_group, input.operation]),
	"ttl": _ttl,
} if {
	_pipeline_read
	pipeline_group in input.principal.groups
} else := {
	"action": "deny",
	"reason": sprintf("%s %q is read by the %s group only: %s is not allowed to %s", [input.resource.type, input.resource.name, pipeline_group, input.operation, input.principal.sub]),
	"ttl": _ttl,
} if {
	_pipeline_read
} else := data.gatekeeper.decision

_ingestion_topic if {
	input.resource.type == "topic"
	some pattern in ingestion_topics
	glob.match(pattern, ["."], input.resource.name)
}

# Reading an ingestion topic, or using one of the pipeline's consumer groups.
_pipeline_read if {
	_ingestion_topic
	input.operation in read_operations
}

_pipeline_read if {
	input.resource.type == "group"
	input.operation in group_operations
	some pattern in pipeline_consumer_groups
	glob.match(pattern, ["."], input.resource.name)
}

# The library's ttl (its default_ttl), so both kinds of decision are cached alike.
default _ttl := "5s"

_ttl := data.gatekeeper.decision.ttl
