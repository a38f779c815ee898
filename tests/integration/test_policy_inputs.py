"""Every request the real clients sent through Gatekeeper became schema-valid policy input.

Runs last in this folder (alphabetical), so it sees the inputs of the other client tests in the
session; it also drives a small workload of its own so it stands alone."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest
import pytest_twisted

from tests.integration.clients import confluent_roundtrip, kafka_python_roundtrip, make_records
from tests.integration.conftest import in_thread

pytestmark = pytest.mark.integration

SCHEMA = json.loads(resources.files("gatekeeper").joinpath("schemas/policy-input.schema.json").read_text())


def _workload(bootstrap: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic("inputs-a", 3, 1)]).values():
        f.result(30)
    kafka_python_roundtrip(bootstrap, "inputs-a", make_records(50), "gzip")
    confluent_roundtrip(bootstrap, "inputs-a", make_records(50), "lz4")
    for f in admin.delete_topics(["inputs-a"]).values():
        f.result(30)


@pytest_twisted.inlineCallbacks
def test_every_decoded_request_is_valid_policy_input(gateway):
    yield in_thread(_workload, gateway.bootstrap)
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    assert gateway.inputs
    errors = [(i["api"]["name"], e.message) for i in gateway.inputs for e in validator.iter_errors(i)]
    assert errors == []
    apis = {i["api"]["name"] for i in gateway.inputs}
    expected = {"ApiVersions", "Metadata", "Produce", "Fetch", "ListOffsets", "FindCoordinator",
                "JoinGroup", "SyncGroup", "Heartbeat", "LeaveGroup", "OffsetFetch", "InitProducerId",
                "CreateTopics", "DeleteTopics"}
    assert expected <= apis, f"missing: {sorted(expected - apis)}"
    # One decision per (operation, resource): a produce names its topic, a group op its group.
    assert {(i["operation"], i["resource"]["type"]) for i in gateway.inputs if i["api"]["name"] == "Produce"} == {("produce", "topic")}
    assert all(i["resource"]["name"] for i in gateway.inputs if i["resource"]["type"] == "topic")
