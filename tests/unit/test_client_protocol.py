"""The client protocol driven by dataReceived with fake transports: no reactor, no network."""

from __future__ import annotations

import struct
import uuid

from twisted.logger import LogLevel, globalLogPublisher

from gatekeeper.kafka.codec import API_TABLE
from gatekeeper.proxy.gateway import Gateway
from gatekeeper.testing.connection import split_frames
from gatekeeper.testing.fakes import FakeUpstreams, ProducerStringTransport, fake_config, reactor
from tests.unit.samples import TOPIC_ID, produce, req


def framed(message, version: int, cid: int) -> bytes:
    message.with_header(correlation_id=cid, client_id="unit")
    body = bytes(message.encode(version=version, header=True))
    return struct.pack(">i", len(body)) + body


def response(api_key: int, version: int, cid: int, **fields) -> bytes:
    spec = API_TABLE[api_key]
    body = bytes(spec.response[version](**fields).encode(version=version))
    head = struct.pack(">i", cid) + (b"\x00" if spec.response_header_version(version) == 1 else b"")
    return struct.pack(">i", len(head) + len(body)) + head + body


def connect(gateway: Gateway, slot=None, engine=None):
    import attrs

    from gatekeeper.proxy.client import ClientProtocol

    listener = gateway.config.listeners[0]
    context = gateway.context if engine is None else attrs.evolve(gateway.context, engine=engine)
    proto = ClientProtocol(context, listener, slot)
    transport = ProducerStringTransport()
    proto.makeConnection(transport)
    return proto, transport


def make_gateway(**config):
    ups = FakeUpstreams()
    return Gateway(fake_config(**config), reactor(), upstream_connector=ups), ups


def metadata_response(cid: int, version: int = 12) -> bytes:
    R = API_TABLE[3].response
    return response(
        3, version, cid, throttle_time_ms=0,
        brokers=[R.MetadataResponseBroker(node_id=7, host="broker-7.internal", port=9092, rack=None)],
        cluster_id="c", controller_id=7,
        topics=[R.MetadataResponseTopic(error_code=0, name="orders", topic_id=TOPIC_ID, is_internal=False, partitions=[])],
    )


def test_requests_forwarded_as_original_bytes_and_metadata_rewritten() -> None:
    gw, ups = make_gateway()
    proto, client = connect(gw)
    (target, upstream), = ups.connected
    assert str(target) == "127.0.0.1:19092"
    M = API_TABLE[3].request
    wire = framed(req(3, 12, topics=[M.MetadataRequestTopic(name="orders")], allow_auto_topic_creation=False), 12, 5)
    proto.dataReceived(wire)
    assert upstream.transport.value() == wire  # byte-identical, not re-encoded
    upstream.dataReceived(metadata_response(5))
    (out,) = split_frames(client.value())
    _, body = out[:4], API_TABLE[3].response.decode(out[5:], version=12)
    assert struct.unpack(">i", out[:4])[0] == 5
    assert [(b.node_id, b.host, b.port) for b in body.brokers] == [(7, "gk.example", 9193)]
    assert gw.adapters["kafka"].cluster.address_of(7).host == "broker-7.internal"
    assert gw.adapters["kafka"].cluster.topic_name(TOPIC_ID) == "orders"


def test_responses_keep_request_order_with_local_answers_and_acks0() -> None:
    gw, ups = make_gateway()
    proto, client = connect(gw)
    (_, upstream), = ups.connected
    hb = lambda: req(12, 4, group_id="g", generation_id=1, member_id="m")  # noqa: E731
    too_new_api_versions = struct.pack(">hhi", 18, 99, 2) + b"\x00\x00"
    proto.dataReceived(
        framed(hb(), 4, 1)
        + struct.pack(">i", len(too_new_api_versions)) + too_new_api_versions
        + framed(produce(9, acks=0), 9, 3)
        + framed(hb(), 4, 4)
    )
    assert [struct.unpack_from(">i", f, 4)[0] for f in split_frames(upstream.transport.value())] == [1, 3, 4]
    assert client.value() == b""  # the local answer waits behind request 1
    upstream.dataReceived(response(12, 4, 1, throttle_time_ms=0, error_code=0) + response(12, 4, 4, throttle_time_ms=0, error_code=0))
    cids = [struct.unpack_from(">i", f)[0] for f in split_frames(client.value())]
    assert cids == [1, 2, 4]  # acks=0 produce (3) gets no response
    api_versions = split_frames(client.value())[1]
    body = API_TABLE[18].response.decode(api_versions[4:], version=0)
    assert body.error_code == 35 and body.api_keys[0].max_version == API_TABLE[18].max_version


