"""The Pulsar adapter's codec (plugins/gatekeeper-pulsar): frames whole, byte by byte and with
trailing bytes, from one table that also drives the encoder; payloads; the committed generated
protobuf module; the broker address map."""

from __future__ import annotations

import importlib.util

import pytest
from gatekeeper_pulsar import commands as c
from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.brokers import BrokerMap, parse_service_url
from gatekeeper_pulsar.framing import (
    DEFAULT_MAX_FRAME,
    Frame,
    FrameDecoder,
    FrameError,
    encode_frame,
)
from gatekeeper_pulsar.payload import build_payload, read_payload

from gatekeeper.values import HostPort


def _cmd(t: int, **fields: object) -> bytes:
    cmd = wire.BaseCommand(type=t)  # type: ignore[arg-type]
    for path, value in fields.items():
        sub, _, name = path.partition("__")
        setattr(getattr(cmd, sub), name, value)
    return cmd.SerializePartialToString()


def _meta(**fields: object) -> wire.MessageMetadata:
    return wire.MessageMetadata(producer_name="p", sequence_id=1, publish_time=1700000000000, **fields)  # type: ignore[arg-type]


T = wire.BaseCommand
CASES = {
    "ping": (wire.BaseCommand(type=T.PING, ping=wire.CommandPing()).SerializeToString(), b""),
    "lookup": (_cmd(T.LOOKUP, lookupTopic__topic="persistent://public/default/orders", lookupTopic__request_id=7), b""),
    "send": (_cmd(T.SEND, send__producer_id=1, send__sequence_id=9),
             build_payload(_meta(num_messages_in_batch=3), b"\x01\x02batch")),
    "empty command": (b"", b""),
}


