"""Mask decisions on the wire: real broker, real ``twistd gatekeeper``, real clients.

Produce side: records produced through Gatekeeper to ``pmask.*`` land masked on the broker
(read directly from it), with every codec, an idempotent and a transactional producer, from
each client family. Consume side: the broker holds raw records of ``cmask.*``; through
Gatekeeper a principal outside ``owners`` reads them masked and an owner reads them raw, with
librdkafka, kafka-python and Kafka's Java console consumer; offsets, keys, headers and
timestamps are what the broker holds.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.kafka.codec import API_TABLE
from harness.javatools import CONSOLE_CONSUMER, console_produce, run_tool
from tests.integration.rawkafka import RawKafka

pytestmark = pytest.mark.integration

POLICY = Path(__file__).parent / "policy_masking"
CARD = "4111 1111 1111 1111"  # Luhn-valid
SSN = "123-45-6789"
PRINCIPALS = {
    "analyst": {"sub": "analyst", "groups": ["analytics"]},
    "owner": {"sub": "owner", "groups": ["owners"]},
}


@pytest.fixture(scope="module")
def masking_gateway(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from harness.gateway import TwistdGateway

    workdir = tmp_path_factory.mktemp("masking")
    key = workdir / "hash.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    extra = {"policy": {"engine": "embedded", "policies": str(POLICY)},
             "identity": {"client_id_principals": PRINCIPALS},
             "masking": {"hash_key_file": str(key)}}
    with TwistdGateway(workdir, kafka_broker.bootstrap, extra=extra) as gw:
        yield gw


def _doc(i: int) -> dict[str, Any]:
    return {"id": i, "card": CARD, "customer": {"name": f"Ada {i}", "email": f"ada{i % 3}@example.com", "ssn": SSN},
            "note": f"call me, my SSN is {SSN}", "items": [{"sku": f"s{i}", "qty": i % 5}]}


def _records(n: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    return [(f"k{i}".encode(), json.dumps(_doc(i)).encode(),
             [("seq", str(i).encode()), ("note-1", f"card {CARD}".encode()), ("plain", b"\x00\xff")]) for i in range(n)]


def _read_direct(bootstrap: str, topic: str, n: int, *, committed: bool = False) -> list[Any]:
    """Every record of ``topic`` as the broker holds it (kafka-python, straight to the broker)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             isolation_level="read_committed" if committed else "read_uncommitted")
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [0])]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out: list[Any] = []
    deadline = time.monotonic() + 60
    while len(out) < n and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            out.extend(batch)
    consumer.close()
    assert len(out) == n, f"{len(out)} of {n} records on the broker"
    return sorted(out, key=lambda m: (m.partition, m.offset))


def _assert_produce_masked(stored: list[Any]) -> None:
    hashes = {}
    for m in stored:
        raw = m.value.decode()
        assert CARD not in raw and SSN not in raw and "@example.com" not in raw, raw
        doc = json.loads(raw)
        assert doc["card"] == "****"
        assert doc["customer"]["ssn"] == "****"
        assert doc["customer"]["email"].startswith("h:") and len(doc["customer"]["email"]) == 2 + 16
        assert doc["note"] == "call me, my SSN is ****"
        i = doc["id"]
        assert doc["customer"]["name"] == f"Ada {i}" and doc["items"] == [{"sku": f"s{i}", "qty": i % 5}]
        hashes.setdefault(i % 3, set()).add(doc["customer"]["email"])
        headers = dict(m.headers)
        assert [k for k, _ in m.headers] == ["seq", "note-1", "plain"]
        assert headers["seq"] == str(i).encode() and headers["plain"] == b"\x00\xff"
        assert CARD.encode() not in headers["note-1"] and headers["note-1"].startswith(b"card ")
        assert m.key == f"k{i}".encode()
    # The keyed hash is deterministic: one e-mail, one hash (joins and counts still work).
    assert all(len(h) == 1 for h in hashes.values()) and len({next(iter(h)) for h in hashes.values()}) == 3


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_librdkafka_idempotent_producer_records_land_masked(masking_gateway, kafka_broker, codec) -> None:
    from confluent_kafka import Producer

    topic = f"pmask.rdkafka-{codec}"
    kafka_broker.create_topic(topic, partitions=2)
    records = _records(300)
    producer = Producer({"bootstrap.servers": masking_gateway.bootstrap, "compression.type": codec,
                         "enable.idempotence": True, "acks": "all", "linger.ms": 20, "client.id": "analyst"})
    errors: list[str] = []
    for k, v, h in records:
        producer.produce(topic, key=k, value=v, headers=h, on_delivery=lambda err, msg: errors.append(str(err)) if err else None)
    assert producer.flush(60) == 0 and not errors, errors[:3]
    stored = _read_direct(kafka_broker.bootstrap, topic, len(records))
    _assert_produce_masked(stored)
    # Idempotent batches kept their producer id and sequence: per partition the offsets are
    # contiguous and each record's position is the order it was produced in.
    for p in {m.partition for m in stored}:
        ids = [json.loads(m.value)["id"] for m in stored if m.partition == p]
        assert ids == sorted(ids)
    assert masking_gateway.metric('gatekeeper_masked_records_total{direction="produce",topic="' + topic + '"}') == len(records)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_producer_records_land_masked(masking_gateway, kafka_broker, codec) -> None:
    from kafka import KafkaProducer

    topic = f"pmask.kp-{codec}"
    kafka_broker.create_topic(topic, partitions=2)
    records = _records(200)
    producer = KafkaProducer(bootstrap_servers=masking_gateway.bootstrap, compression_type=codec, acks="all",
                             linger_ms=20, client_id="analyst")
    for f in [producer.send(topic, key=k, value=v, headers=h) for k, v, h in records]:
        f.get(30)
    producer.close()
    _assert_produce_masked(_read_direct(kafka_broker.bootstrap, topic, len(records)))


