"""The broker must never act on more than the policy decided: crafted requests through
``twistd gatekeeper`` against the real broker, each reproducing an escape found in review."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.kafka.codec import API_TABLE
from harness.gateway import TwistdGateway
from tests.integration.rawkafka import RawKafka

pytestmark = pytest.mark.integration

OPEN_POLICY = Path(__file__).parent / "policy_open"
NO_AUTH_OPS = -2147483648


def _not_reported(ops: Any) -> bool:
    """kafka-python decodes the "not requested" bitfield (-2**31) as None, real rights as a set."""
    return ops is None or ops == NO_AUTH_OPS


@pytest.fixture(scope="module")
def open_gateway(kafka_broker, tmp_path_factory) -> Any:
    with TwistdGateway(tmp_path_factory.mktemp("security-open"), kafka_broker.bootstrap,
                       extra={"policy": {"engine": "embedded", "policies": str(OPEN_POLICY)}}) as gw:
        yield gw


def _open_transaction(bootstrap: str, topic: str) -> None:
    """Leave a transaction with one record open on ``topic`` (the producer is not closed)."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"open-txn-{topic}")
    p.init_transactions()
    p.begin_transaction()
    p.send(topic, b"uncommitted").get(30)
    p.flush()
    _open_transaction.keep = p  # type: ignore[attr-defined]


def _fetch(conn: RawKafka, topic: str, replica_id: int, isolation: int) -> Any:
    F = API_TABLE[1].request
    return conn.request(1, 12, replica_id=replica_id, max_wait_ms=100, min_bytes=1, max_bytes=1 << 20,
                        isolation_level=isolation, session_id=0, session_epoch=-1, forgotten_topics_data=[], rack_id="",
                        topics=[F.FetchTopic(topic=topic, partitions=[F.FetchTopic.FetchPartition(
                            partition=0, fetch_offset=0, partition_max_bytes=1 << 20, log_start_offset=-1,
                            current_leader_epoch=-1, last_fetched_epoch=-1)])])


@pytest.mark.parametrize("replica_id", [-3, 0, 1])
def test_a_fetch_as_a_replica_is_served_as_a_consumer(open_gateway, kafka_broker, replica_id: int) -> None:
    """Row 8: replica_id -3 (future replica) made the broker ignore read_committed; >= 0 is a
    follower fetch under the gateway's identity. Forced to -1, read_committed holds."""
    topic = "security.open-txn"
    kafka_broker.create_topic(topic)
    if not getattr(_open_transaction, "keep", None):
        _open_transaction(kafka_broker.bootstrap, topic)
    with RawKafka(open_gateway.bootstrap) as conn:
        committed = _fetch(conn, topic, replica_id, isolation=1)
        part = committed.responses[0].partitions[0]
        assert part.error_code == 0
        assert part.records in (b"", None), f"records of an open transaction returned to read_committed: {len(part.records)} bytes"
        assert part.last_stable_offset == 0
        uncommitted = _fetch(conn, topic, -1, isolation=0)
        assert uncommitted.responses[0].partitions[0].records, "read_uncommitted sees the open transaction (control)"


