"""The audit trail of real traffic: a session of produce, consume, a denied produce and an
admin call through ``twistd gatekeeper`` with librdkafka, recorded with the right principal,
decision and outcome; the trail verifies, and the recorded base offsets find exactly the records
that were written. A failing sink (a disk that takes no more writes) makes operations denied
with the reason, loses nothing acknowledged, and recovers without a restart."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import pytest_twisted

from gatekeeper.audit import iter_records, verify
from harness.gateway import TwistdGateway
from harness.waiting import wait_for
from tests.integration.conftest import in_thread, start_gateway

pytestmark = pytest.mark.integration

POLICY = Path(__file__).parent / "policy_audit"
POLICY_B = Path(__file__).parent / "policy_audit_b"
PRINCIPALS = {"auditee": {"sub": "auditee", "groups": ["apps"]}}
SCHEMA = jsonschema.Draft202012Validator(json.loads(resources.files("gatekeeper").joinpath("schemas/audit-record.schema.json").read_text()))


def _audit_config(work: Path) -> dict[str, Any]:
    key = work / "audit.key"
    key.write_bytes(b"audit-test-key-0123456789abcdef")
    key.chmod(0o600)
    return {"policy": {"engine": "embedded", "policies": str(POLICY)},
            "identity": {"client_id_principals": PRINCIPALS},
            "audit": {"directory": str(work / "trail"), "hmac_key_file": str(key), "instance": "gk-test",
                      "checkpoint_interval": "1s"}}


@pytest.fixture(scope="module")
def audited_gateway(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("audit")
    with TwistdGateway(work, kafka_broker.bootstrap, extra=_audit_config(work)) as gw:
        gw.trail = work / "trail"  # type: ignore[attr-defined]
        gw.key = work / "audit.key"  # type: ignore[attr-defined]
        yield gw


def _requests(trail: Path, api: str) -> list[dict[str, Any]]:
    return [r for r in iter_records(trail) if r["kind"] == "request" and r["api"]["name"] == api]


def test_a_librdkafka_session_is_recorded_with_principal_decision_and_outcome(audited_gateway, kafka_broker) -> None:
    from confluent_kafka import Consumer, KafkaError, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic, denied = "audited.orders", "audit-denied.x"
    for t in (topic, denied):
        kafka_broker.create_topic(t, partitions=1)
    common = {"bootstrap.servers": audited_gateway.bootstrap, "client.id": "auditee"}
    producer = Producer({**common, "linger.ms": 50, "acks": "all"})
    sent = [f"order-{i}".encode() for i in range(7)]
    errors: list[Any] = []
    for v in sent:
        producer.produce(topic, value=v, on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert producer.flush(30) == 0 and not errors
    refused: list[Any] = []
    producer.produce(denied, value=b"nope", on_delivery=lambda err, msg: refused.append(err))
    producer.flush(30)
    assert refused and refused[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    consumer = Consumer({**common, "group.id": "audit-readers", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        m = consumer.poll(1.0)
        if m is not None and not m.error():
            got.append(m.value())
    consumer.close()
    assert got == sent
    admin = AdminClient(common)
    admin.create_topics([NewTopic("audited.made-by-admin", 1, 1)])["audited.made-by-admin"].result(30)
    del producer, admin
    trail = audited_gateway.trail

    def recorded() -> bool:
        produced = [r for r in _requests(trail, "Produce") if r["operations"][0]["input"]["resource"]["name"] == topic]
        return bool(produced) and bool(_requests(trail, "CreateTopics")) and any(
            r["kind"] == "session_end" for r in iter_records(trail))

    wait_for(recorded, timeout=30, what="the session's records in the trail")
    records = list(iter_records(trail))
    for r in records:
        SCHEMA.validate(r)
    # Produce: allowed and forwarded; the recorded base offsets find exactly the records written.
    produced = [r for r in _requests(trail, "Produce") if r["operations"][0]["input"]["resource"]["name"] == topic]
    assert all(r["principal"]["sub"] == "auditee" and r["client"]["id"] == "auditee" for r in produced)
    assert all(r["operations"][0]["decision"]["action"] == "allow" and r["operations"][0]["enforced"]["result"] == "forwarded"
               and r["operations"][0]["decision"]["revision"].startswith("sha256:") for r in produced)
    found = []
    for r in produced:
        for p in r["outcome"]["partitions"]:
            assert p["error_code"] == 0
            found += _read_at(kafka_broker.bootstrap, p["topic"], p["partition"], p["base_offset"], p["record_count"])
    assert found == sent
    # The denied produce: its error code, and the reason.
    refusals = [r for r in _requests(trail, "Produce") if r["operations"][0]["input"]["resource"]["name"] == denied]
    assert refusals and refusals[0]["operations"][0]["enforced"] == {"result": "denied", "error_code": 29}
    assert refusals[0]["operations"][0]["decision"]["reason"] == "audit-denied topics take no writes"
    # Consume: the fetched offsets.
    fetched = [p for r in _requests(trail, "Fetch") for p in r["outcome"].get("partitions", []) if p["topic"] == topic and "first_offset" in p]
    assert fetched and min(p["first_offset"] for p in fetched) == 0 and max(p["last_offset"] for p in fetched) == len(sent) - 1
    # The admin call.
    (create,) = _requests(trail, "CreateTopics")
    assert create["operations"][0]["input"]["operation"] == "create_topic" and create["outcome"]["from"] == "broker"
    # Sessions start and end; the trail verifies with its key.
    sessions = {r["session"] for r in produced}
    assert sessions <= {r["session"] for r in records if r["kind"] == "session_start"}
    report = verify(trail, None)
    assert report.ok, report
    out = subprocess.run([sys.executable, "-m", "gatekeeper.cli", "audit", "verify", str(trail), "--key-file", str(audited_gateway.key)],
                         capture_output=True, text=True, timeout=60)
    # The trail is still being written: records after its last checkpoint get a note line
    # (not signed yet) before the verdict, which is the last line.
    assert out.returncode == 0 and out.stdout.splitlines()[-1].startswith("ok"), out.stdout + out.stderr
    # What-if: the recorded traffic against a policy that freezes audited.orders and opens
    # audit-denied.*: exactly those two changes, exit status 1.
    out = subprocess.run([sys.executable, "-m", "gatekeeper.cli", "policy", "what-if", "--policies", str(POLICY_B),
                          "--audit", str(trail), "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    changes = {(c["before"], c["after"], c["operation"], c["resource"], c["count"]) for c in json.loads(out.stdout)["changes"]}
    assert changes == {("allow", "deny", "produce", f"topic {topic}", len(produced)),
                       ("deny", "allow", "produce", f"topic {denied}", len(refusals))}
    same = subprocess.run([sys.executable, "-m", "gatekeeper.cli", "policy", "what-if", "--policies", str(POLICY),
                           "--audit", str(trail), "--json"], capture_output=True, text=True, timeout=120)
    assert same.returncode == 0, same.stdout + same.stderr


def _read_at(bootstrap: str, topic: str, partition: int, offset: int, count: int) -> list[bytes]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tp = TopicPartition(topic, partition)
    c.assign([tp])
    c.seek(tp, offset)
    out: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(out) < count and time.monotonic() < deadline:
        for batch in c.poll(timeout_ms=500).values():
            out += [m.value for m in batch]
    c.close()
    return out[:count]


@pytest.fixture
def outage_gateway(kafka_broker: Any, tmp_path: Path) -> Any:
    """An in-process gateway (so the test can make its disk fail) with an audit trail."""
    gw = start_gateway(tmp_path / "gk.yaml", kafka_broker.bootstrap, _audit_config(tmp_path))
    yield gw
    pytest_twisted.blockon(gw.service.stopService())


@pytest_twisted.inlineCallbacks
def test_a_failing_sink_denies_operations_with_the_reason_loses_nothing_and_recovers(outage_gateway, kafka_broker, tmp_path, monkeypatch) -> Any:
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError

    from gatekeeper.audit import file_sink

    topic = "audited.outage"
    kafka_broker.create_topic(topic, partitions=1)
    gw = outage_gateway
    producer = yield in_thread(lambda: KafkaProducer(bootstrap_servers=gw.bootstrap, client_id="auditee", retries=0))
    acked = []
    for i in range(3):
        yield in_thread(lambda i=i: producer.send(topic, f"before-{i}".encode()).get(30))
        acked.append(f"before-{i}")
    real_write = file_sink.FileSink._write_all

    def disk_full(self: Any, data: bytes) -> None:  # the sink's writes fail as on a full disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_sink.FileSink, "_write_all", disk_full)
    # Let through before the trail knows: acknowledged, so its record must not be lost.
    yield in_thread(lambda: producer.send(topic, b"as-the-disk-fills").get(30))
    acked.append("as-the-disk-fills")
    yield in_thread(wait_for, lambda: not gw.gateway.audit.available, timeout=20, what="the trail to notice the full disk")
    with pytest.raises(TopicAuthorizationFailedError):
        yield in_thread(lambda: producer.send(topic, b"during").get(30))
    healthy, body = gw.gateway.health()
    assert not healthy and body["status"] == "audit trail unavailable"
    monkeypatch.setattr(file_sink.FileSink, "_write_all", real_write)
    yield in_thread(wait_for, lambda: gw.gateway.audit.available, timeout=30, what="the trail to recover")
    for i in range(3):
        yield in_thread(lambda i=i: producer.send(topic, f"after-{i}".encode()).get(30))
        acked.append(f"after-{i}")
    yield in_thread(producer.close)
    yield gw.gateway.audit.flushed()
    trail = tmp_path / "trail"
    produced = [r for r in _requests(trail, "Produce") if r["operations"][0]["input"]["resource"]["name"] == topic
                and r["operations"][0]["enforced"]["result"] == "forwarded"]
    assert sum(p["record_count"] for r in produced for p in r["outcome"]["partitions"]) == len(acked)
    assert any(r["kind"] == "unavailable" for r in iter_records(trail))
    assert verify(trail, None).ok
