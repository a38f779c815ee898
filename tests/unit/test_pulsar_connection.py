"""The Pulsar connection core (plugins/gatekeeper-pulsar) fed bytes, decisions and approval
outcomes, with no network and no reactor: approve holds the command (later ones wait behind
it, keep-alives do not) and decides it again with the grant; the audit trail gets the session,
the login and one request record per decided command, completed by the broker's answer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

import jsonschema
import pytest
from gatekeeper_pulsar import auditing
from gatekeeper_pulsar import commands as c
from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.brokers import BrokerMap
from gatekeeper_pulsar.connection import PulsarConnection
from gatekeeper_pulsar.framing import FrameDecoder, encode_frame
from gatekeeper_pulsar.payload import build_payload
from gatekeeper_pulsar.settings import ListenerSettings, PulsarSettings

from gatekeeper.api import Decision, Principal
from gatekeeper.values import HostPort

T = wire.BaseCommand
TOPIC = "persistent://public/default/orders"
BROKER = HostPort("127.0.0.1", 6650)
SCHEMA = jsonschema.Draft202012Validator(
    json.loads(resources.files("gatekeeper").joinpath("schemas/audit-record.schema.json").read_text()))
GRANT = {"id": "grt_1", "operation": "consume", "resource": {"type": "topic", "name": TOPIC},
         "expires_at": "2027-01-01T00:00:00Z"}
APPROVE = Decision("approve", "new subscriptions need a lead", approval={"approvers": ["group:leads"], "wait": "5s"})


class FakeIO:
    def __init__(self) -> None:
        self.client: list[bytes] = []
        self.upstream: list[bytes] = []
        self.decisions: list[tuple[int, list[dict[str, Any]]]] = []
        self.holds: list[tuple[int, list[dict[str, Any]], float]] = []
        self.closed = False
        self.timers: list[Any] = []

    def to_client(self, data: Sequence[bytes]) -> None:
        self.client.extend(data)

    def to_upstream(self, data: Sequence[bytes]) -> None:
        self.upstream.extend(data)

    def connect_upstream(self, target: Any) -> None:
        pass

    def decide(self, token: int, inputs: list[dict[str, Any]]) -> None:
        self.decisions.append((token, inputs))

    def hold(self, token: int, requests: list[dict[str, Any]], wait: float) -> None:
        self.holds.append((token, requests, wait))

    def close(self, abort_upstream: bool = False) -> None:
        self.closed = True

    def call_later(self, seconds: float, fn: Any) -> Any:
        timer = Timer()
        self.timers.append(timer)
        return timer

    def pause_client(self) -> None:
        pass

    def resume_client(self) -> None:
        pass

    def peer_principal(self) -> Any:
        return None

    def offload(self, work: Any, done: Any) -> None:
        done(work())


class Timer:
    def active(self) -> bool:
        return False

    def cancel(self) -> None:
        pass


class Slot:
    def __init__(self, trail: FakeTrail) -> None:
        self.trail = trail

    def record(self, kind: str, fields: dict[str, Any]) -> None:
        self.trail.records.append((kind, fields))


class FakeTrail:
    def __init__(self, available: bool = True) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.available = available
        self.error = None if available else "the sink is failing: disk full"

    def record(self, kind: str, fields: dict[str, Any]) -> bool:
        self.records.append((kind, fields))
        return True

    def reserve(self) -> Slot | None:
        return Slot(self) if self.available else None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for k, f in self.records if k == kind]


class FakeMetrics:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def inc(self, name: str, n: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        self.counts[key] = self.counts.get(key, 0) + n


class Token:
    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.expires_at = 1_800_003_600.0


class FakeIdentity:
    def validate(self, token: str, mechanism: str) -> Token:
        if token != "good":
            raise ValueError("signature does not verify")
        return Token(Principal("svc-orders", "https://idp.example", ("apps",), {"jti": "tok-1", "exp": 1_800_003_600},
                               mechanism))


def _core(*, trail: FakeTrail | None = None, max_wait: float | None = 20.0,
          grants: list[dict[str, Any]] | None = None) -> tuple[PulsarConnection, FakeIO]:
    settings = PulsarSettings(
        clock=lambda: 1_800_000_000.0, identity=FakeIdentity(), metrics=FakeMetrics(), authentication_timeout=10.0,
        inputs_decoded=lambda inputs: None, grants_for=lambda principal, now: list(grants or ()),
        upstream_token=lambda: None, approvals_max_wait=max_wait, audit=trail, policy_revision=lambda: "sha256:abc")
    listener = ListenerSettings(name="pulsar", brokers=BrokerMap.build([BROKER], "gk.example", [7001], 7000),
                                service=(BROKER,), auth_required=True)
    io = FakeIO()
    core = PulsarConnection(settings, listener, None, io)
    core.start("10.0.0.9", 40000)
    return core, io


def _frame(cmd: wire.BaseCommand, payload: bytes = b"") -> bytes:
    return encode_frame(cmd.SerializePartialToString(), payload)


def _connected(core: PulsarConnection, io: FakeIO, token: str = "good") -> None:
    connect = wire.BaseCommand(type=T.CONNECT)
    connect.connect.client_version = "test"
    connect.connect.protocol_version = 21
    connect.connect.auth_method_name = "token"
    connect.connect.auth_data = token.encode()
    core.client_data(_frame(connect))
    if core.closing:
        return
    core.upstream_connected()
    io.upstream.clear()
    ok = wire.BaseCommand(type=T.CONNECTED)
    ok.connected.server_version = "broker"
    core.upstream_data(_frame(ok))
    io.client.clear()


def _subscribe(request_id: int = 1) -> bytes:
    cmd = wire.BaseCommand(type=T.SUBSCRIBE)
    s = cmd.subscribe
    s.topic, s.subscription, s.subType, s.consumer_id, s.request_id = TOPIC, "new-readers", s.Shared, 3, request_id
    return _frame(cmd)


def _producer(request_id: int = 2, producer_id: int = 5) -> bytes:
    cmd = wire.BaseCommand(type=T.PRODUCER)
    cmd.producer.topic, cmd.producer.producer_id, cmd.producer.request_id = TOPIC, producer_id, request_id
    return _frame(cmd)


def _send(producer_id: int = 5, sequence_id: int = 0) -> bytes:
    cmd = wire.BaseCommand(type=T.SEND)
    cmd.send.producer_id, cmd.send.sequence_id, cmd.send.num_messages = producer_id, sequence_id, 1
    meta = wire.MessageMetadata(producer_name="p", sequence_id=sequence_id, publish_time=1)
    return _frame(cmd, build_payload(meta, b"order-1"))


def _simple(t: int) -> bytes:
    return _frame(wire.BaseCommand(type=t))  # type: ignore[arg-type]


def _flow() -> bytes:
    # FLOW (consumer 3, 1000 permits): fields this codec does not declare, so built by hand.
    return encode_frame(bytes([0x08, T.FLOW, 0x5A, 0x05, 0x08, 0x03, 0x10, 0xE8, 0x07]))


def _answers(data: list[bytes]) -> list[wire.BaseCommand]:
    d = FrameDecoder()
    for b in data:
        d.receive_data(b)
    out = []
    while (frame := d.next_frame()) is not None:
        out.append(c.parse_command(frame.command))
    return out


def _decide(core: PulsarConnection, io: FakeIO, decision: Decision, *rest: Decision) -> dict[str, Any]:
    """``decision`` for the command's first operation, ``rest`` for the others (allow when not
    given: the create_topic a PRODUCER or SUBSCRIBE is decided as too when the broker cannot say
    whether its topic exists)."""
    token, inputs = io.decisions[-1]
    core.decided(token, [decision, *rest, *[Decision("allow", "creating is fine")] * (len(inputs) - 1 - len(rest))])
    return inputs[0]


def _envelope(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"v": 1, "kind": kind, "instance": "gk", "chain": "gk", "seq": 0, "time": "2027-01-15T08:00:00.000000Z",
            "prev": "0" * 64, "hash": "0" * 64, **fields}


# -- approve ---------------------------------------------------------------------------------------


def test_an_approved_subscribe_is_held_with_later_commands_behind_it_then_decided_again_with_the_grant() -> None:
    granted: list[dict[str, Any]] = []
    core, io = _core(grants=granted)
    _connected(core, io)
    core.client_data(_subscribe() + _flow() + _simple(T.PING))
    first = _decide(core, io, APPROVE)
    assert first["operation"] == "consume" and first["grants"] == []
    ((token, (request,), wait),) = io.holds
    assert request["operation"] == "consume" and request["resource"].name == TOPIC
    assert request["principal"].sub == "svc-orders" and request["summary"]["group"] == "new-readers"
    assert request["approval"]["approvers"] == ["group:leads"] and wait == 5.0
    # Held: the SUBSCRIBE and the FLOW behind it wait; the keep-alive does not.
    assert [a.type for a in _answers(io.upstream)] == [T.PING]
    io.upstream.clear()
    granted.append(GRANT)
    core.held(token, [{"id": "apr_1", "status": "approved", "approvers": ["group:leads"], "by": ["lead-1"]}])
    again = io.decisions[-1][1][0]
    assert again["grants"] == [GRANT], "decided again with the grant in the input"
    assert io.upstream == []
    _decide(core, io, Decision("allow", "approved grant"))
    assert [a.type for a in _answers(io.upstream)] == [T.SUBSCRIBE, T.FLOW]
    assert io.client == []


def test_the_hold_is_capped_by_approvals_max_wait() -> None:
    core, io = _core(max_wait=2.0)
    _connected(core, io)
    core.client_data(_subscribe())
    _decide(core, io, APPROVE)
    assert io.holds[0][2] == 2.0


@pytest.mark.parametrize(("outcome", "expect"), [
    ({"id": "apr_7", "status": "pending", "message": "approval required: request apr_7 is pending, waiting for "
      "group:leads; see http://gk.example/?request=apr_7"}, "request apr_7 is pending"),
    ({"id": "apr_7", "status": "denied", "by": ["lead-1"], "reason": "not this week"}, "apr_7 was denied by lead-1: not this week"),
    ({"status": "unavailable", "reason": "an unauthenticated client cannot ask for approval"}, "no approval request could be opened"),
])
def test_not_approved_is_the_commands_authorization_error_naming_the_request(outcome: dict[str, Any], expect: str) -> None:
    core, io = _core()
    _connected(core, io)
    core.client_data(_subscribe(request_id=11) + _flow())
    _decide(core, io, APPROVE)
    core.held(io.holds[0][0], [outcome])
    (answer,) = _answers(io.client)
    assert answer.type == T.ERROR and answer.error.request_id == 11 and answer.error.error == wire.AuthorizationError
    assert expect in answer.error.message
    if outcome["status"] == "pending":
        assert "http://gk.example/?request=apr_7" in answer.error.message
    assert len(io.decisions) == 1, "not decided again without an approval"
    # The command behind it goes on (FLOW is forwarded; the broker answers it for no consumer).
    assert [a.type for a in _answers(io.upstream)] == [T.FLOW]
    assert not io.closed


def test_approved_while_the_policy_still_asks_is_a_deny_never_a_second_hold() -> None:
    core, io = _core()
    _connected(core, io)
    core.client_data(_subscribe())
    _decide(core, io, APPROVE)
    core.held(io.holds[0][0], [{"id": "apr_2", "status": "approved"}])
    _decide(core, io, APPROVE)
    assert len(io.holds) == 1
    (answer,) = _answers(io.client)
    assert answer.type == T.ERROR and "apr_2 was approved, but the policy still asks" in answer.error.message
    assert io.upstream == []


def test_approve_without_approvals_configured_is_a_deny() -> None:
    core, io = _core(max_wait=None)
    _connected(core, io)
    core.client_data(_subscribe())
    _decide(core, io, APPROVE)
    assert io.holds == []
    (answer,) = _answers(io.client)
    assert answer.type == T.ERROR and "approvals are not configured here" in answer.error.message


def test_a_late_outcome_for_a_closed_connection_does_nothing() -> None:
    core, io = _core()
    _connected(core, io)
    core.client_data(_subscribe())
    _decide(core, io, APPROVE)
    core.client_lost()
    core.held(io.holds[0][0], [{"id": "apr_3", "status": "approved"}])
    assert len(io.decisions) == 1 and io.upstream == [] and io.client == []


# -- audit -------------------------------------------------------------------------------------------


def test_a_session_is_recorded_start_login_commands_with_outcomes_end() -> None:
    trail = FakeTrail()
    core, io = _core(trail=trail)
    _connected(core, io)
    core.client_data(_subscribe(request_id=1))
    _decide(core, io, Decision("allow", "readers"))
    core.client_data(_producer(request_id=2))
    _decide(core, io, Decision("allow", "writers"))
    core.client_data(_send(producer_id=5, sequence_id=0))
    _decide(core, io, Decision("allow", "writers"))
    core.client_data(_producer(request_id=3, producer_id=6))
    _decide(core, io, Decision("deny", "not on Sundays"))
    assert trail.of("request")[-1]["operations"][0]["enforced"] == {"result": "denied", "error_code": 4}
    ok = wire.BaseCommand(type=T.SUCCESS)
    ok.success.request_id = 1
    made = wire.BaseCommand(type=T.PRODUCER_SUCCESS)
    made.producer_success.request_id, made.producer_success.producer_name = 2, "standalone-0-1"
    receipt = wire.BaseCommand(type=T.SEND_RECEIPT)
    r = receipt.send_receipt
    r.producer_id, r.sequence_id, r.message_id.ledgerId, r.message_id.entryId, r.message_id.partition = 5, 0, 17, 4, -1
    core.upstream_data(_frame(ok) + _frame(made) + _frame(receipt))
    core.client_lost()

    kinds = [k for k, _ in trail.records]
    assert kinds[:2] == ["session_start", "authentication"] and kinds[-1] == "session_end"
    for kind, fields in trail.records:
        SCHEMA.validate(_envelope(kind, fields))
    (start,) = trail.of("session_start")
    assert start["client"] == {"address": "10.0.0.9", "port": 40000} and start["listener"] == "pulsar"
    (login,) = trail.of("authentication")
    assert login["result"] == "success" and login["principal"]["sub"] == "svc-orders"
    assert login["token"]["jti"] == "tok-1" and "good" not in json.dumps(login)
    by_cmd = {(r["api"]["name"], r.get("correlation_id")): r for r in trail.of("request")}
    assert set(by_cmd) == {("SUBSCRIBE", 1), ("PRODUCER", 2), ("SEND", 0), ("PRODUCER", 3)}
    sub = by_cmd[("SUBSCRIBE", 1)]
    assert sub["operations"][0]["input"]["protocol"] == "pulsar" and sub["operations"][0]["input"]["request"]["group"] == "new-readers"
    assert sub["operations"][0]["decision"]["revision"] == "sha256:abc"
    assert sub["operations"][0]["enforced"] == {"result": "forwarded"} and sub["outcome"] == {"from": "broker"}
    assert sub["principal"]["sub"] == "svc-orders" and sub["api"] == {"key": T.SUBSCRIBE, "name": "SUBSCRIBE", "version": 21}
    assert by_cmd[("PRODUCER", 2)]["outcome"] == {"from": "broker"}
    send = by_cmd[("SEND", 0)]
    assert send["outcome"] == {"from": "broker", "message_id": {"ledger_id": 17, "entry_id": 4}}
    assert send["operations"][0]["input"]["request"]["record_count"] == 1
    assert by_cmd[("PRODUCER", 3)]["outcome"] == {"from": "gatekeeper"}
    (end,) = trail.of("session_end")
    assert end["requests"] == 5 and end["ended_by"] == "client" and end["principal"]["sub"] == "svc-orders"
    assert end["bytes"]["from_client"] > 0 and end["bytes"]["to_client"] > 0


def test_the_brokers_error_is_the_outcome_and_an_unanswered_command_ends_with_the_session() -> None:
    trail = FakeTrail()
    core, io = _core(trail=trail)
    _connected(core, io)
    core.client_data(_subscribe(request_id=1))
    _decide(core, io, Decision("allow", "readers"))
    core.client_data(_producer(request_id=2))
    _decide(core, io, Decision("allow", "writers"))
    core.upstream_data(c.error_frame(1, wire.ConsumerBusy, "Exclusive consumer is already connected"))
    assert len(trail.of("request")) == 1
    core.upstream_lost("connection reset")
    core.client_lost()
    first, second = trail.of("request")
    assert first["outcome"] == {"from": "broker", "error_code": wire.ConsumerBusy,
                                "error": "ConsumerBusy: Exclusive consumer is already connected"}
    assert second["api"]["name"] == "PRODUCER" and second["outcome"]["from"] == "none"
    assert trail.of("session_end")[0]["ended_by"] == "broker"
    for kind, fields in trail.records:
        SCHEMA.validate(_envelope(kind, fields))


def test_a_refused_token_is_a_failed_login_record_without_the_token() -> None:
    trail = FakeTrail()
    core, io = _core(trail=trail)
    _connected(core, io, token="forged-token-value")
    assert core.closing
    (login,) = trail.of("authentication")
    assert login["result"] == "failure" and login["mechanism"] == "token" and login["principal"] is None
    assert "signature does not verify" in login["reason"] and "forged-token-value" not in json.dumps(trail.records)
    core.client_lost()
    (end,) = trail.of("session_end")
    assert end["ended_by"] == "gatekeeper" and end["principal"] is None and "token refused" in end["reason"]
    for kind, fields in trail.records:
        SCHEMA.validate(_envelope(kind, fields))


def test_a_held_command_records_its_approval() -> None:
    trail = FakeTrail()
    core, io = _core(trail=trail)
    _connected(core, io)
    core.client_data(_subscribe(request_id=4))
    _decide(core, io, APPROVE)
    core.held(io.holds[0][0], [{"id": "apr_9", "status": "approved"}])
    _decide(core, io, Decision("allow", "approved grant"))
    assert trail.of("request") == [], "completed by the broker's answer"
    ok = wire.BaseCommand(type=T.SUCCESS)
    ok.success.request_id = 4
    core.upstream_data(_frame(ok))
    (record,) = trail.of("request")
    enforced = record["operations"][0]["enforced"]
    assert enforced["result"] == "forwarded" and enforced["approval"]["id"] == "apr_9" and enforced["approval"]["status"] == "approved"
    assert record["operations"][0]["decision"]["action"] == "allow"


def test_an_unavailable_trail_denies_the_command_with_the_reason() -> None:
    trail = FakeTrail(available=False)
    core, io = _core(trail=trail)
    _connected(core, io)
    core.client_data(_subscribe(request_id=8))
    _decide(core, io, Decision("allow", "readers"))
    assert io.upstream == []
    (answer,) = _answers(io.client)
    assert answer.type == T.ERROR and answer.error.error == wire.AuthorizationError
    assert "audit trail unavailable (the sink is failing: disk full)" in answer.error.message
    assert trail.of("request") == []


def test_broker_answers_are_keyed_as_the_commands_they_answer() -> None:
    lookup = wire.BaseCommand(type=T.LOOKUP)
    lookup.lookupTopic.topic, lookup.lookupTopic.request_id = TOPIC, 12
    failed = c.parse_command(c.lookup_failed_frame(12, wire.ServiceNotReady, "no")[8:])
    assert auditing.answer_key(lookup) == auditing.broker_answer(failed)[0]  # type: ignore[index]
    send_error = c.parse_command(c.send_error_frame(5, 9, wire.AuthorizationError, "no")[8:])
    send = wire.BaseCommand(type=T.SEND)
    send.send.producer_id, send.send.sequence_id = 5, 9
    key, outcome = auditing.broker_answer(send_error)  # type: ignore[misc]
    assert key == auditing.answer_key(send) and outcome["error_code"] == wire.AuthorizationError
    assert auditing.broker_answer(wire.BaseCommand(type=T.PING)) is None


# -- several operations per command, the topic probe, listings (with approvals and audit) ------------


def _connected_probing(core: PulsarConnection, io: FakeIO) -> None:
    """As _connected, to a broker that announces the probe (PARTITIONED_METADATA without creating)."""
    connect = wire.BaseCommand(type=T.CONNECT)
    connect.connect.client_version, connect.connect.protocol_version = "test", 21
    connect.connect.auth_method_name, connect.connect.auth_data = "token", b"good"
    core.client_data(_frame(connect))
    core.upstream_connected()
    io.upstream.clear()
    ok = wire.BaseCommand(type=T.CONNECTED)
    ok.connected.server_version = "broker"
    ok.connected.feature_flags.supports_get_partitioned_metadata_without_auto_creation = True
    core.upstream_data(_frame(ok))
    io.client.clear()


def _probe_answer(io: FakeIO, exists: bool) -> bytes:
    (probe,) = [a for a in _answers(io.upstream) if a.type == T.PARTITIONED_METADATA]
    assert probe.partitionMetadata.request_id >= 1 << 63 and not probe.partitionMetadata.metadata_auto_creation_enabled
    io.upstream.clear()
    answer = wire.BaseCommand(type=T.PARTITIONED_METADATA_RESPONSE)
    r = answer.partitionMetadataResponse
    r.request_id = probe.partitionMetadata.request_id
    if exists:
        r.response, r.partitions = r.Success, 0
    else:
        r.response, r.error, r.message = r.Failed, wire.TopicNotFound, "no such topic"
    return _frame(answer)


def test_a_producer_on_a_missing_topic_is_probed_then_held_for_create_topic_and_recorded_with_both() -> None:
    trail, granted = FakeTrail(), list[dict[str, Any]]()
    core, io = _core(trail=trail, grants=granted)
    _connected_probing(core, io)
    core.client_data(_producer(request_id=2) + _simple(T.PING))
    # Waiting for its probe: not decided, nothing recorded, the keep-alive goes on.
    assert io.decisions == [] and trail.of("request") == []
    assert sorted(a.type for a in _answers(io.upstream)) == sorted([T.PARTITIONED_METADATA, T.PING])
    io.upstream = [b for b in io.upstream if _answers([b])[0].type == T.PARTITIONED_METADATA]
    core.upstream_data(_probe_answer(io, exists=False))
    assert io.client == [], "the probe's answer is Gatekeeper's"
    token, inputs = io.decisions[-1]
    assert [(i["operation"], i["request"].get("auto")) for i in inputs] == [("produce", None), ("create_topic", True)]
    core.decided(token, [Decision("allow", "writers"), APPROVE])
    ((hold_token, (request,), _),) = io.holds
    assert request["operation"] == "create_topic" and request["resource"].name == TOPIC
    assert io.upstream == []
    granted.append({**GRANT, "operation": "create_topic"})
    core.held(hold_token, [{"id": "apr_5", "status": "approved"}])
    # Probed again after the wait (the topic may have come or gone), then decided with the grant.
    assert len(io.decisions) == 1
    core.upstream_data(_probe_answer(io, exists=False))
    token, inputs = io.decisions[-1]
    assert len(inputs) == 2 and inputs[1]["grants"] == granted
    core.decided(token, [Decision("allow", "writers"), Decision("allow", "approved grant")])
    assert [a.type for a in _answers(io.upstream)] == [T.PRODUCER]
    made = wire.BaseCommand(type=T.PRODUCER_SUCCESS)
    made.producer_success.request_id, made.producer_success.producer_name = 2, "p"
    core.upstream_data(_frame(made))
    (record,) = trail.of("request")
    SCHEMA.validate(_envelope("request", record))
    produce, create = record["operations"]
    assert produce["input"]["operation"] == "produce" and produce["enforced"] == {"result": "forwarded"}
    assert create["input"]["operation"] == "create_topic" and create["enforced"]["result"] == "forwarded"
    assert create["enforced"]["approval"]["id"] == "apr_5" and record["outcome"] == {"from": "broker"}


def test_an_existing_topic_is_decided_without_create_topic_and_any_refused_operation_refuses_the_command() -> None:
    trail = FakeTrail()
    core, io = _core(trail=trail)
    _connected_probing(core, io)
    core.client_data(_subscribe(request_id=7))
    core.upstream_data(_probe_answer(io, exists=True))
    token, inputs = io.decisions[-1]
    assert [i["operation"] for i in inputs] == ["consume"]
    core.decided(token, [Decision("allow", "readers")])
    assert [a.type for a in _answers(io.upstream)] == [T.SUBSCRIBE]
    io.upstream.clear()
    core.client_data(_producer(request_id=8))
    core.upstream_data(_probe_answer(io, exists=False))
    token, inputs = io.decisions[-1]
    core.decided(token, [Decision("allow", "writers"), Decision("deny", "no new topics")])
    (answer,) = _answers(io.client)
    assert answer.type == T.ERROR and answer.error.request_id == 8
    assert f"{TOPIC} does not exist and creating it is not allowed: no new topics" in answer.error.message
    assert io.upstream == []
    record = [r for r in trail.of("request") if r["api"]["name"] == "PRODUCER"][0]
    SCHEMA.validate(_envelope("request", record))
    assert [o["decision"]["action"] for o in record["operations"]] == ["allow", "deny"]
    assert all(o["enforced"] == {"result": "denied", "error_code": 4} for o in record["operations"])
    assert record["outcome"] == {"from": "gatekeeper"}


def test_a_listing_from_the_broker_is_filtered_while_a_command_is_held() -> None:
    core, io = _core()
    _connected_probing(core, io)
    core.client_data(_subscribe(request_id=1))
    core.upstream_data(_probe_answer(io, exists=True))
    _decide(core, io, APPROVE)
    assert len(io.holds) == 1
    listed = wire.BaseCommand(type=T.GET_TOPICS_OF_NAMESPACE_RESPONSE)
    listed.getTopicsOfNamespaceResponse.request_id = 4
    listed.getTopicsOfNamespaceResponse.topics.extend([TOPIC, TOPIC + "-secret"])
    core.upstream_data(_frame(listed))
    token, inputs = io.decisions[-1]
    assert [(i["operation"], i["request"]) for i in inputs] == [("describe_topic", {"listing": True})] * 2
    core.decided(token, [Decision("allow", "ok"), Decision("deny", "secret")])
    (answer,) = _answers(io.client)
    assert list(answer.getTopicsOfNamespaceResponse.topics) == [TOPIC]
    assert not core.drain(), "a held command is not drained"


def test_a_client_request_id_in_gatekeepers_probe_range_closes_the_connection() -> None:
    """The probe's ids are 2^63 + n: a client's PARTITIONED_METADATA with such an id, answered
    while a probe waits, would be taken for the probe's answer (a missing topic for one that
    exists, and create_topic never decided). Such an id is refused before anything is forwarded."""
    core, io = _core()
    _connected_probing(core, io)
    ask = wire.BaseCommand(type=T.PARTITIONED_METADATA)
    ask.partitionMetadata.topic, ask.partitionMetadata.request_id = TOPIC, (1 << 63) + 1
    core.client_data(_frame(ask))
    assert core.closing and io.upstream == []
    # An ordinary id is served as before.
    core, io = _core()
    _connected_probing(core, io)
    ask.partitionMetadata.request_id = 7
    core.client_data(_frame(ask))
    assert not core.closing
    (probe,) = _answers(io.upstream)  # Gatekeeper's probe first, then the decision
    assert probe.type == T.PARTITIONED_METADATA and probe.partitionMetadata.request_id > 1 << 63