def test_the_gateways_own_authorized_operations_never_reach_a_client(open_gateway, kafka_broker) -> None:
    """Row 9: include_*_authorized_operations returned the gateway's own cluster permissions."""
    kafka_broker.create_topic("security.ops")
    M = API_TABLE[3].request
    with RawKafka(open_gateway.bootstrap) as conn:
        cluster = conn.request(60, 1, include_cluster_authorized_operations=True, endpoint_type=1)
        assert cluster.error_code == 0 and _not_reported(cluster.authorized_operations), cluster
        md = conn.request(3, 10, topics=[M.MetadataRequestTopic(name="security.ops", topic_id=None)],
                          allow_auto_topic_creation=False, include_cluster_authorized_operations=True,
                          include_topic_authorized_operations=True)
        assert _not_reported(md.authorized_operations), md
        assert [_not_reported(t.authorized_operations) for t in md.topics] == [True], md
        groups = conn.request(15, 5, groups=["security-g"], include_authorized_operations=True)
        assert [_not_reported(g.authorized_operations) for g in groups.groups] == [True], groups
        T = API_TABLE[75].request
        dtp = conn.request(75, 0, topics=[T.TopicRequest(name="security.ops")], response_partition_limit=10, cursor=None)
        assert [_not_reported(t.topic_authorized_operations) for t in dtp.topics] == [True], dtp
        # A share group that exists (a member joined it through Gatekeeper) is described without them.
        member, deadline = str(uuid.uuid4()), time.monotonic() + 30
        while True:  # the group coordinator (and the offsets topic FindCoordinator creates) may still be loading
            conn.request(10, 4, key_type=0, coordinator_keys=["security-sg"])
            joined = conn.request(76, 1, group_id="security-sg", member_id=member, member_epoch=0, rack_id=None,
                                  subscribed_topic_names=["security.ops"])
            if joined.error_code not in (14, 15, 16) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert joined.error_code == 0 and joined.member_epoch > 0, joined
        shared = conn.request(77, 1, group_ids=["security-sg"], include_authorized_operations=True)
        assert [(g.error_code, _not_reported(g.authorized_operations)) for g in shared.groups] == [(0, True)], shared


@pytest.fixture(scope="module")
def held_gateway(kafka_broker, tmp_path_factory) -> Any:
    """Gatekeeper holding SCRAM credentials for the broker's SASL listener, with a policy that
    allows everything: only what Gatekeeper refuses whatever the policy says is refused."""
    workdir = tmp_path_factory.mktemp("security-held")
    secret = workdir / "broker-password"
    secret.write_text(kafka_broker.scram_password)
    secret.chmod(0o600)
    upstream = {"bootstrap_servers": [kafka_broker.sasl_bootstrap],
                "sasl": {"mechanism": "SCRAM-SHA-512", "username": kafka_broker.scram_user, "password_file": str(secret)}}
    with TwistdGateway(workdir, kafka_broker.sasl_bootstrap,
                       extra={"policy": {"engine": "embedded", "policies": str(OPEN_POLICY)}, "upstream": upstream}) as gw:
        yield gw


def _upsert(user: str) -> dict[str, Any]:
    U = API_TABLE[51].request.ScramCredentialUpsertion
    return {"deletions": [], "upsertions": [U(name=user, mechanism=2, iterations=4096, salt=b"s" * 16, salted_password=b"p" * 64)]}


def test_the_gateways_own_credentials_cannot_be_changed_through_it(held_gateway, kafka_broker) -> None:
    """Row 3: AlterUserScramCredentials for Gatekeeper's own user let a client take over the
    gateway's identity at the broker (and locked every client out)."""
    with RawKafka(held_gateway.bootstrap) as conn:
        out = conn.request(51, 0, **_upsert(kafka_broker.scram_user))
        (result,) = out.results
        assert result.error_code == 31 and "Gatekeeper's own" in (result.error_message or ""), out
        control = conn.request(51, 0, **_upsert("someone-else"))
        assert [r.error_code for r in control.results] == [0], control
        described = conn.request(50, 0, users=None)
        assert kafka_broker.scram_user not in {r.user for r in described.results}, described
        assert "someone-else" in {r.user for r in described.results}
        refused = conn.request(50, 0, users=[API_TABLE[50].request.UserName(name=kafka_broker.scram_user)])
        assert refused.error_code == 31 and all(not r.credential_infos for r in refused.results), refused
    assert kafka_broker.sasl_login_ok(kafka_broker.scram_user, kafka_broker.scram_password), "the gateway's password still works"
    with RawKafka(held_gateway.bootstrap) as conn:  # and new connections through the gateway too
        assert conn.request(60, 1, include_cluster_authorized_operations=False, endpoint_type=1).error_code == 0


