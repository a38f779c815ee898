"""Mask decisions on Pulsar payloads (plugins/gatekeeper-pulsar): the pure payload masking over
random batched and single messages in every codec, corrupt and refused payloads, and the
connection core that applies plans to SEND and MESSAGE frames."""

from __future__ import annotations

import json
import struct
from collections import Counter
from typing import Any

import pytest
from gatekeeper_pulsar import codecs
from gatekeeper_pulsar import commands as c
from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.batch import BatchError, Entry, read_batch, write_batch
from gatekeeper_pulsar.connection import PulsarConnection
from gatekeeper_pulsar.framing import FrameDecoder, encode_frame
from gatekeeper_pulsar.masking import PayloadRefused, mask_payload
from gatekeeper_pulsar.payload import build_payload, read_payload
from gatekeeper_pulsar.settings import ListenerSettings, PulsarSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.api import ANONYMOUS, Decision
from gatekeeper.config.values import MaskingConfig
from gatekeeper.masking import Masking
from gatekeeper.values import HostPort

CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004"]
SSNS = ["123-45-6789", "078-05-1120"]
RULES = [{"field": "$.card", "masker": "last4"}, {"detector": "us_ssn", "masker": "redact"},
         {"detector": "credit_card", "masker": "redact", "in": "header:note*"}]
MASKING = Masking(MaskingConfig())
PLAN = MASKING.plan(RULES, "consume")
STRICT = MASKING.plan([{"field": "$.card", "masker": "redact"}], "produce")  # on_error: deny
LIMIT = 16 * 1024 * 1024
U32 = struct.Struct(">I")

secret = st.sampled_from(CARDS + SSNS)
filler = st.text(alphabet="abcdefghij XYZ-.,", max_size=20)
text = st.one_of(filler, st.builds(lambda a, s, b: f"{a} {s} {b}", filler, secret, filler))
docs = st.dictionaries(st.sampled_from(["card", "note", "n"]), st.one_of(text, st.integers(0, 10**6)), max_size=3)
message = st.fixed_dictionaries({
    "value": st.one_of(docs.map(lambda d: json.dumps(d).encode()), text.map(str.encode)),
    "key": st.one_of(st.none(), filler),
    "props": st.dictionaries(st.sampled_from(["note", "note2", "trace"]), text, max_size=3),
    "event_time": st.integers(0, 2**40),
    "null": st.booleans(),
})


def _meta(**fields: Any) -> wire.MessageMetadata:
    return wire.MessageMetadata(producer_name="p-1", sequence_id=42, publish_time=1700000000000, **fields)


def build(messages: list[dict[str, Any]], codec: int, batched: bool) -> bytes:
    """A SEND payload of ``messages`` as the clients write one."""
    if batched:
        entries = []
        for m in messages:
            sm = wire.SingleMessageMetadata(payload_size=0, event_time=m["event_time"])
            if m["key"] is not None:
                sm.partition_key = m["key"]
            for k, v in m["props"].items():
                sm.properties.add(key=k, value=v)
            if m["null"]:
                sm.null_value = True
            entries.append(Entry(sm, b"" if m["null"] else m["value"]))
        raw = write_batch(entries)
        meta = _meta(num_messages_in_batch=len(messages))
    else:
        (m,) = messages
        raw = m["value"]
        meta = _meta(event_time=m["event_time"])
        if m["key"] is not None:
            meta.partition_key = m["key"]
        for k, v in m["props"].items():
            meta.properties.add(key=k, value=v)
    meta.compression = codec  # type: ignore[assignment]
    meta.uncompressed_size = len(raw)
    return build_payload(meta, codecs.compress(codec, raw))


def read(payload: bytes) -> tuple[wire.MessageMetadata, list[tuple[Any, bytes]]]:
    """The metadata and (metadata, value) of each message of ``payload``, checksum checked."""
    info = read_payload(payload)
    assert info.checksum_ok
    data = codecs.decompress(info.metadata.compression, info.body, info.metadata.uncompressed_size, LIMIT)
    if info.metadata.HasField("num_messages_in_batch"):
        return info.metadata, [(e.metadata, e.value) for e in read_batch(data, info.metadata.num_messages_in_batch)]
    return info.metadata, [(info.metadata, data)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message, min_size=1, max_size=5), st.sampled_from(sorted(codecs.NAMES)), st.booleans())
