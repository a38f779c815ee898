"""Mask decisions for Pulsar through ``twistd gatekeeper`` in front of a real Pulsar standalone
broker, driven by Pulsar's C++ client (``pulsar-client``).

Produce: messages sent through Gatekeeper to ``pmask-*`` topics are read back directly from
the broker, batched and not, with every compression the client offers: the broker stored them
masked. Consume: raw messages put in the broker directly are read through Gatekeeper masked by
``svc-reader`` and raw by ``svc-orders``. A non-JSON message on a ``pstrict-*`` topic is refused
and never stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pulsar = pytest.importorskip("pulsar")
pytest.importorskip("gatekeeper_pulsar.adapter", reason="the gatekeeper-pulsar plugin distribution is not installed")

from harness import deps  # noqa: E402
from harness.ports import LOOPBACK  # noqa: E402
from tests.integration.test_pulsar import IDP, PulsarGateway  # noqa: E402

POLICY = """
package gatekeeper

default decision := {"action": "allow", "reason": "open"}

decision := {"action": "mask", "reason": "cards and SSNs are masked before they are stored", "mask": [
    {"field": "$.card", "masker": "redact"},
    {"detector": "us_ssn", "masker": "redact"},
    {"detector": "credit_card", "masker": "redact", "in": "header:note*"},
]} if {
    input.operation == "produce"
    contains(input.resource.name, "/pmask-")
} else := {"action": "mask", "reason": "messages must be JSON", "mask": [
    {"field": "$.card", "masker": "redact"},
]} if {
    input.operation == "produce"
    contains(input.resource.name, "/pstrict-")
} else := {"action": "mask", "reason": "cards are masked for readers", "mask": [
    {"field": "$.card", "masker": "last4"},
]} if {
    input.operation == "consume"
    contains(input.resource.name, "/cmask-")
    input.principal.sub == "svc-reader"
} else := {"action": "mask", "reason": "readers get JSON or nothing", "mask": [
    {"field": "$.card", "masker": "redact", "on_error": "deny"},
]} if {
    input.operation == "consume"
    contains(input.resource.name, "/cdeny-")
}
"""

CARD = "4111111111111111"
COMPRESSIONS = ["NONE", "LZ4", "ZLib", "ZSTD", "SNAPPY"]


MaskingGateway = PulsarGateway


@pytest.fixture(scope="module")
def gateway(pulsar_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MaskingGateway]:
    gw = PulsarGateway(tmp_path_factory.mktemp("pulsar-mask-gw"), pulsar_broker, policy=POLICY)
    with gw:
        yield gw


def _through(gw: MaskingGateway, sub: str) -> Any:
    token = IDP.token(**IDP.claims(sub=sub))
    return pulsar.Client(gw.service_url, authentication=pulsar.AuthenticationToken(token),
                         operation_timeout_seconds=10, connection_timeout_ms=5000)


def _direct(broker: Any) -> Any:
    return pulsar.Client(broker.service_url, operation_timeout_seconds=10)


def _topic(kind: str) -> str:
    return f"persistent://public/default/{kind}-{uuid.uuid4().hex[:8]}"


def _doc(i: int) -> bytes:
    return json.dumps({"card": CARD, "n": i, "note": f"ssn 123-45-6789 of order {i}"}).encode()


def _metric(gw: MaskingGateway, name: str, *labels: str) -> float:
    """The sum of the /metrics series ``name`` whose labels include every one of ``labels``."""
    text = urllib.request.urlopen(f"http://{LOOPBACK}:{gw.admin_port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and all(label in line for label in labels))


def _read_all(client: Any, topic: str, n: int) -> list[Any]:
    reader = client.create_reader(topic, pulsar.MessageId.earliest)
    out = [reader.read_next(timeout_millis=10000) for _ in range(n)]
    assert not reader.has_message_available(), "the broker holds more messages than were sent"
    return out


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_produce_is_masked_before_the_broker_stores_it(gateway, pulsar_broker, compression, batched):
    topic = _topic("pmask")
    client = _through(gateway, "svc-orders")
    try:
        producer = client.create_producer(topic, batching_enabled=batched, batching_max_messages=10,
                                          batching_max_publish_delay_ms=50,
                                          compression_type=getattr(pulsar.CompressionType, compression))
        for i in range(6):
            producer.send_async(_doc(i), None, partition_key=f"order-{i}", event_timestamp=1700000000000 + i,
                                properties={"note": f"card {CARD}", "trace": f"t{i}"})
        producer.flush()
        producer.close()
    finally:
        client.close()
    direct = _direct(pulsar_broker)
    try:
        got = _read_all(direct, topic, 6)
    finally:
        direct.close()
    for i, msg in enumerate(got):
        value = json.loads(msg.data())
        assert value == {"card": "****", "n": i, "note": "ssn **** of order " + str(i)}
        assert CARD.encode() not in msg.data()
        # What nothing matched is kept: key, event time, other properties, order.
        assert msg.partition_key() == f"order-{i}"
        assert msg.event_timestamp() == 1700000000000 + i
        assert msg.properties() == {"note": "card ****", "trace": f"t{i}"}
    assert _metric(gateway, "gatekeeper_masked_records_total", f'topic="{topic}"', 'direction="produce"') >= 6


def test_a_message_that_cannot_be_masked_is_refused_and_never_stored(gateway, pulsar_broker):
    topic = _topic("pstrict")
    client = _through(gateway, "svc-orders")
    try:
        producer = client.create_producer(topic, batching_enabled=False, send_timeout_millis=8000)
        producer.send(json.dumps({"card": CARD, "n": 1}).encode())  # JSON: masked and stored
        began = time.monotonic()
        with pytest.raises(pulsar.PulsarException):
            producer.send(b"card 4111111111111111 but not JSON")
        assert time.monotonic() - began < 4, "the client resent the refused message instead of failing it"
        # Only that message failed: the producer goes on, on the same connection.
        producer.send(json.dumps({"card": CARD, "n": 2}).encode())
    finally:
        client.close()
    direct = _direct(pulsar_broker)
    try:
        got = _read_all(direct, topic, 2)
    finally:
        direct.close()
    assert [json.loads(m.data()) for m in got] == [{"card": "****", "n": 1}, {"card": "****", "n": 2}]
    log = gateway.log_path.read_text()
    assert "cannot be masked as the policy requires" in log and "not JSON" in log
    assert log.count(f"produce on {topic} denied") == 1


@pytest.mark.parametrize("compression", ["NONE", "LZ4", "ZSTD"])
def test_consume_is_masked_for_a_masked_principal_while_the_broker_holds_raw_data(gateway, pulsar_broker, compression):
    topic = _topic("cmask")
    direct = _direct(pulsar_broker)
    try:
        batched = direct.create_producer(topic, batching_enabled=True, batching_max_messages=10,
                                         batching_max_publish_delay_ms=50,
                                         compression_type=getattr(pulsar.CompressionType, compression))
        for i in range(5):
            batched.send_async(_doc(i), None, partition_key=f"k{i}")
        batched.flush()
        single = direct.create_producer(topic, batching_enabled=False)
        single.send(_doc(5), partition_key="k5")
        assert all(CARD.encode() in m.data() for m in _read_all(direct, topic, 6)), "the broker should hold raw data"
    finally:
        direct.close()
    for sub, card in (("svc-reader", "************1111"), ("svc-orders", CARD)):
        client = _through(gateway, sub)
        try:
            consumer = client.subscribe(topic, f"sub-{sub}", initial_position=pulsar.InitialPosition.Earliest)
            for i in range(6):
                msg = consumer.receive(timeout_millis=10000)
                assert json.loads(msg.data())["card"] == card, sub
                assert json.loads(msg.data())["n"] == i
                assert msg.partition_key() == f"k{i}"
                consumer.acknowledge(msg)
        finally:
            client.close()


def test_a_message_that_cannot_be_masked_is_never_delivered_and_only_its_consumer_is_closed(gateway, pulsar_broker):
    topic = _topic("cdeny")
    direct = _direct(pulsar_broker)
    try:
        producer = direct.create_producer(topic, batching_enabled=False)
        producer.send(json.dumps({"card": CARD, "n": 0}).encode())
        producer.send(f"card {CARD}, not JSON".encode())
        producer.send(json.dumps({"card": CARD, "n": 2}).encode())
    finally:
        direct.close()
    client = _through(gateway, "svc-reader")
    try:
        consumer = client.subscribe(topic, "readers", initial_position=pulsar.InitialPosition.Earliest)
        first = consumer.receive(timeout_millis=10000)
        assert json.loads(first.data()) == {"card": "****", "n": 0}
        consumer.acknowledge(first)
        # Never the raw message, nor the one after it; the first may come again (its grouped
        # acknowledgement may not have reached the broker before the consumer was closed).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                again = consumer.receive(timeout_millis=1000)
            except pulsar.Timeout:
                continue
            assert json.loads(again.data()) == {"card": "****", "n": 0}
            consumer.acknowledge(again)
        # The connection is not closed: another producer of the same client sends through it.
        other = client.create_producer(_topic("plain"))
        other.send(b"still connected")
    finally:
        client.close()
    log = gateway.log_path.read_text()
    assert f"of {topic} for masked consumer" in log and "the consumer is closed" in log
    stats = pulsar_broker.topic_stats(topic)
    assert stats["subscriptions"]["readers"]["msgBacklog"] >= 2, "the broker keeps the last two unacknowledged"
    assert _metric(gateway, "gatekeeper_mask_errors_total", 'kind="record_refused"') >= 1


def test_large_messages_are_masked_both_ways_off_the_reactor(gateway, pulsar_broker):
    big = [json.dumps({"card": CARD, "n": i, "pad": "x" * 300_000}).encode() for i in range(3)]
    produced = _topic("pmask")
    client = _through(gateway, "svc-orders")
    try:
        producer = client.create_producer(produced, compression_type=pulsar.CompressionType.ZSTD)
        for value in big:
            producer.send(value)
    finally:
        client.close()
    consumed = _topic("cmask")
    direct = _direct(pulsar_broker)
    try:
        assert [json.loads(m.data())["card"] for m in _read_all(direct, produced, 3)] == ["****"] * 3
        producer = direct.create_producer(consumed, batching_enabled=True, batching_max_messages=10,
                                          batching_max_allowed_size_in_bytes=4 * 1024 * 1024,
                                          batching_max_publish_delay_ms=50)
        for value in big:
            producer.send_async(value, None)
        producer.flush()
    finally:
        direct.close()
    client = _through(gateway, "svc-reader")
    try:
        consumer = client.subscribe(consumed, "readers", initial_position=pulsar.InitialPosition.Earliest)
        got = [json.loads(consumer.receive(timeout_millis=10000).data()) for _ in range(3)]
    finally:
        client.close()
    assert [(d["card"], d["n"], len(d["pad"])) for d in got] == [("************1111", i, 300_000) for i in range(3)]


def test_a_chunked_message_is_refused_and_the_producer_goes_on(gateway, pulsar_broker):
    huge = json.dumps({"card": CARD, "pad": "x" * (6 * 1024 * 1024)}).encode()  # over the 5 MiB message size
    produced = _topic("pmask")
    client = _through(gateway, "svc-orders")
    try:
        producer = client.create_producer(produced, batching_enabled=False, chunking_enabled=True,
                                          send_timeout_millis=10000)
        with pytest.raises(pulsar.PulsarException):
            producer.send(huge)
        producer.send(json.dumps({"card": CARD, "n": 1}).encode())  # the producer goes on
    finally:
        client.close()
    direct = _direct(pulsar_broker)
    try:
        assert [json.loads(m.data()) for m in _read_all(direct, produced, 1)] == [{"card": "****", "n": 1}]
    finally:
        direct.close()
    assert "chunked message cannot be masked one chunk at a time" in gateway.log_path.read_text()
    assert _metric(gateway, "gatekeeper_mask_errors_total", 'kind="chunked"') >= 1


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A CryptoKeyReader over a fresh RSA key pair (end-to-end encryption of messages)."""
    d = tmp_path_factory.mktemp("pulsar-keys")
    private, public = d / "private.pem", d / "public.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-out", str(public)], check=True,
                   capture_output=True, timeout=60)
    return pulsar.CryptoKeyReader(str(public), str(private))


