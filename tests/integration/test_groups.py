"""A consumer group of two rebalances through Gatekeeper and commits offsets."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import pytest_twisted
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from harness.waiting import wait_for
from tests.integration.conftest import in_thread

pytestmark = pytest.mark.integration

TOPIC, GROUP = "group-rebalance", "gatekeeper-group"


class Member(threading.Thread):
    """One kafka-python group member polling in its own thread, committing after each poll."""

    def __init__(self, bootstrap: str, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.bootstrap = bootstrap
        self.stop = threading.Event()
        self.assigned: set[int] = set()
        self.consumed: list[tuple[int, int]] = []
        self.committed = 0  # how many of ``consumed`` a returned commit() covers
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            consumer = KafkaConsumer(
                TOPIC, bootstrap_servers=self.bootstrap, group_id=GROUP, client_id=self.name,
                auto_offset_reset="earliest", enable_auto_commit=False,
                session_timeout_ms=30000, heartbeat_interval_ms=1000, max_poll_interval_ms=60000,
                # A leader that saw the new topic without partitions yet assigns nothing; a short
                # metadata age makes it notice the partitions and rebalance (seen once under load).
                metadata_max_age_ms=2000,
            )
            while not self.stop.is_set():
                # Long polls: kafka-python 3.0.12 can lose a group join whose answer arrives after
                # a poll's timer ran out (tests/integration/denial_cells.py says how), so the
                # member spends its time inside poll(), awaiting the join, not between polls.
                batch = consumer.poll(timeout_ms=1000)
                for records in batch.values():
                    self.consumed += [(r.partition, r.offset) for r in records]
                if batch:
                    consumer.commit()  # synchronous: returns once the coordinator stored it
                    self.committed = len(self.consumed)
                self.assigned = {tp.partition for tp in consumer.assignment()}
            consumer.close()  # sends LeaveGroup
        except BaseException as e:  # surfaced by the test
            self.error = e


def _wait(cond: Any, what: str, timeout: float = 120.0) -> None:
    wait_for(cond, timeout, what, interval=0.2)


def _produce(bootstrap: str, n: int, tag: str) -> None:
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(n):
        p.send(TOPIC, key=f"{tag}-{i}".encode(), value=b"v")
    p.flush(30)
    p.close()


def _scenario(bootstrap: str, direct: str) -> dict[str, Any]:
    a, b = Member(bootstrap, "member-a"), Member(bootstrap, "member-b")
    a.start()
    b.start()
    _wait(lambda: a.assigned and b.assigned and a.assigned | b.assigned == {0, 1, 2} and not a.assigned & b.assigned,
          "both members to share the three partitions")
    shared = (set(a.assigned), set(b.assigned))
    _produce(bootstrap, 300, "first")
    _wait(lambda: len(a.consumed) + len(b.consumed) >= 300, "the first 300 records to be consumed")
    a.stop.set()
    a.join(30)
    _wait(lambda: b.assigned == {0, 1, 2}, "member b to take over every partition after a left")
    _produce(bootstrap, 300, "second")
    _wait(lambda: len(a.consumed) + len(b.consumed) >= 600, "all 600 records to be consumed")
    _wait(lambda: b.committed == len(b.consumed) or b.error, "member b to commit the last records it consumed", timeout=30)
    b.stop.set()
    b.join(30)
    for m in (a, b):
        if m.error:
            raise m.error
    # Committed offsets, read directly from the broker, cover everything produced.
    consumer = KafkaConsumer(bootstrap_servers=direct, group_id=GROUP, enable_auto_commit=False)
    tps = [TopicPartition(TOPIC, p) for p in range(3)]
    committed = {tp.partition: consumer.committed(tp) for tp in tps}
    ends = consumer.end_offsets(tps)
    consumer.close()
    return {"shared": shared, "committed": committed,
            "ends": {tp.partition: off for tp, off in ends.items()},
            "consumed": len(a.consumed) + len(b.consumed), "unique": len(set(a.consumed) | set(b.consumed))}


@pytest_twisted.inlineCallbacks
def test_two_members_rebalance_and_commit_through_gatekeeper(gateway, kafka_broker):
    kafka_broker.create_topic(TOPIC, partitions=3)
    result = yield in_thread(_scenario, gateway.bootstrap, kafka_broker.bootstrap)
    a_parts, b_parts = result["shared"]
    assert a_parts and b_parts and not a_parts & b_parts
    assert result["unique"] == 600
    assert result["committed"] == result["ends"], "committed offsets reach the end of every partition"
    apis = {i["api"]["name"] for i in gateway.inputs if i["resource"]["name"] == GROUP}
    assert {"JoinGroup", "SyncGroup", "Heartbeat", "LeaveGroup", "OffsetCommit", "OffsetFetch"} <= apis
