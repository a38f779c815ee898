"""The kafka audit sink against real brokers: two trail writers (two instances) write one
topic with Gatekeeper's own SCRAM credentials, keyed by session; verify and search read it back
(also through the CLI with --config). A broker that goes away makes the trail unavailable; once
it is back the writer recovers by itself and nothing it accepted is missing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.api import AuditSinkContext
from gatekeeper.audit import AuditTrail, iter_records, key_id, verify
from gatekeeper.audit.kafka_settings import client_settings
from gatekeeper.audit.kafka_sink import KafkaSink
from gatekeeper.cli import main
from gatekeeper.config import UpstreamConfig, UpstreamSaslConfig
from gatekeeper.testing.audit import ThreadedClock, sample_fields
from gatekeeper.values import HostPort
from harness.broker import KafkaBroker

pytestmark = pytest.mark.integration

KEY = b"audit-key-0123456789abcdef"
KEYS = {key_id(KEY): KEY}
MECHANISM = "SCRAM-SHA-512"


def upstream(broker: KafkaBroker) -> UpstreamConfig:
    return UpstreamConfig(bootstrap_servers=(HostPort.parse(broker.sasl_bootstrap),),
                          sasl=UpstreamSaslConfig(mechanism=MECHANISM, username=broker.scram_user))


def credentials(broker: KafkaBroker) -> Any:
    return lambda: (MECHANISM, broker.scram_user, broker.scram_password)


def settings(broker: KafkaBroker) -> dict[str, Any]:
    return client_settings(upstream(broker), credentials(broker)())


class Writer:
    def __init__(self, broker: KafkaBroker, instance: str, topic: str, timeout: float = 10.0) -> None:
        self.clock = ThreadedClock(time.time())
        sink = KafkaSink({"topic": topic, "timeout": timeout},
                         AuditSinkContext("kafka", instance, upstream=upstream(broker), credentials=credentials(broker)))
        self.trail = AuditTrail(sink, key=KEY, instance=instance, reactor=self.clock, sink_name="kafka",
                                retry_min=0.2, retry_max=1.0, checkpoint_interval=0)

    def wait(self, d: Any, timeout: float = 60.0) -> None:
        self.clock.run_until(lambda: d.called, timeout)

    def start(self) -> None:
        self.wait(self.trail.start())
        assert self.trail.available, self.trail.error

    def session(self, sid: str) -> list[bool]:
        out = []
        for kind in ("session_start", "request", "session_end"):
            fields = sample_fields(kind)
            fields["session"] = sid
            out.append(self.trail.record(kind, fields))
            self.clock.advance(0.001)
        return out

    def stop(self) -> None:
        self.wait(self.trail.stop(timeout=60))


def test_two_instances_write_one_topic_and_verify_and_search_read_it(kafka_broker: KafkaBroker, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    topic = "gatekeeper-audit-two"
    kafka_broker.create_topic(topic, partitions=3)
    a, b = Writer(kafka_broker, "gk-a", topic), Writer(kafka_broker, "gk-b", topic)
    a.start()
    b.start()
    for i in range(10):
        assert a.session(f"A{i}") == [True] * 3
        assert b.session(f"B{i}") == [True] * 3
    a.wait(a.trail.flushed())
    b.wait(b.trail.flushed())
    a.stop()
    b.stop()

    source = f"kafka:{kafka_broker.sasl_bootstrap}/{topic}"
    report = verify(source, KEYS, closed=True, kafka_settings=settings(kafka_broker))
    assert report.ok, report.problems
    assert sorted(c.instance for c in report.chains) == ["gk-a", "gk-b"]
    assert [c.records for c in report.chains] == [32, 32]  # start, 30 records, stop
    assert all(c.chain.startswith(f"{c.instance}@") for c in report.chains)

    records = list(iter_records(source, kafka_settings=settings(kafka_broker)))
    assert [r["kind"] for r in records if r.get("session") == "B7"] == ["session_start", "request", "session_end"]

    # keyed by session: a session's records share one partition
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, consumer_timeout_ms=3000, **settings(kafka_broker))
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    partitions: dict[str, set[int]] = {}
    for m in consumer:
        record = json.loads(m.value)
        if "session" in record:
            assert m.key == record["session"].encode()
            partitions.setdefault(record["session"], set()).add(m.partition)
    consumer.close()
    assert len(partitions) == 20 and all(len(p) == 1 for p in partitions.values())
    assert len({next(iter(p)) for p in partitions.values()}) > 1  # spread over the partitions

    # the CLI, with Gatekeeper's own config: the trail, its key and the broker credentials
    (tmp_path / "audit.key").write_bytes(KEY)
    (tmp_path / "broker.pw").write_text(kafka_broker.scram_password)
    config = tmp_path / "gatekeeper.yaml"
    config.write_text(yaml.safe_dump({
        "listeners": [{"name": "l", "bind": "127.0.0.1:9192", "broker_ports": "9193-9194"}],
        "upstream": {"bootstrap_servers": [kafka_broker.sasl_bootstrap],
                     "sasl": {"mechanism": MECHANISM, "username": kafka_broker.scram_user,
                              "password_file": "broker.pw"}},
        "policy": {"engine": "allow-all"},
        "audit": {"sink": "kafka", "topic": topic, "hmac_key_file": "audit.key"}}))
    assert main(["audit", "verify", "--config", str(config), "--closed"]) == 0
    assert capsys.readouterr().out.strip().endswith("ok 64 records in 2 chains")
    assert main(["audit", "search", "--config", str(config), "--session", "A3", "--json"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["instance"], r["kind"]) for r in found] == [("gk-a", "session_start"), ("gk-a", "request"),
                                                            ("gk-a", "session_end")]


def test_a_record_edited_in_the_topic_is_found(kafka_broker: KafkaBroker) -> None:
    """Nobody can change a Kafka record, but anyone allowed to write the topic can add a
    different one with the same seq: verify reports the pair."""
    topic = "gatekeeper-audit-forged"
    kafka_broker.create_topic(topic, partitions=1)
    w = Writer(kafka_broker, "gk-a", topic)
    w.start()
    w.session("S1")
    w.stop()
    source = f"kafka:{kafka_broker.sasl_bootstrap}/{topic}"
    [request] = [r for r in iter_records(source, kafka_settings=settings(kafka_broker)) if r["kind"] == "request"]
    request["operations"][0]["decision"]["action"] = "deny"
    from kafka import KafkaProducer

    producer = KafkaProducer(**settings(kafka_broker))
    producer.send(topic, json.dumps(request).encode()).get(10)
    producer.close()
    report = verify(source, KEYS, kafka_settings=settings(kafka_broker))
    assert [p.message for p in report.problems] == [
        f"a second, different record with this seq (the first is at {topic}[0]@2): edited or forged"]


@pytest.fixture(scope="module")
def outage_broker() -> Iterator[KafkaBroker]:
    """A broker of its own, stopped and started again on the same ports and data directory."""
    broker = KafkaBroker(heap="512m", keep_workdir=True)
    broker.start()
    try:
        yield broker
    finally:
        workdir = broker.workdir
        broker.keep_workdir = False
        broker.stop()
        if workdir is not None:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


def test_an_unreachable_broker_makes_the_trail_unavailable_until_it_is_back(outage_broker: KafkaBroker) -> None:
    topic = "gatekeeper-audit-outage"
    outage_broker.create_topic(topic, partitions=2)
    w = Writer(outage_broker, "gk-a", topic, timeout=3.0)
    w.start()
    assert w.session("before") == [True] * 3
    w.wait(w.trail.flushed())

    outage_broker.stop_process()  # same ports and data when it starts again
    accepted = w.session("during")  # accepted until the writer finds out
    w.clock.run_until(lambda: not w.trail.available, timeout=30)
    assert "topic gatekeeper-audit-outage" in str(w.trail.error)
    refused = w.session("refused")
    assert refused == [False] * 3  # on_failure: deny

    outage_broker.start_process()
    w.clock.run_until(lambda: w.trail.available, timeout=90)
    assert w.session("after") == [True] * 3
    w.stop()

    source = f"kafka:{outage_broker.sasl_bootstrap}/{topic}"
    report = verify(source, KEYS, closed=True, kafka_settings=settings(outage_broker))
    assert report.ok, report.problems
    records = list(iter_records(source, kafka_settings=settings(outage_broker)))
    sessions = [r["session"] for r in records if r["kind"] == "session_start"]
    expected = ["before", *(["during"] if accepted[0] else []), "after"]
    assert sorted(sessions) == sorted(expected)
    [gap] = [r for r in records if r["kind"] == "unavailable"]
    assert gap["refused"] == {"session_start": 1, "request": 1, "session_end": 1}
    assert "topic gatekeeper-audit-outage" in gap["reason"]