def test_masking_keeps_everything_but_the_masked_values(messages: list[dict[str, Any]], codec: int, batched: bool) -> None:
    if not batched:
        messages = [dict(messages[0], null=False)]
    payload = build(messages, codec, batched)
    done = mask_payload(payload, PLAN, LIMIT)
    meta, got = read(done.payload)
    assert (meta.producer_name, meta.sequence_id, meta.publish_time, meta.compression) == ("p-1", 42, 1700000000000, codec)
    assert len(got) == len(messages)
    for m, (md, value) in zip(messages, got, strict=True):
        expect = PLAN.apply(None if m["key"] is None else m["key"].encode(), None if m["null"] else m["value"],
                            [(k, v.encode()) for k, v in m["props"].items()])
        assert value == (b"" if m["null"] else expect.value)
        assert md.event_time == m["event_time"]
        assert (md.partition_key if md.HasField("partition_key") else None) == m["key"]
        assert {kv.key: kv.value.encode() for kv in md.properties} == dict(expect.headers)
        for s in SSNS:
            assert s.encode() not in value
    if not done.changed:
        assert done.payload is payload
    else:
        assert done.messages >= 1 and sum(done.fields.values()) >= 1


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_corrupt_payload_is_refused_never_laundered(data: Any) -> None:
    payload = build([{"value": b'{"card": "4111111111111111"}', "key": "k", "props": {}, "event_time": 1, "null": False}],
                    data.draw(st.sampled_from(sorted(codecs.NAMES))), data.draw(st.booleans()))
    i = data.draw(st.integers(0, len(payload) - 1))
    flipped = payload[:i] + bytes([payload[i] ^ data.draw(st.integers(1, 255))]) + payload[i + 1 :]
    with pytest.raises(PayloadRefused) as e:
        mask_payload(flipped, PLAN, LIMIT)
    assert e.value.kind == "corrupt_payload"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_bytes_with_a_valid_checksum_are_masked_or_refused_nothing_else(data: Any) -> None:
    import google_crc32c

    messages = [{"value": b'{"card": "4111111111111111", "n": 1}', "key": "k", "props": {"note": "x"}, "event_time": 1,
                 "null": False}] * data.draw(st.integers(1, 3))
    batched = len(messages) > 1 or data.draw(st.booleans())
    payload = build(messages, data.draw(st.sampled_from(sorted(codecs.NAMES))), batched)
    checked = bytearray(payload[6:])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(checked) - 1))
        checked[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        checked = checked[: data.draw(st.integers(0, len(checked)))]
    mutated = payload[:2] + U32.pack(google_crc32c.value(bytes(checked))) + bytes(checked)
    try:
        done = mask_payload(mutated, PLAN, LIMIT)
    except PayloadRefused as e:
        assert e.kind in {"corrupt_payload", "corrupt_batch", "too_large", "encrypted", "chunked", "record_refused"}
        return
    # What was masked is what the plan makes of each message the mutated payload holds.
    _, before = read(mutated)
    _, after = read(done.payload)
    assert len(before) == len(after)
    for (md, value), (_, masked) in zip(before, after, strict=True):
        props = [(kv.key, kv.value.encode()) for kv in md.properties]
        expect = PLAN.apply(None, None if md.null_value else value, props).value
        assert masked == (value if md.null_value else expect)


def test_a_compression_gatekeeper_does_not_know_is_refused() -> None:
    unknown = _meta().SerializePartialToString() + b"\x40\x07"  # compression = 7
    import google_crc32c

    checked = U32.pack(len(unknown)) + unknown + b'{"card": "4111111111111111"}'
    payload = struct.pack(">HI", 0x0E01, google_crc32c.value(checked)) + checked
    assert "compression" in _refused(payload).reason


def _refused(payload: bytes, plan: Any = PLAN, limit: int = LIMIT) -> PayloadRefused:
    with pytest.raises(PayloadRefused) as e:
        mask_payload(payload, plan, limit)
    return e.value


def test_encrypted_chunked_and_oversized_payloads_are_refused_with_a_reason() -> None:
    body = b'{"card": "4111111111111111"}'
    encrypted = _meta(uncompressed_size=len(body))
    encrypted.encryption_keys.add(key="k", value=b"v")
    assert _refused(build_payload(encrypted, body)).kind == "encrypted"
    chunked = _meta(num_chunks_from_msg=3, chunk_id=0, uncompressed_size=len(body))
    e = _refused(build_payload(chunked, body))
    assert e.kind == "chunked" and "chunk 0 of 3" in e.reason
    big = b"{}" + b" " * 100_000
    bomb = _meta(compression=wire.ZSTD, uncompressed_size=len(big))
    assert _refused(build_payload(bomb, codecs.compress(codecs.ZSTD, big)), limit=50_000).kind == "too_large"
    lying = _meta(compression=wire.LZ4, uncompressed_size=len(body) + 1)
    assert _refused(build_payload(lying, codecs.compress(codecs.LZ4, body))).kind == "corrupt_payload"
    batch = _meta(num_messages_in_batch=2, uncompressed_size=0)
    one = write_batch([Entry(wire.SingleMessageMetadata(payload_size=0), body)])
    assert _refused(build_payload(batch, one)).kind == "corrupt_batch"
    assert _refused(build_payload(_meta(), b"not JSON"), plan=STRICT).kind == "record_refused"


def test_broker_entry_metadata_in_front_is_kept_and_an_untouched_payload_is_the_same_bytes() -> None:
    inner = build_payload(_meta(), b'{"card": "4111111111111111", "n": 1}')
    prefix = struct.pack(">H", 0x0E02) + U32.pack(5) + b"\x08\x01\x10\x02\x00"
    done = mask_payload(prefix + inner, PLAN, LIMIT)
    assert done.payload.startswith(prefix)
    assert json.loads(read(done.payload[len(prefix) :])[1][0][1]) == {"card": "************1111", "n": 1}
    plain = build_payload(_meta(), b'{"n": 1}')
    assert mask_payload(plain, PLAN, LIMIT).payload is plain


def test_unknown_metadata_fields_survive_masking() -> None:
    meta = _meta()
    raw = meta.SerializePartialToString() + b"\xa8\x01\x07"  # field 21 (varint 7), unknown to Gatekeeper
    body = b'{"card": "4111111111111111"}'
    checked = U32.pack(len(raw)) + raw + body
    import google_crc32c

    payload = struct.pack(">HI", 0x0E01, google_crc32c.value(checked)) + checked
    done = mask_payload(payload, PLAN, LIMIT)
    out_meta = read_payload(done.payload).metadata
    assert b"\xa8\x01\x07" in out_meta.SerializePartialToString()


@pytest.mark.parametrize("codec", sorted(codecs.NAMES))
def test_codecs_round_trip_and_refuse_trailing_bytes(codec: int) -> None:
    data = b'{"card": "4111"}' * 100
    packed = codecs.compress(codec, data)
    assert codecs.decompress(codec, packed, len(data), LIMIT) == data
    if codec != codecs.NONE:
        with pytest.raises(codecs.CodecError):
            codecs.decompress(codec, packed + b"\x00\x01", len(data), LIMIT)
        with pytest.raises(codecs.OutputLimit):
            codecs.decompress(codec, packed, len(data), len(data) - 1)


@pytest.mark.parametrize("codec", [codecs.LZ4, codecs.SNAPPY])
def test_the_most_compressible_data_still_reads_and_a_bigger_declared_size_is_refused_before_allocating(codec: int) -> None:
    data = b"\0" * (4 << 20)
    packed = codecs.compress(codec, data)
    assert codecs.decompress(codec, packed, len(data), LIMIT) == data
    tiny = codecs.compress(codec, b"{}")
    with pytest.raises(codecs.CodecError, match="cannot hold"):
        codecs.decompress(codec, tiny if codec == codecs.LZ4 else b"\x80\x80\x80\x08" + tiny[1:], 1 << 24, LIMIT)


def test_a_batch_must_be_exactly_its_entries() -> None:
    one = write_batch([Entry(wire.SingleMessageMetadata(payload_size=0), b"abc")])
    assert [e.value for e in read_batch(one, 1)] == [b"abc"]
    for bad, count in ((one + b"\x00", 1), (one[:-1], 1), (one, 2), (one, 0)):
        with pytest.raises(BatchError):
            read_batch(bad, count)


# -- the connection core --------------------------------------------------------------------


class RecordingIO:
    def __init__(self) -> None:
        self.client: list[bytes] = []
        self.upstream: list[bytes] = []
        self.decisions: list[tuple[int, list[dict[str, Any]]]] = []
        self.closed = False
        self.offloaded: list[Any] = []

    def to_client(self, data: Any) -> None:
        self.client.extend(data)

    def to_upstream(self, data: Any) -> None:
        self.upstream.extend(data)

    def connect_upstream(self, target: Any) -> None:
        pass

    def decide(self, token: int, inputs: list[dict[str, Any]]) -> None:
        self.decisions.append((token, inputs))

    def close(self, abort_upstream: bool = False) -> None:
        self.closed = True

    def call_later(self, seconds: float, fn: Any) -> Any:
        class _Timer:
            def active(self) -> bool:
                return False

            def cancel(self) -> None:
                pass

        return _Timer()

    def pause_client(self) -> None:
        pass

    def resume_client(self) -> None:
        pass

    def offload(self, work: Any, done: Any) -> None:
        self.offloaded.append((work, done))

    def peer_principal(self) -> Any:
        return None

    def hold(self, token: int, requests: list[dict[str, Any]], wait: float) -> None:
        raise AssertionError("nothing is held here")


class Metrics:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, n: float = 1, **labels: str) -> None:
        self.counts[(name, tuple(sorted(labels.items())))] += int(n)


