"""KIP-951 node endpoints through ``twistd gatekeeper`` in front of a two-node cluster.

A broker that is no longer a partition's leader names the new leader in its answer, address
included (``node_endpoints``); through Gatekeeper that address must be Gatekeeper's own for that
node, never the broker's. One partition, replicas [1, 2], its leadership moved from node 1 to
node 2; then, to Gatekeeper's port for node 1, with raw requests so the answer is seen as sent:

- Produce v13 (topic by id) and v10 (topic by name): NOT_LEADER_OR_FOLLOWER, every
  ``node_endpoints`` entry names Gatekeeper's host and its port for that node, and no byte of the
  answer holds a broker's real address. The same request sent to the broker itself names node 2's
  real address (else the test would prove nothing);
- Fetch: ApiVersions offers at most v15 (v16 added ``node_endpoints``), a Fetch v16 is refused
  (the connection is closed unanswered, as for every version Gatekeeper does not inspect), and a
  v15 one still gets the broker's FENCED_LEADER_EPOCH answer;
- ShareFetch v1 and v2: as Produce. ShareAcknowledge: only where the broker sends node endpoints
  for it (Kafka 4.3.1 answers an acknowledgement to a non-leader UNKNOWN_TOPIC_OR_PARTITION, with
  none: that test says so and skips);
- real clients (librdkafka, kafka-python, Kafka's Java console producer) producing through
  Gatekeeper while leadership moves 1 -> 2 -> 1: every acknowledged record is readable afterwards,
  and no process but Gatekeeper and the brokers held a connection to a broker's client port (a
  client that followed a leaked address would). The test's own admin traffic uses the brokers'
  SASL listeners, which Gatekeeper does not use, so it is not mistaken for a client's.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest

from gatekeeper.kafka.codec import API_TABLE
from harness.broker import KafkaBroker
from harness.connections import ConnectionWatch
from harness.gateway import TwistdGateway
from harness.javatools import console_produce
from harness.ports import LOOPBACK
from harness.waiting import wait_for
from tests.integration.rawkafka import RawKafka, RawKafkaError

pytestmark = pytest.mark.integration

NOT_LEADER_OR_FOLLOWER = 6
FENCED_LEADER_EPOCH = 74
PRODUCE, FETCH, METADATA, API_VERSIONS, FIND_COORDINATOR = 0, 1, 3, 18, 10
SHARE_GROUP_HEARTBEAT, SHARE_FETCH, SHARE_ACKNOWLEDGE = 76, 78, 79
SHARE_SESSION_NOT_FOUND = 122

Cluster = tuple[KafkaBroker, KafkaBroker]


@attrs.frozen
class Moved:
    """A one-partition topic whose leadership moved from node 1 to node 2."""

    topic: str
    topic_id: uuid.UUID
    gateway_ports: dict[int, int]  # node id -> Gatekeeper's port for it (from its Metadata)
    real: dict[int, tuple[str, int]]  # node id -> the broker's own PLAINTEXT address

    def via_gatekeeper(self, node: int) -> str:
        return f"{LOOPBACK}:{self.gateway_ports[node]}"


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with KafkaBroker(heap="512m") as first, KafkaBroker(heap="512m", join=first) as second:
        yield first, second


@pytest.fixture(scope="module")
def gateway(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwistdGateway]:
    with TwistdGateway(tmp_path_factory.mktemp("node-endpoints"), cluster[0].bootstrap) as gw:
        yield gw


@pytest.fixture(scope="module")
def moved(cluster: Cluster, gateway: TwistdGateway) -> Moved:
    first, second = cluster
    topic = f"moved-{uuid.uuid4().hex[:8]}"
    _create_topic(first, topic, [1, 2])
    answer = _metadata(gateway.bootstrap, topic)
    ports = {b.node_id: b.port for b in answer.brokers}
    assert sorted(ports) == [1, 2] and set(ports.values()) <= set(gateway.ports.broker_ports), answer.brokers
    assert answer.topics[0].partitions[0].leader_id == 1, answer.topics
    moved = Moved(topic, answer.topics[0].topic_id, ports,
                  {1: (LOOPBACK, first.port), 2: (LOOPBACK, second.port)})
    _move_leader(cluster, topic, [2, 1])
    # A broker updates its metadata before its partitions step down: wait until node 1 refuses a
    # write (acks=1: a write that wins that race must not wait for node 2, which will not fetch it).
    wait_for(lambda: _partition(_produce(first.bootstrap, 13, moved, acks=1)[0]).error_code == NOT_LEADER_OR_FOLLOWER,
             15, "node 1 to refuse writes once node 2 leads", interval=0.2, detail=first.log_tail)
    return moved


@pytest.fixture(scope="module")
def share_member(moved: Moved, gateway: TwistdGateway) -> tuple[str, str]:
    """(group, member id) of a share group member, joined through Gatekeeper, assigned the
    moved topic's partition."""
    group, member = f"moved-share-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())

    def coordinator() -> Any:
        with RawKafka(gateway.bootstrap) as raw:
            found = raw.request(FIND_COORDINATOR, 4, key_type=0, coordinator_keys=[group]).coordinators[0]
        return found if found.error_code == 0 else None

    found = wait_for(coordinator, 30, "a group coordinator", interval=0.5)
    assert found.port in gateway.ports.broker_ports, found  # Gatekeeper's port, as any address
    epoch = 0
    with RawKafka(f"{found.host}:{found.port}") as raw:

        def assigned() -> bool:
            nonlocal epoch
            hb = raw.request(SHARE_GROUP_HEARTBEAT, 1, group_id=group, member_id=member, member_epoch=epoch,
                             rack_id=None, subscribed_topic_names=[moved.topic])
            epoch = hb.member_epoch if hb.error_code == 0 else 0
            return hb.error_code == 0 and hb.assignment is not None and bool(hb.assignment.topic_partitions)

        wait_for(assigned, 30, "the share group to assign the partition", interval=0.5)
    return group, member


