"""The Pulsar adapter (plugins/gatekeeper-pulsar) through ``twistd gatekeeper``, in front of a
real Pulsar standalone broker, driven by Pulsar's two client families: the C++ client
(``pulsar-client``) and the Java client (``pulsar-client-original``, harness/PulsarJavaClient.java).

One Gatekeeper process with one ``protocol: pulsar`` listener that requires a token; the
policy allows ``svc-orders`` everything, denies ``svc-intruder`` producing and subscribing (it
may look topics up), lets ``svc-writer`` produce, consume and describe but not create topics,
seek or unsubscribe, and lets ``svc-lister`` list the namespace and describe ``visible-*`` topics.
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

from harness.gateway import TwistdGateway
from harness.ports import LOOPBACK, free_port, free_port_range
from harness.pulsar import PulsarBrokerError
from harness.pulsar_java import run_java_client
from harness.tokens import AUDIENCE, ISSUER, TestIdp

pulsar = pytest.importorskip("pulsar")
pytest.importorskip("gatekeeper_pulsar.adapter", reason="the gatekeeper-pulsar plugin distribution is not installed")

from gatekeeper_pulsar import commands as c  # noqa: E402
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

writer_may := {"produce", "consume", "describe_topic", "list_topics"}

decision := {"action": "allow", "reason": "the writer produces and consumes"} if {
    input.principal.sub == "svc-writer"
    writer_may[input.operation]
}

decision := {"action": "deny", "reason": "svc-writer may not create topics"} if {
    input.principal.sub == "svc-writer"
    input.operation == "create_topic"
}

decision := {"action": "allow", "reason": "the lister lists"} if {
    input.principal.sub == "svc-lister"
    input.operation == "list_topics"
}

decision := {"action": "allow", "reason": "visible topics"} if {
    input.principal.sub == "svc-lister"
    input.operation == "describe_topic"
    contains(input.resource.name, "/visible-")
}
"""


class PulsarGateway(TwistdGateway):
    """``twistd -n gatekeeper`` with one ``protocol: pulsar`` listener in front of ``broker``
    (``policy``: the Rego module; ``extra``: more top-level config sections)."""

    def __init__(self, workdir: Path, broker: Any, *, policy: str = POLICY, extra: dict[str, Any] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "gatekeeper.yaml"
        self.log_path = self.workdir / "gatekeeper.log"
        self.proc = None
        self.service_port, self.admin_port = free_port(), free_port()
        self.broker_ports = free_port_range(2)
        policies = self.workdir / "policies"
        policies.mkdir(exist_ok=True)
        (policies / "pulsar.rego").write_text(policy)
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
            # No top-level upstream: a Pulsar-only Gatekeeper needs none (the listener has its own).
            "policy": {"engine": "embedded", "policies": str(policies)},
            "identity": {"jwt": {"issuer": ISSUER, "audience": AUDIENCE,
                                 "jwks_file": str(IDP.write_jwks(self.workdir / "jwks.json"))}},
            "admin": {"bind": f"{LOOPBACK}:{self.admin_port}"},
            "logging": {"level": "info"},
            **(extra or {}),
        }
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.listening = [self.service_port, self.admin_port]
        approvals_bind = (extra or {}).get("approvals", {}).get("bind")
        if approvals_bind:
            self.listening.append(int(approvals_bind.rsplit(":", 1)[1]))

    @property
    def service_url(self) -> str:
        return f"pulsar://{LOOPBACK}:{self.service_port}"


@pytest.fixture(scope="module")
def pulsar_gateway(pulsar_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulsarGateway]:
    gw = PulsarGateway(tmp_path_factory.mktemp("pulsar-gw"), pulsar_broker)
    with gw:
        yield gw


def _client(gw: PulsarGateway, sub: str) -> Any:
    token = IDP.token(**IDP.claims(sub=sub))
    return pulsar.Client(gw.service_url, authentication=pulsar.AuthenticationToken(token),
                         operation_timeout_seconds=10, connection_timeout_ms=5000)


def _topic(prefix: str = "orders") -> str:
    return f"persistent://public/default/{prefix}-{uuid.uuid4().hex[:8]}"


def _existing_topic(broker: Any, prefix: str = "orders") -> str:
    """A topic created through the broker's admin API (so no client command creates it)."""
    topic = _topic(prefix)
    broker.admin("PUT", f"/admin/v2/persistent/{topic.split('://', 1)[1]}")
    return topic


