"""Approve and audit on the Pulsar listener: real Pulsar standalone, real ``twistd gatekeeper``
with approvals and an audit trail, Pulsar's C++ client, the approvals API and the audit CLI.

The policy asks a lead's approval for a new subscription (``new-*``) and allows it on the grant
an approval makes; ``quick-*`` subscriptions wait only a second; producing to ``*sealed*``
topics is denied; everything else is allowed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gatekeeper.audit import iter_records
from harness.ports import LOOPBACK, free_port
from harness.waiting import wait_for
from tests.integration.test_approvals_kafka import Api
from tests.integration.test_pulsar import IDP, PulsarGateway, _connect, _raw_session

pulsar = pytest.importorskip("pulsar")

from gatekeeper_pulsar import wire_pb2 as wire  # noqa: E402

pytestmark = pytest.mark.integration

SCHEMA = jsonschema.Draft202012Validator(
    json.loads(resources.files("gatekeeper").joinpath("schemas/audit-record.schema.json").read_text()))

POLICY = """
package gatekeeper

import rego.v1

default decision := {"action": "allow", "reason": "open", "ttl": "0ms"}

_granted if {
    some grant in input.grants
    grant.operation == input.operation
    grant.resource == input.resource
    time.parse_rfc3339_ns(grant.expires_at) > time.parse_rfc3339_ns(input.time)
}

decision := {"action": "allow", "reason": "approved grant", "ttl": "0ms"} if {
    _granted
} else := {"action": "approve", "reason": "new subscriptions need a lead's approval", "ttl": "0ms",
           "approval": {"approvers": ["group:leads"], "grant_ttl": "10m", "wait": "8s"}} if {
    input.operation == "consume"
    startswith(input.request.group, "new-")
} else := {"action": "approve", "reason": "a quick one", "ttl": "0ms",
           "approval": {"approvers": ["group:leads"], "grant_ttl": "10m", "wait": "1s"}} if {
    input.operation == "consume"
    startswith(input.request.group, "quick-")
} else := {"action": "deny", "reason": "sealed topics take no writes"} if {
    input.operation == "produce"
    contains(input.resource.name, "sealed")
}
"""

# The candidate for what-if: the same, but nothing may be produced to audited-* topics.
CANDIDATE = POLICY + """
decision := {"action": "deny", "reason": "audited topics are frozen"} if {
    input.operation == "produce"
    contains(input.resource.name, "audited-")
    not contains(input.resource.name, "sealed")
}
"""


@pytest.fixture(scope="module")
def gateway(pulsar_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    work = tmp_path_factory.mktemp("pulsar-approve-audit")
    key = work / "audit.key"
    key.write_bytes(b"pulsar-audit-test-key-0123456789")
    key.chmod(0o600)
    port = free_port()
    extra = {
        "approvals": {"store": str(work / "approvals.db"), "bind": f"{LOOPBACK}:{port}", "max_wait": "8s",
                      "page_url": f"http://{LOOPBACK}:{port}/"},
        "audit": {"directory": str(work / "trail"), "hmac_key_file": str(key), "instance": "gk-pulsar",
                  "checkpoint_interval": "1s"},
    }
    with PulsarGateway(work, pulsar_broker, policy=POLICY, extra=extra) as gw:
        gw.api = Api(f"http://{LOOPBACK}:{port}")  # type: ignore[attr-defined]
        gw.page_url = f"http://{LOOPBACK}:{port}/"  # type: ignore[attr-defined]
        gw.trail = work / "trail"  # type: ignore[attr-defined]
        gw.key = key  # type: ignore[attr-defined]
        gw.work = work  # type: ignore[attr-defined]
        yield gw


def _client(gw: PulsarGateway, sub: str, timeout: int = 30) -> Any:
    token = IDP.token(sub=sub, groups=("apps",), lifetime=600)
    return pulsar.Client(gw.service_url, authentication=pulsar.AuthenticationToken(token),
                         operation_timeout_seconds=timeout, connection_timeout_ms=5000)


def _lead() -> str:
    return IDP.token(sub="lead-1", groups=("leads",), lifetime=600)


def _topic(prefix: str = "orders") -> str:
    return f"persistent://public/default/{prefix}-{uuid.uuid4().hex[:8]}"


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except Exception as e:  # handed to the test
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatekeeper.cli", *args], capture_output=True, text=True, timeout=120)


def test_a_new_subscription_is_held_until_a_lead_approves_then_served(gateway: Any) -> None:
    topic = _topic()
    reader, other = _client(gateway, "svc-reader"), _client(gateway, "svc-other")
    try:
        holding, result = _in_thread(lambda: reader.subscribe(topic, "new-readers",
                                                              initial_position=pulsar.InitialPosition.Earliest))
        pending = gateway.api.wait_pending(_lead(), topic)
        assert pending["requester"]["sub"] == "svc-reader" and pending["operation"] == "consume"
        assert pending["summary"]["group"] == "new-readers"
        # Another connection is not held: it produces while the subscription still waits.
        producer = other.create_producer(topic)
        producer.send(b"while-held")
        assert holding.is_alive() and "value" not in result, "the SUBSCRIBE was answered before any approval"
        status, body = gateway.api.call("POST", f"/api/v1/requests/{pending['id']}/approve", _lead(), {"reason": "ok"})
        assert status == 200, body
        holding.join(30)
        assert "error" not in result, result
        consumer = result["value"]
        msg = consumer.receive(timeout_millis=10000)
        assert msg.data() == b"while-held"
        consumer.acknowledge(msg)
        status, grants = gateway.api.call("GET", "/api/v1/grants?live=true", _lead())
        assert any(g["resource"]["name"] == topic and g["operation"] == "consume" for g in grants["grants"])
    finally:
        reader.close()
        other.close()


def test_a_denied_subscription_is_the_consumers_authorization_error(gateway: Any) -> None:
    topic = _topic()
    reader = _client(gateway, "svc-reader")
    try:
        holding, result = _in_thread(lambda: reader.subscribe(topic, "new-denied"))
        pending = gateway.api.wait_pending(_lead(), topic)
        status, body = gateway.api.call("POST", f"/api/v1/requests/{pending['id']}/deny", _lead(), {"reason": "not this one"})
        assert status == 200, body
        holding.join(30)
        assert isinstance(result.get("error"), pulsar.AuthorizationError), result
        log = gateway.log_path.read_text()
        assert f"approval request {pending['id']} was denied by lead-1: not this one" in log
    finally:
        reader.close()


def test_no_approval_in_time_is_an_error_naming_the_request_and_the_page(gateway: Any) -> None:
    """The ERROR the broker would send, read raw: its message names the approval request and
    the approver page's link to it."""
    token = IDP.token(sub="svc-reader", groups=("apps",), lifetime=600).encode()
    topic = _topic()
    subscribe = wire.BaseCommand(type=wire.BaseCommand.SUBSCRIBE)
    s = subscribe.subscribe
    s.topic, s.subscription, s.subType, s.consumer_id, s.request_id = topic, "quick-readers", s.Exclusive, 1, 21
    answers = _raw_session(gateway.service_port, _connect("token", token), [subscribe], timeout=20)
    assert answers[0].type == wire.BaseCommand.CONNECTED
    error = answers[1].error
    assert answers[1].type == wire.BaseCommand.ERROR and error.request_id == 21 and error.error == wire.AuthorizationError
    (pending,) = gateway.api.pending(_lead(), topic)
    assert f"request {pending['id']} is pending" in error.message
    assert f"{gateway.page_url}?request={pending['id']}" in error.message