def test_api_versions_is_intersected_with_what_we_can_inspect() -> None:
    gw, ups = make_gateway()
    proto, client = connect(gw)
    (_, upstream), = ups.connected
    proto.dataReceived(framed(req(18, 3, client_software_name="t", client_software_version="1"), 3, 9))
    A = API_TABLE[18].response
    offered = [A.ApiVersion(api_key=0, min_version=0, max_version=99), A.ApiVersion(api_key=88, min_version=0, max_version=0),
               A.ApiVersion(api_key=3, min_version=0, max_version=5)]
    upstream.dataReceived(response(18, 3, 9, error_code=0, api_keys=offered, throttle_time_ms=0))
    (out,) = split_frames(client.value())
    body = A.decode(out[4:], version=3)
    got = {k.api_key: (k.min_version, k.max_version) for k in body.api_keys}
    assert got == {0: (API_TABLE[0].min_version, API_TABLE[0].max_version), 3: (0, 5)}  # 88 (streams groups) dropped


def test_unknown_topic_id_triggers_a_metadata_probe_before_forwarding() -> None:
    gw, ups = make_gateway()
    proto, client = connect(gw)
    (_, upstream), = ups.connected
    wire = framed(produce(13), 13, 11)
    proto.dataReceived(wire)
    sent = split_frames(upstream.transport.value())
    assert len(sent) == 1 and struct.unpack_from(">h", sent[0])[0] == 3  # the probe, not the produce
    probe_cid = struct.unpack_from(">i", sent[0], 4)[0]
    upstream.transport.clear()
    upstream.dataReceived(metadata_response(probe_cid))
    assert upstream.transport.value() == wire
    assert client.value() == b""  # the probe's answer is ours, not the client's


def test_bad_input_closes_only_that_connection_with_a_log_line() -> None:
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        gw, ups = make_gateway()
        bad, bad_t = connect(gw)
        good, good_t = connect(gw)
        for payload in (b"\x7f\xff\xff\xff", struct.pack(">i", 4) + b"\x00\x00\x00\x00", struct.pack(">i", 10) + struct.pack(">hhi", 1000, 0, 1) + b"\x00\x00"):
            bad, bad_t = connect(gw)
            bad.dataReceived(payload)
            assert bad_t.disconnecting
        assert not good_t.disconnecting
        warnings = [e for e in events if e.get("log_level") == LogLevel.warn and "closing connection" in e.get("log_format", "")]
        assert len(warnings) == 3
        assert all(e["peer"] == "127.0.0.1:50000" for e in warnings)
        assert gw.metrics.get("gatekeeper_rejected_total", reason="frame") == 1
        assert gw.metrics.get("gatekeeper_rejected_total", reason="unsupported_api") == 1
    finally:
        globalLogPublisher.removeObserver(events.append)


def test_broker_port_connection_goes_to_that_node_and_unknown_slot_is_closed() -> None:
    gw, ups = make_gateway()
    proto, client = connect(gw, slot=0)
    assert client.disconnecting and not ups.connected
    gw.adapters["kafka"].cluster.observe_broker(7, "broker-7.internal", 9092)
    proto, client = connect(gw, slot=0)
    assert str(ups.connected[-1][0]) == "broker-7.internal:9092"


def test_unreachable_broker_closes_the_client() -> None:
    gw, ups = make_gateway()
    ups.fail_with = ConnectionRefusedError("refused")
    proto, client = connect(gw)
    assert client.disconnecting
    assert gw.metrics.get("gatekeeper_upstream_errors_total", kind="connect") == 1


def test_correlation_mismatch_from_broker_closes_both() -> None:
    gw, ups = make_gateway()
    proto, client = connect(gw)
    (_, upstream), = ups.connected
    proto.dataReceived(framed(req(12, 4, group_id="g", generation_id=1, member_id="m"), 4, 1))
    upstream.dataReceived(response(12, 4, 99, throttle_time_ms=0, error_code=0))
    assert client.disconnecting and upstream.transport.aborted