# -- Produce -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [13, 10])
def test_the_broker_itself_names_the_new_leaders_real_address(moved: Moved, cluster: Cluster, version: int) -> None:
    answer, frame = _produce(cluster[0].bootstrap, version, moved)
    assert _partition(answer).error_code == NOT_LEADER_OR_FOLLOWER, answer
    assert _endpoints(answer) == [(2, LOOPBACK, cluster[1].port)], answer
    assert _real_addresses_in(frame, moved) == [f"node 2 at {LOOPBACK}:{cluster[1].port}"]  # the byte check sees it


@pytest.mark.parametrize("version", [13, 10])
def test_produce_to_the_old_leader_names_only_gatekeepers_addresses(moved: Moved, version: int) -> None:
    answer, frame = _produce(moved.via_gatekeeper(1), version, moved)
    partition = _partition(answer)
    assert partition.error_code == NOT_LEADER_OR_FOLLOWER, answer
    assert partition.current_leader.leader_id == 2, answer
    assert _endpoints(answer) == [(2, LOOPBACK, moved.gateway_ports[2])], (
        f"node_endpoints must name Gatekeeper's port for node 2 ({moved.gateway_ports[2]}); "
        f"the broker's real ports are {moved.real}")
    assert _real_addresses_in(frame, moved) == []


# -- Fetch ---------------------------------------------------------------------------------------


def test_api_versions_offers_fetch_up_to_v15_only(gateway: TwistdGateway) -> None:
    with RawKafka(gateway.bootstrap) as raw:
        answer = raw.request(API_VERSIONS, 3, client_software_name="node-endpoints", client_software_version="1")
    fetch = {k.api_key: k for k in answer.api_keys}[FETCH]
    assert fetch.max_version <= 15, (
        f"Gatekeeper offers Fetch v{fetch.min_version}-v{fetch.max_version}: from v16 a Fetch answer "
        "names a partition's new leader by its real address (node_endpoints)")