def test_a_pulsar_session_is_in_the_trail_and_verify_search_replay_and_what_if_read_it(gateway: Any) -> None:
    topic, sealed = _topic("audited"), _topic("audited-sealed")
    client = _client(gateway, "svc-auditee")
    try:
        consumer = client.subscribe(topic, "auditors", initial_position=pulsar.InitialPosition.Earliest)
        producer = client.create_producer(topic, batching_enabled=False)
        ids = [producer.send(f"order-{i}".encode()) for i in range(3)]
        with pytest.raises(pulsar.AuthorizationError):
            client.create_producer(sealed)
        for _ in range(3):
            consumer.acknowledge(consumer.receive(timeout_millis=10000))
    finally:
        client.close()
    trail = gateway.trail

    def requests() -> list[dict[str, Any]]:
        return [r for r in iter_records(trail) if r["kind"] == "request"
                and r["operations"][0]["input"]["resource"]["name"] in (topic, sealed)]

    def sessions_ended() -> bool:
        # Every connection's end, not the first: the client closes both at once and the two
        # session_end records reach the trail in either order, some milliseconds apart.
        sessions = {r["session"] for r in requests()}
        ended = {r["session"] for r in iter_records(trail) if r["kind"] == "session_end"}
        return bool(sessions) and sessions <= ended

    wait_for(sessions_ended, timeout=30, what="the Pulsar sessions' ends in the trail")
    records = list(iter_records(trail))
    for r in records:
        SCHEMA.validate(r)
    ours = requests()
    # The client's connections (the service port for lookups, a broker port for the producer and
    # consumer): each a session with its start, its login and its end.
    sessions = {r["session"] for r in ours}
    mine = [r for r in records if r.get("session") in sessions]
    for session in sessions:
        kinds = [r["kind"] for r in mine if r["session"] == session]
        assert kinds[0] == "session_start" and kinds[1] == "authentication" and kinds[-1] == "session_end", kinds
    logins = [r for r in mine if r["kind"] == "authentication"]
    assert all(r["result"] == "success" and r["principal"]["sub"] == "svc-auditee" and r["mechanism"] == "token"
               and r["token"]["exp"] is not None for r in logins)
    assert "eyJ" not in json.dumps(mine), "a token went into the trail"
    by_api: dict[str, list[dict[str, Any]]] = {}
    for r in ours:
        assert r["operations"][0]["input"]["protocol"] == "pulsar" and r["principal"]["sub"] == "svc-auditee"
        by_api.setdefault(r["api"]["name"], []).append(r)
    (subscribed,) = by_api["SUBSCRIBE"]
    assert subscribed["operations"][0]["enforced"] == {"result": "forwarded"} and subscribed["outcome"] == {"from": "broker"}
    assert subscribed["operations"][0]["input"]["request"]["group"] == "auditors"
    produced = [r for r in by_api["PRODUCER"] if r["operations"][0]["input"]["resource"]["name"] == topic]
    refused = [r for r in by_api["PRODUCER"] if r["operations"][0]["input"]["resource"]["name"] == sealed]
    assert produced and all(r["outcome"] == {"from": "broker"} for r in produced)
    assert refused and refused[0]["operations"][0]["enforced"] == {"result": "denied", "error_code": wire.AuthorizationError}
    assert refused[0]["operations"][0]["decision"]["reason"] == "sealed topics take no writes"
    # One record per SEND, each with the message id the broker stored it under.
    sends = by_api["SEND"]
    assert len(sends) == 3
    stored = sorted((r["outcome"]["message_id"]["ledger_id"], r["outcome"]["message_id"]["entry_id"]) for r in sends)
    assert stored == sorted((m.ledger_id(), m.entry_id()) for m in ids)
    assert all(r["operations"][0]["decision"]["revision"].startswith("sha256:") for r in ours)

    verified = _cli("audit", "verify", str(trail), "--key-file", str(gateway.key))
    assert verified.returncode == 0 and verified.stdout.splitlines()[-1].startswith("ok"), verified.stdout + verified.stderr
    found = _cli("audit", "search", str(trail), "--topic", topic, "--json")
    assert found.returncode == 0, found.stderr
    lines = [json.loads(line) for line in found.stdout.splitlines() if line.strip()]
    assert {r["api"]["name"] for r in lines} >= {"SUBSCRIBE", "PRODUCER", "SEND"}
    assert {r["session"] for r in lines} <= sessions
    denied = _cli("audit", "search", str(trail), "--principal", "svc-auditee", "--action", "deny", "--json")
    assert [json.loads(line)["operations"][0]["input"]["resource"]["name"] for line in denied.stdout.splitlines()] == [sealed]
    replay = _cli("audit", "replay", sends[0]["session"], str(trail))
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "SEND" in replay.stdout and "message id" in replay.stdout and "authenticated svc-auditee" in replay.stdout

    candidate = Path(gateway.work) / "candidate"
    candidate.mkdir(exist_ok=True)
    (candidate / "pulsar.rego").write_text(CANDIDATE)
    # This session's decisions (the trail also holds the other tests' approvals: a command denied
    # for want of one is recorded with the deny that answered it).
    since = min(r["time"] for r in mine)
    same = _cli("policy", "what-if", "--policies", str(Path(gateway.work) / "policies"), "--audit", str(trail),
                "--since", since, "--json")
    assert same.returncode == 0, same.stdout + same.stderr
    changed = _cli("policy", "what-if", "--policies", str(candidate), "--audit", str(trail), "--since", since, "--json")
    assert changed.returncode == 1, changed.stdout + changed.stderr
    changes = {(c["before"], c["after"], c["operation"], c["resource"], c["count"]) for c in json.loads(changed.stdout)["changes"]}
    assert ("allow", "deny", "produce", f"topic {topic}", len(produced) + len(sends)) in changes
    assert all(c[3] != f"topic {sealed}" for c in changes)