def test_transactional_producer_records_land_masked_and_read_committed(masking_gateway, kafka_broker) -> None:
    from kafka import KafkaProducer

    topic = "pmask.txn"
    kafka_broker.create_topic(topic, partitions=2)
    records = _records(120)
    producer = KafkaProducer(bootstrap_servers=masking_gateway.bootstrap, transactional_id=f"masking-{uuid.uuid4()}",
                             compression_type="zstd", client_id="analyst")
    producer.init_transactions()
    producer.begin_transaction()
    for k, v, h in records:
        producer.send(topic, key=k, value=v, headers=h)
    producer.commit_transaction()
    producer.close()
    _assert_produce_masked(_read_direct(kafka_broker.bootstrap, topic, len(records), committed=True))


def test_java_console_producer_records_land_masked(masking_gateway, kafka_broker) -> None:
    topic = "pmask.java"
    kafka_broker.create_topic(topic, partitions=1)
    docs = [_doc(i) for i in range(50)]
    out = console_produce(masking_gateway.bootstrap, topic, [(f"k{d['id']}", json.dumps(d)) for d in docs],
                          compression="lz4", properties={"client.id": "analyst"})
    assert "ERROR" not in out.stderr, out.stderr[-2000:]
    for m in _read_direct(kafka_broker.bootstrap, topic, len(docs)):
        doc = json.loads(m.value)
        assert doc["card"] == "****" and doc["customer"]["ssn"] == "****" and doc["customer"]["email"].startswith("h:")
        assert m.key == f"k{doc['id']}".encode()


def test_a_record_a_rule_cannot_apply_to_is_refused_with_policy_violation(masking_gateway, kafka_broker) -> None:
    """A field rule on a value that is not JSON, default on_error on produce: deny. The request
    is refused (POLICY_VIOLATION) and nothing of it is stored."""
    from kafka import KafkaProducer
    from kafka.errors import PolicyViolationError

    topic = "pstrict.t"
    kafka_broker.create_topic(topic, partitions=1)
    producer = KafkaProducer(bootstrap_servers=masking_gateway.bootstrap, client_id="analyst", retries=0)
    producer.send(topic, value=json.dumps({"card": CARD}).encode()).get(30)
    with pytest.raises(PolicyViolationError):
        producer.send(topic, value=f"not json {CARD}".encode()).get(30)
    producer.close()
    stored = _read_direct(kafka_broker.bootstrap, topic, 1)
    assert json.loads(stored[0].value) == {"card": "****"}
    assert masking_gateway.metric('gatekeeper_mask_errors_total{kind="record_refused"}') >= 1


