"""One client must never take Gatekeeper down: each attack from the security review, through
``twistd gatekeeper`` against the real broker, with generous bounds (regression tests, not
benchmarks): memory, other clients' latency, broker connections opened."""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.kafka.codec import API_TABLE
from harness.gateway import TwistdGateway
from harness.tokens import AUDIENCE, ISSUER, TestIdp
from tests.integration.rawkafka import RawKafka

pytestmark = pytest.mark.integration

DENIALS_POLICY = Path(__file__).parent / "policy_denials"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def login_gateway(kafka_broker, tmp_path_factory) -> Any:
    """A listener that requires SASL, the denial matrix's policy, no limit on denied requests
    a second (so only the backpressure under test holds a flooding client back)."""
    workdir = tmp_path_factory.mktemp("exhaustion")
    idp = TestIdp()
    jwks = idp.write_jwks(workdir / "jwks.json")
    kafka_broker.create_topic("denied.flood")
    extra = {"policy": {"engine": "embedded", "policies": str(DENIALS_POLICY)},
             "identity": {"jwt": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(jwks)}},
             "limits": {"authentication_timeout": "2s", "max_connections_per_address": 80, "denied_requests_per_second": 0}}
    with TwistdGateway(workdir, kafka_broker.bootstrap, extra=extra,
                       auth={"mechanisms": ["PLAIN", "OAUTHBEARER"], "required": True}) as gw:
        gw.idp = idp  # type: ignore[attr-defined]
        yield gw


def _connect(gw: TwistdGateway) -> socket.socket:
    host, port = gw.bootstrap.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _closed_within(s: socket.socket, seconds: float) -> bool:
    s.settimeout(seconds)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return True
    except TimeoutError:
        return False
    except OSError:
        return True


def _api_versions_seconds(gw: TwistdGateway) -> float:
    started = time.monotonic()
    with RawKafka(gw.bootstrap) as conn:
        conn.request(18, 3, client_software_name="probe", client_software_version="1")
    return time.monotonic() - started


def test_big_frames_before_login_are_refused_without_being_buffered(login_gateway) -> None:
    """Row 12: three unauthenticated clients announcing 100 MiB frames took 270 MB that was
    never released. Before login a frame may be 64 KiB at most."""
    before = login_gateway.rss_bytes()
    for _ in range(3):
        s = _connect(login_gateway)
        s.sendall(struct.pack(">i", 100 * MiB))
        try:
            s.sendall(b"\0" * MiB)
        except OSError:
            pass  # already closed by Gatekeeper
        assert _closed_within(s, 5), "a 100 MiB frame before login must close the connection"
        s.close()
    assert login_gateway.rss_bytes() - before < 30 * MiB


def test_idle_unauthenticated_connections_open_no_broker_connection_and_are_closed(login_gateway) -> None:
    """Row 12: 300 idle TCP connections opened (and SCRAM-authenticated) 300 broker connections
    and were never closed."""
    opened = login_gateway.metric("gatekeeper_upstream_connections_total")
    sockets = [_connect(login_gateway) for _ in range(60)]
    time.sleep(0.5)
    assert login_gateway.metric("gatekeeper_upstream_connections_total") == opened
    assert all(_closed_within(s, 6) for s in sockets), "not closed after limits.authentication_timeout"
    for s in sockets:
        s.close()


def test_connections_from_one_address_are_capped(login_gateway) -> None:
    sockets, reset = [], 0
    for _ in range(100):
        try:
            sockets.append(_connect(login_gateway))
        except ConnectionResetError:  # refused so fast that connect() itself saw the reset
            reset += 1
    refused = reset + sum(_closed_within(s, 0.5) for s in sockets)
    for s in sockets:
        s.close()
    assert refused >= 20, f"{refused} of 100 connections refused with max_connections_per_address 80"
    assert login_gateway.metric('gatekeeper_rejected_total{reason="connection_limit"') >= 20


