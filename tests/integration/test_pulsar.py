"""The Pulsar adapter (plugins/gatekeeper-pulsar) through ``twistd gatekeeper``, in front of a
real Pulsar standalone broker, driven by Pulsar's two client families: the C++ client
(``pulsar-client``) and the Java client (``pulsar-client-original``, harness/PulsarJavaClient.java).

One Gatekeeper process with one ``protocol: pulsar`` listener that requires a token; the
policy allows ``svc-orders`` everything on ``persistent://public/default/orders*`` and denies
``svc-intruder`` producing and subscribing (it may look topics up).
"""

from __future__ import annotations

import os
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.gateway import TwistdGateway, free_port_range
from harness.ports import LOOPBACK, free_port
from harness.pulsar_java import run_java_client
from harness.tokens import AUDIENCE, ISSUER, TestIdp

pulsar = pytest.importorskip("pulsar")
pytest.importorskip("gatekeeper_pulsar.adapter", reason="the gatekeeper-pulsar plugin distribution is not installed")

from gatekeeper_pulsar import wire_pb2 as wire  # noqa: E402
from gatekeeper_pulsar.framing import FrameDecoder, encode_frame  # noqa: E402

IDP = TestIdp()

POLICY = """
package gatekeeper

default decision := {"action": "deny", "reason": "not allowed by the pulsar test policy"}

decision := {"action": "allow", "reason": "orders service"} if {
    input.principal.sub == "svc-orders"
}

decision := {"action": "allow", "reason": "anyone may look topics up"} if {
    input.principal.sub == "svc-intruder"
    input.operation == "describe_topic"
}

decision := {"action": "deny", "reason": "svc-intruder may not produce"} if {
    input.principal.sub == "svc-intruder"
    input.operation == "produce"
}
"""


class PulsarGateway(TwistdGateway):
    """``twistd -n gatekeeper`` with one ``protocol: pulsar`` listener in front of ``broker``."""

    def __init__(self, workdir: Path, broker: Any) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "gatekeeper.yaml"
        self.log_path = self.workdir / "gatekeeper.log"
        self.proc = None
        self.service_port, self.admin_port = free_port(), free_port()
        self.broker_ports = free_port_range(2)
        policies = self.workdir / "policies"
        policies.mkdir(exist_ok=True)
        (policies / "pulsar.rego").write_text(POLICY)
        raw = {
            "listeners": [{
                "name": "pulsar",
                "protocol": "pulsar",
                "bind": f"{LOOPBACK}:{self.service_port}",
                "advertised_host": LOOPBACK,
                "broker_ports": f"{self.broker_ports[0]}-{self.broker_ports[-1]}",
                "authentication": {"required": True},
                "upstream": {"bootstrap_servers": [broker.address]},
                "options": {"brokers": [broker.address]},
            }],
            "upstream": {"bootstrap_servers": [broker.address]},
            "policy": {"engine": "embedded", "policies": str(policies)},
            "identity": {"jwt": {"issuer": ISSUER, "audience": AUDIENCE,
                                 "jwks_file": str(IDP.write_jwks(self.workdir / "jwks.json"))}},
            "admin": {"bind": f"{LOOPBACK}:{self.admin_port}"},
            "logging": {"level": "info"},
        }
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.listening = [self.service_port, self.admin_port]

    @property
    def service_url(self) -> str:
        return f"pulsar://{LOOPBACK}:{self.service_port}"


@pytest.fixture(scope="module")
def pulsar_gateway(pulsar_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulsarGateway]:
    with PulsarGateway(tmp_path_factory.mktemp("pulsar-gw"), pulsar_broker) as gw:
        yield gw


def _client(gw: PulsarGateway, sub: str) -> Any:
    token = IDP.token(**IDP.claims(sub=sub))
    return pulsar.Client(gw.service_url, authentication=pulsar.AuthenticationToken(token),
                         operation_timeout_seconds=10, connection_timeout_ms=5000)


def _topic() -> str:
    return f"persistent://public/default/orders-{uuid.uuid4().hex[:8]}"