def test_topic_id_unknown_to_the_broker_too_is_decided_under_a_marked_name() -> None:
    gw, ups = make_gateway()
    proto, client = connect(gw)
    (_, upstream), = ups.connected
    wire = framed(produce(13), 13, 21)
    proto.dataReceived(wire)
    probe_cid = struct.unpack_from(">i", split_frames(upstream.transport.value())[0], 4)[0]
    upstream.transport.clear()
    R = API_TABLE[3].response
    empty = response(3, 12, probe_cid, throttle_time_ms=0, brokers=[], cluster_id="c", controller_id=7, topics=[R.MetadataResponseTopic(error_code=0, name="other", topic_id=uuid.uuid4(), is_internal=False, partitions=[])])
    decided = []
    gw.inputs_decoded = decided.extend  # type: ignore[method-assign]
    upstream.dataReceived(empty)
    assert upstream.transport.value() == wire  # forwarded: the broker answers UNKNOWN_TOPIC_ID
    assert decided[0]["resource"]["name"] == f"unknown-topic-id:{TOPIC_ID}"


def test_passthrough_response_is_cut_through_and_local_answers_wait_for_its_end() -> None:
    gw, ups = make_gateway()
    proto, client = connect(gw)
    (_, upstream), = ups.connected
    too_new = struct.pack(">hhi", 18, 99, 2) + b"\x00\x00"
    proto.dataReceived(framed(produce(9), 9, 1) + struct.pack(">i", len(too_new)) + too_new)
    P = API_TABLE[0].response
    big = response(0, 9, 1, responses=[P.TopicProduceResponse(name="orders" * 2000, partition_responses=[])], throttle_time_ms=0)
    half = len(big) // 2
    for i in range(half):
        upstream.dataReceived(big[i : i + 1])
    # Half the response is already with the client, before the broker finished sending it.
    assert client.value() == big[:half]
    upstream.dataReceived(big[half:])
    frames = split_frames(client.value())
    assert [struct.unpack_from(">i", f)[0] for f in frames] == [1, 2]
    assert client.value().startswith(big)


class _DenyAll:
    """A policy engine that refuses everything (the real engines need a reactor thread)."""

    name = "deny-all"

    def decide_now(self, inputs):
        from gatekeeper.api import Decision

        return [Decision("deny", reason=f"no {i['operation']} for you") for i in inputs]


def _fetch(cid: int, topic: str = "orders"):
    F = API_TABLE[1].request
    return framed(req(1, 12, replica_id=-1, max_wait_ms=500, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                      session_id=0, session_epoch=-1, forgotten_topics_data=[], rack_id="",
                      topics=[F.FetchTopic(topic=topic, partitions=[F.FetchTopic.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)])]),
                  12, cid)


def test_a_denied_fetch_is_answered_with_an_empty_record_set_not_a_null_one() -> None:
    gw, ups = make_gateway()
    proto, client = connect(gw, engine=_DenyAll())
    (_, upstream), = ups.connected
    proto.dataReceived(_fetch(1))
    assert upstream.transport.value() == b""  # nothing reaches the broker
    (out,) = split_frames(client.value())
    body = API_TABLE[1].response.decode(out[5:], version=12)
    (p,) = body.responses[0].partitions
    assert (p.error_code, p.records, p.aborted_transactions) == (29, b"", [])
    assert body.throttle_time_ms == 0  # the first denial is not throttled


def test_repeated_denials_are_throttled_then_the_connection_is_closed() -> None:
    gw, ups = make_gateway(limits={"max_frame_bytes": 1 << 20, "denied_requests_per_second": 5, "denied_requests_burst": 8})
    proto, client = connect(gw, engine=_DenyAll())
    for cid in range(1, 8):
        proto.dataReceived(_fetch(cid))
    throttles = [API_TABLE[1].response.decode(f[5:], version=12).throttle_time_ms for f in split_frames(client.value())]
    assert throttles == [0, 50, 100, 200, 400, 800, 1000]
    assert gw.metrics.get("gatekeeper_denials_throttled_total", api="Fetch") == 6
    assert not client.disconnecting
    proto.dataReceived(_fetch(8))  # the burst's last token
    assert not client.disconnecting
    proto.dataReceived(_fetch(9))  # the clock has not moved: over the rate
    assert client.disconnecting
    assert gw.metrics.get("gatekeeper_rejected_total", reason="denial_flood") == 1
    assert gw.metrics.get("gatekeeper_decisions_total", action="deny", operation="consume") == 9