def test_encrypted_messages_are_never_masked_nor_passed_raw(gateway, pulsar_broker, crypto):
    client = _through(gateway, "svc-orders")
    try:
        with pytest.raises(pulsar.AuthorizationError):  # a masked producer that encrypts: refused at once
            client.create_producer(_topic("pmask"), encryption_key="k", crypto_key_reader=crypto)
    finally:
        client.close()
    assert "encrypts its messages end to end" in gateway.log_path.read_text()
    topic = _topic("cmask")
    direct = _direct(pulsar_broker)
    try:
        producer = direct.create_producer(topic, encryption_key="k", crypto_key_reader=crypto)
        producer.send(_doc(0))
    finally:
        direct.close()
    client = _through(gateway, "svc-reader")
    try:
        consumer = client.subscribe(topic, "readers", initial_position=pulsar.InitialPosition.Earliest,
                                    crypto_key_reader=crypto)
        with pytest.raises(pulsar.Timeout):
            consumer.receive(timeout_millis=4000)
    finally:
        client.close()
    assert f"of {topic} for masked consumer" in gateway.log_path.read_text()
    assert _metric(gateway, "gatekeeper_mask_errors_total", 'kind="encrypted"') >= 1


# -- Pulsar's Java client (pulsar-client-original, among the broker's jars) ---------------------