def test_fetch_v16_is_refused_not_forwarded(moved: Moved, cluster: Cluster, gateway: TwistdGateway) -> None:
    # Sent to the broker itself (an old leader epoch, so it answers FENCED_LEADER_EPOCH), the
    # request gets node 2's real address back: forwarded, it would reach the client.
    direct, _frame = _fetch(cluster[0].bootstrap, 16, moved, leader_epoch=0)
    assert _fetch_partition(direct).error_code == FENCED_LEADER_EPOCH, direct
    assert _endpoints(direct) == [(2, LOOPBACK, cluster[1].port)], direct

    refused = 'gatekeeper_rejected_total{reason="unsupported_api"'
    before = gateway.metric(refused)
    try:
        answer, frame = _fetch(moved.via_gatekeeper(1), 16, moved, leader_epoch=0)
    except RawKafkaError as e:  # what Gatekeeper does with a version it does not inspect
        assert "connection closed after 0 of 4 bytes" in str(e)
    else:
        pytest.fail(f"Fetch v16 was forwarded and answered: node_endpoints {_endpoints(answer)}, real broker "
                    f"addresses in the answer's bytes: {_real_addresses_in(frame, moved)}")
    assert gateway.metric(refused) == before + 1
    wait_for(lambda: "refused request: Fetch v16" in gateway.log_path.read_text(errors="replace"), 10,
             "Gatekeeper's log line for the refused Fetch v16", detail=gateway.log_tail)


def test_fetch_v15_from_the_old_leader_gets_the_brokers_answer_without_an_address(moved: Moved) -> None:
    answer, frame = _fetch(moved.via_gatekeeper(1), 15, moved, leader_epoch=0)
    assert _fetch_partition(answer).error_code == FENCED_LEADER_EPOCH, answer
    assert _real_addresses_in(frame, moved) == []


# -- ShareFetch and ShareAcknowledge -------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_share_fetch_to_the_old_leader_names_only_gatekeepers_addresses(
    moved: Moved, cluster: Cluster, share_member: tuple[str, str], version: int
) -> None:
    direct, _frame = _share_fetch(cluster[0].bootstrap, version, moved, share_member)
    assert _share_partition(direct).error_code == NOT_LEADER_OR_FOLLOWER, direct
    assert _endpoints(direct) == [(2, LOOPBACK, cluster[1].port)], direct

    answer, frame = _share_fetch(moved.via_gatekeeper(1), version, moved, share_member)
    assert _share_partition(answer).error_code == NOT_LEADER_OR_FOLLOWER, answer
    assert _endpoints(answer) == [(2, LOOPBACK, moved.gateway_ports[2])], (
        f"node_endpoints must name Gatekeeper's port for node 2 ({moved.gateway_ports[2]}); "
        f"the broker's real ports are {moved.real}")
    assert _real_addresses_in(frame, moved) == []


@pytest.mark.parametrize("version", [1, 2])
def test_share_acknowledge_to_the_old_leader_names_only_gatekeepers_addresses(
    moved: Moved, cluster: Cluster, share_member: tuple[str, str], version: int
) -> None:
    direct, _frame = _share_acknowledge_in_a_session(cluster[0].bootstrap, version, moved, share_member)
    if not _endpoints(direct):
        error = _share_partition(direct).error_code
        pytest.skip(f"the broker sends no node_endpoints in a ShareAcknowledge answer from a non-leader (its "
                    f"partition error: {error}; Kafka 4.3.1 answers 3, UNKNOWN_TOPIC_OR_PARTITION, the share "
                    "partition not being hosted there): nothing to check through Gatekeeper")
    answer, frame = _share_acknowledge_in_a_session(moved.via_gatekeeper(1), version, moved, share_member)
    assert _endpoints(answer) == [(2, LOOPBACK, moved.gateway_ports[2])], answer
    assert _real_addresses_in(frame, moved) == []


# -- real clients across leader moves ------------------------------------------------------------


