"""SIGHUP reloads policies without dropping clients; a broken policy is refused, the old stays."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.errors import TopicAuthorizationFailedError

from harness.gateway import TwistdGateway
from harness.waiting import wait_for

pytestmark = pytest.mark.integration

SOURCE = Path(__file__).parent / "policy" / "acceptance.rego"


def _send(producer: KafkaProducer, value: bytes) -> str:
    try:
        producer.send("reload-topic", value).get(15)
        return "ok"
    except TopicAuthorizationFailedError:
        return "denied"


def _until(producer: KafkaProducer, want: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    got = _send(producer, b"probe")
    while got != want and time.monotonic() < deadline:
        time.sleep(0.3)
        got = _send(producer, b"probe")
    return got


def test_sighup_reloads_and_refuses_a_broken_policy(tmp_path, kafka_broker, opa_server) -> None:
    kafka_broker.create_topic("reload-topic")
    policies = tmp_path / "policies"
    policies.mkdir()
    rego = policies / "acceptance.rego"
    rego.write_text(SOURCE.read_text().replace('writable := {"orders-writers": {"orders"}}',
                                               'writable := {"orders-writers": {"orders", "reload-topic"}}'))
    opa_server.restart()  # an OPA of its own state: nothing left from other tests
    gw = TwistdGateway(tmp_path / "gw", kafka_broker.bootstrap, extra={
        "policy": {"engine": "opa", "url": opa_server.url, "policies": str(policies), "cache": {"default_ttl": "1s"}},
        "identity": {"client_id_principals": {"writer": {"sub": "svc-orders", "groups": ["orders-writers"]}}},
    })
    with gw:
        producer = KafkaProducer(bootstrap_servers=gw.bootstrap, client_id="writer", retries=0, acks="all")
        assert _send(producer, b"before") == "ok"
        rego.write_text(SOURCE.read_text())  # reload-topic no longer writable
        gw.reload()
        assert _until(producer, "denied") == "denied"
        shutil.copy(rego, tmp_path / "good.rego")
        rego.write_text("package gatekeeper\n\ndecision := {\"action\": \"allow\"} if {\n  this is not rego\n")
        gw.reload()
        wait_for(lambda: "policy reload refused" in gw.log_path.read_text(), 15, "the refused reload's log line",
                 detail=gw.log_tail)
        assert "policy reload refused" in gw.log_path.read_text(), gw.log_tail()
        assert _send(producer, b"still-old-policy") == "denied"  # the broken policy never took effect
        assert "closing connection" not in gw.log_path.read_text()  # the client was never dropped
        producer.close()
