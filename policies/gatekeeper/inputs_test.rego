# METADATA
# title: Test fixtures
# description: |
#   Complete policy inputs as Gatekeeper builds them (docs/policy-input.md), shared by the tests
#   of the default library and of the examples, so every test exercises the real contract.
#   A _test file: neither engine loads it, only opa test does.
package gatekeeper.inputs_test

# The Kafka API and the request keys Gatekeeper sends with each operation.
kafka := {
	"produce": {
		"api": {"key": 0, "name": "Produce", "version": 9},
		"request": {"acks": -1, "partitions": [0, 2], "record_count": 120, "bytes": 48211},
	},
	"consume": {
		"api": {"key": 1, "name": "Fetch", "version": 13},
		"request": {"partitions": [0, 1, 2], "isolation_level": 1},
	},
	"describe_topic": {
		"api": {"key": 3, "name": "Metadata", "version": 12},
		"request": {"allow_auto_topic_creation": false},
	},
	"list_topics": {"api": {"key": 3, "name": "Metadata", "version": 12}, "request": {}},
	"create_topic": {
		"api": {"key": 19, "name": "CreateTopics", "version": 7},
		"request": {"num_partitions": 3, "replication_factor": 3, "configs": {}, "validate_only": false},
	},
	"delete_topic": {"api": {"key": 20, "name": "DeleteTopics", "version": 6}, "request": {}},
	"delete_records": {"api": {"key": 21, "name": "DeleteRecords", "version": 2}, "request": {"partitions": [0]}},
	"create_partitions": {"api": {"key": 37, "name": "CreatePartitions", "version": 3}, "request": {"count": 6}},
	"commit_offset": {"api": {"key": 8, "name": "OffsetCommit", "version": 8}, "request": {"group": "analytics-1", "partitions": [0]}},
	"fetch_offset": {"api": {"key": 9, "name": "OffsetFetch", "version": 8}, "request": {"all_topics": false}},
	"delete_offsets": {"api": {"key": 47, "name": "OffsetDelete", "version": 0}, "request": {}},
	"find_coordinator": {"api": {"key": 10, "name": "FindCoordinator", "version": 4}, "request": {}},
	"join_group": {"api": {"key": 11, "name": "JoinGroup", "version": 9}, "request": {}},
	"describe_group": {"api": {"key": 15, "name": "DescribeGroups", "version": 5}, "request": {}},
	"delete_group": {"api": {"key": 42, "name": "DeleteGroups", "version": 2}, "request": {}},
	"list_groups": {"api": {"key": 16, "name": "ListGroups", "version": 4}, "request": {}},
	"init_producer": {"api": {"key": 22, "name": "InitProducerId", "version": 4}, "request": {"transactional": false}},
	"transactional_write": {"api": {"key": 26, "name": "EndTxn", "version": 3}, "request": {"committed": true}},
	"describe_transaction": {"api": {"key": 65, "name": "DescribeTransactions", "version": 0}, "request": {}},
	"list_transactions": {"api": {"key": 66, "name": "ListTransactions", "version": 0}, "request": {}},
	"describe_topic_config": {
		"api": {"key": 32, "name": "DescribeConfigs", "version": 4},
		"request": {"keys": ["retention.ms"]},
	},
	"alter_topic_config": {
		"api": {"key": 44, "name": "IncrementalAlterConfigs", "version": 1},
		"request": {"configs": {"max.message.bytes": "2097152"}, "validate_only": false},
	},
	"describe_group_config": {"api": {"key": 32, "name": "DescribeConfigs", "version": 4}, "request": {"keys": null}},
	"alter_group_config": {
		"api": {"key": 44, "name": "IncrementalAlterConfigs", "version": 1},
		"request": {"configs": {"consumer.session.timeout.ms": "45000"}, "validate_only": false},
	},
	"describe_cluster_config": {
		"api": {"key": 32, "name": "DescribeConfigs", "version": 4},
		"request": {"keys": null, "config_resource": {"type": "broker", "name": "1"}},
	},
	"alter_cluster_config": {
		"api": {"key": 44, "name": "IncrementalAlterConfigs", "version": 1},
		"request": {"configs": {"log.cleaner.threads": "2"}, "validate_only": false, "config_resource": {"type": "broker", "name": "1"}},
	},
	"describe_acls": {"api": {"key": 29, "name": "DescribeAcls", "version": 3}, "request": {}},
	"alter_acls": {"api": {"key": 30, "name": "CreateAcls", "version": 3}, "request": {"creations": 1}},
	"describe_cluster": {"api": {"key": 60, "name": "DescribeCluster", "version": 1}, "request": {}},
	"api_versions": {"api": {"key": 18, "name": "ApiVersions", "version": 3}, "request": {}},
	"authenticate": {"api": {"key": 36, "name": "SaslAuthenticate", "version": 2}, "request": {}},
	"other": {"api": {"key": 43, "name": "ElectLeaders", "version": 2}, "request": {"api": "ElectLeaders"}},
}