def test_quotas_and_acls_of_the_gateways_user_are_out_of_reach(held_gateway, kafka_broker) -> None:
    Q = API_TABLE[49].request.EntryData
    with RawKafka(held_gateway.bootstrap) as conn:
        for name in (kafka_broker.scram_user, None):  # the gateway's user, and the default user
            entry = Q(entity=[Q.EntityData(entity_type="user", entity_name=name)],
                      ops=[Q.OpData(key="producer_byte_rate", value=1.0, remove=False)])
            out = conn.request(49, 1, entries=[entry], validate_only=False)
            assert [e.error_code for e in out.entries] == [31], out
        C = API_TABLE[30].request.AclCreation
        out = conn.request(30, 3, creations=[C(resource_type=2, resource_name="*", resource_pattern_type=3,
                                               principal=f"User:{kafka_broker.scram_user}", host="*", operation=2, permission_type=2)])
        assert [r.error_code for r in out.results] == [31], out
        F = API_TABLE[31].request.DeleteAclsFilter
        out = conn.request(31, 3, filters=[F(resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
                                             principal_filter=None, host_filter=None, operation=1, permission_type=1)])
        assert [r.error_code for r in out.filter_results] == [31], out


DENIALS_POLICY = Path(__file__).parent / "policy_denials"


@pytest.fixture(scope="module")
def strict_gateway(kafka_broker, tmp_path_factory) -> Any:
    """The denial matrix's policy: ``hidden.*`` may not even be described."""
    for topic in ("allowed.t", "hidden.t", "hidden.u"):
        kafka_broker.create_topic(topic)
    with TwistdGateway(tmp_path_factory.mktemp("security-strict"), kafka_broker.bootstrap,
                       extra={"policy": {"engine": "embedded", "policies": str(DENIALS_POLICY)}}) as gw:
        yield gw


def _topic_id(bootstrap: str, name: str) -> Any:
    M = API_TABLE[3].request
    with RawKafka(bootstrap) as direct:
        return direct.request(3, 12, topics=[M.MetadataRequestTopic(name=name)], allow_auto_topic_creation=False).topics[0].topic_id


def test_empty_topic_lists_that_mean_all_topics_are_filtered_listings(strict_gateway) -> None:
    """Row 1: DescribeTopicPartitions with no topics and Metadata v0 with an empty list are
    "all topics" to the broker; every topic came back to a principal with no rights."""
    M = API_TABLE[3].request
    with RawKafka(strict_gateway.bootstrap) as conn:
        v0 = conn.request(3, 0, topics=[])
        names = {t.name for t in v0.topics}
        assert "allowed.t" in names and not any(n.startswith("hidden") for n in names), names
        listed, cursor = set(), None
        for _ in range(50):  # page through everything, one topic at a time
            page = conn.request(75, 0, topics=[], response_partition_limit=1, cursor=cursor)
            listed |= {t.name for t in page.topics}
            if page.next_cursor is None:
                break
            assert not page.next_cursor.topic_name.startswith("hidden"), page.next_cursor
            cursor = API_TABLE[75].request.Cursor(topic_name=page.next_cursor.topic_name,
                                                  partition_index=page.next_cursor.partition_index)
        assert not any(n.startswith("hidden") for n in listed), listed
        assert "allowed.t" in listed or cursor is not None  # pages stop at a hidden cursor, never show it
        named = conn.request(3, 12, topics=[M.MetadataRequestTopic(name="hidden.t")], allow_auto_topic_creation=False)
        assert [t.error_code for t in named.topics] == [29]


def test_a_negative_count_is_all_topics_to_the_policy_as_to_the_broker(strict_gateway, kafka_broker) -> None:
    """Kafka reads an array count below -1 as null: a Metadata v4 request of count -2 is every
    topic. The decoder read it as an empty list ("no topics"), so it went to the broker unfiltered
    and every topic came back to a principal with no rights."""
    import struct

    with RawKafka(kafka_broker.bootstrap) as direct:
        cid, frame = direct.encode(3, 4, topics=[], allow_auto_topic_creation=False)
        wire = frame[:-5] + struct.pack(">i", -2) + frame[-1:]  # the count, before allow_auto_topic_creation
        direct.send_frame(wire)
        everything = {t.name for t in RawKafka.decode(3, 4, direct.read_frame()).topics}
    assert "hidden.t" in everything  # the broker itself answers with every topic
    with RawKafka(strict_gateway.bootstrap) as conn:
        cid, frame = conn.encode(3, 4, topics=[], allow_auto_topic_creation=False)
        conn.send_frame(frame[:-5] + struct.pack(">i", -2) + frame[-1:])
        names = {t.name for t in RawKafka.decode(3, 4, conn.read_frame()).topics}
    assert "allowed.t" in names and not any(n.startswith("hidden") for n in names), names


