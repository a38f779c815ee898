"""Blocking Kafka client workloads (kafka-python, confluent-kafka) used by the integration tests.

Each produces keyed records with headers to a 3-partition topic and reads them back, so a test
can compare what was sent with what arrived, byte for byte and in order per partition.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import Any

Record = tuple[bytes, bytes, tuple[tuple[str, bytes], ...]]


def make_records(n: int, seed: int = 0) -> list[Record]:
    out = []
    for i in range(n):
        key = f"key-{(i * 7919 + seed) % 97}".encode()
        value = os.urandom(8) + f"value-{i}".encode() + bytes(range(256))[: (i % 200)]
        headers = (("seq", str(i).encode()), ("bin", bytes([i % 256, 0, 255])))
        out.append((key, value, headers))
    return out


def by_partition(rows: list[tuple[int, Record]]) -> dict[int, list[Record]]:
    parts: dict[int, list[Record]] = defaultdict(list)
    for p, rec in rows:
        parts[p].append(rec)
    return dict(parts)


def kafka_python_roundtrip(bootstrap: str, topic: str, records: list[Record], compression: str) -> tuple[dict[int, list[Record]], dict[int, list[Record]]]:
    """Produce with kafka-python, consume from the beginning; (sent, received) by partition."""
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=compression, acks="all", linger_ms=5, max_in_flight_requests_per_connection=5)
    futures = [producer.send(topic, key=k, value=v, headers=list(h)) for k, v, h in records]
    producer.flush(60)
    sent_rows = []
    for fut, rec in zip(futures, records, strict=True):
        md = fut.get(timeout=30)
        sent_rows.append((md.partition, rec))
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=15000, group_id=None)
    got_rows = []
    deadline = time.monotonic() + 90
    for msg in consumer:
        got_rows.append((msg.partition, (msg.key, msg.value, tuple((k, bytes(v)) for k, v in msg.headers))))
        if len(got_rows) >= len(records) or time.monotonic() > deadline:
            break
    consumer.close()
    return by_partition(sent_rows), by_partition(got_rows)


def confluent_roundtrip(bootstrap: str, topic: str, records: list[Record], compression: str) -> tuple[dict[int, list[Record]], dict[int, list[Record]]]:
    """Produce with confluent-kafka (librdkafka), consume from the beginning."""
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": compression, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
    delivered: list[tuple[int, int] | Exception] = []  # (record index, partition)

    def report(i: int) -> Any:
        def cb(err: Any, msg: Any) -> None:
            delivered.append(RuntimeError(str(err)) if err else (i, msg.partition()))

        return cb

    for i, rec in enumerate(records):
        k, v, h = rec
        while True:
            try:
                producer.produce(topic, key=k, value=v, headers=list(h), on_delivery=report(i))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0, "confluent producer did not flush"
    errors = [d for d in delivered if isinstance(d, Exception)]
    assert not errors, errors[:3]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"rt-{topic}", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got_rows = []
    deadline = time.monotonic() + 90
    while len(got_rows) < len(records) and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            raise RuntimeError(str(msg.error()))
        got_rows.append((msg.partition(), (msg.key(), msg.value(), tuple((k, bytes(v)) for k, v in (msg.headers() or ())))))
    consumer.close()
    placed = sorted(d for d in delivered if not isinstance(d, Exception))
    # Expected order per partition is the order produce() was called in.
    return by_partition([(p, records[i]) for i, p in placed]), by_partition(got_rows)
