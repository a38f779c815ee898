"""The clients of a fault test: an idempotent producer that keeps a ledger of what it was told,
a consumer that follows the topic through Gatekeeper, and a direct read-back from the broker.

All three are confluent-kafka (librdkafka): its delivery reports say exactly which records were
acknowledged. Each runs in its own thread; nothing here touches a reactor.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from harness.accounting import checksum, record_value

__all__ = ["FollowingConsumer", "LedgerProducer", "read_back"]

_QUIET = {"log_level": 0}  # librdkafka's own log lines off: errors arrive through error_cb


class LedgerProducer(threading.Thread):
    """Produces ``rate`` records a second (unique keys ``<run>-<seq>``) with acks=all and
    idempotence, and records every delivery report: acknowledged keys with their checksum and
    time, failed keys by error name, and errors the client reported on its connections."""

    def __init__(self, bootstrap: str, topic: str, *, run: str, rate: float = 200.0, size: int = 200,
                 client_id: str = "faults-producer", message_timeout_ms: int = 120_000,
                 config: dict[str, Any] | None = None) -> None:
        super().__init__(name=f"producer-{topic}", daemon=True)
        self.bootstrap, self.topic, self.run_id = bootstrap, topic, run
        self.rate, self.size = rate, size
        self.config = {
            "bootstrap.servers": bootstrap, "client.id": client_id, "acks": "all",
            "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": message_timeout_ms,
            **_QUIET, **(config or {}),
        }
        self.lock = threading.Lock()
        self.sent: list[str] = []
        self.acked: dict[str, int] = {}
        self.ack_times: list[float] = []
        self.failed: dict[str, str] = {}  # key -> error name
        self.delivery_errors: Counter[str] = Counter()
        self.client_errors: Counter[str] = Counter()
        self.produce_errors: Counter[str] = Counter()  # produce() calls refused at once (nothing sent)
        self.fatal: list[str] = []  # fatal errors (the producer was replaced after each)
        self.unreported = 0  # still queued when the run ended
        self._stopping = threading.Event()
        self._fatal = threading.Event()
        self._crcs: dict[str, int] = {}
        self.failure: BaseException | None = None

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def acks_since(self, t: float) -> int:
        with self.lock:
            return sum(1 for x in self.ack_times if x >= t)

    def finish(self, timeout: float = 180.0) -> None:
        """Stop producing, wait for every outstanding delivery report (up to ``timeout``)."""
        self.flush_timeout = timeout
        self._stopping.set()
        self.join(timeout + 30)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the test
            self.failure = e

    def _new_producer(self) -> Producer:
        return Producer({**self.config, "error_cb": self._on_error})

    def _run(self) -> None:
        producer = self._new_producer()
        seq = 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stopping.is_set():
            if self._fatal.is_set():  # the idempotent producer cannot go on: a new one takes over
                producer.flush(10)
                producer = self._new_producer()
                self._fatal.clear()
            now = time.monotonic()
            while next_at <= now and not self._stopping.is_set():
                key = f"{self.run_id}-{seq:09d}"
                value = record_value(key, self.size)
                try:
                    producer.produce(self.topic, value, key.encode(), on_delivery=self._on_delivery)
                except BufferError:  # local queue full (the broker is away): wait for room
                    producer.poll(0.1)
                    next_at = time.monotonic()
                    break
                except KafkaException as e:  # refused at once (e.g. the topic's metadata was denied)
                    with self.lock:
                        self.produce_errors[e.args[0].name()] += 1
                    producer.poll(0.1)
                    next_at = time.monotonic()
                    break
                self._crcs[key] = checksum(value)
                with self.lock:
                    self.sent.append(key)
                seq += 1
                next_at += interval
            producer.poll(0.01)
        self.unreported = producer.flush(getattr(self, "flush_timeout", 180.0))

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        key = msg.key().decode()
        now = time.monotonic()
        with self.lock:
            if err is None:
                self.acked[key] = self._crcs[key]
                self.ack_times.append(now)
            else:
                self.failed[key] = err.name()
                self.delivery_errors[err.name()] += 1

    def _on_error(self, err: KafkaError) -> None:
        with self.lock:
            self.client_errors[err.name()] += 1
            if err.fatal():
                self.fatal.append(err.str())
                self._fatal.set()


class FollowingConsumer(threading.Thread):
    """Reads ``topic`` from the beginning (assigned partitions, no group) and keeps every key it
    sees, until stopped; errors by name."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, *, client_id: str = "faults-consumer") -> None:
        super().__init__(name=f"consumer-{topic}", daemon=True)
        self.topic, self.partitions = topic, partitions
        self.config = {"bootstrap.servers": bootstrap, "client.id": client_id, "group.id": f"faults-{topic}",
                       "enable.auto.commit": False, "error_cb": self._on_error, **_QUIET}
        self.lock = threading.Lock()
        self.keys: set[str] = set()
        self.records = 0
        self.errors: Counter[str] = Counter()
        self._stopping = threading.Event()
        self.failure: BaseException | None = None

    def has_all(self, keys: set[str]) -> bool:
        with self.lock:
            return keys <= self.keys

    def missing(self, keys: set[str]) -> int:
        with self.lock:
            return len(keys - self.keys)

    def finish(self) -> None:
        self._stopping.set()
        self.join(30)

    def run(self) -> None:
        try:
            consumer = Consumer(self.config)
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
            while not self._stopping.is_set():
                batch: list[Any] = consumer.consume(500, 0.5)
                for msg in batch:
                    if msg.error():
                        self._on_error(msg.error())
                        continue
                    with self.lock:
                        self.records += 1
                        self.keys.add(msg.key().decode())
            consumer.close()
        except BaseException as e:  # reported by the test
            self.failure = e

    def _on_error(self, err: KafkaError) -> None:
        with self.lock:
            self.errors[err.name()] += 1


def read_back(bootstrap: str, topic: str, partitions: int, timeout: float = 120.0) -> list[tuple[str, int]]:
    """Every record of ``topic`` straight from the broker at ``bootstrap``: (key, crc of value)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"readback-{topic}",
                         "enable.auto.commit": False, **_QUIET})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out: list[tuple[str, int]] = []
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + timeout
        while len(done) < partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read-back of {topic} incomplete after {timeout}s: partitions done {sorted(done)}, ends {ends}")
            batch: list[Any] = consumer.consume(1000, 1.0)
            for msg in batch:
                if msg.error():
                    continue
                out.append((msg.key().decode(), checksum(msg.value())))
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
        return out
    finally:
        consumer.close()