def test_produce_and_consume_through_gatekeeper(pulsar_gateway, pulsar_broker):
    topic = _topic()
    client = _client(pulsar_gateway, "svc-orders")
    try:
        consumer = client.subscribe(topic, "audit-readers", initial_position=pulsar.InitialPosition.Earliest)
        producer = client.create_producer(topic, batching_enabled=True)
        for i in range(20):
            producer.send_async(f"order-{i}".encode(), None)
        producer.flush()
        producer.send(b"last")
        got = []
        for _ in range(21):
            msg = consumer.receive(timeout_millis=10000)
            got.append(msg.data())
            consumer.acknowledge(msg)
        assert got == [f"order-{i}".encode() for i in range(20)] + [b"last"]
        # The broker sees only Gatekeeper's connections: every producer and consumer address it
        # has on the topic is a socket of the twistd process, none of this (the client's) process.
        seen = pulsar_broker.connected_addresses(topic)
        assert seen, "the broker reports no producer or consumer on the topic"
        assert seen <= _local_addresses(pulsar_gateway.proc.pid, pulsar_broker.port)
        assert not seen & _local_addresses(os.getpid(), pulsar_broker.port)
        assert not _local_addresses(os.getpid(), pulsar_broker.port), "the client connected to the broker directly"
    finally:
        client.close()


def test_produce_denied_is_the_producers_authorization_error(pulsar_gateway):
    client = _client(pulsar_gateway, "svc-intruder")
    try:
        began = time.monotonic()
        with pytest.raises(pulsar.AuthorizationError):
            client.create_producer(_topic())
        assert time.monotonic() - began < 5, "the client spun instead of failing on the AuthorizationError"
    finally:
        client.close()


def test_subscribe_denied_is_the_consumers_authorization_error(pulsar_gateway):
    client = _client(pulsar_gateway, "svc-intruder")
    try:
        began = time.monotonic()
        with pytest.raises(pulsar.AuthorizationError):
            client.subscribe(_topic(), "intruders")
        assert time.monotonic() - began < 5
    finally:
        client.close()


def test_a_bad_token_is_refused_and_nothing_reaches_the_broker(pulsar_gateway):
    client = pulsar.Client(pulsar_gateway.service_url, authentication=pulsar.AuthenticationToken(IDP.unsigned_token(
        **IDP.claims(sub="svc-orders"))), operation_timeout_seconds=5, connection_timeout_ms=3000)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the C++ client reports it as a connect/authentication error
            client.create_producer(_topic())
    finally:
        client.close()
    answer = _raw_session(pulsar_gateway.service_port, _connect("token", b"not-a-jwt"), [])
    assert answer[0].type == wire.BaseCommand.ERROR
    assert answer[0].error.error == wire.AuthenticationError
    assert "token refused" in answer[0].error.message


def test_lookup_responses_point_at_gatekeeper_never_at_the_broker(pulsar_gateway, pulsar_broker):
    """A raw LOOKUP through Gatekeeper: the broker answers with its own address (as a cluster
    broker does); the client gets Gatekeeper's port for that broker, and no proxy flag."""
    token = IDP.token(**IDP.claims(sub="svc-orders")).encode()
    lookup = wire.BaseCommand(type=wire.BaseCommand.LOOKUP)
    lookup.lookupTopic.topic = _topic()
    lookup.lookupTopic.request_id = 7
    answers = _raw_session(pulsar_gateway.service_port, _connect("token", token), [lookup])
    assert answers[0].type == wire.BaseCommand.CONNECTED
    response = answers[1].lookupTopicResponse
    assert answers[1].type == wire.BaseCommand.LOOKUP_RESPONSE and response.request_id == 7
    assert response.brokerServiceUrl == f"pulsar://{LOOPBACK}:{pulsar_gateway.broker_ports[0]}"
    assert not response.proxy_through_service_url
    assert str(pulsar_broker.port) not in response.SerializeToString().decode("latin-1")
    # The same lookup straight to the broker names the broker: that is what was rewritten.
    direct = _raw_session(pulsar_broker.port, _connect(None, b""), [lookup])
    assert direct[1].lookupTopicResponse.brokerServiceUrl == pulsar_broker.service_url


def test_proxy_to_broker_url_must_be_a_broker_gatekeeper_fronts(pulsar_gateway):
    token = IDP.token(**IDP.claims(sub="svc-orders")).encode()
    connect = _connect("token", token)
    connect.connect.proxy_to_broker_url = "pulsar://elsewhere.example:6650"
    answer = _raw_session(pulsar_gateway.service_port, connect, [])
    assert answer[0].type == wire.BaseCommand.ERROR and answer[0].error.error == wire.ServiceNotReady


# -- the Java client family ------------------------------------------------------------------------

JAVA_AUTHORIZATION = "org.apache.pulsar.client.api.PulsarClientException$AuthorizationException"


def _java(gw: PulsarGateway, sub: str, mode: str, topic: str, count: int = 10) -> list[dict[str, Any]]:
    return run_java_client(gw.service_url, IDP.token(**IDP.claims(sub=sub)), mode, topic, "java-readers", count)