# The resource types an operation comes with, where it is not just the cluster.
resource_types := {
	"produce": ["topic"],
	"consume": ["topic"],
	"describe_topic": ["topic"],
	"create_topic": ["topic"],
	"delete_topic": ["topic"],
	"delete_records": ["topic"],
	"create_partitions": ["topic"],
	"describe_topic_config": ["topic"],
	"alter_topic_config": ["topic"],
	"commit_offset": ["group", "topic"],
	"fetch_offset": ["group", "topic"],
	"delete_offsets": ["group", "topic"],
	"find_coordinator": ["group", "transactional_id"],
	"join_group": ["group"],
	"describe_group": ["group"],
	"delete_group": ["group"],
	"describe_group_config": ["group"],
	"alter_group_config": ["group"],
	"init_producer": ["transactional_id", "cluster"],
	"transactional_write": ["transactional_id"],
	"describe_transaction": ["transactional_id"],
}

# Every operation of the vocabulary, with the resource types it comes with.
operations := {op: object.get(resource_types, op, ["cluster"]) | some op, _ in kafka}

# A complete policy input: op on the resource (rtype, name) by sub, a member of groups.
policy_input(op, rtype, name, sub, groups) := {
	"version": 1,
	"protocol": "kafka",
	"operation": op,
	"api": kafka[op].api,
	"principal": {
		"sub": sub,
		"issuer": "https://idp.example.com/",
		"groups": groups,
		"claims": {"sub": sub, "groups": groups, "exp": 1795420000},
		"mechanism": "OAUTHBEARER",
	},
	"resource": {"type": rtype, "name": name},
	"client": {"id": "rdkafka", "address": "10.20.30.40"},
	"session": {"id": "01JDBQ3V9ZKQ6X8G2M4N7P5R1T", "started_at": "2026-11-23T07:24:49.596Z"},
	"request": kafka[op].request,
	"grants": [],
	"time": "2026-11-23T07:24:49.689Z",
}

# The input a client gets before it authenticates (or on a listener without SASL).
anonymous_input(op, rtype, name) := object.union(policy_input(op, rtype, name, "anonymous", []), {"principal": {
	"sub": "anonymous",
	"issuer": null,
	"groups": [],
	"claims": {},
	"mechanism": "NONE",
}})

# policy_input with top-level keys replaced; nested objects merge, arrays are replaced.
with_overrides(op, rtype, name, sub, groups, overrides) := object.union(policy_input(op, rtype, name, sub, groups), overrides)

# The resource a cluster-level operation is on.
cluster := "kafka-cluster"

# The Pulsar commands and admin calls Gatekeeper decides each operation for (docs/pulsar.md):
# a binary-protocol command's api carries its BaseCommand type, an admin call's its endpoint.
pulsar := {
	"produce": {"api": {"key": 5, "name": "PRODUCER", "version": 21}, "request": {"producer_id": 1, "producer_name": "p", "encrypted": false}},
	"consume": {"api": {"key": 4, "name": "SUBSCRIBE", "version": 21}, "request": {"group": "sub-1", "subscription_type": "Exclusive", "consumer_id": 1}},
	"describe_topic": {"api": {"key": 23, "name": "LOOKUP", "version": 21}, "request": {"lookup": true, "authoritative": false}},
	"create_topic": {"api": {"key": 0, "name": "PUT /admin/v2/{domain}/{tenant}/{namespace}/{topic}", "version": 2}, "request": {"partitioned": false}},
	"delete_topic": {"api": {"key": 0, "name": "DELETE /admin/v2/{domain}/{tenant}/{namespace}/{topic}", "version": 2}, "request": {"force": false}},
	"delete_records": {"api": {"key": 0, "name": "DELETE /admin/v2/{domain}/{tenant}/{namespace}/{topic}/truncate", "version": 2}, "request": {"admin": "truncate"}},
	"alter_topic_config": {"api": {"key": 0, "name": "POST /admin/v2/{domain}/{tenant}/{namespace}/{topic}/retention", "version": 2}, "request": {"keys": ["retention"], "configs": {"retention": {"retentionTimeInMinutes": 1, "retentionSizeInMB": 1}}, "remove": false}},
	"list_topics": {"api": {"key": 0, "name": "GET /admin/v2/{domain}/{tenant}/{namespace}", "version": 2}, "request": {"domain": "persistent"}},
	"delete_namespace": {"api": {"key": 0, "name": "DELETE /admin/v2/namespaces/{tenant}/{namespace}", "version": 2}, "request": {"force": true}},
	"delete_tenant": {"api": {"key": 0, "name": "DELETE /admin/v2/tenants/{tenant}", "version": 2}, "request": {"force": true}},
	"describe_namespace": {"api": {"key": 0, "name": "GET /admin/v2/namespaces/{tenant}/{namespace}", "version": 2}, "request": {}},
}