# -- consume side ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_topic(kafka_broker: Any) -> tuple[str, list[Any]]:
    """``cmask.orders``: raw PII records written straight to the broker in several batches and
    codecs, with keys, headers and explicit timestamps."""
    from confluent_kafka import Producer

    topic = "cmask.orders"
    kafka_broker.create_topic(topic, partitions=2)
    n = 0
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap, "compression.type": codec, "linger.ms": 5})
        for _ in range(60):
            producer.produce(topic, key=f"k{n}".encode(), value=json.dumps(_doc(n)).encode(),
                             headers=[("seq", str(n).encode()), ("codec", codec.encode())], timestamp=1_700_000_000_000 + n)
            n += 1
        assert producer.flush(30) == 0
    return topic, _read_direct(kafka_broker.bootstrap, topic, n)


def _assert_consume_masked(raw: list[Any], got: list[tuple[int, int, bytes | None, bytes, list[tuple[str, bytes]], int]]) -> None:
    """``got``: (partition, offset, key, value, headers, timestamp) per record, as a client read them."""
    assert len(got) == len(raw)
    got = sorted(got)
    for m, (p, off, key, value, headers, ts) in zip(raw, got, strict=True):
        assert (p, off, key, ts) == (m.partition, m.offset, m.key, m.timestamp)
        assert [(k, bytes(v)) for k, v in headers] == [(k, bytes(v)) for k, v in m.headers]
        text = value.decode()
        assert CARD not in text and SSN not in text and "ada" not in text, text
        doc, original = json.loads(text), json.loads(m.value)
        assert doc["card"].endswith("1111") and doc["card"] != CARD
        assert doc["customer"]["ssn"] == "****" and doc["customer"]["email"].endswith("@example.com")
        assert doc["note"] == "call me, my SSN is ****"
        assert doc["customer"]["name"] == original["customer"]["name"] and doc["items"] == original["items"]