TOPIC = "persistent://public/default/orders"


def _ready(client_version: str = "t", trail: Any = None) -> tuple[PulsarConnection, RecordingIO, Metrics]:
    metrics = Metrics()
    s = PulsarSettings(clock=lambda: 1700000000.0, identity=None, metrics=metrics, authentication_timeout=10,
                       inputs_decoded=lambda inputs: None, grants_for=lambda p, now: [],
                       upstream_token=lambda: None, masking=MASKING, max_decompressed=LIMIT, audit=trail)
    listener = ListenerSettings(name="pulsar", brokers=None, service=(HostPort("127.0.0.1", 6650),),  # type: ignore[arg-type]
                                auth_required=False)
    io = RecordingIO()
    conn = PulsarConnection(s, listener, None, io)
    conn.start("127.0.0.1", 50000)
    conn.client_data(encode_frame(c.serialize(wire.BaseCommand(type=wire.BaseCommand.CONNECT,
                                                               connect=wire.CommandConnect(client_version=client_version, protocol_version=21)))))
    assert conn.session.principal == ANONYMOUS
    conn.upstream_connected()
    conn.upstream_data(encode_frame(c.serialize(wire.BaseCommand(type=wire.BaseCommand.CONNECTED,
                                                                 connected=wire.CommandConnected(server_version="b")))))
    io.upstream.clear()
    io.client.clear()
    return conn, io, metrics


