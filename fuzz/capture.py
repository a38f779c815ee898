"""Seed corpora from real traffic: kafka-python, confluent-kafka (librdkafka) and the Java
tools run against a real broker through a recording TCP relay; the frames each side sent are
cut into seeds for every harness (``fuzz/corpus/<harness>/``).

    python -m fuzz.capture [RAW] [--again]   # needs the test harness's Kafka (harness/deps.py)

RAW (default /tmp/gatekeeper-fuzz-capture.json) keeps the captured frames; when it exists the
seeds are cut from it again without a broker, unless ``--again`` asks for a new capture.

The broker advertises the relay's ports, so every connection a client opens (bootstrap,
partition leader, coordinator) goes through it, on the PLAINTEXT and the SASL_PLAINTEXT (PLAIN)
listener. Seeds are kept small: a few per API key and version, a few KB each.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import select
import socket
import struct
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from fuzz.runner import CORPUS

_MAX_SEED = 8192
_PER_KEY_VERSION = 2


class Relay:
    """A TCP relay to ``target()`` that records each connection's bytes, in order, per side."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections: list[list[tuple[str, bytes]]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            record: list[tuple[str, bytes]] = []
            with self._lock:
                self.connections.append(record)
            threading.Thread(target=self._pump, args=(client, record), daemon=True).start()

    def _pump(self, client: socket.socket, record: list[tuple[str, bytes]]) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target()))
        peers = {client: (upstream, "c"), upstream: (client, "b")}
        try:
            while True:
                ready, _, _ = select.select(list(peers), [], [], 60)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    other, side = peers[s]
                    record.append((side, data))
                    other.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()