def _decode_all(decoder: FrameDecoder) -> list[Frame]:
    out = []
    while (frame := decoder.next_frame()) is not None:
        out.append(frame)
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_frame_whole(name: str) -> None:
    command, payload = CASES[name]
    wire_bytes = encode_frame(command, payload)
    d = FrameDecoder()
    d.receive_data(wire_bytes)
    assert _decode_all(d) == [Frame(command, payload, wire_bytes)]
    assert d.buffered == 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_frame_byte_by_byte(name: str) -> None:
    command, payload = CASES[name]
    wire_bytes = encode_frame(command, payload)
    d = FrameDecoder()
    frames: list[Frame] = []
    for i in range(len(wire_bytes)):
        d.receive_data(wire_bytes[i : i + 1])
        got = _decode_all(d)
        assert got == [] or i == len(wire_bytes) - 1
        frames += got
    assert frames == [Frame(command, payload, wire_bytes)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_frame_with_trailing_bytes(name: str) -> None:
    """Bytes after a frame are the start of the next one: kept, never swallowed."""
    command, payload = CASES[name]
    wire_bytes = encode_frame(command, payload)
    d = FrameDecoder()
    d.receive_data(wire_bytes + wire_bytes[:5])
    assert _decode_all(d) == [Frame(command, payload, wire_bytes)]
    assert d.buffered == 5
    d.receive_data(wire_bytes[5:])
    assert _decode_all(d) == [Frame(command, payload, wire_bytes)]


def test_frames_that_are_not_pulsar_are_refused() -> None:
    d = FrameDecoder()
    d.receive_data(b"\x00\x00\x00\x02xx")
    with pytest.raises(FrameError, match="smaller than its command size"):
        d.next_frame()
    d = FrameDecoder()
    d.receive_data((DEFAULT_MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(FrameError, match="over the"):
        d.next_frame()
    d = FrameDecoder()
    d.receive_data(b"\x00\x00\x00\x06\x00\x00\x00\x09ab")
    with pytest.raises(FrameError, match="exceeds"):
        d.next_frame()
    with pytest.raises(FrameError, match="not a protobuf"):
        c.parse_command(b"\xff\xff\xff")


def test_payload_read_back_with_checksum() -> None:
    payload = build_payload(_meta(num_messages_in_batch=3, compression=wire.LZ4), b"body")
    info = read_payload(payload)
    assert info.checksum_ok and info.record_count == 3 and info.body == b"body" and info.compression == "LZ4"
    assert not info.encrypted
    corrupt = payload[:-1] + b"X"
    assert not read_payload(corrupt).checksum_ok
    with pytest.raises(FrameError, match="0x0e01"):
        read_payload(b"\x0e\x03" + payload[2:])
    # broker entry metadata in front (MESSAGE to a client that supports it) is skipped
    assert read_payload(b"\x0e\x02\x00\x00\x00\x02\x08\x01" + payload).record_count == 3


def test_unknown_fields_survive_a_rewrite() -> None:
    """Fields the .proto leaves out (here: CONNECT's feature flags beyond the first, a future
    field 99) come out of parse-and-serialize unchanged."""
    cmd = wire.BaseCommand(type=T.LOOKUP_RESPONSE)
    cmd.lookupTopicResponse.request_id = 1
    cmd.lookupTopicResponse.brokerServiceUrl = "pulsar://broker:6650"
    extra = b"\xa2\x06\x03abc"  # field 100, length-delimited, in BaseCommand
    parsed = c.parse_command(cmd.SerializeToString() + extra)
    parsed.lookupTopicResponse.brokerServiceUrl = "pulsar://gk:1"
    assert extra in c.serialize(parsed)


def test_an_unknown_command_type_is_named_not_fatal() -> None:
    parsed = c.parse_command(b"\x08\x7f")  # type 127: not in this codec
    assert c.command_name(parsed) == "UNKNOWN"


def test_error_frames_are_what_the_broker_sends() -> None:
    d = FrameDecoder()
    d.receive_data(c.error_frame(5, c.AUTHORIZATION_ERROR, "no") + c.send_error_frame(1, 2, c.AUTHORIZATION_ERROR, "no")
                   + c.lookup_failed_frame(3, c.AUTHORIZATION_ERROR, "no") + c.partitioned_failed_frame(4, c.AUTHORIZATION_ERROR, "no"))
    cmds = [c.parse_command(f.command) for f in _decode_all(d)]
    assert [x.type for x in cmds] == [T.ERROR, T.SEND_ERROR, T.LOOKUP_RESPONSE, T.PARTITIONED_METADATA_RESPONSE]
    assert all(x.IsInitialized() for x in cmds)
    assert cmds[2].lookupTopicResponse.response == wire.CommandLookupTopicResponse.Failed


def test_broker_map_rewrites_known_brokers_only() -> None:
    m = BrokerMap.build([HostPort("10.0.0.5", 6650), HostPort("Broker-2", 6650)], "gk.example", [9001, 9002], 6650)
    assert m.rewrite("pulsar://10.0.0.5:6650") == "pulsar://gk.example:9001"
    assert m.rewrite("pulsar://broker-2:6650/") == "pulsar://gk.example:9002"
    assert m.rewrite("pulsar://10.0.0.6:6650") is None
    assert m.rewrite("http://10.0.0.5:6650") is None
    assert m.target_of_proxy_url("pulsar://gk.example:9002") == 1
    assert m.target_of_proxy_url("pulsar://10.0.0.5:6650") == 0
    assert m.target_of_proxy_url("pulsar://elsewhere:6650") is None
    assert parse_service_url("pulsar+ssl://[::1]:6651") == HostPort("::1", 6651)
    assert parse_service_url("pulsar://nohost") is None


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools (a development tool) is not installed")
def test_the_committed_generated_module_is_what_the_proto_generates() -> None:
    from gatekeeper_pulsar.regenerate import HERE, generate

    for name, text in generate().items():
        assert (HERE / name).read_text() == text, f"{name} is not what wire.proto generates: regenerate it"
