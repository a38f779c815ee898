"""Kafka 4's consumer group protocol (KIP-848) through ``twistd gatekeeper``: librdkafka and the
Java consumer with ``group.protocol=consumer``, and raw requests for what no stock client sends.

Policy (``policy_consumer_groups/``): topics named ``*hidden*`` are refused everything, describe
included; ``*nocon*`` may be described but not consumed; group ``cg-denied`` is refused.

- subscribing by names and by regex (librdkafka sends a server-side regex; the Java consumer's
  ``SubscriptionPattern`` is server-side, ``Pattern`` client-side): a regex matching a topic the
  principal may not consume never yields its records or its name, and a topic created later
  that it may consume is picked up;
- a group of two Java members rebalances (join, share, leave) and commits; offsets committed and
  fetched through Gatekeeper by topic id (OffsetCommit/OffsetFetch v10) are decided by name;
- each denied path surfaces the broker's error in the client, which does not spin;
- the assignment is the backstop: a member whose subscription the broker got elsewhere is never
  assigned, through Gatekeeper, a topic its principal may not consume.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.kafka.codec import API_TABLE
from harness import deps
from harness.gateway import TwistdGateway
from tests.integration.javaprobe import compile_java, log4j_config
from tests.integration.rawkafka import RawKafka

pytestmark = pytest.mark.integration

POLICY = Path(__file__).parent / "policy_consumer_groups"
PROBE = Path(__file__).parent / "java" / "ConsumerGroupProbe.java"
WINDOW = 6.0  # seconds a denied client is driven
MAX_DENIED_IN_WINDOW = 40  # as the denial matrix: a client backing off sends a handful
RECORDS = 6


@pytest.fixture(scope="module")
def gw(kafka_broker, tmp_path_factory) -> Any:
    from kafka import KafkaProducer

    for topic, parts in (("cg.names", 2), ("rx.ok", 2), ("rx.hidden", 1), ("rx.nocon", 1), ("cg.nocon", 1),
                         ("cg.rebalance", 4), ("ck.names", 2), ("ckrx.ok", 1), ("ckrx.hidden", 1)):
        kafka_broker.create_topic(topic, partitions=parts)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for topic in ("cg.names", "rx.ok", "rx.hidden", "rx.nocon", "cg.nocon", "ck.names", "ckrx.ok", "ckrx.hidden"):
        for i in range(RECORDS):
            producer.send(topic, f"{topic}-{i}".encode(), partition=i % 2 if topic in ("cg.names", "rx.ok", "ck.names") else 0)
    for i in range(40):
        producer.send("cg.rebalance", f"r-{i}".encode(), partition=i % 4)
    producer.flush(30)
    producer.close()
    with TwistdGateway(tmp_path_factory.mktemp("consumer-groups"), kafka_broker.bootstrap, level="debug",
                       extra={"policy": {"engine": "embedded", "policies": str(POLICY)}}) as gateway:
        yield gateway


def java(bootstrap: str, mode: str, group: str, seconds: float, expect: int, arg: str) -> dict[str, Any]:
    classes = compile_java(PROBE, "ConsumerGroupProbe")
    cmd = [deps.java_executable(), "-Xmx256m", "-XX:+UseSerialGC", f"-Dlog4j2.configurationFile={log4j_config()}",
           "-cp", f"{deps.kafka_classpath()}{os.pathsep}{classes}", "ConsumerGroupProbe",
           bootstrap, mode, group, repr(float(seconds)), str(expect), arg]
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=seconds + 120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"ConsumerGroupProbe failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])


def inputs(gw: TwistdGateway, api_key: int) -> list[dict[str, Any]]:
    """The policy inputs Gatekeeper logged (at debug) for one API (twistd rotates its log)."""
    out = []
    logs = sorted(gw.log_path.parent.glob(gw.log_path.name + ".*"), key=lambda p: -int(p.suffix[1:])) + [gw.log_path]
    for line in (line for log in logs for line in log.read_text(errors="replace").splitlines()):
        if "policy input {" in line:
            doc = json.loads(line.split("policy input ", 1)[1])
            if doc["api"]["key"] == api_key:
                out.append(doc)
    return out


def denied(gw: TwistdGateway) -> float:
    return gw.metric('gatekeeper_decisions_total{action="deny"')


def _produce(bootstrap: str, topic: str, n: int) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(n):
        p.send(topic, f"{topic}-late-{i}".encode())
    p.flush(30)
    p.close()


# -- the Java consumer -----------------------------------------------------------------------------


def test_java_consumer_by_names_consumes_commits_and_fetches_offsets_by_topic_id(gw, kafka_broker) -> None:
    out = java(gw.bootstrap, "names", "cg-java-names", 60, RECORDS, "cg.names")
    assert out["error"] is None, out
    assert out["records"] == {"cg.names": RECORDS}, out
    assert out["committed"] == {"cg.names-0": RECORDS // 2, "cg.names-1": RECORDS // 2}, out
    commits = [i for i in inputs(gw, 8) if i["request"].get("group") == "cg-java-names" or i["resource"]["name"] == "cg-java-names"]
    assert {i["api"]["version"] for i in commits} == {10}, "the new consumer commits by topic id (v10)"
    assert {(i["resource"]["type"], i["resource"]["name"]) for i in commits} == {("group", "cg-java-names"), ("topic", "cg.names")}
    fetches = [i for i in inputs(gw, 9) if i["request"].get("group") == "cg-java-names"]
    assert fetches and {i["resource"]["name"] for i in fetches} == {"cg.names"} and {i["api"]["version"] for i in fetches} == {10}
    beats = [i for i in inputs(gw, 68) if i["resource"]["name"] in ("cg-java-names", "cg.names")]
    assert {(i["operation"], i["resource"]["name"]) for i in beats} >= {("join_group", "cg-java-names"), ("consume", "cg.names")}
    # Later heartbeats leave the subscription out: they are decided against the one remembered.
    remembered = [i for i in beats if i["operation"] == "consume" and i["request"].get("source") == "subscription"]
    assert len(remembered) >= 2, beats


def test_java_server_side_pattern_never_yields_a_refused_topic_and_picks_up_a_new_one(gw, kafka_broker) -> None:
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(java(gw.bootstrap, "pattern", "cg-java-pattern", 90, RECORDS + 3, r"rx\..*")))
    t.start()
    time.sleep(8)
    kafka_broker.create_topic("rx.late", partitions=1)
    _produce(kafka_broker.bootstrap, "rx.late", 3)
    t.join(200)
    assert result.get("error") is None, result
    assert result["records"] == {"rx.ok": RECORDS, "rx.late": 3}, result
    assert "hidden" not in json.dumps(result) and "nocon" not in json.dumps(result), result
    # The broker was sent names, never the regex, and only the topics the policy allowed.
    with RawKafka(kafka_broker.bootstrap) as direct:
        # The group is empty once the probe left; its committed offsets show what was consumed.
        out = direct.request(9, 10, groups=[API_TABLE[9].request.OffsetFetchRequestGroup(group_id="cg-java-pattern", topics=None)],
                             require_stable=False)
    assert out.groups[0].error_code == 0
    resolving = [i for i in inputs(gw, 68) if i["request"].get("regex") == r"rx\..*"]
    assert {i["resource"]["name"] for i in resolving} >= {"rx.ok", "rx.hidden", "rx.nocon", "rx.late"}


def test_java_client_side_pattern_subscribing_a_topic_it_may_not_consume_surfaces_the_error(gw) -> None:
    before = denied(gw)
    # Longer than the other cells: the client lists every topic before it subscribes.
    out = java(gw.bootstrap, "client", "cg-java-client-pattern", 2 * WINDOW, 1000, r"rx\.(ok|nocon|hidden)")
    spent = denied(gw) - before
    # The client only sees topics it may describe (rx.ok, rx.nocon): it subscribes both by name,
    # and the heartbeat is refused for rx.nocon, as the broker refuses an unauthorized topic.
    assert out["error"] == "TopicAuthorizationException", out
    assert "hidden" not in json.dumps(out), out
    assert 1 <= spent <= MAX_DENIED_IN_WINDOW, f"{spent:g} denials in {2 * WINDOW:g}s: {out}"


def test_java_denied_group_surfaces_group_authorization_failed_without_spinning(gw) -> None:
    before = denied(gw)
    out = java(gw.bootstrap, "names", "cg-denied", WINDOW, 1000, "cg.names")
    spent = denied(gw) - before
    assert out["error"] == "GroupAuthorizationException", out
    assert out["records"] == {}, out
    assert 1 <= spent <= MAX_DENIED_IN_WINDOW, f"{spent:g} denials in {WINDOW:g}s: {out}"


def test_java_denied_topic_surfaces_topic_authorization_failed_without_spinning(gw) -> None:
    before = denied(gw)
    out = java(gw.bootstrap, "names", "cg-java-topic", WINDOW, 1000, "cg.nocon")
    spent = denied(gw) - before
    assert out["error"] == "TopicAuthorizationException", out
    assert out["records"] == {}, out
    assert 1 <= spent <= MAX_DENIED_IN_WINDOW, f"{spent:g} denials in {WINDOW:g}s: {out}"


def test_java_group_of_two_rebalances_and_commits(gw, kafka_broker) -> None:
    out = java(gw.bootstrap, "rebalance", "cg-java-rebalance", 120, 40, "cg.rebalance")
    assert out["error"] is None, out
    first, shared, last = out["phases"]
    a, b = (set(part.split("=", 1)[1].split(",")) for part in shared.split(" "))
    assert a and b and not a & b, out
    assert set(last.split("=", 1)[1].split(",")) == {f"cg.rebalance-{p}" for p in range(4)}, out
    assert sum(out["records"].values()) >= 40, out
    assert sum(out["committed"].values()) == 40, out


# -- librdkafka (confluent-kafka) -----------------------------------------------------------------


def _ck_consume(bootstrap: str, group: str, topics: list[str], expect: int, seconds: float,
                during: Any = None) -> dict[str, Any]:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "topic.metadata.refresh.interval.ms": 2000})
    c.subscribe(topics)
    got: dict[str, int] = {}
    first_error = None
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline and sum(got.values()) < expect:
        if during is not None and time.monotonic() - started > 8:
            during()
            during = None
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            first_error = first_error or m.error().name()
            continue
        got[m.topic()] = got.get(m.topic(), 0) + 1
    committed: dict[str, int] = {}
    if sum(got.values()):
        c.commit(asynchronous=False)
        committed = {f"{tp.topic}-{tp.partition}": tp.offset for tp in c.committed(c.assignment(), timeout=10)}
    c.close()
    return {"records": got, "error": first_error, "committed": committed}


def test_librdkafka_by_names_consumes_and_commits(gw) -> None:
    out = _ck_consume(gw.bootstrap, "cg-ck-names", ["ck.names"], RECORDS, 60)
    assert out["error"] is None and out["records"] == {"ck.names": RECORDS}, out
    assert out["committed"] == {"ck.names-0": RECORDS // 2, "ck.names-1": RECORDS // 2}, out


def test_librdkafka_regex_is_resolved_by_gatekeeper_and_picks_up_a_new_topic(gw, kafka_broker) -> None:
    def late() -> None:
        kafka_broker.create_topic("ckrx.late", partitions=1)
        _produce(kafka_broker.bootstrap, "ckrx.late", 3)

    out = _ck_consume(gw.bootstrap, "cg-ck-regex", [r"^ckrx\..*"], RECORDS + 3, 90, during=late)
    assert out["records"] == {"ckrx.ok": RECORDS, "ckrx.late": 3}, out
    assert "hidden" not in json.dumps(out), out
    sent = [i for i in inputs(gw, 68) if i["resource"]["name"] == "cg-ck-regex"]
    regexes = {i["request"]["subscription"]["regex"] for i in sent if "subscription" in i["request"]}
    assert regexes and all(r and "ckrx" in r for r in regexes), "librdkafka sends a server-side regex"


def test_librdkafka_denied_group_and_topic_surface_errors_without_spinning(gw) -> None:
    for group, topic, expected in (("cg-denied", "ck.names", "GROUP_AUTHORIZATION_FAILED"),
                                   ("cg-ck-topic", "cg.nocon", "TOPIC_AUTHORIZATION_FAILED")):
        before = denied(gw)
        out = _ck_consume(gw.bootstrap, group, [topic], 1000, WINDOW)
        spent = denied(gw) - before
        assert out["error"] == expected and not out["records"], (group, out)
        assert 1 <= spent <= MAX_DENIED_IN_WINDOW, f"{group}: {spent:g} denials in {WINDOW:g}s: {out}"


# -- raw requests ----------------------------------------------------------------------------------


def _heartbeat(conn: RawKafka, group: str, member: str, epoch: int, **fields: Any) -> Any:
    body = {"group_id": group, "member_id": member, "member_epoch": epoch, "instance_id": None, "rack_id": None,
            "rebalance_timeout_ms": 30000 if epoch == 0 else -1, "subscribed_topic_names": None,
            "subscribed_topic_regex": None, "server_assignor": None, "topic_partitions": [] if epoch == 0 else None}
    body.update(fields)
    deadline = time.monotonic() + 30
    while True:
        conn.request(10, 4, key_type=0, coordinator_keys=[group])
        out = conn.request(68, 1, **body)
        if out.error_code not in (14, 15, 16) or time.monotonic() > deadline:  # coordinator loading / moving
            return out
        time.sleep(0.3)


def _topic_id(bootstrap: str, name: str) -> uuid.UUID:
    with RawKafka(bootstrap) as direct:
        md = direct.request(3, 12, topics=[API_TABLE[3].request.MetadataRequestTopic(name=name)], allow_auto_topic_creation=False)
    return md.topics[0].topic_id


def test_an_assignment_the_broker_got_elsewhere_is_stripped_of_topics_the_member_may_not_consume(gw, kafka_broker) -> None:
    """The member subscribed directly at the broker (another connection, before a policy
    change): through Gatekeeper its heartbeats carry no subscription, and the assignment the
    broker sends back, naming a topic by an id Gatekeeper has not seen yet, is decided topic by
    topic."""
    member, late = str(uuid.uuid4()), f"cg.nocon-late-{uuid.uuid4().hex[:8]}"
    with RawKafka(kafka_broker.bootstrap) as direct:
        joined = _heartbeat(direct, "cg-backstop", member, 0, subscribed_topic_names=["cg.names", late])
    assert joined.error_code == 0, joined
    epoch = joined.member_epoch
    names = _topic_id(kafka_broker.bootstrap, "cg.names")
    kafka_broker.create_topic(late, partitions=1)  # the broker assigns it: a new assignment
    nocon = _topic_id(kafka_broker.bootstrap, late)
    assignments = []
    with RawKafka(gw.bootstrap) as conn:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = _heartbeat(conn, "cg-backstop", member, epoch)
            assert out.error_code == 0, out
            epoch = out.member_epoch
            if out.assignment is not None:
                assignments.append({tp.topic_id for tp in out.assignment.topic_partitions})
                break
            time.sleep(0.5)
    assert assignments == [{names}], (assignments, names, nocon)
    consumes = [i for i in inputs(gw, 68) if i["request"].get("source") == "assignment" and i["request"]["group"] == "cg-backstop"]
    assert {i["resource"]["name"] for i in consumes} == {"cg.names", late}, consumes


def test_a_regex_reaches_the_broker_as_the_topics_the_policy_allowed(gw, kafka_broker) -> None:
    member = str(uuid.uuid4())
    with RawKafka(gw.bootstrap) as conn:
        out = _heartbeat(conn, "cg-raw-regex", member, 0, subscribed_topic_names=[], subscribed_topic_regex=r"rx\.(ok|hidden|nocon)")
        assert out.error_code == 0, out
        bad = _heartbeat(conn, "cg-raw-regex", str(uuid.uuid4()), 0, subscribed_topic_names=[], subscribed_topic_regex="(?=rx)")
        assert bad.error_code == 128 and "(?=rx)" in (bad.error_message or ""), bad  # INVALID_REGULAR_EXPRESSION
    with RawKafka(kafka_broker.bootstrap) as direct:
        described = direct.request(69, 1, group_ids=["cg-raw-regex"], include_authorized_operations=False)
    (m,) = described.groups[0].members
    assert m.subscribed_topic_names == ["rx.ok"] and not m.subscribed_topic_regex, m


def test_consumer_group_describe_hides_what_the_principal_may_not_describe(gw, kafka_broker) -> None:
    with RawKafka(kafka_broker.bootstrap) as direct:  # a group assigned a hidden topic, joined directly
        assert _heartbeat(direct, "cg-describe-secret", str(uuid.uuid4()), 0, subscribed_topic_names=["rx.hidden"]).error_code == 0
        assert _heartbeat(direct, "cg-describe-open", str(uuid.uuid4()), 0,
                          subscribed_topic_names=["rx.ok", "rx.hidden.absent"]).error_code == 0
    deadline = time.monotonic() + 30
    with RawKafka(gw.bootstrap) as conn:
        while True:
            out = conn.request(69, 1, group_ids=["cg-describe-secret", "cg-describe-open", "cg-denied"],
                               include_authorized_operations=True)
            groups = {g.group_id: g for g in out.groups}
            if groups["cg-describe-secret"].error_code or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # the assignment is computed asynchronously
    hidden, open_, refused = groups["cg-describe-secret"], groups["cg-describe-open"], groups["cg-denied"]
    assert hidden.error_code == 29 and not hidden.members, hidden  # as the broker refuses it
    assert refused.error_code == 30, refused
    assert open_.error_code == 0 and open_.authorized_operations in (None, -2147483648), open_
    assert [m.subscribed_topic_names for m in open_.members] == [["rx.ok"]], open_


def test_every_heartbeat_and_describe_input_follows_the_policy_input_schema(gw) -> None:
    """Runs last here: the inputs of every test above, as twistd gatekeeper logged them."""
    from importlib import resources

    import jsonschema

    schema = json.loads(resources.files("gatekeeper").joinpath("schemas/policy-input.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    seen = inputs(gw, 68) + inputs(gw, 69)
    assert {i["request"].get("source") for i in seen} >= {"subscription", "regex", "assignment"}
    assert [(i["operation"], e.message) for i in seen for e in validator.iter_errors(i)] == []
