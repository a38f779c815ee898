"""``gatekeeper audit replay SESSION --records``: the records a session produced are read back
by their recorded offsets through a real ``twistd gatekeeper``, as the caller: today's policy
and masking apply (an analyst reads them masked, an owner raw, an outsider is refused)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from gatekeeper.cli import main
from gatekeeper.testing.audit import sample_fields, write_trail

pytestmark = pytest.mark.integration

POLICY = Path(__file__).parent / "policy_audit_replay"
PRINCIPALS = {
    "analyst": {"sub": "analyst", "groups": ["analytics"]},
    "owner": {"sub": "owner", "groups": ["owners"]},
    "outsider": {"sub": "outsider", "groups": []},
}
TOPIC = "replay.orders"
KEY = b"audit-key-0123456789abcdef"


@pytest.fixture(scope="module")
def replay_gateway(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from harness.gateway import TwistdGateway

    kafka_broker.create_topic(TOPIC, partitions=1)
    extra = {"policy": {"engine": "embedded", "policies": str(POLICY)},
             "identity": {"client_id_principals": PRINCIPALS}}
    with TwistdGateway(tmp_path_factory.mktemp("replay"), kafka_broker.bootstrap, extra=extra) as gw:
        yield gw


@pytest.fixture(scope="module")
def trail(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory, replay_gateway: Any) -> Path:
    """Other records first, then the session's three, produced to the broker; the trail
    records that produce request with the broker's base offset."""
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for i in range(5):
        producer.send(TOPIC, json.dumps({"other": i}).encode()).get(10)
    futures = [producer.send(TOPIC, key=f"k{i}".encode(), value=json.dumps({"id": i, "card": "4111111111111111"}).encode(),
                             partition=0) for i in range(3)]
    producer.flush()
    producer.close()
    base = futures[0].get(10).offset
    fields = sample_fields("request")
    fields["session"] = "S-replay"
    fields["outcome"] = {"from": "broker", "partitions": [
        {"topic": TOPIC, "partition": 0, "error_code": 0, "base_offset": base, "record_count": 3}]}
    d = tmp_path_factory.mktemp("trail")
    write_trail(d, [("request", fields, time.time())], KEY, instance="gk1")
    return d


def replay(capsys: pytest.CaptureFixture[str], trail: Path, gateway: Any, client_id: str) -> tuple[int, str, str]:
    code = main(["audit", "replay", "S-replay", str(trail), "--records", "--bootstrap", gateway.bootstrap,
                 "--client-id", client_id, "--json", "--timeout", "15"])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_analyst_reads_the_sessions_records_masked(capsys: pytest.CaptureFixture[str], trail: Path,
                                                      replay_gateway: Any) -> None:
    code, out, err = replay(capsys, trail, replay_gateway, "analyst")
    assert code == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    assert [(g["direction"], g["key"]) for g in got] == [("produced", "k0"), ("produced", "k1"), ("produced", "k2")]
    assert [json.loads(g["value"]) for g in got] == [{"id": i, "card": "************1111"} for i in range(3)]


def test_an_owner_reads_them_raw(capsys: pytest.CaptureFixture[str], trail: Path, replay_gateway: Any) -> None:
    code, out, err = replay(capsys, trail, replay_gateway, "owner")
    assert code == 0, err
    assert [json.loads(json.loads(line)["value"])["card"] for line in out.splitlines()] == ["4111111111111111"] * 3


def test_an_outsider_is_refused(capsys: pytest.CaptureFixture[str], trail: Path, replay_gateway: Any) -> None:
    code, out, err = replay(capsys, trail, replay_gateway, "outsider")
    assert code == 1 and out == ""
    assert "reading the records back failed: TopicAuthorizationFailedError" in err