def _flood(gw: TwistdGateway, token: str, count: int, stop: threading.Event) -> None:
    """Log in, then pipeline ``count`` denied Produce requests and never read an answer."""
    conn = RawKafka(gw.bootstrap, user="flood", password=token)
    P = API_TABLE[0].request
    frames = []
    for cid in range(count):
        body = P[9](transactional_id=None, acks=-1, timeout_ms=1000, topic_data=[
            P.TopicProduceData(name="denied.flood", partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=None)])])
        body.with_header(correlation_id=cid + 100, client_id="flood")
        raw = bytes(body.encode(header=True))
        frames.append(struct.pack(">i", len(raw)) + raw)
    conn.sock.settimeout(1.0)
    data = b"".join(frames)
    sent = 0
    while sent < len(data) and not stop.is_set():
        try:
            sent += conn.sock.send(data[sent : sent + 65536])
        except TimeoutError:
            continue  # Gatekeeper stopped reading: the backpressure under test
        except OSError:
            break
    stop.wait(30)
    conn.close()


def test_a_client_that_never_reads_cannot_grow_memory_or_slow_others(login_gateway) -> None:
    """Row 10: 30,000 pipelined denied Produce requests without reading took RSS from 430 MB to
    1.35 GB and another client's ApiVersions 33 s: synthesized answers ignored backpressure."""
    token = login_gateway.idp.token(sub="svc-flood", groups=())
    before = login_gateway.rss_bytes()
    stop = threading.Event()
    flood = threading.Thread(target=_flood, args=(login_gateway, token, 30_000, stop), daemon=True)
    flood.start()
    try:
        time.sleep(5)
        grown = login_gateway.rss_bytes() - before
        latency = _api_versions_seconds(login_gateway)
    finally:
        stop.set()
        flood.join(40)
    assert grown < 150 * MiB, f"RSS grew {grown / MiB:.0f} MiB under one client that does not read"
    assert latency < 2.0, f"another client's ApiVersions took {latency:.1f}s during the flood"


@pytest.fixture(scope="module")
def listing_gateway(kafka_broker, tmp_path_factory) -> Any:
    """300 topics, the default policy library, the embedded engine with its default timeout; the
    client id ``steady`` is principal ``svc-steady`` of the platform group, every other client is
    anonymous (no grants: every topic of a listing is evaluated and denied)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        admin.create_topics([NewTopic(f"many.{i:03d}", 1, 1) for i in range(300)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
    kafka_broker.create_topic("allowed.t")
    library = Path(__file__).resolve().parents[2] / "policies"
    extra = {"policy": {"engine": "embedded", "policies": str(library / "gatekeeper"), "data": str(library / "data.json")},
             "identity": {"client_id_principals": {"steady": {"sub": "svc-steady", "groups": ["platform"]}}}}
    with TwistdGateway(tmp_path_factory.mktemp("exhaustion-listing"), kafka_broker.bootstrap, extra=extra) as gw:
        yield gw


def _listing_flood(gw: TwistdGateway, stop: threading.Event, sent: list[int]) -> None:
    """All-topics Metadata from a new client id every time (anyone can claim any client id)."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            with RawKafka(gw.bootstrap, client_id=f"rotating-{n}") as conn:
                frames = []
                for _ in range(20):  # pipelined: twenty listings before reading one answer
                    _cid, frame = conn.encode(3, 12, topics=None, allow_auto_topic_creation=False)
                    frames.append(struct.pack(">i", len(frame)) + frame)
                conn.sock.sendall(b"".join(frames))
                sent[0] += 20
                for _ in range(20):
                    conn.read_frame()
        except Exception:
            time.sleep(0.05)


