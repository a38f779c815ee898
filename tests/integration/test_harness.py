"""The harness itself: the real broker, the real OPA server and Kafka's Java tools work."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from harness import javatools
from harness.broker import KafkaBroker
from harness.deps import OPA_VERSION
from harness.opa import OpaServer, opa_version

pytestmark = pytest.mark.integration


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_plaintext_round_trip_with_kafka_python(kafka_broker: KafkaBroker) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    topic = _topic("harness-plain")
    kafka_broker.create_topic(topic, partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    producer.send(topic, key=b"k", value=b"hello through the harness").get(timeout=30)
    producer.close()

    consumer = KafkaConsumer(
        topic, bootstrap_servers=kafka_broker.bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, consumer_timeout_ms=15_000,
    )
    try:
        got = []
        for msg in consumer:  # stops at the first record, or after consumer_timeout_ms
            got.append((msg.key, msg.value))
            break
    finally:
        consumer.close()
    assert got == [(b"k", b"hello through the harness")]


def test_sasl_scram_sha512_accepts_the_user(kafka_broker: KafkaBroker) -> None:
    from kafka import KafkaProducer

    topic = _topic("harness-sasl")
    producer = KafkaProducer(**kafka_broker.kafka_python_sasl_config("SCRAM-SHA-512"), acks="all")
    try:
        metadata = producer.send(topic, value=b"over SASL").get(timeout=30)
    finally:
        producer.close()
    assert metadata.topic == topic
    assert metadata.offset == 0


def test_sasl_scram_sha512_refuses_a_wrong_password(kafka_broker: KafkaBroker) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    before = len(kafka_broker.failed_authentications())
    config = kafka_broker.kafka_python_sasl_config("SCRAM-SHA-512", password="not-the-password")
    # kafka-python 3.0 retries a refused SASL login until the bootstrap timeout.
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_timeout_ms=2000, **config)
    refused = kafka_broker.failed_authentications()[before:]
    assert refused, "the broker logged no failed authentication"
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in refused[0]
    assert not kafka_broker.sasl_login_ok(kafka_broker.scram_user, "not-the-password")
    assert kafka_broker.sasl_login_ok(kafka_broker.scram_user, kafka_broker.scram_password)


def test_sasl_plain_and_scram_sha256_users(kafka_broker: KafkaBroker) -> None:
    assert kafka_broker.sasl_login_ok(kafka_broker.plain_user, kafka_broker.plain_password, "PLAIN")
    assert kafka_broker.sasl_login_ok(
        kafka_broker.scram_user, kafka_broker.scram_password, "SCRAM-SHA-256"
    )


def test_opa_version_and_health(opa_server: OpaServer) -> None:
    assert opa_version() == OPA_VERSION.removeprefix("v")
    with urllib.request.urlopen(f"{opa_server.url}/health", timeout=5) as resp:
        assert resp.status == 200
        assert json.loads(resp.read()) == {}


def test_opa_restarts_on_the_same_port() -> None:
    with OpaServer() as opa:
        port = opa.port
        opa.kill()
        assert not opa.healthy()
        opa.start()
        assert opa.port == port
        assert opa.healthy()


def test_java_console_producer_and_consumer_round_trip_keys(kafka_broker: KafkaBroker) -> None:
    topic = _topic("harness-console")
    records = [("k1", "v1"), ("k2", "v2 with spaces"), ("k3", "v3")]
    javatools.console_produce(kafka_broker.bootstrap, topic, records, key_separator=":",
                              compression="zstd")
    got = javatools.console_consume(
        kafka_broker.bootstrap, topic, max_messages=len(records), print_key=True,
        key_separator=":",
    )
    assert [(r.key, r.value) for r in got] == records


def test_java_console_tools_over_sasl(kafka_broker: KafkaBroker) -> None:
    topic = _topic("harness-console-sasl")
    props = kafka_broker.java_sasl_properties("SCRAM-SHA-512")
    javatools.console_produce(kafka_broker.sasl_bootstrap, topic, ["a", "b"], properties=props)
    got = javatools.console_consume(kafka_broker.sasl_bootstrap, topic, max_messages=2,
                                    properties=props)
    assert [r.value for r in got] == ["a", "b"]


def test_producer_and_consumer_perf_tests(kafka_broker: KafkaBroker) -> None:
    topic = _topic("harness-perf")
    produced = javatools.producer_perf(kafka_broker.bootstrap, topic, num_records=2000,
                                       record_size=100)
    assert produced.records == 2000
    assert produced.records_per_sec > 0
    assert produced.mb_per_sec > 0
    assert 0 <= produced.p50_ms <= produced.p99_ms <= produced.max_latency_ms

    consumed = javatools.consumer_perf(kafka_broker.bootstrap, topic, num_records=2000)
    assert consumed.records >= 2000
    assert consumed.records_per_sec > 0


def test_perf_output_parsers() -> None:
    producer_out = (
        "Warmup first 5000 records. Steady state results will print after the complete test "
        "summary.\n"
        "20000 records sent, 20554.984584 records/sec (1.96 MB/sec), 112.41 ms avg latency, "
        "368.00 ms max latency, 107 ms 50th, 173 ms 95th, 177 ms 99th, 178 ms 99.9th.\n"
        "15000 steady state records sent, 33259.423503 records/sec (3.17 MB/sec), 125.95 ms avg "
        "latency, 178.00 ms max latency, 129 ms 50th, 175 ms 95th, 177 ms 99th, 178 ms 99.9th.\n"
    )
    result = javatools.parse_producer_perf(producer_out)
    assert result == javatools.ProducerPerfResult(
        records=20000, records_per_sec=20554.984584, mb_per_sec=1.96, avg_latency_ms=112.41,
        max_latency_ms=368.0, p50_ms=107, p95_ms=173, p99_ms=177, p999_ms=178,
    )
    consumer_out = (
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
        "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
        "2026-11-23 07:22:37:985, 2026-11-23 07:22:38:658, 3.8147, 5.6682, 40000, 59435.3640, "
        "436, 237, 16.0958, 168776.3713\n"
    )
    consumed = javatools.parse_consumer_perf(consumer_out)
    assert consumed.records == 40000
    assert consumed.records_per_sec == pytest.approx(59435.364)
    assert consumed.mb_per_sec == pytest.approx(5.6682)
    with pytest.raises(javatools.JavaToolError):
        javatools.parse_producer_perf("nothing useful\n")


def test_set_scram_password_with_kafka_configs(kafka_broker: KafkaBroker) -> None:
    user, password = "rotation-user", "first-password"
    kafka_broker.set_scram_password(user, password)
    assert kafka_broker.sasl_login_ok(user, password)
    kafka_broker.set_scram_password(user, "second-password")
    assert kafka_broker.sasl_login_ok(user, "second-password")
    assert not kafka_broker.sasl_login_ok(user, password)