def _frames(stream: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 4 <= len(stream):
        (n,) = struct.unpack_from(">i", stream, pos)
        if n < 0 or pos + 4 + n > len(stream):
            break
        out.append(stream[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def _run_clients(broker: Any, topic: str) -> None:
    import confluent_kafka
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    from harness import javatools

    sasl = broker.kafka_python_sasl_config("PLAIN")
    sasl["bootstrap_servers"] = f"127.0.0.1:{broker.relay_sasl}"
    plain = f"127.0.0.1:{broker.relay_plain}"
    record = json.dumps({"card": "4111111111111111", "email": "a@example.com", "n": 1}).encode()
    # kafka-python: admin, producers (gzip, lz4, zstd) with headers, a group consumer; and over SASL PLAIN.
    admin = KafkaAdminClient(bootstrap_servers=plain)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.describe_topics([topic])
    admin.close()
    for codec in ("gzip", "lz4", "zstd", None):
        p = KafkaProducer(bootstrap_servers=plain, compression_type=codec, linger_ms=5)
        for i in range(3):
            p.send(topic, key=b"k%d" % i, value=record, headers=[("h", b"v"), ("n", b"")])
        p.flush()
        p.close()
    c = KafkaConsumer(topic, bootstrap_servers=plain, group_id="kp-group", auto_offset_reset="earliest", consumer_timeout_ms=4000)
    sum(1 for _ in c)
    c.commit()
    c.close()
    p = KafkaProducer(acks=0, **sasl)
    p.send(topic, value=record)
    p.flush()
    p.close()
    c = KafkaConsumer(topic, group_id="kp-sasl", auto_offset_reset="earliest", consumer_timeout_ms=3000, **sasl)
    sum(1 for _ in c)
    c.close()
    # confluent-kafka (librdkafka): idempotent producer with snappy and zstd, a group consumer, over both listeners.
    for conf in ({"bootstrap.servers": plain}, {"bootstrap.servers": sasl["bootstrap_servers"], "security.protocol": "SASL_PLAINTEXT",
                                                "sasl.mechanism": "PLAIN", "sasl.username": sasl["sasl_plain_username"],
                                                "sasl.password": sasl["sasl_plain_password"]}):
        for codec in ("snappy", "zstd"):
            p = confluent_kafka.Producer({**conf, "compression.codec": codec, "enable.idempotence": True, "linger.ms": 5})
            for i in range(3):
                p.produce(topic, key=b"c%d" % i, value=record, headers={"h": b"v"})
            p.flush(10)
        c = confluent_kafka.Consumer({**conf, "group.id": "rd-group", "auto.offset.reset": "earliest"})
        c.subscribe([topic])
        deadline = time.time() + 8
        while time.time() < deadline:
            c.poll(0.5)
        try:
            c.commit(asynchronous=False)
        except confluent_kafka.KafkaException:  # nothing consumed on this listener: nothing to commit
            pass
        c.close()
    # The Java tools: console producer (lz4) and consumer, plain and over SASL PLAIN.
    javatools.console_produce(plain, topic, ["java-1", "java-2"], compression="lz4")
    javatools.console_consume(plain, topic, max_messages=3, group="java-group", timeout_ms=5000)
    props = broker.java_sasl_properties("PLAIN")
    javatools.console_produce(sasl["bootstrap_servers"], topic, ["java-3"], properties=props)
    javatools.console_consume(sasl["bootstrap_servers"], topic, max_messages=2, timeout_ms=5000, properties=props)


def capture(raw_out: Path) -> list[list[tuple[str, bytes]]]:
    from harness.broker import KafkaBroker

    plain_relay = Relay(lambda: broker.port)
    sasl_relay = Relay(lambda: broker.sasl_port)

    class RelayedBroker(KafkaBroker):
        relay_plain, relay_sasl = plain_relay.port, sasl_relay.port

        def _server_properties(self) -> dict[str, str]:
            props = super()._server_properties()
            props["advertised.listeners"] = (f"PLAINTEXT://127.0.0.1:{self.relay_plain},"
                                             f"SASL_PLAINTEXT://127.0.0.1:{self.relay_sasl}")
            return props

    broker = RelayedBroker(heap="512m")
    with broker:
        _run_clients(broker, f"fuzz-{uuid.uuid4().hex[:6]}")
        time.sleep(1)
    conns = plain_relay.connections + sasl_relay.connections
    raw_out.write_text(json.dumps([[(side, data.hex()) for side, data in c] for c in conns]))
    return conns


def seeds(conns: list[list[tuple[str, bytes]]]) -> dict[str, dict[str, bytes]]:
    """The seeds of each harness from the recorded connections."""
    from fuzz import connection_core
    from gatekeeper.kafka import codec
    from gatekeeper.kafka.codec import API_TABLE

    out: dict[str, dict[str, bytes]] = defaultdict(dict)
    per_request: dict[tuple[int, int], int] = defaultdict(int)
    per_response: dict[tuple[int, int], int] = defaultdict(int)

    def keep(harness: str, data: bytes) -> None:
        if len(data) <= _MAX_SEED:
            out[harness][hashlib.sha1(data).hexdigest()[:16]] = data

    for conn in conns:
        client = b"".join(d for s, d in conn if s == "c")
        broker = b"".join(d for s, d in conn if s == "b")
        requests = _frames(client)
        if client[:4096]:
            keep("frames", bytes([len(out["frames"]) % 17]) + client[:4096])
        sent: dict[int, tuple[int, int]] = {}
        sasl_raw = False
        for f in requests:
            if len(f) < 8:
                continue
            key, version, cid = struct.unpack_from(">hhi", f)
            if sasl_raw:  # a SaslHandshake v0 token frame
                sasl_raw = False
                continue
            sent[cid] = (key, version)
            sasl_raw = key == 17 and version == 0
            if per_request[(key, version)] < _PER_KEY_VERSION:
                per_request[(key, version)] += 1
                keep("request_bodies", f)
            if key == 0:
                try:
                    _h, _s, body, _t = codec.decode_request(f)
                except codec.CodecError:
                    continue
                for t in body.topic_data:
                    for p in t.partition_data:
                        if p.records:
                            keep("record_batches", b"\x00" + bytes(p.records))
                            keep("record_batches", b"\x02" + bytes(p.records))
            if key == 36:
                try:
                    _h, _s, body, _t = codec.decode_request(f)
                    keep("sasl_jwt", b"\x01" + bytes(body.auth_bytes))
                except codec.CodecError:
                    pass
        for f in _frames(broker):
            (cid,) = struct.unpack_from(">i", f)
            kv = sent.get(cid)
            if kv is None:
                continue
            key, version = kv
            if per_response[kv] < _PER_KEY_VERSION:
                per_response[kv] += 1
                keep("broker_responses", struct.pack(">hh", key, version) + f)
            if key == 1 and key in API_TABLE:
                try:
                    _head, body = codec.decode_response_body(f, API_TABLE[1], version)
                except codec.CodecError:
                    continue
                for t in body.responses or ():
                    for p in t.partitions or ():
                        if p.records:
                            keep("record_batches", b"\x01" + bytes(p.records)[:_MAX_SEED - 1])
        steps: list[tuple[int, bytes]] = []
        for side, data in conn:
            steps.append((0 if side == "c" else 1, data))
            if side == "c":
                steps.append((2, b"\x00"))  # allow what was asked
            if sum(len(a) for _, a in steps) > 2900:
                break
        if steps:
            keep("connection_core", connection_core.encode(0, steps))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="Seed the fuzz corpora from real clients' traffic.")
    parser.add_argument("raw", nargs="?", type=Path, default=Path("/tmp/gatekeeper-fuzz-capture.json"),
                        help="where the captured frames are kept (read again when it exists)")
    parser.add_argument("--again", action="store_true", help="capture anew even when RAW exists")
    args = parser.parse_args()
    raw: Path = args.raw
    if raw.exists() and not args.again:
        conns = [[(s, bytes.fromhex(h)) for s, h in c] for c in json.loads(raw.read_text())]
    else:
        conns = capture(raw)
    total = 0
    for harness, files in sorted(seeds(conns).items()):
        d = CORPUS / harness
        d.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (d / f"real-{name}").write_bytes(data)
            total += len(data)
        print(f"{harness}: {len(files)} seeds")
    print(f"{total} bytes of seeds from {len(conns)} connections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
