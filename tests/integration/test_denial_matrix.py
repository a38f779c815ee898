"""The denial matrix: every denial path, through ``twistd gatekeeper``, with three client families.

For each cell (produce with acks 1/all/0, consume alone, mixed with an allowed topic and by
``assign``, metadata for a named topic, listing, join group, commit and fetch offsets, create
and delete topic, alter config, transactional id, idempotent producer init, delete records) and
each family (librdkafka via confluent-kafka, Kafka's Java client, kafka-python), a stock client
is driven at a refused resource for a fixed window. Each cell asserts:

- the error the client surfaces (its own name for the Kafka error code), and Gatekeeper's reason
  where the client exposes the response's message;
- that nothing was written on the broker (records, topics, configs, committed offsets), read
  directly from the broker;
- that the client did not spin: the requests Gatekeeper denied in the window are bounded
  (a client backing off sends a handful; one retrying without backoff sends thousands).

The table of what each cell saw is written to ``denial-matrix.md`` in the session's temp dir.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from harness.gateway import TwistdGateway
from tests.integration.denial_cells import CELLS, confluent_cell, kafka_python_cell
from tests.integration.javaprobe import run_probe

pytestmark = pytest.mark.integration

POLICY_DIR = Path(__file__).parent / "policy_denials"
WINDOW = 5.0  # seconds a cell drives its client
MAX_DENIED_IN_WINDOW = 40  # librdkafka retrying a null record set at once sent ~5,700 a second
ALLOWED_RECORDS, DENIED_RECORDS = 5, 3

EXPECTED = {
    "produce-acks1": "TOPIC_AUTHORIZATION_FAILED",
    "produce-acksall": "TOPIC_AUTHORIZATION_FAILED",
    "produce-acks0": None,  # no response at all: Gatekeeper drops the request and closes, as a broker does
    "consume-subscribe": "TOPIC_AUTHORIZATION_FAILED",
    "consume-mixed": "TOPIC_AUTHORIZATION_FAILED",
    "consume-assign": "TOPIC_AUTHORIZATION_FAILED",
    "metadata-topic": "TOPIC_AUTHORIZATION_FAILED",
    "list-topics": None,  # filtered, not refused
    "join-group": "GROUP_AUTHORIZATION_FAILED",
    "commit-offsets": "GROUP_AUTHORIZATION_FAILED",
    "offset-fetch": "GROUP_AUTHORIZATION_FAILED",
    "create-topic": "TOPIC_AUTHORIZATION_FAILED",
    "delete-topic": "TOPIC_AUTHORIZATION_FAILED",
    "alter-config": "TOPIC_AUTHORIZATION_FAILED",
    "transactional": "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
    "idempotent": "CLUSTER_AUTHORIZATION_FAILED",
    "delete-records": "TOPIC_AUTHORIZATION_FAILED",
}

# The Java client names errors by exception class.
_JAVA_NAMES = {
    "TopicAuthorizationException": "TOPIC_AUTHORIZATION_FAILED",
    "GroupAuthorizationException": "GROUP_AUTHORIZATION_FAILED",
    "TransactionalIdAuthorizationException": "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
    "ClusterAuthorizationException": "CLUSTER_AUTHORIZATION_FAILED",
    "PolicyViolationException": "POLICY_VIOLATION",
}

# Cells whose response version carries an error message that the client hands to the caller.
REASON_SHOWN = {
    "confluent": {"create-topic", "alter-config"},
    "kafka-python": {"create-topic", "delete-topic", "alter-config"},
    "java": {"create-topic", "alter-config"},
}
REASON = "refused by the denial matrix"


def _java_cell(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    out = run_probe(bootstrap, cell, seconds)
    out["error"] = _JAVA_NAMES.get(out.get("error") or "", out.get("error"))
    if cell == "list-topics":  # the probe reports "topics=a,b; requests=…"
        fields = dict(part.split("=", 1) for part in (out.get("detail") or "").split("; ") if "=" in part)
        out["detail"] = ",".join(t for t in fields.get("topics", "").split(",") if not t.startswith("__"))
    return out


FAMILIES = {"confluent": confluent_cell, "kafka-python": kafka_python_cell, "java": _java_cell}


@pytest.fixture(scope="module")
def matrix(kafka_broker, tmp_path_factory) -> Any:
    from kafka import KafkaProducer

    for topic in ("allowed.t", "denied.t", "hidden.t"):
        kafka_broker.create_topic(topic, partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for i in range(ALLOWED_RECORDS):
        producer.send("allowed.t", f"allowed-{i}".encode())
    for i in range(DENIED_RECORDS):
        producer.send("denied.t", f"denied-{i}".encode())
    producer.flush(30)
    producer.close()
    workdir = tmp_path_factory.mktemp("denial-matrix")
    with TwistdGateway(workdir, kafka_broker.bootstrap,
                       extra={"policy": {"engine": "embedded", "policies": str(POLICY_DIR)}}) as gw:
        rows: list[dict[str, Any]] = []
        yield gw, rows
        table = ["| cell | " + " | ".join(FAMILIES) + " |", "|---|" + "---|" * len(FAMILIES)]
        for cell in CELLS:
            cols = []
            for family in FAMILIES:
                row = next((r for r in rows if r["cell"] == cell and r["family"] == family), None)
                cols.append("not run" if row is None else
                            f"{row['error'] or 'no error'}, written: {row['written']}, denied in {WINDOW:g}s: {row['denied']:g}")
            table.append(f"| {cell} | " + " | ".join(cols) + " |")
        (tmp_path_factory.getbasetemp() / "denial-matrix.md").write_text("\n".join(table) + "\n")


def broker_state(bootstrap: str) -> dict[str, Any]:
    """What a refused client could have changed, read directly from the broker."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id="denied-commit", enable_auto_commit=False)
    try:
        topics = sorted(t for t in admin.list_topics() if t in {"allowed.t", "denied.t", "hidden.t", "denied.created"})
        tps = [TopicPartition(t, 0) for t in ("allowed.t", "denied.t", "hidden.t")]
        ends = {tp.topic: o for tp, o in consumer.end_offsets(tps).items()}
        starts = {tp.topic: o for tp, o in consumer.beginning_offsets(tps).items()}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "denied.t")])
        retention = json.dumps(configs, default=str).count("retention.ms")  # present only if overridden
        committed = consumer.committed(TopicPartition("allowed.t", 0))
        return {"topics": topics, "end": ends, "start": starts, "retention_overrides": retention, "committed": committed}
    finally:
        consumer.close()
        admin.close()


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {before[k]} -> {after[k]}" for k in before if before[k] != after[k]) or "nothing"


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("cell", CELLS)
def test_denial_cell(matrix, kafka_broker, family: str, cell: str) -> None:
    gw, rows = matrix
    before = broker_state(kafka_broker.bootstrap)
    denied_before = gw.metric('gatekeeper_decisions_total{action="deny"')
    closed_before = gw.metric('gatekeeper_rejected_total{reason="policy"')
    out = FAMILIES[family](gw.bootstrap, cell, WINDOW)
    time.sleep(0.5)  # let the last requests of a client that closed reach the metrics
    denied = gw.metric('gatekeeper_decisions_total{action="deny"') - denied_before
    after = broker_state(kafka_broker.bootstrap)
    written = _changes(before, after)
    rows.append({"cell": cell, "family": family, "error": out["error"], "written": written, "denied": denied})

    assert out["error"] == EXPECTED[cell], out
    if cell in REASON_SHOWN[family]:
        assert REASON in (out.get("message") or ""), out
    assert written == "nothing", f"the broker changed: {written}"
    assert 1 <= denied <= MAX_DENIED_IN_WINDOW or cell == "list-topics", f"{denied:g} denied requests in {WINDOW:g}s: {out}"
    if cell == "list-topics":
        listed = set(out["detail"].split(","))
        assert {"allowed.t", "denied.t"} <= listed and "hidden.t" not in listed, out
    if cell == "consume-mixed":
        assert out["records"] == ALLOWED_RECORDS, out
    if cell == "produce-acks0":
        assert gw.metric('gatekeeper_rejected_total{reason="policy"') > closed_before, "acks=0 deny closes"
