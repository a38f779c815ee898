package gatekeeper.examples.write_only_ingestion_test

import data.gatekeeper
import data.gatekeeper.examples.write_only_ingestion
import data.gatekeeper.inputs_test as fixtures

# The library's configuration in these tests: platform may do anything to any topic or group.
config := {
	"default_ttl": "9s",
	"always_allowed": ["api_versions", "find_coordinator"],
	"grants": [
		{"principals": {"groups": ["platform"]}, "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["*"]},
		{"principals": {"groups": ["platform"]}, "resources": {"type": "group", "patterns": ["**"]}, "operations": ["*"]},
	],
}

decide(policy_input) := d if {
	d := write_only_ingestion.decision with input as policy_input with data.gatekeeper_config as config
}

decide_as(op, rtype, name, sub, groups) := decide(fixtures.policy_input(op, rtype, name, sub, groups))

pipeline := ["ingestion-pipeline"]

test_every_authenticated_client_writes if {
	decide_as("produce", "topic", "ingest.clicks", "svc-web", []) == {
		"action": "allow",
		"reason": `topic "ingest.clicks" is an ingestion topic: produce is allowed to every authenticated client`,
		"ttl": "9s",
	}
	decide_as("describe_topic", "topic", "ingest.clicks.eu", "svc-web", ["web"]).action == "allow"
}

test_anonymous_clients_are_left_to_the_library if {
	decide(fixtures.anonymous_input("produce", "topic", "ingest.clicks")) == {
		"action": "deny",
		"reason": `no grant allows produce on topic "ingest.clicks" for anonymous (groups: none)`,
		"ttl": "9s",
	}
}

test_only_the_pipeline_reads if {
	decide_as("consume", "topic", "ingest.clicks", "svc-pipeline", pipeline) == {
		"action": "allow",
		"reason": `topic "ingest.clicks" is read by the ingestion-pipeline group: consume is allowed to its members`,
		"ttl": "9s",
	}
	every op in ["consume", "fetch_offset", "commit_offset"] {
		decide_as(op, "topic", "ingest.clicks", "svc-pipeline", ["etl", "ingestion-pipeline"]).action == "allow"
	}
}

test_nobody_else_reads_not_even_with_a_wildcard_grant if {
	decide_as("consume", "topic", "ingest.clicks", "ops", ["platform"]) == {
		"action": "deny",
		"reason": `topic "ingest.clicks" is read by the ingestion-pipeline group only: consume is not allowed to ops`,
		"ttl": "9s",
	}
	every groups in [[], ["ingestion-pipeline-dev"], ["ingestion"], ["Ingestion-Pipeline"]] {
		decide_as("consume", "topic", "ingest.clicks", "svc", groups).action == "deny"
	}
	decide(fixtures.anonymous_input("consume", "topic", "ingest.clicks")).action == "deny"
}

test_the_pipelines_consumer_groups_are_its_own if {
	decide_as("join_group", "group", "ingestion-pipeline", "svc-pipeline", pipeline).action == "allow"
	decide_as("commit_offset", "group", "ingestion-pipeline-backfill", "svc-pipeline", pipeline).action == "allow"
	decide_as("join_group", "group", "ingestion-pipeline", "ops", ["platform"]) == {
		"action": "deny",
		"reason": `group "ingestion-pipeline" is read by the ingestion-pipeline group only: join_group is not allowed to ops`,
		"ttl": "9s",
	}

	# Other groups, and other operations on the pipeline's groups, are the library's.
	decide_as("join_group", "group", "ingestion-pipelines", "svc-pipeline", pipeline).action == "deny"
	decide_as("join_group", "group", "analytics", "ops", ["platform"]).action == "allow"
	decide_as("delete_group", "group", "ingestion-pipeline", "ops", ["platform"]).action == "allow"
}

test_near_miss_names_are_not_ingestion_topics if {
	every name in ["ingest", "ingested.clicks", "x.ingest.clicks", "ingest-clicks"] {
		decide_as("consume", "topic", name, "ops", ["platform"]).action == "allow"
		decide_as("produce", "topic", name, "svc-web", []).action == "deny"
	}
}

test_administration_is_the_librarys_business if {
	decide_as("delete_topic", "topic", "ingest.clicks", "ops", ["platform"]).action == "allow"
	decide_as("delete_topic", "topic", "ingest.clicks", "svc-web", []).action == "deny"
}

test_with_the_shipped_data if {
	write_only_ingestion.decision.action == "deny" with input as fixtures.policy_input("consume", "topic", "ingest.clicks", "ops", ["platform"])
	write_only_ingestion.decision.action == "allow" with input as fixtures.policy_input("consume", "topic", "orders", "svc-analytics", ["analytics-readers"])
}

test_every_operation_gets_exactly_one_well_formed_decision if {
	every op, types in fixtures.operations {
		every rtype in types {
			every name in ["ingest.clicks", "ingestion-pipeline", "orders"] {
				fixtures.well_formed(decide_as(op, rtype, name, "svc", pipeline))
				fixtures.well_formed(decide(fixtures.anonymous_input(op, rtype, name)))
			}
		}
	}
	decide({}).reason == "not a Gatekeeper policy input (see docs/policy-input.md)"
}

# -- the same idea as a configuration of the default library (data.json beside this file) --------

library_action(op, rtype, name, sub, groups) := d.action if {
	d := gatekeeper.decision with input as fixtures.policy_input(op, rtype, name, sub, groups)
		with data.gatekeeper_config as data.examples.write_only_ingestion.gatekeeper_config
}

test_data_json_for_the_default_library if {
	library_action("produce", "topic", "ingest.clicks", "anyone", []) == "allow"
	library_action("consume", "topic", "ingest.clicks", "anyone", []) == "deny"
	library_action("consume", "topic", "ingest.clicks", "svc", pipeline) == "allow"
	library_action("join_group", "group", "someone-else", "svc", pipeline) == "deny"
}