JAVA_SOURCE = Path(__file__).resolve().parent / "java" / "PulsarMaskProbe.java"


def _java_classes() -> Path:
    """``java/PulsarMaskProbe.java`` compiled against the broker's jars, once per source version."""
    source = JAVA_SOURCE.read_bytes()
    target = deps.cache_dir() / "pulsar-mask-probe" / hashlib.sha256(source).hexdigest()[:16]
    if (target / "PulsarMaskProbe.class").is_file():
        return target
    javac = shutil.which("javac")
    if javac is None:
        pytest.skip("no javac on PATH")
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent.parent))
    proc = subprocess.run([javac, "-encoding", "UTF-8", "-d", str(staging), "-cp", deps.pulsar_classpath(),
                           str(JAVA_SOURCE)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"javac failed on {JAVA_SOURCE} (our bug):\n{proc.stdout}{proc.stderr}")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process compiled the same source first
    return target


def _java(*args: str, timeout: float = 240) -> list[list[str]]:
    classes = _java_classes()
    log4j = classes.parent / "log4j2.properties"
    text = deps.log4j2_properties("WARN")
    if not log4j.is_file() or log4j.read_text() != text:
        tmp = log4j.with_name(f"{log4j.name}.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, log4j)
    cmd = [deps.java_executable(), "-Xmx256m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
           f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{deps.pulsar_classpath()}{os.pathsep}{classes}",
           "PulsarMaskProbe", *args]
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"PulsarMaskProbe {args[0]} exited with {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return [line.split(" ") for line in proc.stdout.splitlines() if line.startswith(("topic ", "value "))]


def test_the_java_client_produces_masked_in_every_compression_and_fails_only_the_refused_message(gateway, pulsar_broker):
    prefix = _topic("pmask")
    token = IDP.token(**IDP.claims(sub="svc-orders"))
    lines = _java("produce", gateway.service_url, token, prefix)
    assert len(lines) == 10, lines
    direct = _direct(pulsar_broker)
    try:
        for _, topic, refused, millis, message in lines:
            assert refused == "NotAllowedException", (topic, refused)
            assert int(millis) < 4000, f"{topic}: the client resent the refused message before failing it"
            assert "not JSON" in base64.b64decode(message).decode()
            got = _read_all(direct, topic, 5)
            assert [json.loads(m.data()) for m in got] == [{"card": "****", "n": i} for i in range(5)], topic
            assert [m.partition_key() for m in got] == ["k0", "k1", "k2", "k3", "k4"]
            assert [m.properties().get("trace") for m in got[:4]] == ["t0", "t1", "t2", "t3"]
    finally:
        direct.close()


def test_the_java_client_consumes_masked(gateway, pulsar_broker):
    topic = _topic("cmask")
    direct = _direct(pulsar_broker)
    try:
        producer = direct.create_producer(topic, batching_enabled=True, batching_max_messages=10,
                                          batching_max_publish_delay_ms=50, compression_type=pulsar.CompressionType.ZLib)
        for i in range(4):
            producer.send_async(_doc(i), None, partition_key=f"k{i}")
        producer.flush()
    finally:
        direct.close()
    token = IDP.token(**IDP.claims(sub="svc-reader"))
    lines = _java("consume", gateway.service_url, token, topic, "4")
    assert [(key, json.loads(base64.b64decode(value))["card"]) for _, key, value in lines] == [
        (f"k{i}", "************1111") for i in range(4)]
