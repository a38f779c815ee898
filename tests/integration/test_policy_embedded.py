"""The same acceptance policy, evaluated in-process by the embedded engine (no OPA server)."""

from __future__ import annotations

import pytest
import pytest_twisted
from confluent_kafka import KafkaError

from tests.integration.conftest import in_thread, start_gateway
from tests.integration.test_policy_opa import (
    POLICY_DIR,
    PRINCIPALS,
    _delete,
    _kafka_python_two_topics,
    _list_topics,
    _produce,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedded_gateway(kafka_broker, tmp_path_factory):
    for topic in ("orders", "payments", "audit.log", "secret-stuff"):
        kafka_broker.create_topic(topic, partitions=1)
    gw = start_gateway(tmp_path_factory.mktemp("embedded-gw") / "gk.yaml", kafka_broker.bootstrap, {
        "policy": {"engine": "embedded", "policies": str(POLICY_DIR)},
        "identity": {"client_id_principals": PRINCIPALS},
    })
    yield gw
    pytest_twisted.blockon(gw.service.stopService())


@pytest_twisted.inlineCallbacks
def test_embedded_engine_enforces_the_same_policy(embedded_gateway):
    out = yield in_thread(_produce, embedded_gateway.bootstrap, "orders-producer", [("orders", b"e1"), ("payments", b"e2")])
    assert out["e1"][0] is None and out["e2"][0] == KafkaError.TOPIC_AUTHORIZATION_FAILED
    split = yield in_thread(_kafka_python_two_topics, embedded_gateway.bootstrap)
    assert split == {"orders": "ok", "payments": "TopicAuthorizationFailedError"}
    name, message = yield in_thread(_delete, embedded_gateway.bootstrap, "audit.log")
    assert name == "PolicyViolationError" and "immutable" in message
    listing = yield in_thread(_list_topics, embedded_gateway.bootstrap, "orders-reader")
    assert "orders" in listing and "secret-stuff" not in listing
    assert embedded_gateway.gateway.engine.name == "embedded"
