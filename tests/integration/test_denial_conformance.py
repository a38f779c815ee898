"""Every error response Gatekeeper synthesizes, compared field by field with the broker's own.

A broker running Kafka's StandardAuthorizer refuses a SASL user with no ACLs everything. Each
request of the catalogue (every API Gatekeeper answers with its own denial) is sent, at every
version both Gatekeeper and the broker speak, (a) to that broker as that user and (b) through
Gatekeeper's enforcement path with every operation denied: operations, ``enforce.plan``, and for
a split request the broker's answer to the forwarded part merged with the denials. The two
responses are decoded with the same schema and must agree on every field: nullability, empty vs
null arrays and record sets, tagged fields, throttle time, error codes. The only freedoms:
entities may come in another order, and an error message may carry Gatekeeper's reason where
the broker sends another text or none (never null where the broker sends a string).
"""

from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.api import Decision
from gatekeeper.kafka import codec, enforce
from gatekeeper.kafka.cluster import ClusterView
from gatekeeper.kafka.codec import API_TABLE
from gatekeeper.kafka.messages import INSPECTABLE, KafkaCodec
from tests.conftest import AUTHZ_OUTSIDER
from tests.integration.rawkafka import RawKafka
from tests.integration.requests_catalog import CATALOG, Names, request_fields

pytestmark = pytest.mark.integration

DENY = Decision("deny", reason="refused by the conformance policy")
_IDENTITY = ("name", "topic", "topic_id", "group_id", "transactional_id", "key", "resource_name",
             "partition_index", "index", "partition")


@pytest.fixture(scope="module")
def setup(authz_broker) -> Any:
    names = Names()
    for topic in (names.topic, names.topic2):
        authz_broker.create_topic(topic, partitions=2)
    # Gatekeeper's side forwards as the super user on the same listener (so broker addresses agree).
    admin = RawKafka(authz_broker.sasl_bootstrap, user=authz_broker.plain_user, password=authz_broker.plain_password)
    md = admin.request(3, 12, topics=[API_TABLE[3].request.MetadataRequestTopic(name=names.topic)],
                       allow_auto_topic_creation=False)
    names = Names(topic_id=md.topics[0].topic_id)
    versions = admin.request(18, 3, client_software_name="gatekeeper-tests", client_software_version="1")
    broker_range = {a.api_key: (a.min_version, a.max_version) for a in versions.api_keys}
    outsider = RawKafka(authz_broker.sasl_bootstrap, user=AUTHZ_OUTSIDER[0], password=AUTHZ_OUTSIDER[1])
    yield names, broker_range, admin, outsider
    admin.close()
    outsider.close()


def _cases() -> list[str]:
    return list(CATALOG)


def _sorted(items: list[Any]) -> list[Any]:
    def key(item: Any) -> str:
        if isinstance(item, dict):
            return repr([item.get(k) for k in _IDENTITY])
        return repr(item)

    return sorted(items, key=key)


def differences(broker: Any, ours: Any, path: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(broker, dict) and isinstance(ours, dict):
        for k in sorted(broker.keys() | ours.keys()):
            b, o = broker.get(k, "<absent>"), ours.get(k, "<absent>")
            if k == "error_message" and o is not None and isinstance(b, str | type(None)) and isinstance(o, str):
                continue  # Gatekeeper's reason where the broker has a message or none
            out += differences(b, o, f"{path}.{k}")
    elif isinstance(broker, list) and isinstance(ours, list):
        if len(broker) != len(ours):
            out.append(f"{path}: {len(broker)} entries from the broker, {len(ours)} from Gatekeeper")
        for i, (b, o) in enumerate(zip(_sorted(broker), _sorted(ours), strict=False)):
            out += differences(b, o, f"{path}[{i}]")
    elif broker != ours:
        out.append(f"{path}: broker {broker!r}, Gatekeeper {ours!r}")
    return out


def _gatekeeper_answer(frame: bytes, names: Names, admin: RawKafka) -> Any:
    cluster = ClusterView(3)
    cluster.observe_topics([(names.topic_id, names.topic)])
    adapter = KafkaCodec(cluster)
    request = adapter.decode(frame)
    ops = adapter.operations(request)
    plan = enforce.plan(request, ops, [DENY] * len(ops), cluster.topic_name)
    key, version = request.header.api_key, request.header.api_version
    spec = API_TABLE[key]
    if isinstance(plan, enforce.Respond):
        return RawKafka.decode(key, version, adapter.response_header(request) + plan.body)
    assert isinstance(plan, enforce.Partial), f"{spec.name} v{version} with everything denied planned {plan!r}"
    admin.send_frame(plan.frame)
    raw = admin.read_frame()
    head, body = codec.decode_response_body(raw, spec, version)
    merged = plan.merge(body)
    return RawKafka.decode(key, version, head + codec.encode_body(merged, version))


@pytest.mark.parametrize("name", _cases())
def test_denial_matches_the_brokers_own_authorization_error(setup, name: str) -> None:
    names, broker_range, admin, outsider = setup
    key = CATALOG[name][0]
    spec = API_TABLE[key]
    lo, hi = broker_range.get(key, (1, 0))
    ours = INSPECTABLE[key]
    versions = range(max(ours[0], lo), min(ours[1], hi) + 1)
    assert versions, f"{spec.name}: no version both Gatekeeper and the broker speak"
    failures = []
    for version in versions:
        _key, fields = request_fields(name, version, names)
        _cid, frame = outsider.encode(key, version, **fields)
        outsider.send_frame(frame)
        broker = RawKafka.decode(key, version, outsider.read_frame())
        ours = _gatekeeper_answer(frame, names, admin)
        codes = [c for c in _codes(broker.to_dict()) if c]
        # DescribeLogDirs before v3 has no error field: the broker refuses with an empty answer.
        assert codes or (key == 35 and version < 3), f"{spec.name} v{version}: the broker did not refuse the request ({broker})"
        failures += [f"{spec.name} v{version}{d}" for d in differences(broker.to_dict(), ours.to_dict())]
    assert not failures, "\n".join(failures)


def _codes(value: Any) -> list[int]:
    if isinstance(value, dict):
        return [c for k, v in value.items() for c in ([v] if k.endswith("error_code") else _codes(v))]
    if isinstance(value, list):
        return [c for v in value for c in _codes(v)]
    return []