def test_clients_producing_across_leader_moves_lose_nothing_and_reach_brokers_only_through_gatekeeper(
    cluster: Cluster, gateway: TwistdGateway, tmp_path: Path
) -> None:
    first, second = cluster
    topic = f"moving-{uuid.uuid4().hex[:8]}"
    _create_topic(first, topic, [1, 2])
    acked: dict[str, list[str]] = {"librdkafka": [], "kafka-python": [], "java": []}
    errors: dict[str, list[str]] = {name: [] for name in acked}
    stop = threading.Event()
    fifo = tmp_path / "java-records"
    os.mkfifo(fifo)
    fed: list[str] = []
    librdkafka_brokers: set[str] = set()  # every "host:port" librdkafka's statistics named a node at

    def librdkafka_stats(stats: str) -> None:
        brokers = json.loads(stats)["brokers"].values()
        librdkafka_brokers.update(b["nodename"] for b in brokers if b["nodeid"] >= 0)

    def librdkafka() -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": gateway.bootstrap, "client.id": "librdkafka", "acks": "all",
                             "enable.idempotence": True, "linger.ms": 5, "statistics.interval.ms": 200,
                             "stats_cb": librdkafka_stats})

        def delivered(err: Any, msg: Any) -> None:
            if err is None:
                acked["librdkafka"].append(msg.value().decode())
            else:
                errors["librdkafka"].append(f"{msg.value().decode()}: {err}")

        for i in _until(stop):
            producer.produce(topic, f"librdkafka-{i}".encode(), on_delivery=delivered)
            producer.poll(0)
        if producer.flush(30):
            errors["librdkafka"].append("records still unacknowledged after 30 s")

    def kafka_python() -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=gateway.bootstrap, client_id="kafka-python", acks="all",
                                 linger_ms=5, retries=20, retry_backoff_ms=100)
        try:
            for i in _until(stop):
                value = f"kafka-python-{i}"
                future = producer.send(topic, value.encode())
                future.add_callback(lambda _md, value=value: acked["kafka-python"].append(value))
                future.add_errback(lambda e, value=value: errors["kafka-python"].append(f"{value}: {e!r}"))
            producer.flush(30)
        finally:
            producer.close(10)

    def feed_java() -> None:
        # The console producer reads the FIFO (EOF ends the tool). Opened without blocking, so a
        # tool that never started cannot hang the test: no reader yet is ENXIO, tried again.
        while True:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO or stop.is_set():
                    raise
                time.sleep(0.05)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "w") as lines:
            for i in _until(stop):
                fed.append(f"java-{i}")
                lines.write(f"java-{i}\n")
                lines.flush()

    def java() -> Any:
        return console_produce(gateway.bootstrap, topic, fifo, acks="all", timeout=120, check=False)

    def produced(name: str, more: int) -> None:
        target = len(acked[name]) + more
        wait_for(lambda: len(acked[name]) >= target, 30, f"{more} more records acknowledged to {name}",
                 detail=lambda: f"errors: {errors[name][-5:]}\n{gateway.log_tail()}")

    allowed = {pid for pid in (gateway.proc.pid if gateway.proc else None, first.pid, second.pid) if pid}
    watch = ConnectionWatch({first.port, second.port}, allowed)
    with watch, ThreadPoolExecutor(4) as pool:
        try:
            jobs = [pool.submit(job) for job in (librdkafka, kafka_python, feed_java, java)]
            for name in ("librdkafka", "kafka-python"):
                produced(name, 20)
            time.sleep(3)  # the Java console producer's JVM is up and writing by then
            _move_leader(cluster, topic, [2, 1])
            for name in ("librdkafka", "kafka-python"):
                produced(name, 50)
            _move_leader(cluster, topic, [1, 2])
            for name in ("librdkafka", "kafka-python"):
                produced(name, 50)
        finally:
            stop.set()
        java_output = [job.result(timeout=150) for job in jobs][-1]
    assert java_output.returncode == 0 and "Error when sending" not in java_output.stderr, java_output.stderr[-3000:]
    acked["java"] = list(fed)  # the tool exited cleanly: it had every line acknowledged

    gatekeepers = {f"{LOOPBACK}:{port}" for port in gateway.ports.broker_ports}
    assert watch.offenders == {}, (
        f"processes other than Gatekeeper (pid {gateway.proc.pid if gateway.proc else None}) and the brokers "
        f"connected to a broker's real client port: {watch.offenders}; librdkafka (in this process) knew the "
        f"nodes at {sorted(librdkafka_brokers)}, Gatekeeper's ports are {sorted(gatekeepers)}")
    assert librdkafka_brokers and librdkafka_brokers <= gatekeepers, sorted(librdkafka_brokers)
    assert errors == {name: [] for name in acked}, errors
    readable = set(_read_values(first, topic, sum(len(values) for values in acked.values())))
    missing = {name: sorted(set(values) - readable)[:10] for name, values in acked.items() if set(values) - readable}
    assert missing == {}, f"acknowledged but not readable: {missing}"
    assert all(acked.values()), {name: len(values) for name, values in acked.items()}


# -- helpers -------------------------------------------------------------------------------------


