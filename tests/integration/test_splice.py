"""Fetch answers passed through unread are moved broker socket -> pipe -> client socket with
splice(2) (``gatekeeper/proxy/splicing.py``). The bytes must reach every client family exactly as
the broker sent them, a slow reader must get them all in order behind what was queued for it, and
a client leaving in the middle of an answer must cost only its own connection.

Each test reads ``gatekeeper_spliced_bytes_total`` so it fails if the path was not taken.

The client tests and the slow reader also run through a gateway with an audit trail, which reads
each Fetch answer's offsets from a copy taken as the bytes are spliced: the recorded offsets must
cover every record the client read, once, with no gap."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from typing import Any

import pytest

from gatekeeper.audit import iter_records
from gatekeeper.kafka.codec import API_TABLE
from harness.gateway import TwistdGateway
from harness.javatools import console_consume
from harness.waiting import wait_for
from tests.integration.rawkafka import RawKafka

pytestmark = pytest.mark.integration

RECORDS = 6000  # of about 1 KiB: 2 MB per partition, answers far above the splice threshold
FETCH = 1


def _value(i: int) -> str:
    return f"{i:06d}-" + hashlib.sha256(str(i).encode()).hexdigest() * 16  # 1,031 printable bytes


@pytest.fixture(scope="module")
def topic(kafka_broker: Any) -> str:
    from confluent_kafka import Producer

    name = "splice-large"
    kafka_broker.create_topic(name, partitions=3)
    # Idempotent: a retried batch keeps its place, so each partition holds its keys in order
    # (the order the tests check the consumers against).
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap, "acks": "all", "linger.ms": 20,
                         "enable.idempotence": True})
    for i in range(RECORDS):
        producer.produce(name, key=f"k{i}".encode(), value=_value(i).encode(), partition=i % 3)
        producer.poll(0)
    assert producer.flush(60) == 0
    return name


@pytest.fixture(scope="module")
def audited_gateway(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("splice-audit")
    key = work / "audit.key"
    key.write_bytes(b"splice-audit-key-0123456789abcdef")
    key.chmod(0o600)
    audit = {"directory": str(work / "trail"), "hmac_key_file": str(key), "instance": "gk-splice"}
    with TwistdGateway(work, kafka_broker.bootstrap, extra={"audit": audit}) as gw:
        gw.trail = work / "trail"  # type: ignore[attr-defined]
        yield gw


@pytest.fixture(params=["plain", "audited"])
def gateway(request: pytest.FixtureRequest) -> Any:
    gw = request.getfixturevalue("twistd_gateway" if request.param == "plain" else "audited_gateway")
    gw.seen = _trail_length(gw)
    return gw


def _trail_length(gw: Any) -> int:
    trail = getattr(gw, "trail", None)
    return sum(1 for _ in iter_records(trail)) if trail is not None and trail.exists() else 0


def _fetched_spans(gw: Any, topic: str) -> dict[int, list[tuple[int, int, int]]]:
    """Each partition's (first offset, last offset, records) recorded for the Fetch answers of
    ``topic`` since the test began."""
    spans: dict[int, list[tuple[int, int, int]]] = {}
    for r in list(iter_records(gw.trail))[gw.seen:]:
        if r["kind"] == "request" and r["api"]["name"] == "Fetch":
            # (A Fetch still waiting when the client left is recorded unanswered: not a failure.)
            assert r["outcome"]["from"] != "broker" or "error" not in r["outcome"], r["outcome"]
            for p in r["outcome"].get("partitions", []):
                if p["topic"] == topic and "first_offset" in p:
                    spans.setdefault(p["partition"], []).append((p["first_offset"], p["last_offset"], p["record_count"]))
    return spans


def _check_trail(gw: Any, topic: str, per_partition: int) -> None:
    """With a trail: the recorded offsets of the answers the client read cover each partition
    from 0 on with no gap, and each span's count is its length (no compaction, no transactions).
    An answer read from a wrong copy would not decode, or would give other offsets."""
    if not hasattr(gw, "trail"):
        return

    def covered() -> bool:
        spans = _fetched_spans(gw, topic)
        return len(spans) == 3 and all(max(s[1] for s in v) >= per_partition - 1 for v in spans.values())

    wait_for(covered, timeout=30, what="the Fetch answers' offsets in the trail")
    for partition, spans in _fetched_spans(gw, topic).items():
        reach = -1
        for first, last, count in sorted(spans):
            assert first <= reach + 1, f"partition {partition}: offsets {reach + 1}..{first - 1} never recorded"
            assert count == last - first + 1, (partition, first, last, count)
            reach = max(reach, last)
        assert reach == per_partition - 1


def _expected() -> dict[str, str]:
    return {f"k{i}": _value(i) for i in range(RECORDS)}


def _spliced(gw: Any, to: str = "socket") -> float:
    return gw.metric(f'gatekeeper_spliced_bytes_total{{to="{to}"')


def _fds(gw: Any) -> int:
    return len(os.listdir(f"/proc/{gw.proc.pid}/fd"))


def test_librdkafka_reads_spliced_answers_exactly(gateway: Any, topic: str) -> None:
    from confluent_kafka import Consumer

    before = _spliced(gateway)
    consumer = Consumer({"bootstrap.servers": gateway.bootstrap, "group.id": f"splice-ck-{id(gateway)}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: dict[str, str] = {}
    order: dict[int, list[int]] = {0: [], 1: [], 2: []}
    deadline = time.monotonic() + 90
    while len(got) < RECORDS and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        assert not msg.error(), msg.error()
        got[msg.key().decode()] = msg.value().decode()
        order[msg.partition()].append(int(msg.key()[1:]))
    consumer.close()
    assert got == _expected()
    assert all(seq == sorted(seq) for seq in order.values()), "records out of order within a partition"
    assert _spliced(gateway) - before > 0.9 * RECORDS * 1031
    _check_trail(gateway, topic, RECORDS // 3)


def test_kafka_python_reads_spliced_answers_exactly(gateway: Any, topic: str) -> None:
    from kafka import KafkaConsumer

    before = _spliced(gateway)
    consumer = KafkaConsumer(topic, bootstrap_servers=gateway.bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=15000, group_id=None)
    got = {}
    for msg in consumer:
        got[msg.key.decode()] = msg.value.decode()
        if len(got) >= RECORDS:
            break
    consumer.close()
    assert got == _expected()
    assert _spliced(gateway) - before > 0.9 * RECORDS * 1031
    _check_trail(gateway, topic, RECORDS // 3)


def test_the_java_console_consumer_reads_spliced_answers_exactly(gateway: Any, topic: str) -> None:
    before = _spliced(gateway)
    records = console_consume(gateway.bootstrap, topic, max_messages=RECORDS, print_key=True,
                              group=f"splice-java-{id(gateway)}", timeout_ms=20_000)
    assert {r.key: r.value for r in records} == _expected()
    assert len(records) == RECORDS
    assert _spliced(gateway) - before > 0.9 * RECORDS * 1031
    _check_trail(gateway, topic, RECORDS // 3)


def _fetch_frame(raw: RawKafka, topic: str, partitions: list[int]) -> tuple[int, bytes]:
    T = API_TABLE[FETCH].request[12].FetchTopic
    P = T.FetchPartition
    parts = [P(partition=p, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1, log_start_offset=-1,
               partition_max_bytes=8 << 20) for p in partitions]
    return raw.encode(FETCH, 12, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=32 << 20, isolation_level=0,
                      session_id=0, session_epoch=-1, topics=[T(topic=topic, partitions=parts)],
                      forgotten_topics_data=[], rack_id="")


def test_a_slow_reader_gets_the_brokers_bytes_in_order(gateway: Any, kafka_broker: Any, topic: str) -> None:
    """A client that reads little and late: most of the answer cannot go into its socket, so it
    is queued behind what was spliced; a second request pipelined behind the first is answered
    after it, whole. With a trail, the first answer's offsets are read from a copy gathered
    partly by the splice and partly by ordinary reads."""
    with RawKafka(kafka_broker.bootstrap) as direct:
        whole = _fetch_frame(direct, topic, [0, 1, 2])[1]
        direct.send_frame(whole)
        want_whole = direct.read_frame()
        small = _fetch_frame(direct, topic, [1])[1]
        direct.send_frame(small)
        want_small = direct.read_frame()
    assert len(want_whole) > 6_000_000
    before, queued = _spliced(gateway), _spliced(gateway, "queue")
    raw = RawKafka(gateway.bootstrap, timeout=60, recv_buffer=65536)
    try:
        # The same correlation ids as the direct requests: the answers must be byte-identical.
        raw.send_frame(whole)
        raw.send_frame(small)
        time.sleep(1.0)  # Gatekeeper meets a full socket: the rest waits in its queue
        got_whole = _read_slowly(raw, len(want_whole))
        got_small = raw.read_frame()
    finally:
        raw.close()
    assert got_whole == want_whole
    assert got_small == want_small
    assert _spliced(gateway) - before > 0
    assert _spliced(gateway, "queue") - queued > 0, "the client's socket never filled: the queue path was not taken"
    _check_trail(gateway, topic, RECORDS // 3)


def _read_slowly(raw: RawKafka, size: int) -> bytes:
    assert int.from_bytes(raw._read(4), "big") == size
    out = bytearray()
    while len(out) < size:
        chunk = raw.sock.recv(min(65536, size - len(out)))
        if not chunk:
            raise AssertionError(f"the connection closed after {len(out)} of {size} bytes")
        out += chunk
        if len(out) < 1_000_000:
            time.sleep(0.002)
    return bytes(out)


def test_a_client_leaving_mid_answer_costs_only_its_connection(twistd_gateway: Any, topic: str) -> None:
    before = _spliced(twistd_gateway)
    log_from = twistd_gateway.log_path.stat().st_size
    fds = _fds(twistd_gateway)
    for _ in range(5):
        raw = RawKafka(twistd_gateway.bootstrap)
        raw.send_frame(_fetch_frame(raw, topic, [0, 1, 2])[1])
        raw._read(100_000)  # well into the answer, then gone
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        raw.close()  # a reset, not a clean close
    assert _spliced(twistd_gateway) - before > 0
    with RawKafka(twistd_gateway.bootstrap) as raw:
        cid, frame = _fetch_frame(raw, topic, [2])
        raw.send_frame(frame)
        answer = raw.read_frame()
        assert int.from_bytes(answer[:4], "big") == cid
        body = raw.decode(FETCH, 12, answer)
        assert body.error_code == 0
        assert body.responses[0].partitions[0].error_code == 0
        assert len(body.responses[0].partitions[0].records) > 1_000_000
    deadline = time.monotonic() + 10
    while twistd_gateway.metric("gatekeeper_connections_active") > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert twistd_gateway.metric("gatekeeper_connections_active") == 0
    assert _fds(twistd_gateway) <= fds + 2, "file descriptors left open (the splicing pipe is one pair per process)"
    log = twistd_gateway.log_path.read_bytes()[log_from:].decode(errors="replace")
    assert "Traceback" not in log and "Unhandled" not in log