def test_denied_log_lines_are_rate_limited_per_resource_and_count_what_they_held_back() -> None:
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        gw, ups = make_gateway()
        proto, client = connect(gw, engine=_DenyAll())
        for cid in range(1, 6):
            proto.dataReceived(_fetch(cid))
        proto.dataReceived(_fetch(6, topic="payments"))
        gw.reactor.advance(11)
        proto.dataReceived(_fetch(7))
        lines = [e for e in events if e.get("log_format", "").startswith("denied ")]
        assert [(e["rname"], e["held_back"]) for e in lines] == [
            ("orders", ""), ("payments", ""), ("orders", " (4 more like it since the last such line)")]
        assert gw.metrics.get("gatekeeper_decisions_total", action="deny", operation="consume") == 7
    finally:
        globalLogPublisher.removeObserver(events.append)


def test_byte_identical_metadata_answers_are_decoded_once_and_their_observations_replayed(monkeypatch) -> None:
    # Hundreds of clients asking for the same topics get the same answer from the broker: it was
    # decoded and re-encoded for each (three quarters of Gatekeeper's CPU under load).
    from gatekeeper.kafka import codec as kafka_codec

    decoded = []
    real = kafka_codec.decode_response_body
    monkeypatch.setattr(kafka_codec, "decode_response_body", lambda *a: decoded.append(a[1].name) or real(*a))
    gw, ups = make_gateway()
    M = API_TABLE[3].request
    R = API_TABLE[3].response
    cluster = gw.adapters["kafka"].cluster

    def ask(answer: bytes, cid: int) -> tuple[int, list[tuple[int, str, int]]]:
        proto, client = connect(gw)
        (_, upstream) = ups.connected[-1]
        proto.dataReceived(framed(req(3, 12, topics=[M.MetadataRequestTopic(name="orders")], allow_auto_topic_creation=False), 12, cid))
        upstream.dataReceived(answer)
        (out,) = split_frames(client.value())
        body = R.decode(out[5:], version=12)
        return struct.unpack(">i", out[:4])[0], [(b.node_id, b.host, b.port) for b in body.brokers]

    moved = response(3, 12, 9, throttle_time_ms=0, cluster_id="c", controller_id=7,
                     brokers=[R.MetadataResponseBroker(node_id=7, host="broker-7b.internal", port=9093, rack=None)],
                     topics=[R.MetadataResponseTopic(error_code=0, name="orders", topic_id=TOPIC_ID, is_internal=False, partitions=[])])
    assert ask(metadata_response(5), 5) == (5, [(7, "gk.example", 9193)])
    assert ask(metadata_response(6), 6) == (6, [(7, "gk.example", 9193)])  # the same body, another correlation id
    assert decoded == ["Metadata"]  # decoded once
    assert ask(moved, 9) == (9, [(7, "gk.example", 9193)]) and cluster.address_of(7).host == "broker-7b.internal"
    assert ask(metadata_response(11), 11) == (11, [(7, "gk.example", 9193)])
    assert decoded == ["Metadata"] * 2  # the first answer again: not decoded, but observed again
    assert (cluster.address_of(7).host, cluster.address_of(7).port) == ("broker-7.internal", 9092)


def test_the_metadata_memo_is_bounded_in_bytes(monkeypatch) -> None:
    from gatekeeper.kafka import codec as kafka_codec
    from gatekeeper.kafka import messages

    decoded = []
    real = kafka_codec.decode_response_body
    monkeypatch.setattr(kafka_codec, "decode_response_body", lambda *a: decoded.append(1) or real(*a))
    size = len(metadata_response(1)) - 9  # the body: frame minus size, correlation id and tags
    monkeypatch.setattr(messages, "MEMO_BYTES", 2 * size + 10)  # one entry (broker's body and ours)
    gw, ups = make_gateway()
    M = API_TABLE[3].request
    R = API_TABLE[3].response
    other = response(3, 12, 1, throttle_time_ms=0, cluster_id="c", controller_id=7,
                     brokers=[R.MetadataResponseBroker(node_id=7, host="broker-7.internal", port=9092, rack=None)],
                     topics=[R.MetadataResponseTopic(error_code=0, name="orderz", topic_id=TOPIC_ID, is_internal=False, partitions=[])])
    for answer in (metadata_response(1), metadata_response(1), other, metadata_response(1)):
        proto, client = connect(gw)
        proto.dataReceived(framed(req(3, 12, topics=[M.MetadataRequestTopic(name="orders")], allow_auto_topic_creation=False), 12, 1))
        ups.connected[-1][1].dataReceived(answer)
    assert len(decoded) == 3  # the second was a hit; "other" pushed the first out