def test_a_topic_named_and_identified_as_another_is_refused(strict_gateway, kafka_broker) -> None:
    """Row 2: Metadata naming an allowed topic and carrying a hidden topic's id: the policy
    decided on the name, the broker answered for the id."""
    from tests.integration.rawkafka import RawKafkaError

    hidden_id = _topic_id(kafka_broker.bootstrap, "hidden.t")
    M = API_TABLE[3].request
    with RawKafka(strict_gateway.bootstrap) as conn, pytest.raises(RawKafkaError):
        conn.request(3, 12, topics=[M.MetadataRequestTopic(name="allowed.t", topic_id=hidden_id)],
                     allow_auto_topic_creation=False)
    with RawKafka(strict_gateway.bootstrap) as conn:  # by id alone it is decided as what it is
        by_id = conn.request(3, 12, topics=[M.MetadataRequestTopic(name=None, topic_id=hidden_id)], allow_auto_topic_creation=False)
        assert [t.error_code for t in by_id.topics] == [29], by_id


def _end_offset(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return int(c.end_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)])
    finally:
        c.close()


def _init_producer(conn: RawKafka, txn: str) -> tuple[int, int]:
    """A producer id for ``txn``, waiting while the transaction coordinator comes up (the
    single broker is every coordinator, so the bootstrap connection will do)."""
    import time

    deadline = time.monotonic() + 30
    while True:
        conn.request(10, 3, key=txn, key_type=1)
        out = conn.request(22, 4, transactional_id=txn, transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1)
        if out.error_code not in (14, 15, 16, 51) or time.monotonic() > deadline:  # loading / not available yet
            assert out.error_code == 0, out
            return out.producer_id, out.producer_epoch
        time.sleep(0.2)


def test_a_transaction_cannot_write_markers_into_a_topic_its_principal_may_not_produce_to(strict_gateway, kafka_broker) -> None:
    """Row 6: AddPartitionsToTxn was decided on the transactional id only; committing then wrote
    control records into a topic the principal was refused produce on."""
    before = _end_offset(kafka_broker.bootstrap, "hidden.u")
    T = API_TABLE[24].request.AddPartitionsToTxnTopic
    with RawKafka(strict_gateway.bootstrap) as conn:
        pid, epoch = _init_producer(conn, "security-txn-markers")
        added = conn.request(24, 3, v3_and_below_transactional_id="security-txn-markers", v3_and_below_producer_id=pid,
                             v3_and_below_producer_epoch=epoch, v3_and_below_topics=[T(name="hidden.u", partitions=[0])])
        codes = [p.partition_error_code for t in added.results_by_topic_v3_and_below for p in t.results_by_partition]
        assert codes == [29], added
        conn.request(26, 3, transactional_id="security-txn-markers", producer_id=pid, producer_epoch=epoch, committed=True)
    assert _end_offset(kafka_broker.bootstrap, "hidden.u") == before, "a transaction marker was written"


