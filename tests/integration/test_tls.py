"""TLS on the client listener, and mTLS where the certificate subject becomes the principal."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from confluent_kafka import KafkaError, Producer
from kafka.errors import KafkaTimeoutError
from twisted.logger import formatEvent, globalLogPublisher

from harness.certs import TestCa
from tests.integration.conftest import in_thread, start_gateway
from tests.integration.test_policy_opa import POLICY_DIR

pytestmark = pytest.mark.integration


def _produce_tls(bootstrap: str, ca: str, cert: str | None = None, key: str | None = None,
                 errors: list[KafkaError] | None = None) -> dict[str, int | None]:
    """Delivery results by topic (error code or None); client-level errors go to ``errors``."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "security.protocol": "SSL", "ssl.ca.location": ca,
                            "message.timeout.ms": 15000}
    if cert:
        conf.update({"ssl.certificate.location": cert, "ssl.key.location": key})
    if errors is not None:
        conf["error_cb"] = errors.append
    out: dict[str, int | None] = {}
    p = Producer(conf)
    for topic in ("orders", "payments"):
        p.produce(topic, b"tls", on_delivery=lambda e, m: out.__setitem__(m.topic(), e.code() if e else None))
    p.flush(20)
    return out


@pytest.fixture(scope="module")
def mtls(kafka_broker, tmp_path_factory):
    for topic in ("orders", "payments"):
        kafka_broker.create_topic(topic)
    work = tmp_path_factory.mktemp("mtls")
    ca = TestCa(work / "pki")
    server_cert, server_key = ca.issue("server", "127.0.0.1", server=True)
    client = ca.issue("client", "svc-orders", ou="orders-writers")
    gw = start_gateway(work / "gk.yaml", kafka_broker.bootstrap,
                       {"policy": {"engine": "embedded", "policies": str(POLICY_DIR)}},
                       tls={"cert_file": str(server_cert), "key_file": str(server_key), "client_ca_file": str(ca.ca_file)})
    yield gw, ca, client
    pytest_twisted.blockon(gw.service.stopService())


@pytest_twisted.inlineCallbacks
def test_mtls_certificate_subject_is_the_principal(mtls):
    gw, ca, (client_cert, client_key) = mtls
    out = yield in_thread(_produce_tls, gw.bootstrap, str(ca.ca_file), str(client_cert), str(client_key))
    assert out == {"orders": None, "payments": KafkaError.TOPIC_AUTHORIZATION_FAILED}
    produce = [i for i in gw.inputs if i["operation"] == "produce"]
    assert produce and all(i["principal"]["sub"] == "svc-orders" and i["principal"]["mechanism"] == "MTLS"
                           and i["principal"]["groups"] == ["orders-writers"] for i in produce)
    # Without a client certificate the TLS handshake is refused: nothing gets through, and what
    # the client reports is the gateway's TLS alert asking for a certificate.
    errors: list[KafkaError] = []
    out = yield in_thread(_produce_tls, gw.bootstrap, str(ca.ca_file), errors=errors)
    assert out == {"orders": KafkaError._MSG_TIMED_OUT, "payments": KafkaError._MSG_TIMED_OUT}
    refused = [e for e in errors if e.code() == KafkaError._TRANSPORT and "certificate required" in e.str()]
    assert refused, [e.str() for e in errors]


@pytest.fixture(scope="module")
def chained(kafka_broker, tmp_path_factory):
    """client → gateway A (plaintext) → TLS → gateway B (TLS listener) → broker."""
    kafka_broker.create_topic("chained")
    work = tmp_path_factory.mktemp("chain")
    ca = TestCa(work / "pki")
    cert, key = ca.issue("b", "127.0.0.1", server=True)
    b = start_gateway(work / "b.yaml", kafka_broker.bootstrap, {}, tls={"cert_file": str(cert), "key_file": str(key)})
    a = start_gateway(work / "a.yaml", b.bootstrap, {"upstream": {"bootstrap_servers": [b.bootstrap], "tls": {"ca_file": str(ca.ca_file)}}})
    wrong = TestCa(work / "other-pki")
    c = start_gateway(work / "c.yaml", b.bootstrap, {"upstream": {"bootstrap_servers": [b.bootstrap], "tls": {"ca_file": str(wrong.ca_file)}}})
    yield a, b, c
    for gw in (a, b, c):
        pytest_twisted.blockon(gw.service.stopService())


def _roundtrip(bootstrap: str) -> list[bytes]:
    from kafka import KafkaConsumer, KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=8000)
    p.send("chained", b"over-tls").get(15)
    p.close()
    c = KafkaConsumer("chained", bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=8000)
    values = [m.value for m in c]
    c.close()
    return values


@pytest_twisted.inlineCallbacks
def test_upstream_tls_verifies_the_broker_certificate(chained):
    a, b, c = chained
    assert b"over-tls" in (yield in_thread(_roundtrip, a.bootstrap))
    assert b.gateway.metrics.get("gatekeeper_requests_total", api="Produce") >= 1  # it went through B
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        # C cannot verify B's certificate: every connection it opens upstream fails the TLS
        # handshake, so it closes each client connection and the client never bootstraps.
        with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
            yield in_thread(_roundtrip, c.bootstrap)
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = [formatEvent(e) for e in events]
    closed = [ln for ln in lines if "broker connection closed" in ln and "certificate verify failed" in ln]
    assert closed, lines
    m = c.gateway.metrics  # the TLS handshake fails after TCP connects: the upstream is lost
    assert m.get("gatekeeper_upstream_errors_total", kind="connect") + m.get("gatekeeper_upstream_errors_total", kind="lost") >= 1
    assert m.get("gatekeeper_requests_total", api="Produce") == 0


def _large_roundtrip(bootstrap: str) -> int:
    from kafka import KafkaConsumer, KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=8000, linger_ms=20)
    for i in range(400):
        p.send("chained-large", bytes([i % 256]) * 1024)
    p.flush(15)
    p.close()
    c = KafkaConsumer("chained-large", bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=8000)
    n = sum(1 for m in c if m.value == bytes([m.value[0]]) * 1024)
    c.close()
    return n


@pytest_twisted.inlineCallbacks
def test_tls_connections_are_never_spliced(chained, kafka_broker):
    """A's broker connection and B's client connection are TLS: large Fetch answers go through
    both the ordinary way (splicing moves bytes beneath TLS only on plain TCP)."""
    a, b, _ = chained
    kafka_broker.create_topic("chained-large")
    assert (yield in_thread(_large_roundtrip, a.bootstrap)) == 400
    for gw in (a, b):
        m = gw.gateway.metrics
        assert m.get("gatekeeper_bytes_total", direction="from_broker") > 400 * 1024
        assert m.get("gatekeeper_spliced_bytes_total", to="socket") == 0
        assert m.get("gatekeeper_spliced_bytes_total", to="queue") == 0