def _broker_topics(broker: Any) -> set[str]:
    return set(broker.admin("GET", "/admin/v2/persistent/public/default"))


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


def test_produce_denied_is_the_producers_authorization_error(pulsar_gateway, pulsar_broker):
    client = _client(pulsar_gateway, "svc-intruder")
    try:
        began = time.monotonic()
        with pytest.raises(pulsar.AuthorizationError):
            client.create_producer(_existing_topic(pulsar_broker))
        assert time.monotonic() - began < 5, "the client spun instead of failing on the AuthorizationError"
    finally:
        client.close()


def test_subscribe_denied_is_the_consumers_authorization_error(pulsar_gateway, pulsar_broker):
    client = _client(pulsar_gateway, "svc-intruder")
    try:
        began = time.monotonic()
        with pytest.raises(pulsar.AuthorizationError):
            client.subscribe(_existing_topic(pulsar_broker), "intruders")
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


def test_java_producer_denied_is_an_authorization_exception_with_the_reason(pulsar_gateway, pulsar_broker):
    topic = _existing_topic(pulsar_broker)
    events = _java(pulsar_gateway, "svc-intruder", "produce", topic)
    [error] = _events(events, "error")
    assert error["phase"] == "producer" and error["type"] == JAVA_AUTHORIZATION, events
    assert "svc-intruder may not produce" in error["message"]
    assert error["elapsed_ms"] < 5000, "the Java client retried instead of failing on the AuthorizationError"
    assert not _events(events, "sent")


def test_java_subscribe_denied_is_an_authorization_exception_with_the_reason(pulsar_gateway, pulsar_broker):
    events = _java(pulsar_gateway, "svc-intruder", "subscribe", _existing_topic(pulsar_broker))
    [error] = _events(events, "error")
    assert error["phase"] == "subscribe" and error["type"] == JAVA_AUTHORIZATION, events
    assert "not allowed by the pulsar test policy" in error["message"]
    assert error["elapsed_ms"] < 5000


def _denials(gw: PulsarGateway, operation: str, topic: str) -> int:
    return gw.log_path.read_text().count(f"pulsar {operation} on {topic} denied")


@pytest.mark.parametrize("operation", ["produce", "consume"])
def test_both_client_families_give_up_after_one_denied_request(pulsar_gateway, pulsar_broker, operation):
    """The C++ and the Java client both take the ERROR AuthorizationError as final: each asks
    once (one denial in Gatekeeper's log), fails fast, with an authorization error of its own
    kind; the Java client carries the policy's reason, the C++ client only the error code."""
    cpp_topic, java_topic = _existing_topic(pulsar_broker), _existing_topic(pulsar_broker)
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


# -- commands beyond produce and consume -------------------------------------------------------------


def test_a_missing_topic_is_created_only_with_create_topic(pulsar_gateway, pulsar_broker):
    """svc-writer may produce but not create topics: to an existing topic it produces, to a
    missing one both client families get an authorization error and the broker creates nothing."""
    existing, missing, java_missing = _existing_topic(pulsar_broker), _topic(), _topic()
    client = _client(pulsar_gateway, "svc-writer")
    try:
        producer = client.create_producer(existing)
        producer.send(b"into an existing topic")
        with pytest.raises(pulsar.AuthorizationError):
            client.create_producer(missing)
        with pytest.raises(pulsar.AuthorizationError):
            client.subscribe(missing, "writers")
    finally:
        client.close()
    events = _java(pulsar_gateway, "svc-writer", "produce", java_missing)
    [error] = _events(events, "error")
    assert error["type"] == JAVA_AUTHORIZATION and "does not exist and creating it is not allowed" in error["message"]
    assert "svc-writer may not create topics" in error["message"]
    topics = _broker_topics(pulsar_broker)
    assert existing in topics
    assert missing not in topics and java_missing not in topics
    assert pulsar_broker.topic_stats(existing)["msgInCounter"] == 1