def test_offsets_of_hidden_topics_can_be_neither_listed_nor_committed(strict_gateway, kafka_broker) -> None:
    """Row 7: OffsetFetch with topics null returned every topic's committed offset and metadata;
    TxnOffsetCommit was never checked per topic."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    group = "security-offsets"
    direct = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, group_id=group, enable_auto_commit=False)
    direct.commit({TopicPartition("allowed.t", 0): OffsetAndMetadata(0, "visible", -1),
                   TopicPartition("hidden.t", 0): OffsetAndMetadata(0, "secret-metadata", -1)})
    direct.close()
    with RawKafka(strict_gateway.bootstrap) as conn:
        out = conn.request(9, 7, group_id=group, topics=None, require_stable=False)
        assert out.error_code == 0 and {t.name for t in out.topics} == {"allowed.t"}, out
        out8 = conn.request(9, 8, groups=[API_TABLE[9].request.OffsetFetchRequestGroup(group_id=group, topics=None)],
                            require_stable=False)
        assert {t.name for g in out8.groups for t in g.topics} == {"allowed.t"}, out8
        pid, epoch = _init_producer(conn, "security-txn-offsets")
        added = conn.request(25, 3, transactional_id="security-txn-offsets", producer_id=pid, producer_epoch=epoch, group_id=group)
        assert added.error_code == 0, added
        C = API_TABLE[28].request.TxnOffsetCommitRequestTopic
        committed = conn.request(28, 3, transactional_id="security-txn-offsets", group_id=group, producer_id=pid,
                                 producer_epoch=epoch, generation_id=-1, member_id="", group_instance_id=None,
                                 topics=[C(name="hidden.t", partitions=[C.TxnOffsetCommitRequestPartition(
                                     partition_index=0, committed_offset=7, committed_leader_epoch=-1, committed_metadata="x")])])
        assert [p.error_code for t in committed.topics for p in t.partitions] == [29], committed
        conn.request(26, 3, transactional_id="security-txn-offsets", producer_id=pid, producer_epoch=epoch, committed=True)
    check = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        assert check.committed(TopicPartition("hidden.t", 0)) == 0, "the refused commit must not land"
    finally:
        check.close()


def _topics(bootstrap: str) -> set[str]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_auto_creation_is_a_create_topic_decided_by_the_policy(strict_gateway, kafka_broker) -> None:
    """Row 4: Metadata with allow_auto_topic_creation created topics for a principal whose
    CreateTopics for the same names was refused. Refused, the flag is withdrawn: the client
    is told the topic does not exist, and nothing is created."""
    M = API_TABLE[3].request
    with RawKafka(strict_gateway.bootstrap) as conn:
        refused = conn.request(3, 12, topics=[M.MetadataRequestTopic(name="denied.autocreated")], allow_auto_topic_creation=True)
        assert [t.error_code for t in refused.topics] == [3], refused  # UNKNOWN_TOPIC_OR_PARTITION, not created
        allowed = conn.request(3, 12, topics=[M.MetadataRequestTopic(name="security.autocreated")], allow_auto_topic_creation=True)
        assert [t.name for t in allowed.topics] == ["security.autocreated"], allowed
    import time

    deadline = time.monotonic() + 15
    while "security.autocreated" not in (topics := _topics(kafka_broker.bootstrap)) and time.monotonic() < deadline:
        time.sleep(0.2)  # creation is asynchronous: the control topic shows the check can see it
    assert "security.autocreated" in topics and "denied.autocreated" not in topics, topics


LIBRARY = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="module")
def library_gateway(kafka_broker, tmp_path_factory) -> Any:
    """The default policy library with its shipped data: ``ledger`` immutable, ``platform`` granted."""
    kafka_broker.create_topic("ledger", config={"retention.ms": "-1"})
    extra = {"policy": {"engine": "embedded", "policies": str(LIBRARY / "gatekeeper"), "data": str(LIBRARY / "data.json")},
             "identity": {"client_id_principals": {"ops": {"sub": "ops", "groups": ["platform"]}}}}
    with TwistdGateway(tmp_path_factory.mktemp("security-library"), kafka_broker.bootstrap, extra=extra) as gw:
        yield gw


def _retention(bootstrap: str, topic: str) -> str:
    R = API_TABLE[32].request.DescribeConfigsResource
    with RawKafka(bootstrap) as direct:
        out = direct.request(32, 4, resources=[R(resource_type=2, resource_name=topic, configuration_keys=["retention.ms"])],
                             include_synonyms=False, include_documentation=False)
    return out.results[0].configs[0].value


def test_legacy_alter_configs_cannot_reset_an_immutable_topics_retention(library_gateway, kafka_broker) -> None:
    """Row 5: legacy AlterConfigs replaces the whole config; with one harmless key it silently
    reset an immutable topic's retention.ms=-1 to the broker default."""
    A = API_TABLE[33].request.AlterConfigsResource
    with RawKafka(library_gateway.bootstrap, client_id="ops") as conn:
        out = conn.request(33, 1, resources=[A(resource_type=2, resource_name="ledger", configs=[
            A.AlterableConfig(name="max.message.bytes", value="2000000")])], validate_only=False)
    (result,) = out.responses
    assert result.error_code == 44, out  # POLICY_VIOLATION
    assert _retention(kafka_broker.bootstrap, "ledger") == "-1"
