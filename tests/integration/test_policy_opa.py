"""Policy decisions from the real OPA server, enforced as Kafka errors on real clients."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient
from twisted.internet import reactor as _reactor
from twisted.internet import task
from twisted.logger import globalLogPublisher

from tests.integration.conftest import in_thread, start_gateway

pytestmark = pytest.mark.integration

POLICY_DIR = Path(__file__).parent / "policy"
PRINCIPALS = {
    "orders-producer": {"sub": "svc-orders", "groups": ["orders-writers"]},
    "orders-reader": {"sub": "svc-reader", "groups": ["orders-readers"]},
    "ops-admin": {"sub": "ops", "groups": ["platform"]},
    "nobody": {"sub": "svc-nobody", "groups": []},
}


@pytest.fixture(scope="module")
def opa_gateway(kafka_broker, opa_server, tmp_path_factory):
    for topic in ("orders", "payments", "audit.log", "secret-stuff"):
        kafka_broker.create_topic(topic, partitions=1)
    gw = start_gateway(tmp_path_factory.mktemp("opa-gw") / "gk.yaml", kafka_broker.bootstrap, {
        "policy": {"engine": "opa", "url": opa_server.url, "policies": str(POLICY_DIR), "timeout": "500ms",
                   "cache": {"max_entries": 1000, "default_ttl": "1s"}},
        "identity": {"client_id_principals": PRINCIPALS},
    })
    yield gw
    pytest_twisted.blockon(gw.service.stopService())


def _produce(bootstrap: str, client_id: str, records: list[tuple[str, bytes]], linger_ms: int = 0) -> dict[str, Any]:
    p = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": linger_ms,
                  "message.timeout.ms": 20000, "acks": "all"})
    results: dict[str, Any] = {}
    started = time.monotonic()

    def report(err: Any, msg: Any) -> None:
        results[msg.value().decode()] = (err.code() if err else None, time.monotonic() - started)

    for topic, value in records:
        p.produce(topic, value, on_delivery=report)
    p.flush(30)
    return results


@pytest_twisted.inlineCallbacks
def test_confluent_producer_allowed_on_orders_denied_on_payments_at_once(opa_gateway):
    out = yield in_thread(_produce, opa_gateway.bootstrap, "orders-producer",
                          [("orders", b"o1"), ("payments", b"p1"), ("orders", b"o2")], 200)
    assert out["o1"][0] is None and out["o2"][0] is None
    code, seconds = out["p1"]
    assert code == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert seconds < 5, "denied at once, not after retries or a timeout"


def _kafka_python_two_topics(bootstrap: str) -> dict[str, str]:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, client_id="orders-producer", linger_ms=300, retries=0)
    futures = {"orders": p.send("orders", b"split-o"), "payments": p.send("payments", b"split-p")}
    out = {}
    for topic, f in futures.items():
        try:
            f.get(30)
            out[topic] = "ok"
        except Exception as e:
            out[topic] = type(e).__name__
    p.close()
    return out


@pytest_twisted.inlineCallbacks
def test_one_produce_request_over_two_topics_is_split_allow_deny(opa_gateway):
    out = yield in_thread(_kafka_python_two_topics, opa_gateway.bootstrap)
    assert out == {"orders": "ok", "payments": "TopicAuthorizationFailedError"}
    produce = [i for i in opa_gateway.inputs if i["api"]["name"] == "Produce" and i["client"]["id"] == "orders-producer"]
    by_request: dict[tuple[str, str], set[str]] = {}
    for i in produce:
        by_request.setdefault((i["session"]["id"], i["time"]), set()).add(i["resource"]["name"])
    assert {"orders", "payments"} in by_request.values(), "both topics travelled in one Produce request"


def _delete(bootstrap: str, topic: str) -> tuple[str, str]:
    # kafka-python's admin speaks DeleteTopics v6, which carries the error message
    # (librdkafka uses v4, which has no message field to put the reason in).
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ops-admin")
    try:
        admin.delete_topics([topic])
        return "deleted", ""
    except Exception as e:
        return type(e).__name__, str(e)
    finally:
        admin.close()


@pytest_twisted.inlineCallbacks
def test_delete_of_immutable_topic_is_a_policy_violation_with_the_reason(opa_gateway, kafka_broker):
    name, message = yield in_thread(_delete, opa_gateway.bootstrap, "audit.log")
    assert name == "PolicyViolationError", (name, message)
    assert "immutable" in message, message
    listing = AdminClient({"bootstrap.servers": kafka_broker.bootstrap}).list_topics(timeout=10).topics
    assert "audit.log" in listing


def _list_topics(bootstrap: str, client_id: str) -> set[str]:
    return set(AdminClient({"bootstrap.servers": bootstrap, "client.id": client_id}).list_topics(timeout=15).topics)


@pytest_twisted.inlineCallbacks
def test_all_topics_listing_hides_what_the_principal_may_not_describe(opa_gateway):
    reader = yield in_thread(_list_topics, opa_gateway.bootstrap, "orders-reader")
    admin = yield in_thread(_list_topics, opa_gateway.bootstrap, "ops-admin")
    assert "orders" in reader and "secret-stuff" not in reader and "payments" not in reader
    assert {"orders", "secret-stuff", "payments", "audit.log"} <= admin


@pytest_twisted.inlineCallbacks
def test_opa_killed_denies_with_the_engine_error_then_recovers(opa_gateway, opa_server):
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        opa_server.kill()
        yield task.deferLater(_reactor, 1.2, lambda: None)  # cached decisions (ttl 1s) run out
        out = yield in_thread(_produce, opa_gateway.bootstrap, "orders-producer", [("orders", b"while-down")])
        assert out["while-down"][0] == KafkaError.TOPIC_AUTHORIZATION_FAILED
        reasons = [str(e.get("reason", "")) for e in events if "denied" in e.get("log_format", "")]
        assert any("policy engine opa failed" in r and "refused" in r.lower() for r in reasons), reasons[-3:]
        opa_server.start()
        deadline = time.monotonic() + 30
        while True:
            out = yield in_thread(_produce, opa_gateway.bootstrap, "orders-producer", [("orders", b"after")])
            if out["after"][0] is None or time.monotonic() > deadline:
                break
        assert out["after"][0] is None, "allowed again once OPA is back, with no restart"
    finally:
        globalLogPublisher.removeObserver(events.append)



def _make_groups(direct: str) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    for group in ("pub-dashboards", "priv-billing"):
        c = KafkaConsumer(bootstrap_servers=direct, group_id=group, enable_auto_commit=False)
        c.commit({TopicPartition("orders", 0): OffsetAndMetadata(0, "", -1)})
        c.close()


def _list_groups(bootstrap: str, client_id: str) -> set[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": client_id})
    return {g.group_id for g in admin.list_consumer_groups().result(30).valid}


@pytest_twisted.inlineCallbacks
def test_group_listing_hides_groups_the_principal_may_not_describe(opa_gateway, kafka_broker):
    yield in_thread(_make_groups, kafka_broker.bootstrap)
    reader = yield in_thread(_list_groups, opa_gateway.bootstrap, "orders-reader")
    admin = yield in_thread(_list_groups, opa_gateway.bootstrap, "ops-admin")
    assert "pub-dashboards" in reader and "priv-billing" not in reader
    assert {"pub-dashboards", "priv-billing"} <= admin