def _until(stop: threading.Event, interval: float = 0.02) -> Iterator[int]:
    """0, 1, 2 … one every ``interval`` seconds until ``stop`` is set."""
    i = 0
    while not stop.is_set():
        yield i
        i += 1
        time.sleep(interval)


def _sasl(node: KafkaBroker) -> dict[str, Any]:
    """RawKafka arguments for ``node``'s SASL listener (PLAIN), which Gatekeeper does not use."""
    return {"address": node.sasl_bootstrap, "user": node.plain_user, "password": node.plain_password}


def _admin(node: KafkaBroker) -> Any:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**node.kafka_python_sasl_config(), request_timeout_ms=15000)


def _create_topic(node: KafkaBroker, topic: str, replicas: list[int]) -> None:
    """One partition on ``replicas`` (the first leads), created over the SASL listener."""
    admin = _admin(node)
    try:
        admin.create_topics({topic: {"assignments": {0: replicas}}})
        admin.wait_for_topics([topic])
    finally:
        admin.close()


def _metadata(address: str, topic: str, **auth: Any) -> Any:
    T = API_TABLE[METADATA].request.MetadataRequestTopic
    with RawKafka(address, **auth) as raw:
        return raw.request(METADATA, 12, topics=[T(name=topic, topic_id=None)], allow_auto_topic_creation=False)


def _partition_metadata(node: KafkaBroker, topic: str) -> Any:
    return _metadata(**_sasl(node), topic=topic).topics[0].partitions[0]


def _move_leader(cluster: Cluster, topic: str, replicas: list[int]) -> None:
    """Reorder the partition's replicas to ``replicas`` and elect the first one (preferred leader
    election); return once both nodes name it leader. Over the SASL listeners only."""
    from kafka import TopicPartition

    admin = _admin(cluster[0])
    try:
        accepted = admin.alter_partition_reassignments({TopicPartition(topic, 0): replicas})
        assert all(error is None for error in accepted.values()), accepted
        wait_for(lambda: all(_partition_metadata(n, topic).replica_nodes == replicas for n in cluster), 15,
                 f"replicas {replicas} on both nodes")
        admin.elect_leaders(0, {topic: [0]})
    finally:
        admin.close()
    wait_for(lambda: all(_partition_metadata(n, topic).leader_id == replicas[0] for n in cluster), 15,
             f"node {replicas[0]} to lead on both nodes")


def _records(value: bytes) -> bytes:
    from kafka.record.memory_records import MemoryRecordsBuilder

    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    builder.append(timestamp=None, key=None, value=value, headers=[])
    builder.close()
    return bytes(builder.buffer())


def _produce(address: str, version: int, moved: Moved, acks: int = -1) -> tuple[Any, bytes]:
    """(decoded answer, raw answer frame) of a one-record Produce to partition 0 (by id from v13,
    by name before)."""
    R = API_TABLE[PRODUCE].request
    data = R.TopicProduceData(name=moved.topic, topic_id=moved.topic_id, partition_data=[
        R.TopicProduceData.PartitionProduceData(index=0, records=_records(b"to the old leader"))])
    with RawKafka(address, client_id="node-endpoints") as raw:
        frame = raw.request_frame(PRODUCE, version, transactional_id=None, acks=acks, timeout_ms=5000,
                                  topic_data=[data])
    return RawKafka.decode(PRODUCE, version, frame), frame


def _fetch(address: str, version: int, moved: Moved, leader_epoch: int) -> tuple[Any, bytes]:
    """A consumer's Fetch of partition 0 claiming ``leader_epoch`` (an old one: FENCED_LEADER_EPOCH)."""
    T = API_TABLE[FETCH].request.FetchTopic
    partition = T.FetchPartition(partition=0, current_leader_epoch=leader_epoch, fetch_offset=0, last_fetched_epoch=-1,
                                 log_start_offset=-1, partition_max_bytes=1 << 20)
    with RawKafka(address, client_id="node-endpoints") as raw:
        frame = raw.request_frame(FETCH, version, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                                  isolation_level=0, session_id=0, session_epoch=-1, rack_id="",
                                  topics=[T(topic=moved.topic, topic_id=moved.topic_id, partitions=[partition])],
                                  forgotten_topics_data=[])
    return RawKafka.decode(FETCH, version, frame), frame