def test_namespace_listing_names_only_topics_the_principal_may_describe(pulsar_gateway, pulsar_broker):
    visible, hidden = _existing_topic(pulsar_broker, "visible"), _existing_topic(pulsar_broker, "hidden")
    listing = wire.BaseCommand(type=wire.BaseCommand.GET_TOPICS_OF_NAMESPACE)
    listing.getTopicsOfNamespace.request_id = 3
    listing.getTopicsOfNamespace.namespace = "public/default"
    direct = _raw_session(pulsar_broker.port, _connect(None, b""), [listing])[1].getTopicsOfNamespaceResponse
    assert {visible, hidden} <= set(direct.topics)
    answers = _raw_session(pulsar_gateway.service_port, _token_connect("svc-lister"), [listing])
    response = answers[1].getTopicsOfNamespaceResponse
    assert answers[1].type == wire.BaseCommand.GET_TOPICS_OF_NAMESPACE_RESPONSE and response.request_id == 3
    assert visible in response.topics
    assert all("/visible-" in t for t in response.topics), response.topics
    # With a pattern the broker sends a hash of the list; Gatekeeper's is of the filtered list,
    # computed as the broker computes it (checked against the broker's own answer).
    listing.getTopicsOfNamespace.topics_pattern = "persistent://public/default/(visible|hidden)-.*"
    direct = _raw_session(pulsar_broker.port, _connect(None, b""), [listing])[1].getTopicsOfNamespaceResponse
    assert direct.topics_hash == c.topics_hash(list(direct.topics))
    filtered = _raw_session(pulsar_gateway.service_port, _token_connect("svc-lister"), [listing])[1]
    assert visible in filtered.getTopicsOfNamespaceResponse.topics and hidden not in filtered.getTopicsOfNamespaceResponse.topics
    assert filtered.getTopicsOfNamespaceResponse.topics_hash == c.topics_hash(list(filtered.getTopicsOfNamespaceResponse.topics))
    refused = _raw_session(pulsar_gateway.service_port, _token_connect("svc-intruder"), [listing])[1]
    assert refused.type == wire.BaseCommand.ERROR and refused.error.error == wire.AuthorizationError
    assert refused.error.request_id == 3


def test_topic_watcher_updates_are_filtered_too(pulsar_gateway, pulsar_broker):
    tag = uuid.uuid4().hex[:6]
    first = _existing_topic(pulsar_broker, f"visible-{tag}")
    watch = wire.BaseCommand(type=wire.BaseCommand.WATCH_TOPIC_LIST)
    watch.watchTopicList.request_id, watch.watchTopicList.watcher_id = 4, 9
    watch.watchTopicList.namespace = "public/default"
    watch.watchTopicList.topics_pattern = f"persistent://public/default/(visible|hidden)-{tag}.*"
    with _RawSession(pulsar_gateway.service_port, _token_connect("svc-lister")) as session:
        success = session.ask(watch).watchTopicListSuccess
        assert list(success.topic) == [first] and success.topics_hash == c.topics_hash([first])
        hidden = _existing_topic(pulsar_broker, f"hidden-{tag}")
        second = _existing_topic(pulsar_broker, f"visible-{tag}")
        update = session.next(wire.BaseCommand.WATCH_TOPIC_UPDATE).watchTopicUpdate
        if not update.new_topics:
            update = session.next(wire.BaseCommand.WATCH_TOPIC_UPDATE).watchTopicUpdate
        assert list(update.new_topics) == [second] and hidden not in update.new_topics
        assert update.topics_hash == c.topics_hash([first, second])


def test_schema_commands_are_decided_on_the_topic(pulsar_gateway, pulsar_broker):
    topic = _existing_topic(pulsar_broker)
    get = wire.BaseCommand(type=wire.BaseCommand.GET_SCHEMA)
    get.getSchema.request_id, get.getSchema.topic = 5, topic
    create = wire.BaseCommand(type=wire.BaseCommand.GET_OR_CREATE_SCHEMA)
    create.getOrCreateSchema.request_id, create.getOrCreateSchema.topic = 6, topic
    create.getOrCreateSchema.schema.name, create.getOrCreateSchema.schema.schema_data = "s", b""
    create.getOrCreateSchema.schema.type = 1  # String
    # svc-intruder may describe the topic (GET_SCHEMA reaches the broker: the topic has no
    # schema yet) but not alter it (GET_OR_CREATE_SCHEMA refused, nothing registered).
    answers = _raw_session(pulsar_gateway.service_port, _token_connect("svc-intruder"), [get, create])
    assert answers[1].type == wire.BaseCommand.GET_SCHEMA_RESPONSE
    assert answers[1].getSchemaResponse.error_code != wire.AuthorizationError
    assert answers[2].type == wire.BaseCommand.GET_OR_CREATE_SCHEMA_RESPONSE
    assert answers[2].getOrCreateSchemaResponse.error_code == wire.AuthorizationError
    with pytest.raises(PulsarBrokerError, match="404"):
        pulsar_broker.admin("GET", f"/admin/v2/schemas/{topic.split('://', 1)[1]}/schema")
    allowed = _raw_session(pulsar_gateway.service_port, _token_connect("svc-orders"), [create])
    assert allowed[1].type == wire.BaseCommand.GET_OR_CREATE_SCHEMA_RESPONSE
    assert not allowed[1].getOrCreateSchemaResponse.HasField("error_code")
    assert pulsar_broker.admin("GET", f"/admin/v2/schemas/{topic.split('://', 1)[1]}/schema")["type"] == "STRING"