def _events(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def test_java_client_produces_and_consumes_through_gatekeeper(pulsar_gateway, pulsar_broker):
    topic = _topic()
    events = _java(pulsar_gateway, "svc-orders", "produce-consume", topic, count=15)
    assert not _events(events, "error"), events
    assert _events(events, "received") == [{"event": "received", "values": [f"java-{i}" for i in range(15)]}]
    # The lookup answer kept the Java client on Gatekeeper: its producer and consumer connections
    # go to Gatekeeper's port for the broker, never to the broker's own port.
    remotes = {e["remote"] for e in events if e["event"] in ("producer", "consumer")}
    assert remotes == {f"{LOOPBACK}:{pulsar_gateway.broker_ports[0]}"}, events


def test_java_producer_denied_is_an_authorization_exception_with_the_reason(pulsar_gateway):
    topic = _topic()
    events = _java(pulsar_gateway, "svc-intruder", "produce", topic)
    [error] = _events(events, "error")
    assert error["phase"] == "producer" and error["type"] == JAVA_AUTHORIZATION, events
    assert "svc-intruder may not produce" in error["message"]
    assert error["elapsed_ms"] < 5000, "the Java client retried instead of failing on the AuthorizationError"
    assert not _events(events, "sent")


def test_java_subscribe_denied_is_an_authorization_exception_with_the_reason(pulsar_gateway):
    events = _java(pulsar_gateway, "svc-intruder", "subscribe", _topic())
    [error] = _events(events, "error")
    assert error["phase"] == "subscribe" and error["type"] == JAVA_AUTHORIZATION, events
    assert "not allowed by the pulsar test policy" in error["message"]
    assert error["elapsed_ms"] < 5000


def _denials(gw: PulsarGateway, operation: str, topic: str) -> int:
    return gw.log_path.read_text().count(f"pulsar {operation} on {topic} denied")


@pytest.mark.parametrize("operation", ["produce", "consume"])
def test_both_client_families_give_up_after_one_denied_request(pulsar_gateway, operation):
    """The C++ and the Java client both take the ERROR AuthorizationError as final: each asks
    once (one denial in Gatekeeper's log), fails fast, with an authorization error of its own
    kind; the Java client carries the policy's reason, the C++ client only the error code."""
    cpp_topic, java_topic = _topic(), _topic()
    client = _client(pulsar_gateway, "svc-intruder")
    try:
        with pytest.raises(pulsar.AuthorizationError):
            if operation == "produce":
                client.create_producer(cpp_topic)
            else:
                client.subscribe(cpp_topic, "intruders")
    finally:
        client.close()
    events = _java(pulsar_gateway, "svc-intruder", "produce" if operation == "produce" else "subscribe", java_topic)
    assert [e["type"] for e in _events(events, "error")] == [JAVA_AUTHORIZATION]
    time.sleep(0.5)  # the log line is written as the answer goes out
    assert _denials(pulsar_gateway, operation, cpp_topic) == 1
    assert _denials(pulsar_gateway, operation, java_topic) == 1


# -- raw protocol helpers ----------------------------------------------------------------------------


def _connect(method: str | None, data: bytes) -> Any:
    cmd = wire.BaseCommand(type=wire.BaseCommand.CONNECT)
    cmd.connect.client_version = "gatekeeper-test"
    cmd.connect.protocol_version = 21
    if method is not None:
        cmd.connect.auth_method_name = method
        cmd.connect.auth_data = data
    return cmd


def _raw_session(port: int, connect: Any, commands: list[Any], timeout: float = 10.0) -> list[Any]:
    """Send CONNECT, then (once answered) ``commands``; return the commands received, one answer
    per command sent, or fewer when the connection closes."""
    answers: list[Any] = []
    decoder = FrameDecoder()
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        pending = [connect, *commands]
        while pending:
            s.sendall(encode_frame(pending.pop(0).SerializePartialToString()))
            want = len(answers) + 1
            while len(answers) < want:
                frame = decoder.next_frame()
                if frame is not None:
                    cmd = wire.BaseCommand()
                    cmd.MergeFromString(frame.command)
                    if cmd.type in (wire.BaseCommand.PING,):
                        continue
                    answers.append(cmd)
                    continue
                data = s.recv(65536)
                if not data:
                    return answers
                decoder.receive_data(data)
            if answers[-1].type == wire.BaseCommand.ERROR and len(answers) == 1:
                return answers
    return answers


def _local_addresses(pid: int, remote_port: int) -> set[str]:
    """``host:port`` of the established TCP sockets of process ``pid`` to ``remote_port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if state != "01" or inode not in inodes:
            continue
        if int(remote.split(":")[1], 16) != remote_port:
            continue
        host_hex, port_hex = local.split(":")
        host = socket.inet_ntoa(struct.pack("<I", int(host_hex, 16)))
        found.add(f"{host}:{int(port_hex, 16)}")
    return found
