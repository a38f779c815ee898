"""Share groups (KIP-932) through ``twistd gatekeeper`` with Kafka's own Java share consumer and
Admin client (``java/ShareProbe.java``), and raw requests where no stock client shows the field.

- two members of one share group split a topic's records between them, each record delivered to
  one of them and acknowledged (a third member then finds none left);
- a topic the principal may not consume surfaces TOPIC_AUTHORIZATION_FAILED and the client
  does not spin (denied requests in the window are bounded);
- a share group the principal may not use surfaces GROUP_AUTHORIZATION_FAILED;
- a masked topic's records arrive masked through ShareFetch, every one, acknowledged;
- the offset admin APIs are allowed to the platform and refused to others;
- ListGroups does not list a share group the principal may not describe;
- a topic a share session keeps fetching (requests that name no topic) is decided again on every
  response: once the policy stops allowing it, its records no longer reach the member (without
  that decision, 90 bytes of records and acquired records did);
- librdkafka's share consumer (confluent-kafka 2.16) shares a masked topic with a Java member and
  surfaces a refused topic without spinning.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.kafka.codec import API_TABLE
from harness import deps
from harness.javatools import console_produce
from tests.integration.javaprobe import compile_java, log4j_config
from tests.integration.rawkafka import RawKafka

pytestmark = pytest.mark.integration

POLICY = Path(__file__).parent / "policy_share"
SOURCE = Path(__file__).parent / "java" / "ShareProbe.java"
CARD = "4111 1111 1111 1111"
PRINCIPALS = {
    "member": {"sub": "member", "groups": ["queue-readers"]},
    "platform": {"sub": "platform", "groups": ["platform"]},
}
MAX_DENIED_IN_WINDOW = 40  # as the denial matrix: a client backing off sends a handful


@pytest.fixture(scope="module")
def share_gateway(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from harness.gateway import TwistdGateway

    workdir = tmp_path_factory.mktemp("share")
    key = workdir / "hash.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    extra = {"policy": {"engine": "embedded", "policies": str(POLICY)},
             "identity": {"client_id_principals": PRINCIPALS},
             "masking": {"hash_key_file": str(key)}}
    with TwistdGateway(workdir, kafka_broker.bootstrap, extra=extra) as gw:
        yield gw


def _probe(*args: str, timeout: float = 120) -> dict[str, Any]:
    classes = compile_java(SOURCE, "ShareProbe")
    cmd = [deps.java_executable(), "-Xmx192m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
           f"-Dlog4j2.configurationFile={log4j_config()}", "-cp", f"{deps.kafka_classpath()}{os.pathsep}{classes}",
           "ShareProbe", *args]
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"ShareProbe {args[0]} exited with {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _consume(gw: Any, group: str, topic: str, client: str, seconds: float, idle: float = 6.0) -> dict[str, Any]:
    return _probe("consume", gw.bootstrap, group, topic, str(seconds), str(idle), f"client.id={client}")


def _rdkafka_consume(gw: Any, group: str, topic: str, client: str, seconds: float, idle: float = 6.0) -> dict[str, Any]:
    """The same as the Java probe's consume, with librdkafka's share consumer (confluent-kafka)."""
    from confluent_kafka import KafkaException, ShareConsumer

    consumer = ShareConsumer({"bootstrap.servers": gw.bootstrap, "group.id": group, "client.id": client,
                              "share.acknowledgement.mode": "explicit"})
    values: list[str] = []
    errors: list[str] = []
    polls = 0
    start = last = time.monotonic()
    got_any = False
    try:
        consumer.subscribe([topic])
        while time.monotonic() - start < seconds and not (got_any and time.monotonic() - last > idle):
            polls += 1
            try:
                batch = consumer.poll(0.5) or []
            except KafkaException as e:
                errors.append(e.args[0].name() if e.args else str(e))
                continue
            for m in batch:
                if m.error() is not None:
                    errors.append(m.error().name())
                    continue
                values.append(m.value().decode())
                consumer.acknowledge(m)
                got_any, last = True, time.monotonic()
            if any(m.error() is None for m in batch):
                consumer.commit_sync(10)
    finally:
        consumer.close()
    return {"values": values, "errors": errors, "polls": polls}


def _earliest(kafka_broker: Any, group: str) -> None:
    """The share group starts at the earliest offset (set on the broker, before it has members)."""
    R = API_TABLE[44].request
    res = R.AlterConfigsResource(resource_type=32, resource_name=group, configs=[
        R.AlterConfigsResource.AlterableConfig(name="share.auto.offset.reset", config_operation=0, value="earliest")])
    with RawKafka(kafka_broker.bootstrap) as raw:
        answer = raw.request(44, 1, resources=[res], validate_only=False)
    assert [r.error_code for r in answer.responses] == [0], answer


def _topic(kafka_broker: Any, prefix: str, values: list[str], partitions: int = 2) -> str:
    name = f"{prefix}.{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(name, partitions=partitions)
    if values:
        console_produce(kafka_broker.bootstrap, name, values)
    return name


def test_two_members_share_a_topics_records_each_delivered_once_and_acknowledged(share_gateway, kafka_broker) -> None:
    # How the broker spreads records over members is its own business (Kafka 4.3.1 gave one
    # member all of them here, through Gatekeeper and directly alike): what is checked is that
    # each record went to exactly one member and was acknowledged.
    values = [f"job-{i}" for i in range(60)]
    topic = _topic(kafka_broker, "squeue", values)
    group = f"queue-{uuid.uuid4().hex[:8]}"
    _earliest(kafka_broker, group)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda c: _consume(share_gateway, group, topic, "member", 45), ["a", "b"]))
    got = [v for r in runs for v in r["values"]]
    assert not [e for r in runs for e in r["errors"]], runs
    assert sorted(got) == sorted(values), f"{len(got)} delivered of {len(values)}: {runs}"  # each exactly once
    # Every record was acknowledged: a later member of the group finds none left.
    again = _consume(share_gateway, group, topic, "member", 10, idle=10)
    assert again["values"] == [] and again["errors"] == [], again


def test_a_refused_topic_surfaces_its_error_without_spinning(share_gateway, kafka_broker) -> None:
    topic = _topic(kafka_broker, "sdenied", ["secret-1", "secret-2"])
    group = f"queue-{uuid.uuid4().hex[:8]}"
    _earliest(kafka_broker, group)
    denied_before = share_gateway.metric('gatekeeper_decisions_total{action="deny"')
    run = _consume(share_gateway, group, topic, "member", 8)
    denied = share_gateway.metric('gatekeeper_decisions_total{action="deny"') - denied_before
    assert run["values"] == []
    assert run["errors"] and all("TopicAuthorizationException" in e for e in run["errors"]), run
    assert 0 < denied <= MAX_DENIED_IN_WINDOW, f"{denied} denials in 8s: the client spins"


def test_librdkafka_and_java_members_share_a_topic_and_librdkafka_reads_masked_records(share_gateway, kafka_broker) -> None:
    values = [json.dumps({"id": i, "card": CARD}) for i in range(40)]
    topic = _topic(kafka_broker, "smask", values)
    group = f"queue-{uuid.uuid4().hex[:8]}"
    _earliest(kafka_broker, group)
    with ThreadPoolExecutor(2) as pool:
        java = pool.submit(_consume, share_gateway, group, topic, "member", 45)
        rd = pool.submit(_rdkafka_consume, share_gateway, group, topic, "member", 45)
        runs = [java.result(), rd.result()]
    assert not [e for r in runs for e in r["errors"]], runs
    got = sorted((json.loads(v) for r in runs for v in r["values"]), key=lambda d: d["id"])
    assert [d["id"] for d in got] == list(range(40)), runs  # each record once, to one of them
    assert all(d["card"] != CARD and d["card"].endswith("1111") for d in got)


def test_librdkafka_surfaces_a_refused_topic_without_spinning(share_gateway, kafka_broker) -> None:
    topic = _topic(kafka_broker, "sdenied", ["secret"])
    group = f"queue-{uuid.uuid4().hex[:8]}"
    _earliest(kafka_broker, group)
    denied_before = share_gateway.metric('gatekeeper_decisions_total{action="deny"')
    run = _rdkafka_consume(share_gateway, group, topic, "member", 8)
    denied = share_gateway.metric('gatekeeper_decisions_total{action="deny"') - denied_before
    assert run["values"] == []
    assert "TOPIC_AUTHORIZATION_FAILED" in run["errors"], run
    assert 0 < denied <= MAX_DENIED_IN_WINDOW, f"{denied} denials in 8s: the client spins"


def test_a_refused_share_group_surfaces_its_error(share_gateway, kafka_broker) -> None:
    topic = _topic(kafka_broker, "sopen", ["v"])
    denied_before = share_gateway.metric('gatekeeper_decisions_total{action="deny"')
    run = _consume(share_gateway, f"forbidden-{uuid.uuid4().hex[:8]}", topic, "member", 6)
    denied = share_gateway.metric('gatekeeper_decisions_total{action="deny"') - denied_before
    assert run["values"] == []
    assert run["errors"] and all("GroupAuthorizationException" in e for e in run["errors"]), run
    assert 0 < denied <= MAX_DENIED_IN_WINDOW, f"{denied} denials in 6s: the client spins"


def test_a_masked_topics_records_arrive_masked_through_share_fetch(share_gateway, kafka_broker) -> None:
    docs = [json.dumps({"id": i, "card": CARD, "note": f"n{i}"}) for i in range(30)]
    topic = _topic(kafka_broker, "smask", docs, partitions=1)
    group = f"queue-{uuid.uuid4().hex[:8]}"
    _earliest(kafka_broker, group)
    masked_before = share_gateway.metric('gatekeeper_masked_records_total{')
    run = _consume(share_gateway, group, topic, "member", 40)
    assert run["errors"] == [], run
    got = sorted((json.loads(v) for v in run["values"]), key=lambda d: d["id"])
    assert [d["id"] for d in got] == list(range(30)), run  # none dropped, none twice
    assert all(d["card"] != CARD and d["card"].endswith("1111") and d["note"] == f"n{d['id']}" for d in got), got[:3]
    assert share_gateway.metric('gatekeeper_masked_records_total{') - masked_before >= 30
    # Acknowledged as delivered: nothing comes again.
    again = _consume(share_gateway, group, topic, "member", 8, idle=8)
    assert again["values"] == [], again


def test_share_group_offsets_are_altered_and_deleted_by_the_platform_only(share_gateway, kafka_broker) -> None:
    topic = _topic(kafka_broker, "soffsets", ["a", "b", "c"], partitions=1)
    group = f"queue-{uuid.uuid4().hex[:8]}"
    _earliest(kafka_broker, group)
    _consume(share_gateway, group, topic, "member", 20, idle=3)  # the group now has offsets for the topic
    member = _probe("offsets", share_gateway.bootstrap, group, topic, "client.id=member")
    assert member["steps"] == ["list:ok:1", "alter:GroupAuthorizationException", "delete:GroupAuthorizationException"], member
    platform = _probe("offsets", share_gateway.bootstrap, group, topic, "client.id=platform")
    assert platform["steps"] == ["list:ok:1", "alter:ok", "delete:ok"], platform


def test_list_groups_hides_share_groups_the_principal_may_not_describe(share_gateway, kafka_broker) -> None:
    topic = _topic(kafka_broker, "slist", ["x"], partitions=1)
    hidden, shown = f"hidden-{uuid.uuid4().hex[:8]}", f"queue-{uuid.uuid4().hex[:8]}"
    for group in (hidden, shown):
        _consume(share_gateway, group, topic, "platform", 6, idle=2)

    def listed(client: str) -> set[str]:
        deadline = time.monotonic() + 20
        while True:
            with RawKafka(share_gateway.bootstrap, client_id=client) as raw:
                answer = raw.request(16, 5, states_filter=[], types_filter=["Share"])
            names = {g.group_id for g in answer.groups}
            if shown in names or time.monotonic() > deadline:
                return names
            time.sleep(0.5)

    assert {hidden, shown} <= listed("platform")
    member_sees = listed("member")
    assert shown in member_sees and hidden not in member_sees


def _share_fetch(raw: RawKafka, group: str, member: str, epoch: int, topics: list[Any]) -> Any:
    return raw.request(78, 1, group_id=group, member_id=member, share_session_epoch=epoch, max_wait_ms=300,
                       min_bytes=1, max_bytes=1 << 20, max_records=500, batch_size=500, topics=topics,
                       forgotten_topics_data=[])


def test_a_topic_a_share_session_keeps_fetching_is_decided_again_on_every_response(kafka_broker, tmp_path) -> None:
    """A share session fetches, on requests that name no topic, what earlier ones named: when the
    policy stops allowing the topic, its records no longer reach the member (raw protocol, so
    the request that names nothing is sent as a client would)."""
    from harness.gateway import TwistdGateway
    from harness.waiting import wait_for

    policies = tmp_path / "policies"
    policies.mkdir()
    rego = policies / "share.rego"
    rego.write_text('package gatekeeper\n\ndecision := {"action": "allow", "reason": "open", "ttl": "60s"}\n')
    topic = _topic(kafka_broker, "srevoke", ["before-1", "before-2"], partitions=1)
    group, member = f"queue-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    _earliest(kafka_broker, group)
    with RawKafka(kafka_broker.bootstrap) as direct:
        md = direct.request(3, 12, topics=[API_TABLE[3].request.MetadataRequestTopic(name=topic, topic_id=None)],
                            allow_auto_topic_creation=False)
    topic_id = md.topics[0].topic_id
    T = API_TABLE[78].request.FetchTopic
    extra = {"policy": {"engine": "embedded", "policies": str(policies)}}
    with TwistdGateway(tmp_path / "gw", kafka_broker.bootstrap, extra=extra) as gw, RawKafka(gw.bootstrap) as raw:
        epoch, deadline = 0, time.monotonic() + 30
        while True:  # join (FindCoordinator creates the offsets topic the coordinator needs)
            raw.request(10, 4, key_type=0, coordinator_keys=[group])
            hb = raw.request(76, 1, group_id=group, member_id=member, member_epoch=epoch, rack_id=None,
                             subscribed_topic_names=[topic])
            epoch = hb.member_epoch if hb.error_code == 0 else 0
            if hb.error_code == 0 and hb.assignment is not None and hb.assignment.topic_partitions:
                break
            assert time.monotonic() < deadline, hb
            time.sleep(0.5)
        first = _share_fetch(raw, group, member, 0, [T(topic_id=topic_id, partitions=[T.FetchPartition(
            partition_index=0, acknowledgement_batches=[])])])
        assert first.error_code == 0 and first.responses[0].partitions[0].records, first  # the session holds the topic

        rego.write_text(rego.read_text() + '\n# srevoke.* is no longer consumed\ndecision := {"action": "deny", '
                        '"reason": "revoked", "ttl": "60s"} if {\n\tinput.operation == "consume"\n'
                        '\tinput.resource.type == "topic"\n\tstartswith(input.resource.name, "srevoke.")\n}\n')
        rego.write_text(rego.read_text().replace('decision := {"action": "allow", "reason": "open", "ttl": "60s"}',
                                                 'default decision := {"action": "allow", "reason": "open", "ttl": "60s"}'))
        gw.reload()
        wait_for(lambda: "policies reloaded" in gw.log_path.read_text(), 15, "the reload", detail=gw.log_tail)
        console_produce(kafka_broker.bootstrap, topic, ["after-1", "after-2"])

        records, codes = 0, set()
        for session_epoch in (1, 2, 3):  # requests naming no topic: the session's own
            answer = _share_fetch(raw, group, member, session_epoch, [])
            for t in answer.responses:
                for p in t.partitions:
                    records += len(p.records or b"") + len(p.acquired_records)
                    codes.add(p.error_code)
        assert records == 0, "records of a topic the policy no longer allows reached the member"
        assert 29 in codes, codes  # and it was told why