MASK = Decision("mask", "cards are masked", mask=tuple(RULES))


def _decide(conn: PulsarConnection, io: RecordingIO, frame: bytes, decision: Decision) -> None:
    conn.client_data(frame)
    token, inputs = io.decisions[-1]
    # A PRODUCER or SUBSCRIBE may create its topic: create_topic is decided too (allowed here).
    conn.decided(token, [decision] + [Decision("allow", "ok")] * (len(inputs) - 1))


def _frames(data: list[bytes]) -> list[tuple[wire.BaseCommand, bytes]]:
    d = FrameDecoder()
    for chunk in data:
        d.receive_data(chunk)
    out = []
    while (f := d.next_frame()) is not None:
        out.append((c.parse_command(f.command), f.payload))
    return out


def _producer(conn: PulsarConnection, io: RecordingIO, decision: Decision) -> None:
    producer = wire.BaseCommand(type=wire.BaseCommand.PRODUCER,
                                producer=wire.CommandProducer(topic=TOPIC, producer_id=1, request_id=1))
    _decide(conn, io, encode_frame(c.serialize(producer)), decision)


def _send(conn: PulsarConnection, io: RecordingIO, payload: bytes, sequence_id: int = 7, highest: int = 0) -> None:
    send = wire.BaseCommand(type=wire.BaseCommand.SEND, send=wire.CommandSend(producer_id=1, sequence_id=sequence_id))
    if highest:
        send.send.highest_sequence_id = highest
    # The SEND itself is allowed: the producer's mask still applies to it.
    _decide(conn, io, encode_frame(c.serialize(send), payload), Decision("allow", "ok"))


def _producer_and_send(conn: PulsarConnection, io: RecordingIO, producer_decision: Decision, payload: bytes) -> None:
    _producer(conn, io, producer_decision)
    _send(conn, io, payload)