def test_librdkafka_consumer_reads_masked_and_an_owner_reads_raw(masking_gateway, raw_topic) -> None:
    from confluent_kafka import Consumer

    topic, raw = raw_topic

    def read(client_id: str) -> list[Any]:
        consumer = Consumer({"bootstrap.servers": masking_gateway.bootstrap, "group.id": f"g-{uuid.uuid4()}",
                             "client.id": client_id, "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([topic])
        out: list[Any] = []
        deadline = time.monotonic() + 60
        while len(out) < len(raw) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert not msg.error(), msg.error()
            out.append((msg.partition(), msg.offset(), msg.key(), msg.value(), list(msg.headers() or []), msg.timestamp()[1]))
        consumer.close()
        return out

    _assert_consume_masked(raw, read("analyst"))
    owner = sorted(read("owner"))
    assert [(p, o, v) for p, o, _k, v, _h, _t in owner] == [(m.partition, m.offset, m.value) for m in raw]


def test_kafka_python_consumer_reads_masked_and_an_owner_reads_raw(masking_gateway, raw_topic) -> None:
    from kafka import KafkaConsumer

    topic, raw = raw_topic

    def read(client_id: str) -> list[Any]:
        consumer = KafkaConsumer(topic, bootstrap_servers=masking_gateway.bootstrap, client_id=client_id, group_id=None,
                                 auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=10000)
        out = []
        for m in consumer:
            out.append((m.partition, m.offset, m.key, m.value, list(m.headers), m.timestamp))
            if len(out) >= len(raw):
                break
        consumer.close()
        return out

    _assert_consume_masked(raw, read("analyst"))
    assert sorted((p, o, v) for p, o, _k, v, _h, _t in read("owner")) == [(m.partition, m.offset, m.value) for m in raw]


def test_java_console_consumer_reads_masked_and_an_owner_reads_raw(masking_gateway, raw_topic) -> None:
    topic, raw = raw_topic
    props = ["--formatter-property", "print.key=true", "--formatter-property", "print.partition=true",
             "--formatter-property", "print.offset=true", "--formatter-property", "print.timestamp=true",
             "--formatter-property", "print.headers=true"]

    def read(client_id: str) -> list[Any]:
        out = run_tool(CONSOLE_CONSUMER, ["--bootstrap-server", masking_gateway.bootstrap, "--topic", topic,
                                          "--from-beginning", "--max-messages", str(len(raw)), "--timeout-ms", "30000",
                                          "--consumer-property", f"client.id={client_id}", *props], timeout=120)
        rows = []
        for line in out.stdout.splitlines():
            if not line.startswith("CreateTime:"):
                continue
            ts, part, off, headers, key, value = line.split("\t", 5)
            hs = [(h.split(":", 1)[0], h.split(":", 1)[1].encode()) for h in headers.split(",")]
            rows.append((int(part.split(":")[1]), int(off.split(":")[1]), key.encode(), value.encode(), hs, int(ts.split(":")[1])))
        assert len(rows) == len(raw), out.stderr[-2000:]
        return rows

    _assert_consume_masked(raw, read("analyst"))
    assert sorted((p, o, v) for p, o, _k, v, _h, _t in read("owner")) == [(m.partition, m.offset, m.value) for m in raw]


def test_a_fetch_that_ends_inside_a_batch_never_delivers_its_raw_bytes(masking_gateway, kafka_broker) -> None:
    """The broker cuts a Fetch at max_bytes, possibly inside a batch. Through Gatekeeper a
    masked partition's incomplete trailing batch is dropped: the client gets the complete
    batches (masked) and fetches again from there."""
    from kafka import KafkaProducer

    topic = "cmask.truncated"
    kafka_broker.create_topic(topic, partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, linger_ms=0)
    for i in range(6):  # one batch each
        producer.send(topic, value=json.dumps(_doc(i)).encode()).get(30)
    producer.close()
    F = API_TABLE[1].request
    M = API_TABLE[3].request

    def fetch(address: str, limit: int) -> Any:
        with RawKafka(address, client_id="analyst") as conn:
            topic_id = conn.request(3, 12, topics=[M.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False).topics[0].topic_id
            part = F.FetchTopic.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=limit, current_leader_epoch=-1,
                                               last_fetched_epoch=-1, log_start_offset=-1)
            body = conn.request(1, 13, replica_id=-1, max_wait_ms=100, min_bytes=1, max_bytes=limit, isolation_level=0,
                                session_id=0, session_epoch=-1, topics=[F.FetchTopic(topic_id=topic_id, partitions=[part])],
                                forgotten_topics_data=[], rack_id="")
            return body.responses[0].partitions[0].records

    batch = len(json.dumps(_doc(0))) + 100  # one record's batch, about
    limit = int(batch * 2.5)
    direct = fetch(kafka_broker.bootstrap, limit)
    assert CARD.encode() in direct  # the broker's answer ends inside a batch with raw bytes
    masked = fetch(masking_gateway.bootstrap, limit)
    assert masked and CARD.encode() not in masked and b"ada" not in masked
    assert len(masked) < len(direct)
    from kafka.record.memory_records import MemoryRecords

    records = MemoryRecords(masked)
    count = 0
    while (b := records.next_batch()) is not None:
        b.validate_crc()
        count += sum(1 for _ in b)
    assert count == 2


def test_an_unknown_masker_is_a_deny_that_names_it(masking_gateway, kafka_broker) -> None:
    from kafka import KafkaConsumer, TopicPartition

    topic = "unknown.t"
    kafka_broker.create_topic(topic, partitions=1)
    consumer = KafkaConsumer(bootstrap_servers=masking_gateway.bootstrap, client_id="analyst", group_id=None)
    consumer.assign([TopicPartition(topic, 0)])
    with pytest.raises(Exception, match="TopicAuthorization|TOPIC_AUTHORIZATION|PolicyViolation|POLICY_VIOLATION"):
        for _ in range(20):
            consumer.poll(timeout_ms=500)
    consumer.close()
    assert "no_such_masker" in masking_gateway.log_tail(200)


def test_the_example_plugin_distribution_masks_through_twistd(masking_gateway, kafka_broker) -> None:
    """plugins/gatekeeper-example-masking, installed like any third party's distribution (its
    own pyproject.toml, entry points): its ``initials`` masker and ``employee_id`` detector."""
    from importlib.metadata import distribution

    from kafka import KafkaConsumer, KafkaProducer

    from gatekeeper.plugins import available

    assert "initials" in available("gatekeeper.maskers") and "employee_id" in available("gatekeeper.detectors")
    assert not str(distribution("gatekeeper-example-masking").locate_file("")).startswith(str(Path(__file__).parents[2]))
    topic = "plugin.staff"
    kafka_broker.create_topic(topic, partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    producer.send(topic, value=json.dumps({"name": "Ada Lovelace", "note": "badge EMP-123456, desk 4"}).encode()).get(30)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=masking_gateway.bootstrap, client_id="analyst", group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=10000)
    got = [json.loads(m.value) for m in consumer]
    consumer.close()
    assert got == [{"name": "A. L.", "note": "badge ****, desk 4"}]
