"""Approve decisions on the wire: real broker, real ``twistd gatekeeper``, real Kafka clients,
the approvals API, CLI and the approver page in headless Chromium.

The policy (``policy_approvals/``) asks a lead's approval for writes to ``guarded.*``, two
leads' for ``twoperson.*`` and one for a consumer group named ``new-*``; a live grant allows.
Kafka clients get their principal from their client id (``identity.client_id_principals``);
approvers sign in to the API with JWTs from the test identity provider.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.kafka.codec import API_TABLE
from harness.gateway import TwistdGateway
from harness.javatools import console_produce
from harness.ports import free_port
from harness.tokens import AUDIENCE, ISSUER, TestIdp
from harness.waiting import wait_for
from tests.integration.rawkafka import RawKafka

pytestmark = pytest.mark.integration

POLICY = Path(__file__).parent / "policy_approvals"
IDP = TestIdp()
PRINCIPALS = {"writer": {"sub": "writer", "groups": ["apps"]}, "lead-client": {"sub": "lead-1", "groups": ["leads"]}}


class Api:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def pending(self, token: str, resource: str) -> list[dict[str, Any]]:
        status, body = self.call("GET", "/api/v1/requests?status=pending", token)
        assert status == 200, body
        return [r for r in body["requests"] if r["resource"]["name"] == resource]

    def wait_pending(self, token: str, resource: str, timeout: float = 15.0) -> dict[str, Any]:
        found: list[dict[str, Any]] = []
        wait_for(lambda: found.extend(self.pending(token, resource)) or found, timeout=timeout,
                 what=f"a pending approval request for {resource}")
        return found[0]


def lead(sub: str = "lead-1") -> str:
    return IDP.token(sub=sub, groups=("leads",), lifetime=600)


@pytest.fixture(scope="module")
def approvals_gateway(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("approvals")
    port = free_port()
    extra = {
        "policy": {"engine": "embedded", "policies": str(POLICY)},
        "identity": {"client_id_principals": PRINCIPALS,
                     "jwt": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(IDP.write_jwks(work / "jwks.json"))}},
        "approvals": {"store": str(work / "approvals.db"), "bind": f"127.0.0.1:{port}", "max_wait": "8s",
                      "page_url": f"http://127.0.0.1:{port}/"},
    }
    with TwistdGateway(work, kafka_broker.bootstrap, extra=extra) as gw:
        gw.api = Api(f"http://127.0.0.1:{port}")  # type: ignore[attr-defined]
        gw.approvals_url = f"http://127.0.0.1:{port}/"  # type: ignore[attr-defined]
        yield gw


def _produce_raw(bootstrap: str, topic: str, value: bytes, client_id: str = "writer") -> Any:
    """One Produce through Gatekeeper with a raw connection: the partition's error and message
    as the broker (or Gatekeeper) sent them (client libraries drop the message)."""
    from kafka.record.memory_records import MemoryRecordsBuilder

    b = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    b.append(timestamp=None, key=None, value=value, headers=[])
    b.close()
    P = API_TABLE[0].request
    with RawKafka(bootstrap, client_id=client_id, timeout=30) as conn:
        body = conn.request(0, 9, transactional_id=None, acks=-1, timeout_ms=10000, topic_data=[
            P.TopicProduceData(name=topic, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=b.buffer())])])
    return body.responses[0].partition_responses[0]


def _read_values(bootstrap: str, topic: str, n: int) -> list[bytes]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    out: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(out) < n and time.monotonic() < deadline:
        for batch in c.poll(timeout_ms=500).values():
            out += [m.value for m in batch]
    c.close()
    return out


def test_a_held_librdkafka_produce_is_delivered_once_a_lead_approves_through_the_api(approvals_gateway, kafka_broker) -> None:
    from confluent_kafka import Producer

    topic = "guarded.payments"
    kafka_broker.create_topic(topic, partitions=1)
    producer = Producer({"bootstrap.servers": approvals_gateway.bootstrap, "client.id": "writer", "acks": "all",
                         "message.timeout.ms": 30000, "request.timeout.ms": 25000})
    delivered: list[Any] = []
    producer.produce(topic, value=b"held-then-approved", on_delivery=lambda err, msg: delivered.append(err))
    flushing = threading.Thread(target=lambda: producer.flush(30))
    flushing.start()
    pending = approvals_gateway.api.wait_pending(lead(), topic)
    assert pending["requester"]["sub"] == "writer" and pending["operation"] == "produce"
    status, body = approvals_gateway.api.call("POST", f"/api/v1/requests/{pending['id']}/approve", lead(), {"reason": "release 42"})
    assert status == 200, body
    flushing.join(40)
    assert delivered == [None]
    assert _read_values(kafka_broker.bootstrap, topic, 1) == [b"held-then-approved"]


def test_no_approval_in_time_is_an_authorization_error_naming_the_request_and_the_cli_approves_it(approvals_gateway, kafka_broker, tmp_path) -> None:
    topic = "guarded.ledger"
    kafka_broker.create_topic(topic, partitions=1)
    started = time.monotonic()
    refused = _produce_raw(approvals_gateway.bootstrap, topic, b"too early")
    assert 7 <= time.monotonic() - started < 15  # held for the wait (8 s), not longer
    assert refused.error_code == 29  # TOPIC_AUTHORIZATION_FAILED
    assert "approval required: request apr_" in refused.error_message and "group:leads" in refused.error_message
    request_id = refused.error_message.split("request ", 1)[1].split(" ", 1)[0]
    token = tmp_path / "lead.jwt"
    token.write_text(lead())
    out = subprocess.run([sys.executable, "-m", "gatekeeper.cli", "approvals", "approve", request_id, "--reason", "one-off fix",
                          "--url", approvals_gateway.api.url, "--token-file", str(token)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # The next attempt passes on the grant, without a hold.
    started = time.monotonic()
    assert _produce_raw(approvals_gateway.bootstrap, topic, b"approved").error_code == 0
    assert time.monotonic() - started < 3
    status, grants = approvals_gateway.api.call("GET", "/api/v1/grants", lead())
    grant = next(g for g in grants["grants"] if g["approval_id"] == request_id)
    # grant_ttl 4s: once it is over the write needs an approval again.
    wait_for(lambda: time.time() > _epoch(grant["expires_at"]) + 0.2, timeout=10, what="the grant to expire")
    again = _produce_raw(approvals_gateway.bootstrap, topic, b"after the grant", client_id="writer")
    assert again.error_code == 29 and request_id not in again.error_message
    assert _read_values(kafka_broker.bootstrap, topic, 1) == [b"approved"]


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_self_approval_and_outsiders_are_refused_two_leads_are_needed_and_a_revoke_ends_the_grant_within_a_second(approvals_gateway, kafka_broker) -> None:
    api = approvals_gateway.api
    topic = "twoperson.payouts"
    kafka_broker.create_topic(topic, partitions=1)
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(_produce_raw(approvals_gateway.bootstrap, topic, b"two", "lead-client")))
    worker.start()
    pending = api.wait_pending(lead("lead-2"), topic)
    path = f"/api/v1/requests/{pending['id']}"
    # lead-1 asked (its client id's principal, in group leads): its own token may not decide.
    status, body = api.call("POST", path + "/approve", lead("lead-1"), {"reason": "mine"})
    assert status == 403 and "segregation of duties" in json.dumps(body)
    status, body = api.call("POST", path + "/approve", IDP.token(sub="mallory", groups=("apps",)), {"reason": "me too"})
    assert status == 403
    status, body = api.call("POST", path + "/approve", IDP.token(sub="lead-2", groups=("leads",), lifetime=-60), {"reason": "expired"})
    assert status == 401
    assert api.call("POST", path + "/approve", lead("lead-2"), {"reason": "first"})[0] == 200
    assert api.call("GET", path, lead("lead-2"))[1]["status"] == "pending"  # two-person rule: one more
    assert api.call("POST", path + "/approve", lead("lead-3"), {"reason": "second"})[0] == 200
    worker.join(15)
    assert results and results[0].error_code == 0
    status, grants = api.call("GET", "/api/v1/grants", lead("lead-2"))
    grant = next(g for g in grants["grants"] if g["approval_id"] == pending["id"])
    assert _produce_raw(approvals_gateway.bootstrap, topic, b"on the grant", "lead-client").error_code == 0
    assert api.call("POST", f"/api/v1/grants/{grant['id']}/revoke", lead("lead-3"), {"reason": "done"})[0] == 200
    revoked_at = time.monotonic()
    # The next write is held again (its grant is gone): it opens a new request.
    worker = threading.Thread(target=lambda: results.append(_produce_raw(approvals_gateway.bootstrap, topic, b"after revoke", "lead-client")))
    worker.start()
    again = api.wait_pending(lead("lead-2"), topic)
    assert again["id"] != pending["id"] and time.monotonic() - revoked_at < 5
    worker.join(15)
    assert results[-1].error_code == 29


def test_a_new_consumer_group_is_held_until_a_lead_approves_then_forms_and_consumes(approvals_gateway, kafka_broker) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    topic = "regulated.orders"
    kafka_broker.create_topic(topic, partitions=1)
    p = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    p.send(topic, b"r1").get(30)
    p.close()
    got: list[bytes] = []

    def consume() -> None:
        c = KafkaConsumer(topic, bootstrap_servers=approvals_gateway.bootstrap, client_id="writer", group_id="new-analytics",
                          auto_offset_reset="earliest", consumer_timeout_ms=25000)
        for m in c:
            got.append(m.value)
            break
        c.close()

    t = threading.Thread(target=consume)
    t.start()
    pending = approvals_gateway.api.wait_pending(lead(), "new-analytics")
    assert pending["operation"] == "join_group"
    status, body = approvals_gateway.api.call("POST", f"/api/v1/requests/{pending['id']}/approve", lead(), {"reason": "ok"})
    assert status == 200, body
    t.join(40)
    assert got == [b"r1"]


def test_a_new_kip848_consumer_group_is_held_until_a_lead_approves_then_consumes(approvals_gateway, kafka_broker) -> None:
    # Kafka 4's consumer protocol: the group is joined by ConsumerGroupHeartbeat, held as JoinGroup is.
    from confluent_kafka import Consumer

    topic = "regulated.kip848"
    kafka_broker.create_topic(topic, partitions=1)
    console_produce(kafka_broker.bootstrap, topic, ["k1"])
    got: list[bytes] = []

    def consume() -> None:
        c = Consumer({"bootstrap.servers": approvals_gateway.bootstrap, "group.id": "new-kip848", "client.id": "writer",
                      "group.protocol": "consumer", "auto.offset.reset": "earliest"})
        c.subscribe([topic])
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not got:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
        c.close()

    t = threading.Thread(target=consume)
    t.start()
    pending = approvals_gateway.api.wait_pending(lead(), "new-kip848")
    assert (pending["operation"], pending["resource"]["type"]) == ("join_group", "group")
    assert got == [], "nothing is consumed before the approval"
    status, body = approvals_gateway.api.call("POST", f"/api/v1/requests/{pending['id']}/approve", lead(), {"reason": "ok"})
    assert status == 200, body
    t.join(45)
    assert got == [b"k1"]


def test_a_new_share_group_is_held_until_a_lead_approves_then_consumes(approvals_gateway, kafka_broker) -> None:
    from confluent_kafka import ShareConsumer

    from tests.integration.test_share_groups import _earliest

    topic, group = "regulated.share", "newlong-share-analytics"
    kafka_broker.create_topic(topic, partitions=1)
    console_produce(kafka_broker.bootstrap, topic, ["s1"])
    _earliest(kafka_broker, group)
    got: list[bytes] = []

    def consume() -> None:
        c = ShareConsumer({"bootstrap.servers": approvals_gateway.bootstrap, "group.id": group, "client.id": "writer"})
        c.subscribe([topic])
        deadline = time.monotonic() + 40
        try:
            while time.monotonic() < deadline and not got:
                try:
                    batch = c.poll(0.5) or []
                except Exception:
                    continue  # refused while not approved yet: the share consumer raises
                got.extend(m.value() for m in batch if m.error() is None)
        finally:
            c.close()

    t = threading.Thread(target=consume)
    t.start()
    pending = approvals_gateway.api.wait_pending(lead(), group)
    assert (pending["operation"], pending["resource"]["type"]) == ("join_group", "share_group")
    assert got == []
    status, body = approvals_gateway.api.call("POST", f"/api/v1/requests/{pending['id']}/approve", lead(), {"reason": "ok"})
    assert status == 200, body
    t.join(45)
    assert got == [b"s1"]


def test_a_held_produce_completes_when_a_lead_approves_on_the_approver_page_in_chromium(approvals_gateway, kafka_broker, tmp_path) -> None:
    from harness.approver_page import approve_first_pending

    topic = "guarded.browser"
    kafka_broker.create_topic(topic, partitions=1)
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(_produce_raw(approvals_gateway.bootstrap, topic, b"via the page")))
    worker.start()
    pending = approvals_gateway.api.wait_pending(lead(), topic)
    shot = tmp_path / "approver-page.png"
    approved = approve_first_pending(approvals_gateway.approvals_url, lead(), "checked the change ticket",
                                     request_id=pending["id"], screenshot=shot)
    assert approved == pending["id"]
    worker.join(15)
    assert results and results[0].error_code == 0
    assert shot.stat().st_size > 0
    assert _read_values(kafka_broker.bootstrap, topic, 1) == [b"via the page"]


def test_pending_requests_and_grants_survive_a_restart_of_twistd_gatekeeper(approvals_gateway, kafka_broker) -> None:
    api = approvals_gateway.api
    topic = "guarded.restart"
    kafka_broker.create_topic(topic, partitions=1)
    refused = _produce_raw(approvals_gateway.bootstrap, topic, b"held")  # no approval within the wait
    assert refused.error_code == 29
    pending = api.wait_pending(lead(), topic)
    other = "longgrant.restart"
    kafka_broker.create_topic(other, partitions=1)
    worker = threading.Thread(target=_produce_raw, args=(approvals_gateway.bootstrap, other, b"granted"))
    worker.start()
    to_grant = api.wait_pending(lead(), other)
    assert api.call("POST", f"/api/v1/requests/{to_grant['id']}/approve", lead(), {"reason": "ok"})[0] == 200
    worker.join(15)
    approvals_gateway.stop()
    approvals_gateway.start()
    assert api.call("GET", f"/api/v1/requests/{pending['id']}", lead())[1]["status"] == "pending"
    status, grants = api.call("GET", "/api/v1/grants", lead())
    assert any(g["approval_id"] == to_grant["id"] for g in grants["grants"])