def test_a_masked_producer_sends_masked_payloads_to_the_broker() -> None:
    conn, io, metrics = _ready()
    _producer_and_send(conn, io, MASK, build_payload(_meta(), b'{"card": "4111111111111111"}'))
    (producer, _), (send, payload) = _frames(io.upstream)
    assert producer.type == wire.BaseCommand.PRODUCER and send.send.sequence_id == 7
    assert read(payload)[1][0][1] == b'{"card":"************1111"}'
    assert metrics.counts[("gatekeeper_masked_records_total", (("direction", "produce"), ("topic", TOPIC)))] == 1
    assert not io.closed


def test_a_send_that_cannot_be_masked_is_refused_and_never_forwarded() -> None:
    conn, io, metrics = _ready()
    encrypted = _meta()
    encrypted.encryption_keys.add(key="k", value=b"v")
    _producer_and_send(conn, io, MASK, build_payload(encrypted, b'{"card": "4111111111111111"}'))
    assert [cmd.type for cmd, _ in _frames(io.upstream)] == [wire.BaseCommand.PRODUCER]
    ((error, _),) = _frames(io.client)
    assert error.type == wire.BaseCommand.SEND_ERROR and "encrypted" in error.send_error.message
    assert io.closed
    assert metrics.counts[("gatekeeper_mask_errors_total", (("kind", "encrypted"),))] == 1


def _receipt(sequence_id: int) -> bytes:
    return encode_frame(c.serialize(wire.BaseCommand(type=wire.BaseCommand.SEND_RECEIPT, send_receipt=wire.CommandSendReceipt(
        producer_id=1, sequence_id=sequence_id))))


@pytest.mark.parametrize(("version", "error", "sequence_id"), [
    ("Pulsar-CPP-v4.2.0", wire.ChecksumError, 8), ("Pulsar-Java-v4.0.7", wire.NotAllowedError, 10)])
def test_a_known_client_fails_only_that_send_after_the_answers_to_earlier_ones(version: str, error: int,
                                                                                 sequence_id: int) -> None:
    conn, io, _ = _ready(version)
    _producer(conn, io, MASK)
    good = build_payload(_meta(), b'{"card": "4111111111111111"}')
    _send(conn, io, good, sequence_id=7)
    _send(conn, io, build_payload(_meta(), b"not JSON"), sequence_id=8, highest=10)  # a batch 8..10
    assert not io.client, "the refusal waits for the broker's answer to SEND 7"
    _send(conn, io, good, sequence_id=11)
    conn.upstream_data(_receipt(7))
    (receipt, _), (refusal, _) = _frames(io.client)
    assert receipt.send_receipt.sequence_id == 7
    assert refusal.type == wire.BaseCommand.SEND_ERROR and refusal.send_error.error == error
    assert refusal.send_error.sequence_id == sequence_id and "not JSON" in refusal.send_error.message
    conn.upstream_data(_receipt(11))
    assert [cmd.send_receipt.sequence_id for cmd, _ in _frames(io.client)[2:]] == [11]
    sent = [cmd.send.sequence_id for cmd, _ in _frames(io.upstream) if cmd.type == wire.BaseCommand.SEND]
    assert sent == [7, 11] and not io.closed
    _send(conn, io, build_payload(_meta(), b"not JSON either"), sequence_id=12)
    assert _frames(io.client)[-1][0].send_error.sequence_id == 12, "nothing outstanding: answered at once"


def test_a_large_send_is_masked_off_the_reactor_and_later_commands_wait() -> None:
    conn, io, _ = _ready()
    big = json.dumps({"card": "4111111111111111", "pad": "x" * 70_000}).encode()
    _producer_and_send(conn, io, MASK, build_payload(_meta(), big))
    close = wire.BaseCommand(type=wire.BaseCommand.CLOSE_PRODUCER,
                             close_producer=wire.CommandCloseProducer(producer_id=1, request_id=9))
    conn.client_data(encode_frame(c.serialize(close)))
    assert [cmd.type for cmd, _ in _frames(io.upstream)] == [wire.BaseCommand.PRODUCER]
    ((work, done),) = io.offloaded
    done(work())
    types = [cmd.type for cmd, _ in _frames(io.upstream)]
    assert types == [wire.BaseCommand.PRODUCER, wire.BaseCommand.SEND, wire.BaseCommand.CLOSE_PRODUCER]
    assert b"4111111111111111" not in b"".join(io.upstream)