def _share_fetch_request(raw: RawKafka, version: int, moved: Moved, member: tuple[str, str]) -> bytes:
    T = API_TABLE[SHARE_FETCH].request.FetchTopic
    group, member_id = member
    return raw.request_frame(SHARE_FETCH, version, group_id=group, member_id=member_id, share_session_epoch=0,
                             max_wait_ms=300, min_bytes=1, max_bytes=1 << 20, max_records=100, batch_size=100,
                             share_acquire_mode=0, is_renew_ack=False, forgotten_topics_data=[],
                             topics=[T(topic_id=moved.topic_id, partitions=[
                                 T.FetchPartition(partition_index=0, acknowledgement_batches=[])])])


def _share_fetch(address: str, version: int, moved: Moved, member: tuple[str, str]) -> tuple[Any, bytes]:
    """A ShareFetch of partition 0 opening a new share session (epoch 0)."""
    with RawKafka(address, client_id="node-endpoints") as raw:
        frame = _share_fetch_request(raw, version, moved, member)
    return RawKafka.decode(SHARE_FETCH, version, frame), frame


def _share_acknowledge(address: str, version: int, moved: Moved, member: tuple[str, str]) -> tuple[Any, bytes]:
    """A ShareFetch opening a share session, then a ShareAcknowledge of offset 0 in it (epoch 1)."""
    T = API_TABLE[SHARE_ACKNOWLEDGE].request.AcknowledgeTopic
    P = T.AcknowledgePartition
    group, member_id = member
    batch = P.AcknowledgementBatch(first_offset=0, last_offset=0, acknowledge_types=[1])
    with RawKafka(address, client_id="node-endpoints") as raw:
        _share_fetch_request(raw, version, moved, member)
        frame = raw.request_frame(SHARE_ACKNOWLEDGE, version, group_id=group, member_id=member_id,
                                  share_session_epoch=1, is_renew_ack=False,
                                  topics=[T(topic_id=moved.topic_id, partitions=[
                                      P(partition_index=0, acknowledgement_batches=[batch])])])
    return RawKafka.decode(SHARE_ACKNOWLEDGE, version, frame), frame


def _share_acknowledge_in_a_session(
    address: str, version: int, moved: Moved, member: tuple[str, str]
) -> tuple[Any, bytes]:
    """``_share_acknowledge``, again while the broker answers SHARE_SESSION_NOT_FOUND (an answer
    with no partitions, so nothing to check). Once in about fifty CI runs the broker answered that
    to the direct exchange: the session the ShareFetch had opened just before was gone. The session
    is the member's, shared with the earlier tests' connections; the close of one of those
    removing it is the likely cause, not confirmed. Any other answer is returned as it came."""

    def in_a_session() -> tuple[Any, bytes] | None:
        answer, frame = _share_acknowledge(address, version, moved, member)
        return None if answer.error_code == SHARE_SESSION_NOT_FOUND else (answer, frame)

    found: tuple[Any, bytes] = wait_for(in_a_session, 30, f"a ShareAcknowledge answered in a share session "
                                        f"at {address}", interval=0.5)
    return found


def _partition(answer: Any) -> Any:
    return answer.responses[0].partition_responses[0]


def _fetch_partition(answer: Any) -> Any:
    return answer.responses[0].partitions[0]


_share_partition = _fetch_partition


def _endpoints(answer: Any) -> list[tuple[int, str, int]]:
    return [(e.node_id, e.host, e.port) for e in answer.node_endpoints or ()]


def _real_addresses_in(frame: bytes, moved: Moved) -> list[str]:
    """The brokers' real addresses found in an answer's bytes: as ``host:port`` text, or as the
    host string followed by the port (how a NodeEndpoint or a Metadata broker encodes one)."""
    return [f"node {node} at {host}:{port}" for node, (host, port) in sorted(moved.real.items())
            if f"{host}:{port}".encode() in frame or host.encode() + struct.pack(">i", port) in frame]


def _read_values(node: KafkaBroker, topic: str, at_least: int) -> list[str]:
    """Every value in partition 0, read from the broker itself (until ``at_least`` or 30 s)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**node.kafka_python_sasl_config(), group_id=None, enable_auto_commit=False)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    values: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while len(values) < at_least and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value.decode() for r in records)
    finally:
        consumer.close()
    return values