# A complete Pulsar policy input: op on the resource (rtype, name) by sub, a member of groups.
pulsar_input(op, rtype, name, sub, groups) := object.union(object.remove(policy_input("produce", rtype, name, sub, groups), {"api", "client", "request"}), {
	"protocol": "pulsar",
	"operation": op,
	"api": pulsar[op].api,
	"client": {"id": "pulsar-client-cpp", "address": "10.20.30.40"},
	"request": pulsar[op].request,
})

# Kafka 4's consumer group protocol (KIP-848): a ConsumerGroupHeartbeat is join_group on the
# group (with the member's subscription, or leaving), and consume on each topic it subscribes
# to by name, on each match of its regex (resolving: a refusal leaves the topic out) and on
# each topic the broker assigns it.
heartbeat_api := {"key": 68, "name": "ConsumerGroupHeartbeat", "version": 1}

heartbeat_requests := {
	"join": {"group_type": "consumer", "subscription": {"topics": ["public.events"], "regex": "orders\\..*"}},
	"leave": {"group_type": "consumer", "leaving": true},
	"subscribed": {"group": "analytics-eu", "source": "subscription"},
	"resolving": {"group": "analytics-eu", "source": "regex", "regex": "orders\\..*", "resolving": true},
	"assigned": {"group": "analytics-eu", "source": "assignment"},
}

# A ConsumerGroupHeartbeat's input: kind is a key of heartbeat_requests.
heartbeat_input(op, rtype, name, sub, groups, kind) := object.union(
	object.remove(policy_input(op, rtype, name, sub, groups), ["api", "request"]),
	{"api": heartbeat_api, "request": heartbeat_requests[kind]},
)

# What every decision must look like (decision.schema.json, as the library uses it).
well_formed(decision) if {
	object.keys(decision) in {
		{"action", "reason", "ttl"}, {"action", "reason", "ttl", "error"},
		{"action", "reason", "ttl", "mask"}, {"action", "reason", "ttl", "approval"},
	}
	decision.action in {"allow", "deny", "mask", "approve"}
	is_string(decision.reason)
	count(decision.reason) > 0
	count(decision.reason) <= 1024
	regex.match(`^[0-9]+(\.[0-9]+)?(ms|s|m|h)$`, decision.ttl)
	_error_fits(decision)
	_mask_fits(decision)
	_approval_fits(decision)
}

_error_fits(decision) if not "error" in object.keys(decision)

_error_fits(decision) if {
	decision.action == "deny"
	decision.error in {"authorization", "policy_violation"}
}

_mask_fits(decision) if {
	decision.action != "mask"
	not "mask" in object.keys(decision)
}

_mask_fits(decision) if {
	decision.action == "mask"
	is_array(decision.mask)
	count(decision.mask) > 0
	count(decision.mask) <= 64
	every item in decision.mask {
		well_formed_mask_item(item)
	}
}

# A mask item as decision.schema.json has it.
well_formed_mask_item(item) if {
	is_object(item)
	every key, _ in item {
		key in {"field", "detector", "masker", "options", "in", "on_error"}
	}
	count({key | some key in ["field", "detector"]; item[key]}) == 1
	_target_fits(item)
	is_string(item.masker)
	item.masker != ""
	is_object(object.get(item, "options", {}))
	regex.match(`^(value|key|header:.+)$`, object.get(item, "in", "value"))
	object.get(item, "on_error", "deny") in {"deny", "redact_value", "pass"}
}

_target_fits(item) if startswith(item.field, "$")

_target_fits(item) if {
	is_string(item.detector)
	item.detector != ""
}

_approval_fits(decision) if {
	decision.action != "approve"
	not "approval" in object.keys(decision)
}

_approval_fits(decision) if {
	decision.action == "approve"
	well_formed_approval(decision.approval)
}

# An approval as decision.schema.json has it (and one that can be given: with only user
# approvers, no more approvals required than there are users).
well_formed_approval(approval) if {
	is_object(approval)
	every key, _ in approval {
		key in {"approvers", "approvals_required", "grant_ttl", "wait"}
	}
	is_array(approval.approvers)
	count(approval.approvers) > 0
	count(approval.approvers) <= 64
	every approver in approval.approvers {
		regex.match(`^(group|user):.+$`, approver)
	}
	required := object.get(approval, "approvals_required", 1)
	is_number(required)
	required == floor(required)
	required >= 1
	required <= 5
	_approvable(approval.approvers, required)
	every key in ["grant_ttl", "wait"] {
		regex.match(`^[0-9]+(\.[0-9]+)?(ms|s|m|h)$`, object.get(approval, key, "1s"))
	}
}

_approvable(approvers, _) if {
	some approver in approvers
	startswith(approver, "group:")
}

_approvable(approvers, required) if {
	count({approver | some approver in approvers; startswith(approver, "user:")}) >= required
}