def test_a_mask_that_cannot_be_compiled_or_an_encrypting_producer_is_a_deny() -> None:
    conn, io, _ = _ready()
    producer = wire.BaseCommand(type=wire.BaseCommand.PRODUCER,
                                producer=wire.CommandProducer(topic=TOPIC, producer_id=1, request_id=1, encrypted=True))
    _decide(conn, io, encode_frame(c.serialize(producer)), MASK)
    ((error, _),) = _frames(io.client)
    assert error.type == wire.BaseCommand.ERROR and "encrypts its messages" in error.error.message
    producer.producer.encrypted = False
    _decide(conn, io, encode_frame(c.serialize(producer)), Decision("mask", "bad", mask=({"field": "$.a", "masker": "nope"},)))
    assert "mask cannot be applied" in _frames(io.client)[1][0].error.message
    assert not io.upstream


def _subscribe(conn: PulsarConnection, io: RecordingIO, decision: Decision, consumer_id: int = 3) -> None:
    sub = wire.BaseCommand(type=wire.BaseCommand.SUBSCRIBE, subscribe=wire.CommandSubscribe(
        topic=TOPIC, subscription="s", subType=wire.CommandSubscribe.Shared, consumer_id=consumer_id, request_id=2))
    _decide(conn, io, encode_frame(c.serialize(sub)), decision)


def _message(consumer_id: int, payload: bytes) -> bytes:
    cmd = wire.BaseCommand(type=wire.BaseCommand.MESSAGE, message=wire.CommandMessage(
        consumer_id=consumer_id, message_id=wire.MessageIdData(ledgerId=5, entryId=9)))
    return encode_frame(c.serialize(cmd), payload)


def test_messages_for_a_masked_consumer_are_masked_others_pass_as_their_bytes() -> None:
    conn, io, _ = _ready()
    _subscribe(conn, io, MASK, consumer_id=3)
    _subscribe(conn, io, Decision("allow", "owner"), consumer_id=4)
    payload = build([{"value": b'{"card": "4111111111111111"}', "key": "k", "props": {}, "event_time": 5, "null": False}] * 2,
                    codecs.LZ4, True)
    raw_for_owner = _message(4, payload)
    conn.upstream_data(_message(3, payload) + raw_for_owner)
    (masked, masked_payload), (raw, raw_payload) = _frames(io.client)
    assert masked.message.consumer_id == 3 and raw.message.consumer_id == 4
    assert [v for _, v in read(masked_payload)[1]] == [b'{"card":"************1111"}'] * 2
    assert raw_payload == payload and io.client[-1] == raw_for_owner


def test_a_message_that_cannot_be_masked_closes_its_consumer_and_is_never_delivered() -> None:
    conn, io, metrics = _ready()
    _subscribe(conn, io, MASK, consumer_id=3)
    _subscribe(conn, io, MASK, consumer_id=4)
    io.upstream.clear()
    good = build_payload(_meta(), b'{"card": "4111111111111111"}')
    corrupt = bytearray(good)
    corrupt[-3] ^= 0x20
    conn.upstream_data(_message(3, good) + _message(3, bytes(corrupt)) + _message(3, good) + _message(4, good))
    cmds = [cmd for cmd, _ in _frames(io.client)]
    # The good one masked, the consumer closed, the MESSAGE sent after it dropped, the other consumer served.
    assert [(x.type, x.message.consumer_id or x.close_consumer.consumer_id) for x in cmds] == [
        (wire.BaseCommand.MESSAGE, 3), (wire.BaseCommand.CLOSE_CONSUMER, 3), (wire.BaseCommand.MESSAGE, 4)]
    assert b"4111111111111111" not in b"".join(io.client)
    ((close, _),) = _frames(io.upstream)
    assert close.type == wire.BaseCommand.CLOSE_CONSUMER and close.close_consumer.consumer_id == 3
    assert close.close_consumer.request_id >= 1 << 63
    assert not io.closed
    assert metrics.counts[("gatekeeper_mask_errors_total", (("kind", "corrupt_payload"),))] == 1
    # The broker's answer to Gatekeeper's close is not the client's; then the consumer is served again.
    success = wire.BaseCommand(type=wire.BaseCommand.SUCCESS, success=wire.CommandSuccess(request_id=close.close_consumer.request_id))
    io.client.clear()
    conn.upstream_data(encode_frame(c.serialize(success)) + _message(3, good))
    ((again, payload),) = _frames(io.client)
    assert again.message.consumer_id == 3 and read(payload)[1][0][1] == b'{"card":"************1111"}'