def test_rotating_client_ids_cannot_starve_the_engine_for_others(listing_gateway) -> None:
    """Row 11: rotating client ids made every all-topics listing (300 topics) a cache miss of
    300 evaluations; the engine timed out and another principal's allowed requests were denied."""
    M = API_TABLE[3].request
    stop, sent = threading.Event(), [0]
    floods = [threading.Thread(target=_listing_flood, args=(listing_gateway, stop, sent), daemon=True) for _ in range(4)]
    for t in floods:
        t.start()
    outcomes = []
    try:
        time.sleep(1)
        with RawKafka(listing_gateway.bootstrap, client_id="steady") as conn:
            for _ in range(70):  # longer than the policy's 5 s ttl: a decision expires mid-flood
                started = time.monotonic()
                md = conn.request(3, 12, topics=[M.MetadataRequestTopic(name="allowed.t")], allow_auto_topic_creation=False)
                outcomes.append((md.topics[0].error_code, time.monotonic() - started))
                time.sleep(0.1)
    finally:
        stop.set()
        for t in floods:
            t.join(10)
    assert sent[0] > 20, "the flood ran"
    # Starved, the steady principal is denied from its first expired decision on: a denial (an
    # engine timeout) is not cached, so every request after it asks the engine again and times out
    # again. One isolated timeout is what a 2-core machine running the broker, the flood and the
    # gateway can give the embedded engine's 250 ms now and then (seen once in CI, the request
    # after it allowed); a second one fails the test.
    denied = [i for i, (code, _) in enumerate(outcomes) if code != 0]
    assert len(denied) <= 1 and all(outcomes[i][0] == 29 for i in denied), outcomes
    # Starvation showed as denials (the engine timing out), checked above. The latency bound only
    # catches a gross regression: on an idle machine the median is 0.4 s (max 0.9 s; the old code:
    # median about 1.5 s), but with other jobs on the 2 cores it varies too much to bound tightly.
    latencies = sorted(seconds for _, seconds in outcomes)
    assert latencies[len(latencies) // 2] < 5.0, outcomes
    # The flood itself may be shed (its own listings can time out); another principal's are not.


def test_made_up_topic_ids_cost_a_small_probe_each_not_a_full_listing(listing_gateway) -> None:
    """Row 13: each Fetch naming a never-seen topic id made Gatekeeper fetch and decode the
    metadata of every topic (300 requests: 1.5 s of its CPU with 300 topics)."""
    F = API_TABLE[1].request
    from_broker = 'gatekeeper_bytes_total{direction="from_broker"}'
    before, read_before = listing_gateway.cpu_seconds(), listing_gateway.metric(from_broker)
    with RawKafka(listing_gateway.bootstrap, client_id="steady") as conn:  # platform: may consume, so forwarded
        for _ in range(300):
            body = conn.request(1, 13, replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1024, isolation_level=0,
                                session_id=0, session_epoch=-1, forgotten_topics_data=[], rack_id="",
                                topics=[F.FetchTopic(topic_id=uuid.uuid4(), partitions=[F.FetchTopic.FetchPartition(
                                    partition=0, fetch_offset=0, partition_max_bytes=1024, log_start_offset=-1,
                                    current_leader_epoch=-1, last_fetched_epoch=-1)])])
            assert body.responses[0].partitions[0].error_code != 0  # the broker does not know it either
    spent = listing_gateway.cpu_seconds() - before
    read = listing_gateway.metric(from_broker) - read_before
    # What the broker sent back for 300 requests and their probes: a probe by id is a few hundred
    # bytes; a full listing per probe (the previous behaviour) is the metadata of all 300 topics,
    # over 10 KiB each time. Bytes do not depend on how loaded the machine is; CPU does
    # (measured: 0.26-0.35 s idle, 0.8 s under a full CI run; 0.89 s idle with full listings).
    assert read < 300 * 2048, f"the broker sent {read:.0f} bytes for 300 made-up topic ids and their probes"
    assert spent < 2.0, f"Gatekeeper spent {spent:.2f} s of CPU on 300 made-up topic ids"


def test_java_clients_log_in_and_round_trip_through_a_listener_that_requires_it(login_gateway, kafka_broker) -> None:
    """Kafka's Java tools through the login listener: ApiVersions before login is answered from
    the last broker answer (no broker connection until login), and everything still works."""
    from harness import javatools

    kafka_broker.create_topic("java.login")
    token = login_gateway.idp.token(sub="svc-java", groups=(), lifetime=600)
    sasl = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.jaas.config": f'org.apache.kafka.common.security.plain.PlainLoginModule required username="java" password="{token}";'}
    javatools.console_produce(login_gateway.bootstrap, "java.login", ["one", "two", "three"], properties=sasl)
    got = javatools.console_consume(login_gateway.bootstrap, "java.login", max_messages=3, properties=sasl)
    assert [r.value for r in got] == ["one", "two", "three"]
