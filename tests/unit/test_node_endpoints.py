"""Broker addresses in KIP-951's ``node_endpoints`` never reach a client: the connection core,
driven directly, maps them to Gatekeeper's own in Produce (v10+), ShareFetch and
ShareAcknowledge answers, passes every other Produce answer as it came, and does not offer the
Fetch versions whose answers carry them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gatekeeper.kafka.apis.negotiation import intersect_api_versions
from gatekeeper.kafka.codec import API_TABLE, UnsupportedApi
from gatekeeper.kafka.messages import INSPECTABLE, KafkaCodec
from gatekeeper.testing.audit import RecordingTrail
from tests.unit.samples import TOPIC_ID, req
from tests.unit.test_client_protocol import framed, response
from tests.unit.test_connection import ALLOW, answer, decode_response, produce, ready

REAL = ("10.9.8.7", 9092)  # where node 2 really listens: must never reach the client
ADVERTISED = "gk.example"  # fake_config's listener: advertised host, broker ports 9193-9195
R = API_TABLE[0].response


def _produce_answer(cid: int, version: int, *, endpoints: bool, error: int = 6) -> bytes:
    T = R.TopicProduceResponse
    P = T.PartitionProduceResponse
    part = P(index=0, error_code=error, base_offset=-1,
             current_leader=P.LeaderIdAndEpoch(leader_id=2, leader_epoch=5))
    topic = T(topic_id=TOPIC_ID, partition_responses=[part]) if version >= 13 else T(name="orders", partition_responses=[part])
    nodes = [R.NodeEndpoint(node_id=2, host=REAL[0], port=REAL[1], rack=None)] if endpoints else []
    return response(0, version, cid, throttle_time_ms=0, responses=[topic], node_endpoints=nodes)


def _produce_request(cid: int, version: int) -> bytes:
    if version < 13:
        return produce(cid, "orders", version=version)
    P = API_TABLE[0].request
    data = [P.TopicProduceData(topic_id=TOPIC_ID, partition_data=[P.TopicProduceData.PartitionProduceData(index=0, records=None)])]
    return framed(req(0, version, transactional_id=None, acks=-1, timeout_ms=1000, topic_data=data), version, cid)


def _core_knowing_two_brokers(trail: Any = None) -> tuple[Any, Any, Any]:
    core, io, adapter = ready(trail=trail)
    cluster = adapter.settings.cluster
    cluster.observe_topics([(TOPIC_ID, "orders")])
    cluster.observe_broker(1, "10.9.8.6", 9092)
    cluster.observe_broker(*(2, *REAL))
    return core, io, adapter


def _gateway_port(adapter: Any, node_id: int) -> int:
    slot = adapter.settings.cluster.slot_of(node_id)
    return 9193 + slot


@pytest.mark.parametrize("audited", [False, True])
@pytest.mark.parametrize("version", [10, 11, 12, 13])
def test_a_produce_answer_naming_the_new_leader_gets_gatekeepers_address(version: int, audited: bool) -> None:
    """Also when the audit trail reads the answer for its outcome (one walk serves both)."""
    trail = RecordingTrail() if audited else None
    core, io, adapter = _core_knowing_two_brokers(trail)
    core.client_data(_produce_request(1, version))
    answer(core, io, ALLOW)
    raw = _produce_answer(1, version, endpoints=True)
    assert REAL[0].encode() in raw
    core.upstream_data(raw[:9])  # not passed on before the whole answer is read
    assert b"".join(io.client) == b""
    core.upstream_data(raw[9:])
    (out,) = io.client_frames()
    assert REAL[0].encode() not in out
    body = decode_response(0, version, out)
    (node,) = body.node_endpoints
    assert (node.node_id, node.host, node.port) == (2, ADVERTISED, _gateway_port(adapter, 2))
    p = body.responses[0].partition_responses[0]
    assert (p.error_code, p.current_leader.leader_id, p.current_leader.leader_epoch) == (6, 2, 5)
    if trail is not None:
        (record,) = trail.requests()
        assert [(q["partition"], q["error_code"]) for q in record["outcome"]["partitions"]] == [(0, 6)]


@pytest.mark.parametrize("audited", [False, True])
@pytest.mark.parametrize("version", [9, 10, 13])
def test_any_other_produce_answer_passes_byte_for_byte(version: int, audited: bool) -> None:
    trail = RecordingTrail() if audited else None
    core, io, _ = _core_knowing_two_brokers(trail)
    core.client_data(_produce_request(1, version))
    answer(core, io, ALLOW)
    raw = _produce_answer(1, version, endpoints=False, error=0)
    core.upstream_data(raw)
    assert b"".join(io.client) == raw
    if trail is not None:
        (record,) = trail.requests()
        assert [(q["partition"], q["error_code"]) for q in record["outcome"]["partitions"]] == [(0, 0)]


def test_a_node_with_no_gateway_port_is_pointed_nowhere() -> None:
    core, io, adapter = ready()  # the cluster view has seen no broker: node 2 has no slot
    adapter.settings.cluster.observe_topics([(TOPIC_ID, "orders")])
    core.client_data(_produce_request(1, 13))
    answer(core, io, ALLOW)
    core.upstream_data(_produce_answer(1, 13, endpoints=True))
    (out,) = io.client_frames()
    (node,) = decode_response(0, 13, out).node_endpoints
    assert (node.host, node.port) == ("unmapped.invalid", 1)


def test_a_produce_answer_whose_tags_do_not_read_breaks_the_upstream_not_the_client() -> None:
    core, io, _ = _core_knowing_two_brokers()
    core.client_data(_produce_request(1, 13))
    answer(core, io, ALLOW)
    raw = bytearray(_produce_answer(1, 13, endpoints=True))
    raw[-2] = 0x7F  # the last endpoint's tags claim 127 more bytes than there are
    core.upstream_data(bytes(raw))
    assert io.client_frames() == []
    assert io.closed


def _share_acknowledge_answer(cid: int, version: int) -> bytes:
    A = API_TABLE[79].response
    T = A.ShareAcknowledgeTopicResponse
    P = T.PartitionData
    part = P(partition_index=0, error_code=6, error_message=None, current_leader=P.LeaderIdAndEpoch(leader_id=2, leader_epoch=5))
    fields = {"acquisition_lock_timeout_ms": 30000} if version >= 2 else {}
    return response(79, version, cid, throttle_time_ms=0, error_code=0, error_message=None, **fields,
                    responses=[T(topic_id=TOPIC_ID, partitions=[part])],
                    node_endpoints=[A.NodeEndpoint(node_id=2, host=REAL[0], port=REAL[1], rack="r1")])


@pytest.mark.parametrize("version", [1, 2])
def test_a_share_acknowledge_answer_naming_the_new_leader_gets_gatekeepers_address(version: int) -> None:
    core, io, adapter = _core_knowing_two_brokers()
    Q = API_TABLE[79].request
    T = Q.AcknowledgeTopic
    message = req(79, version, group_id="sg", member_id="m", share_session_epoch=1, is_renew_ack=False,
                  topics=[T(topic_id=TOPIC_ID, partitions=[T.AcknowledgePartition(
                      partition_index=0, acknowledgement_batches=[T.AcknowledgePartition.AcknowledgementBatch(
                          first_offset=0, last_offset=0, acknowledge_types=[1])])])])
    core.client_data(framed(message, version, 1))
    answer(core, io, ALLOW, ALLOW)
    core.upstream_data(_share_acknowledge_answer(1, version))
    (out,) = io.client_frames()
    assert REAL[0].encode() not in out
    (node,) = decode_response(79, version, out).node_endpoints
    assert (node.node_id, node.host, node.port, node.rack) == (2, ADVERTISED, _gateway_port(adapter, 2), "r1")


def test_fetch_is_offered_up_to_v15_and_newer_versions_are_refused() -> None:
    assert INSPECTABLE[1][1] == 15
    V = API_TABLE[18].response
    offered = V[3](error_code=0, api_keys=[V.ApiVersion(api_key=1, min_version=4, max_version=18),
                                            V.ApiVersion(api_key=0, min_version=3, max_version=13)])
    kept = {k.api_key: (k.min_version, k.max_version) for k in intersect_api_versions(offered, INSPECTABLE).api_keys}
    assert kept == {1: (4, 15), 0: (3, 13)}
    F = API_TABLE[1].request
    for v in (16, 17, 18):
        m = req(1, v, replica_id=-1, max_wait_ms=500, min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0,
                session_epoch=-1, topics=[F.FetchTopic(topic_id=uuid.uuid4(), partitions=[])], forgotten_topics_data=[], rack_id="")
        frame = framed(m, v, 1)[4:]
        with pytest.raises(UnsupportedApi, match=r"Fetch v1[678] is outside"):
            KafkaCodec(None).decode(frame)  # type: ignore[arg-type]


def _describe_quorum_answer(cid: int, version: int) -> bytes:
    Q = API_TABLE[55].response
    N = Q.Node
    nodes = {"nodes": [N(node_id=1, listeners=[N.Listener(name="CONTROLLER", host=REAL[0], port=9093)])]} if version >= 2 else {}
    return response(55, version, cid, error_code=0, error_message=None, topics=[], **nodes)


@pytest.mark.parametrize("version", [1, 2])
def test_describe_quorum_never_names_a_controllers_address(version: int) -> None:
    core, io, _ = _core_knowing_two_brokers()
    core.client_data(framed(req(55, version, topics=[]), version, 1))
    answer(core, io, ALLOW)
    raw = _describe_quorum_answer(1, version)
    core.upstream_data(raw)
    (out,) = io.client_frames()
    if version < 2:  # no addresses in it: passed as it came
        assert b"".join(io.client) == raw
        return
    assert REAL[0].encode() not in out
    (node,) = decode_response(55, version, out).nodes
    (listener,) = node.listeners
    assert (node.node_id, listener.name, listener.host, listener.port) == (1, "CONTROLLER", "unmapped.invalid", 1)