def test_keys_are_masked_as_text_or_as_base64_bytes_as_they_came() -> None:
    plan = MASKING.plan([{"detector": "email", "masker": "redact", "in": "key"}], "produce")
    plain = _meta(partition_key="ada@example.com")
    done = mask_payload(build_payload(plain, b"v"), plan, LIMIT)
    assert read_payload(done.payload).metadata.partition_key == "****"
    encoded = _meta(partition_key="YWRhQGV4YW1wbGUuY29t", partition_key_b64_encoded=True)  # ada@example.com
    meta = read_payload(mask_payload(build_payload(encoded, b"v"), plan, LIMIT).payload).metadata
    assert (meta.partition_key, meta.partition_key_b64_encoded) == ("KioqKg==", True)
    # A batch's own key (key-based batching) is masked as well as its entries' keys.
    entry = Entry(wire.SingleMessageMetadata(payload_size=0, partition_key="grace@example.org"), b"v")
    batch = _meta(num_messages_in_batch=1, partition_key="grace@example.org")
    meta, got = read(mask_payload(build_payload(batch, write_batch([entry])), plan, LIMIT).payload)
    assert meta.partition_key == "****" and got[0][0].partition_key == "****"
    bad = _meta(partition_key="not base64!", partition_key_b64_encoded=True)
    assert _refused(build_payload(bad, b"v"), plan=plan).kind == "corrupt_payload"


def test_a_sync_flushed_zlib_stream_as_the_java_client_writes_it_is_read() -> None:
    import zlib

    data = b'{"card": "4111111111111111"}' * 50
    d = zlib.compressobj()
    flushed = d.compress(data) + d.flush(zlib.Z_SYNC_FLUSH)  # no final block, no Adler-32
    assert codecs.decompress(codecs.ZLIB, flushed, len(data), LIMIT) == data
    with pytest.raises(codecs.CodecError):
        codecs.decompress(codecs.ZLIB, flushed[: len(flushed) // 2], len(data), LIMIT)
    finished = zlib.compress(data)
    with pytest.raises(codecs.CodecError):
        codecs.decompress(codecs.ZLIB, finished + b"\x00", len(data), LIMIT)


def test_a_large_message_is_masked_off_the_reactor_and_later_frames_wait_for_it() -> None:
    conn, io, _ = _ready()
    _subscribe(conn, io, MASK, consumer_id=3)
    _subscribe(conn, io, Decision("allow", "owner"), consumer_id=4)
    small = build_payload(_meta(), b'{"card": "4111111111111111"}')
    big = build_payload(_meta(), json.dumps({"card": "4111111111111111", "pad": "x" * 70_000}).encode())
    conn.upstream_data(_message(3, small) + _message(3, big) + _message(4, small))
    assert [cmd.message.consumer_id for cmd, _ in _frames(io.client)] == [3], "the frames after the big one wait"
    conn.upstream_data(_message(3, small))
    assert len(_frames(io.client)) == 1
    ((work, done),) = io.offloaded
    done(work())
    got = _frames(io.client)
    assert [cmd.message.consumer_id for cmd, _ in got] == [3, 3, 4, 3]
    assert json.loads(read(got[1][1])[1][0][1])["card"] == "************1111"
    assert got[2][1] == small, "the owner's message passes as its bytes"


def test_the_audit_trail_says_what_was_masked() -> None:
    from tests.unit.test_pulsar_connection import FakeTrail

    trail = FakeTrail()
    conn, io, _ = _ready(trail=trail)
    _producer(conn, io, MASK)
    _send(conn, io, build_payload(_meta(), b'{"card": "4111111111111111"}'), sequence_id=7)
    success = wire.BaseCommand(type=wire.BaseCommand.PRODUCER_SUCCESS,
                               producer_success=wire.CommandProducerSuccess(request_id=1, producer_name="p-1"))
    conn.upstream_data(encode_frame(c.serialize(success)) + _receipt(7))
    sends = [r for r in trail.of("request") if r["api"]["name"] == "SEND"]
    assert [op["enforced"] for op in sends[0]["operations"]] == [
        {"result": "masked", "masked_records": 1, "masked_fields": 1}]
    producers = [r for r in trail.of("request") if r["api"]["name"] == "PRODUCER"]
    assert [op["enforced"]["result"] for op in producers[0]["operations"]] == ["masked", "forwarded"]  # + create_topic
    assert b"4111111111111111" not in json.dumps(trail.records).encode()