def test_seek_and_unsubscribe_are_decided_on_the_subscription(pulsar_gateway, pulsar_broker):
    topic = _existing_topic(pulsar_broker)
    writer = _client(pulsar_gateway, "svc-writer")
    try:
        consumer = writer.subscribe(topic, "writers")
        with pytest.raises(pulsar.AuthorizationError):
            consumer.seek(pulsar.MessageId.earliest)
        with pytest.raises(pulsar.AuthorizationError):
            consumer.unsubscribe()
    finally:
        writer.close()
    assert "writers" in pulsar_broker.topic_stats(topic)["subscriptions"]
    owner = _client(pulsar_gateway, "svc-orders")
    try:
        consumer = owner.subscribe(topic, "owners")
        consumer.seek(pulsar.MessageId.earliest)
        consumer.unsubscribe()
    finally:
        owner.close()
    assert "owners" not in pulsar_broker.topic_stats(topic)["subscriptions"]
    log = pulsar_gateway.log_path.read_text()
    assert "pulsar seek on writers denied" in log and "pulsar unsubscribe on writers denied" in log


def test_transactions_are_decided_and_broker_only_commands_refused(pulsar_gateway):
    new_txn = wire.BaseCommand(type=wire.BaseCommand.NEW_TXN)
    new_txn.newTxn.request_id, new_txn.newTxn.tc_id = 8, 0
    answers = _raw_session(pulsar_gateway.service_port, _token_connect("svc-writer"), [new_txn])
    assert answers[1].type == wire.BaseCommand.NEW_TXN_RESPONSE
    assert answers[1].newTxnResponse.error == wire.AuthorizationError and answers[1].newTxnResponse.request_id == 8
    end = wire.BaseCommand(type=wire.BaseCommand.END_TXN_ON_PARTITION)
    end.MergeFromString(b"")
    closed = _raw_session(pulsar_gateway.service_port, _token_connect("svc-orders"), [end])
    assert len(closed) == 1, "Gatekeeper answered or forwarded a broker-only command instead of closing"


# -- raw protocol helpers ----------------------------------------------------------------------------


def _connect(method: str | None, data: bytes) -> Any:
    cmd = wire.BaseCommand(type=wire.BaseCommand.CONNECT)
    cmd.connect.client_version = "gatekeeper-test"
    cmd.connect.protocol_version = 21
    if method is not None:
        cmd.connect.auth_method_name = method
        cmd.connect.auth_data = data
    return cmd


def _token_connect(sub: str) -> Any:
    return _connect("token", IDP.token(**IDP.claims(sub=sub)).encode())


class _RawSession:
    """A raw connection for commands whose answers come later (topic watcher updates)."""

    def __init__(self, port: int, connect: Any) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=15)
        self.decoder = FrameDecoder()
        self.sock.sendall(encode_frame(connect.SerializePartialToString()))
        assert self.next().type == wire.BaseCommand.CONNECTED

    def ask(self, cmd: Any) -> Any:
        self.sock.sendall(encode_frame(cmd.SerializePartialToString()))
        return self.next()

    def next(self, want: int | None = None) -> Any:
        while True:
            frame = self.decoder.next_frame()
            if frame is None:
                data = self.sock.recv(65536)
                assert data, "the connection closed"
                self.decoder.receive_data(data)
                continue
            cmd = wire.BaseCommand()
            cmd.MergeFromString(frame.command)
            if cmd.type == wire.BaseCommand.PING:
                pong = wire.BaseCommand(type=wire.BaseCommand.PONG)
                pong.pong.SetInParent()
                self.sock.sendall(encode_frame(pong.SerializePartialToString()))
                continue
            if want is None or cmd.type == want:
                return cmd

    def __enter__(self) -> _RawSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


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
