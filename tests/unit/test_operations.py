from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

from gatekeeper.kafka import codec
from gatekeeper.kafka.codec import API_TABLE
from gatekeeper.kafka.operations import OPERATION_NAMES, UnresolvedTopicIds, operations_for
from gatekeeper.policy.input import SessionInfo, build_input
from tests.unit.samples import SAMPLES_TOPIC_NAME, TOPIC_ID, produce, samples

SCHEMA = json.loads(resources.files("gatekeeper").joinpath("schemas/policy-input.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
SESSION = SessionInfo("01JTESTSESSION0000000000000", 1_700_000_000.0, "127.0.0.1")


def resolve(topic_id):
    return SAMPLES_TOPIC_NAME if topic_id == TOPIC_ID else None


def ops_of(message, version):
    message.with_header(correlation_id=1, client_id="c")
    header, spec, body, _ = codec.decode_request(bytes(message.encode(version=version, header=True)))
    return header, spec, operations_for(header.api_key, version, body, resolve)


@pytest.mark.parametrize(("label", "message", "version"), samples(), ids=[s[0] for s in samples()])
def test_every_sample_gives_schema_valid_inputs(label, message, version) -> None:
    header, spec, ops = ops_of(message, version)
    assert ops, label
    for op in ops:
        assert op.name in OPERATION_NAMES
        doc = build_input(op, api_key=header.api_key, api_name=spec.name, api_version=version,
                          client_id=header.client_id, session=SESSION, now=1_700_000_001.5)
        VALIDATOR.validate(doc)
        assert doc["time"] == "2023-11-14T22:13:21.500Z"


def test_produce_counts_records_per_topic_and_names_transactions() -> None:
    _, _, ops = ops_of(produce(9, acks=1, txn="tx-1"), 9)
    assert [(o.name, o.resource.type, o.resource.name) for o in ops] == [
        ("produce", "topic", "orders"),
        ("transactional_write", "transactional_id", "tx-1"),
    ]
    assert ops[0].request["record_count"] == 5
    assert ops[0].request["partitions"] == [0, 2]
    assert ops[0].request["acks"] == 1


def test_topic_ids_resolve_to_names_or_raise() -> None:
    _, _, ops = ops_of(produce(13), 13)
    assert ops[0].resource.name == SAMPLES_TOPIC_NAME
    message = produce(13)
    message.with_header(correlation_id=1, client_id="c")
    header, spec, body, _ = codec.decode_request(bytes(message.encode(version=13, header=True)))
    with pytest.raises(UnresolvedTopicIds) as err:
        operations_for(0, 13, body, lambda _id: None)
    assert err.value.ids == {TOPIC_ID}


def test_every_api_has_an_operation_of_its_own_and_none_is_other() -> None:
    from gatekeeper.kafka.apis import UNITS

    names = set()
    for _label, message, version in samples():
        _, _, ops = ops_of(message, version)
        names |= {o.name for o in ops}
    assert "other" not in OPERATION_NAMES and "other" not in names
    F = API_TABLE_REQ[57]
    body = F[1](timeout_ms=1000, feature_updates=[F.FeatureUpdateKey(feature="metadata.version", max_version_level=1, upgrade_type=1)],
                validate_only=False)
    (op,) = operations_for(57, 1, body, resolve)
    assert (op.name, op.resource.type, op.request) == ("update_features", "cluster", {"features": ["metadata.version"]})
    assert len(UNITS) >= 51


def test_schema_rejects_an_unknown_resource_type() -> None:
    _, spec, ops = ops_of(produce(9), 9)
    doc = build_input(ops[0], api_key=0, api_name="Produce", api_version=9, client_id=None, session=SESSION, now=0)
    doc["resource"]["type"] = "planet"
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(doc)


API_TABLE_REQ = {k: v.request for k, v in API_TABLE.items()}
