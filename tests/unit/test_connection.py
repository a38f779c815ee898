"""The Kafka connection core, driven directly: bytes and decisions in, recorded actions out.

No transports, no reactor: a recording ConnectionIO stands for the shell, decisions are handed
in by the test when the core asks for them, and timers run on a task.Clock.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import pytest
from twisted.internet import task

from gatekeeper.api import ANONYMOUS, AdapterServices, Decision
from gatekeeper.kafka.adapter import KafkaAdapter
from gatekeeper.kafka.codec import API_TABLE
from gatekeeper.masking import Masking
from gatekeeper.metrics import gateway_metrics
from gatekeeper.testing.connection import RecordingIO
from gatekeeper.testing.fakes import fake_config
from gatekeeper.values import HostPort
from tests.unit.samples import TOPIC_ID, req
from tests.unit.test_client_protocol import framed, response

ALLOW = Decision("allow")
DENY = Decision("deny", reason="not yours")
P = API_TABLE[0].request
BOOTSTRAP = HostPort("127.0.0.1", 19092)


def decode_response(api_key: int, version: int, frame: bytes) -> Any:
    spec = API_TABLE[api_key]
    return spec.response.decode(frame[4 + (1 if spec.response_header_version(version) else 0):], version=version)


def produce(cid: int, *topics: str, acks: int = -1, version: int = 9) -> bytes:
    data = [P.TopicProduceData(name=t, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=None)])
            for t in topics]
    return framed(req(0, version, transactional_id=None, acks=acks, timeout_ms=1000, topic_data=data), version, cid)


def produce_response(cid: int, *topics: str, version: int = 9) -> bytes:
    R = API_TABLE[0].response
    return response(0, version, cid, throttle_time_ms=0, responses=[
        R.TopicProduceResponse(name=t, partition_responses=[R.TopicProduceResponse.PartitionProduceResponse(index=0, error_code=0, base_offset=7)])
        for t in topics])


def make(credentials: Any = None, *, trail: Any = None, **config: Any) -> tuple[Any, RecordingIO, Any]:
    """A connection core on a recording shell; ``trail``: the audit trail it records to."""
    clock = task.Clock()
    clock.advance(time.time())
    cfg = fake_config(**config)
    services = AdapterServices(
        config=cfg, metrics=gateway_metrics(), clock=clock.seconds, identity=None,
        upstream_credentials=lambda: credentials, principal_for_client_id=lambda cid: ANONYMOUS,
        next_bootstrap=lambda: BOOTSTRAP, inputs_decoded=lambda inputs: None,
        masking=Masking(cfg.masking), audit=trail,
    )
    adapter = KafkaAdapter(services)
    io = RecordingIO(clock)
    core = adapter.connection(cfg.listeners[0], None, io)
    core.start("127.0.0.1", 50000)
    return core, io, adapter


def ready(credentials: Any = None, *, trail: Any = None, **config: Any) -> tuple[Any, RecordingIO, Any]:
    core, io, adapter = make(credentials, trail=trail, **config)
    assert io.targets == [BOOTSTRAP]
    core.upstream_connected()
    return core, io, adapter


def answer(core: Any, io: RecordingIO, *decisions: Decision) -> None:
    token, inputs = io.asked.pop(0)
    assert len(inputs) == len(decisions), [i["operation"] for i in inputs]
    core.decided(token, list(decisions))


def test_allowed_request_goes_as_its_bytes_and_the_answer_is_cut_through() -> None:
    core, io, _ = ready()
    wire = produce(1, "orders")
    core.client_data(wire)
    assert io.upstream == []  # nothing goes before the decision
    answer(core, io, ALLOW)
    assert io.upstream == [wire]
    reply = produce_response(1, "orders")
    core.upstream_data(reply[:10])
    assert io.client == [reply[:10]]  # streamed as it arrives, not reassembled
    core.upstream_data(reply[10:])
    assert b"".join(io.client) == reply


def test_denied_request_is_answered_locally_with_the_apis_own_error() -> None:
    core, io, adapter = ready()
    core.client_data(produce(3, "payments"))
    answer(core, io, DENY)
    assert io.upstream == []
    (out,) = io.client_frames()
    body = decode_response(0, 9, out)
    p = body.responses[0].partition_responses[0]
    assert (body.responses[0].name, p.error_code, p.error_message) == ("payments", 29, "not yours")
    assert adapter.settings.metrics.get("gatekeeper_decisions_total", action="deny", operation="produce") == 1


def test_partial_deny_forwards_the_allowed_topic_and_merges_the_denied_ones_error() -> None:
    core, io, _ = ready()
    core.client_data(produce(4, "orders", "payments"))
    answer(core, io, ALLOW, DENY)
    (sent,) = io.upstream_frames()
    forwarded = API_TABLE[0].request.decode(sent[sent.index(b"unit") + 4 + 1:], version=9)  # after client id and tagged/none
    assert [t.name for t in forwarded.topic_data] == ["orders"]
    core.upstream_data(produce_response(4, "orders"))
    body = decode_response(0, 9, io.client_frames()[0])
    got = {t.name: t.partition_responses[0].error_code for t in body.responses}
    assert got == {"orders": 0, "payments": 29}


def test_acks0_denied_produce_is_dropped_and_the_connection_closed() -> None:
    core, io, _ = ready()
    core.client_data(produce(5, "payments", acks=0))
    answer(core, io, DENY)
    assert io.upstream == [] and io.client == [] and io.closed == [False]


def test_all_topics_listing_keeps_only_what_the_principal_may_describe() -> None:
    core, io, _ = ready()
    M = API_TABLE[3]
    core.client_data(framed(req(3, 12, topics=None, allow_auto_topic_creation=False), 12, 6))
    answer(core, io, ALLOW)  # list_topics
    R = M.response
    core.upstream_data(response(3, 12, 6, throttle_time_ms=0, brokers=[R.MetadataResponseBroker(node_id=1, host="b1", port=9092, rack=None)],
                                cluster_id="c", controller_id=1, topics=[
                                    R.MetadataResponseTopic(error_code=0, name=n, topic_id=TOPIC_ID, is_internal=False, partitions=[])
                                    for n in ("orders", "secret")]))
    token, inputs = io.asked.pop(0)
    assert [(i["operation"], i["resource"]["name"]) for i in inputs] == [("describe_topic", "orders"), ("describe_topic", "secret")]
    assert io.client == []  # held until the listing is decided
    core.decided(token, [ALLOW, DENY])
    body = decode_response(3, 12, io.client_frames()[0])
    assert [t.name for t in body.topics] == ["orders"]
    assert (body.brokers[0].host, body.brokers[0].port) == ("gk.example", 9193)  # addresses rewritten


def test_pipelined_requests_keep_order_when_decisions_come_back_out_of_order() -> None:
    core, io, _ = ready()
    core.client_data(produce(1, "orders") + produce(2, "payments") + produce(3, "orders"))
    (t1, _), (t2, _), (t3, _) = io.asked
    core.decided(t3, [ALLOW])
    core.decided(t2, [DENY])
    assert io.upstream == [] and io.client == []  # request 1 is still undecided: nothing moves
    core.decided(t1, [ALLOW])
    assert [struct.unpack_from(">i", f, 4)[0] for f in io.upstream_frames()] == [1, 3]
    assert io.client == []  # the local denial of 2 waits behind the broker's answer to 1
    core.upstream_data(produce_response(1, "orders") + produce_response(3, "orders"))
    assert [struct.unpack_from(">i", f)[0] for f in io.client_frames()] == [1, 2, 3]


def test_a_request_naming_an_unknown_topic_id_waits_for_a_metadata_probe() -> None:
    core, io, adapter = ready()
    data = [P.TopicProduceData(topic_id=TOPIC_ID, partition_data=[])]
    wire = framed(req(0, 13, transactional_id=None, acks=-1, timeout_ms=1000, topic_data=data), 13, 8)
    core.client_data(wire)
    assert io.asked == []
    (probe,) = io.upstream_frames()
    assert struct.unpack_from(">h", probe)[0] == 3
    probe_cid = struct.unpack_from(">i", probe, 4)[0]
    R = API_TABLE[3].response
    core.upstream_data(response(3, 12, probe_cid, throttle_time_ms=0, brokers=[], cluster_id="c", controller_id=1,
                                topics=[R.MetadataResponseTopic(error_code=0, name="orders", topic_id=TOPIC_ID, is_internal=False, partitions=[])]))
    assert io.client == []  # the probe's answer is Gatekeeper's own
    token, inputs = io.asked.pop(0)
    assert inputs[0]["resource"]["name"] == "orders"
    assert adapter.cluster.topic_name(TOPIC_ID) == "orders"


def test_engine_failure_closes_fail_closed() -> None:
    core, io, _ = ready()
    core.client_data(produce(1, "orders"))
    token, _ = io.asked.pop(0)
    core.decision_failed(token, "boom")
    assert io.closed and io.upstream == []


def test_held_credentials_authenticate_to_the_broker_before_any_client_request_goes() -> None:
    core, io, _ = make(credentials=("PLAIN", "gatekeeper", "s3cret"))
    core.client_data(produce(1, "orders"))
    answer(core, io, ALLOW)
    core.upstream_connected()
    (handshake,) = io.upstream_frames()
    assert struct.unpack_from(">h", handshake)[0] == 17  # SaslHandshake first, the produce waits
    hs_cid = struct.unpack_from(">i", handshake, 4)[0]
    core.upstream_data(response(17, 1, hs_cid, error_code=0, mechanisms=["PLAIN"]))
    auth = io.upstream_frames()[1]
    assert struct.unpack_from(">h", auth)[0] == 36 and b"s3cret" in auth
    core.upstream_data(response(36, 2, struct.unpack_from(">i", auth, 4)[0], error_code=0, error_message=None,
                                auth_bytes=b"", session_lifetime_ms=0))
    assert struct.unpack_from(">h", io.upstream_frames()[2])[0] == 0  # now the produce


def test_refused_held_credentials_close_the_client_with_the_reason() -> None:
    core, io, adapter = make(credentials=("PLAIN", "gatekeeper", "wrong"))
    core.upstream_connected()
    hs_cid = struct.unpack_from(">i", io.upstream_frames()[0], 4)[0]
    core.upstream_data(response(17, 1, hs_cid, error_code=33, mechanisms=["SCRAM-SHA-512"]))
    assert io.closed == [True]
    assert adapter.settings.metrics.get("gatekeeper_upstream_errors_total", kind="connect") == 1


@pytest.fixture()
def idp(tmp_path: Any) -> Any:
    from harness.tokens import AUDIENCE, ISSUER, TestIdp

    idp = TestIdp()
    jwks = idp.write_jwks(tmp_path / "jwks.json")
    return idp, {"identity": {"jwt": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(jwks)}},
                 "listeners": [{"name": "sasl", "bind": "127.0.0.1:9192", "advertised_host": "gk.example",
                                "broker_ports": "9193-9195", "authentication": {"mechanisms": ["OAUTHBEARER", "PLAIN"]}}]}


def _sasl_core(config: dict[str, Any]) -> tuple[Any, RecordingIO, Any]:
    from gatekeeper.identity.service import IdentityService
    from gatekeeper.testing.fakes import fake_config as fc

    clock = task.Clock()
    clock.advance(time.time())
    cfg = fc(**config)
    assert cfg.identity.jwt is not None
    services = AdapterServices(
        config=cfg, metrics=gateway_metrics(), clock=clock.seconds, identity=IdentityService(cfg.identity.jwt, clock),
        upstream_credentials=lambda: None, principal_for_client_id=lambda cid: ANONYMOUS,
        next_bootstrap=lambda: BOOTSTRAP, inputs_decoded=lambda inputs: None,
        masking=Masking(cfg.masking),
    )
    adapter = KafkaAdapter(services)
    io = RecordingIO(clock)
    core = adapter.connection(cfg.listeners[0], None, io)
    core.start("127.0.0.1", 50000)
    core.upstream_connected()
    return core, io, adapter


def _plain(token: str) -> bytes:
    return b"\0ignored\0" + token.encode()


def test_sasl_at_the_listener_makes_the_principal_of_every_input(idp) -> None:
    issuer, config = idp
    core, io, _ = _sasl_core(config)
    core.client_data(framed(req(17, 1, mechanism="PLAIN"), 1, 1))
    core.client_data(framed(req(36, 2, auth_bytes=_plain(issuer.token(sub="svc-a"))), 2, 2))
    codes = [decode_response(k, v, f).error_code for (k, v), f in zip([(17, 1), (36, 2)], io.client_frames(), strict=True)]
    assert codes == [0, 0] and io.upstream == []  # answered by Gatekeeper, never forwarded
    core.client_data(produce(3, "orders"))
    _, inputs = io.asked[0]
    assert inputs[0]["principal"]["sub"] == "svc-a" and inputs[0]["principal"]["mechanism"] == "PLAIN"


def test_a_bad_token_is_refused_after_a_delay_and_the_connection_closed(idp) -> None:
    _, config = idp
    core, io, adapter = _sasl_core(config)
    core.client_data(framed(req(17, 1, mechanism="PLAIN"), 1, 1))
    core.client_data(framed(req(36, 2, auth_bytes=_plain("not-a-jwt")), 2, 2))
    assert io.paused and len(io.client_frames()) == 1 and not io.closed
    io.clock.advance(5)
    assert decode_response(36, 2, io.client_frames()[1]).error_code == 58
    assert io.closed
    assert adapter.settings.metrics.get("gatekeeper_authentications_total", result="refused") == 1


def test_a_request_before_authentication_closes_the_connection(idp) -> None:
    _, config = idp
    config["listeners"][0]["authentication"]["required"] = True
    core, io, _ = _sasl_core(config)
    core.client_data(produce(1, "orders"))
    assert io.closed and io.upstream == [] and io.asked == []


def test_a_probe_asks_for_the_ids_only_and_an_id_the_broker_does_not_know_is_not_asked_again() -> None:
    import uuid

    core, io, _ = ready()
    made_up = uuid.UUID(int=12345)
    data = [P.TopicProduceData(topic_id=made_up, partition_data=[])]
    core.client_data(framed(req(0, 13, transactional_id=None, acks=-1, timeout_ms=1000, topic_data=data), 13, 1))
    (probe,) = io.upstream_frames()
    body = API_TABLE[3].request.decode(probe[probe.index(b"gatekeeper") + len(b"gatekeeper") + 1:], version=12)
    assert [(t.name, t.topic_id) for t in body.topics] == [(None, made_up)]  # by id, not all topics
    R = API_TABLE[3].response
    core.upstream_data(response(3, 12, struct.unpack_from(">i", probe, 4)[0], throttle_time_ms=0, brokers=[], cluster_id="c",
                                controller_id=1, topics=[R.MetadataResponseTopic(error_code=100, name=None, topic_id=made_up,
                                                                                 is_internal=False, partitions=[])]))
    token, inputs = io.asked.pop(0)
    assert inputs[0]["resource"]["name"] == f"unknown-topic-id:{made_up}"
    core.client_data(framed(req(0, 13, transactional_id=None, acks=-1, timeout_ms=1000, topic_data=data), 13, 2))
    assert len(io.upstream_frames()) == 1 and len(io.asked) == 1  # decided at once, no second probe
    io.clock.advance(11)
    core.client_data(framed(req(0, 13, transactional_id=None, acks=-1, timeout_ms=1000, topic_data=data), 13, 3))
    assert len(io.upstream_frames()) == 2  # asked again once the negative answer is old


def test_before_login_no_broker_connection_small_frames_only_and_a_deadline(idp) -> None:
    from gatekeeper.identity.service import IdentityService

    issuer, config = idp
    config["listeners"][0]["authentication"]["required"] = True
    config["limits"] = {"max_frame_bytes": 1 << 20, "authentication_timeout": "5s"}
    clock = task.Clock()
    clock.advance(time.time())
    cfg = fake_config(**config)
    services = AdapterServices(
        config=cfg, metrics=gateway_metrics(), clock=clock.seconds, identity=IdentityService(cfg.identity.jwt, clock),
        upstream_credentials=lambda: None, principal_for_client_id=lambda cid: ANONYMOUS,
        next_bootstrap=lambda: BOOTSTRAP, inputs_decoded=lambda inputs: None,
    )
    adapter = KafkaAdapter(services)

    def connect() -> tuple[Any, RecordingIO]:
        io = RecordingIO(clock)
        core = adapter.connection(cfg.listeners[0], None, io)
        core.start("127.0.0.1", 50000)
        return core, io

    core, io = connect()
    assert io.targets == []  # no broker connection for a client that has not logged in
    core.client_data(framed(req(17, 1, mechanism="PLAIN"), 1, 1))
    core.client_data(framed(req(36, 2, auth_bytes=_plain(issuer.token(sub="svc-a"))), 2, 2))
    assert io.targets == [BOOTSTRAP]  # opened once it has
    big, big_io = connect()
    big.client_data(struct.pack(">i", 70 * 1024) + b"\x00" * 100)  # a 70 KiB frame announced before login
    assert big_io.closed
    idle, idle_io = connect()
    clock.advance(6)
    assert idle_io.closed and adapter.settings.metrics.get("gatekeeper_rejected_total", reason="authentication_timeout") == 1
    assert not io.closed  # the one that logged in stays


def test_a_client_that_does_not_read_its_answers_is_not_read_from() -> None:
    core, io, _ = ready(limits={"max_frame_bytes": 1 << 20, "max_pending_requests": 4})
    for cid in range(1, 4):
        core.client_data(produce(cid, "orders"))
    assert not io.paused
    core.client_data(produce(4, "orders"))
    assert io.paused  # four unanswered: reading stops
    for _ in range(4):
        answer(core, io, ALLOW)
    core.upstream_data(b"".join(produce_response(cid, "orders") for cid in range(1, 5)))
    assert not io.paused and len(io.client_frames()) == 4


def test_a_request_with_a_null_where_none_may_be_closes_that_connection_with_a_log_line() -> None:
    # Found by fuzzing: a DescribeGroups v6 whose groups array is null reached the operations
    # as None and raised out of the core. It is a malformed request now, refused as such.
    from twisted.logger import globalLogPublisher

    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        core, io, adapter = ready()
        wire = b"\x00\x0f\x00\x06" + bytes.fromhex("2d0b001bffffff0c00000000000000")[4:]
        core.client_data(struct.pack(">i", len(wire)) + wire)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert io.closed == [False] and io.upstream == [] and io.asked == []
    assert any("null groups" in str(e.get("why")) for e in events)
    assert adapter.settings.metrics.get("gatekeeper_rejected_total", reason="malformed") == 1


@pytest.mark.parametrize("size", [0, 3])
def test_a_broker_frame_too_short_for_a_correlation_id_breaks_the_upstream_not_the_core(size: int) -> None:
    # Found by fuzzing: a response frame of fewer than 4 bytes to a request whose response is
    # processed (here a listing) raised struct.error out of the core.
    core, io, adapter = ready()
    core.client_data(framed(req(3, 12, topics=None, allow_auto_topic_creation=False), 12, 6))
    answer(core, io, ALLOW)
    core.upstream_data(struct.pack(">i", size) + b"\x00" * 8)
    assert io.closed == [True] and io.client == []
    assert adapter.settings.metrics.get("gatekeeper_upstream_errors_total", kind="protocol") == 1


def test_a_reauthentication_by_a_bare_token_is_answered_in_its_turn(idp) -> None:
    """After SaslHandshake v0 the token comes as a bare frame and is answered by one (empty):
    that answer waits behind the answers still owed, like any other."""
    issuer, config = idp
    core, io, _ = _sasl_core(config)
    core.client_data(framed(req(17, 1, mechanism="PLAIN"), 1, 1))
    core.client_data(framed(req(36, 2, auth_bytes=_plain(issuer.token(sub="svc-a"))), 2, 2))
    core.client_data(produce(3, "orders"))
    answer(core, io, ALLOW)
    io.client.clear()
    token = _plain(issuer.token(sub="svc-a"))
    core.client_data(framed(req(17, 0, mechanism="PLAIN"), 0, 4) + struct.pack(">i", len(token)) + token)
    assert io.client == []  # the Produce's answer is owed first
    core.upstream_data(produce_response(3, "orders"))
    frames = io.client_frames()
    assert [struct.unpack_from(">i", f)[0] for f in frames[:2]] == [3, 4]
    assert decode_response(17, 0, frames[1]).error_code == 0
    assert frames[2:] == [b""]  # the bare answer to the bare token, last


def test_a_metadata_request_with_a_negative_topic_count_is_the_all_topics_listing() -> None:
    # Kafka reads a count of -2 as null (every topic): so must the policy, or the answer would
    # list every topic to a principal that was asked about none.
    core, io, _ = ready()
    wire = bytearray(framed(req(3, 4, topics=[], allow_auto_topic_creation=False), 4, 7))
    wire[-5:-1] = struct.pack(">i", -2)  # the topics count, before allow_auto_topic_creation
    core.client_data(bytes(wire))
    token, inputs = io.asked.pop(0)
    assert [i["operation"] for i in inputs] == ["list_topics"]
    core.decided(token, [ALLOW])
    R = API_TABLE[3].response
    core.upstream_data(response(3, 4, 7, throttle_time_ms=0, brokers=[], cluster_id="c", controller_id=1, topics=[
        R.MetadataResponseTopic(error_code=0, name=n, is_internal=False, partitions=[]) for n in ("orders", "secret")]))
    token, inputs = io.asked.pop(0)
    assert [i["resource"]["name"] for i in inputs] == ["orders", "secret"]
    core.decided(token, [ALLOW, DENY])
    assert [t.name for t in decode_response(3, 4, io.client_frames()[0]).topics] == ["orders"]
