"""Identity and TLS through the Pulsar adapter, against a real Pulsar standalone broker that
requires tokens, runs its own authorization and also listens with TLS, driven by Pulsar's C++
client (``pulsar-client``):

- TLS both ways: the client speaks ``pulsar+ssl`` to Gatekeeper (a CA made here), Gatekeeper
  speaks TLS to the broker's TLS port, and lookup answers name Gatekeeper's TLS URL;
- ``original_principal``: Gatekeeper connects with a proxy role, and the broker authorizes the
  client's principal too (a principal the policy allows but the broker has not been granted is
  refused by the broker);
- the client's token refreshed through AUTH_CHALLENGE (a token supplier and short-lived tokens),
  and a refresh naming another principal refused;
- Gatekeeper's broker token re-read on SIGHUP.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.certs import TestCa
from harness.gateway import TwistdGateway
from harness.ports import LOOPBACK, free_port, free_port_range
from harness.pulsar import PulsarBroker
from harness.tokens import AUDIENCE, ISSUER, TestIdp

pulsar = pytest.importorskip("pulsar")
pytest.importorskip("gatekeeper_pulsar.adapter", reason="the gatekeeper-pulsar plugin distribution is not installed")

from gatekeeper_pulsar import wire_pb2 as wire  # noqa: E402
from gatekeeper_pulsar.framing import FrameDecoder, encode_frame  # noqa: E402

IDP = TestIdp()
PROXY_ROLE = "gatekeeper-proxy"  # one of the broker's proxyRoles
PLAIN_ROLE = "gatekeeper"  # Gatekeeper's role when it does not name the client's principal

POLICY = """
package gatekeeper

default decision := {"action": "deny", "reason": "not allowed by the pulsar identity test policy"}

decision := {"action": "allow", "reason": "a known service"} if {
    input.principal.sub in {"svc-orders", "svc-unlisted"}
}
"""


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("pulsar-ca"))


@pytest.fixture(scope="module")
def secure_broker(ca: TestCa) -> Iterator[PulsarBroker]:
    """Tokens required, Pulsar's authorization on, a TLS port beside the plain one. The
    namespace grants produce and consume to Gatekeeper's two roles and to svc-orders only."""
    cert, key = ca.issue("broker", "127.0.0.1", server=True)
    with PulsarBroker(tls=(cert, key, ca.ca_file), token_secret=uuid.uuid4().bytes * 2,
                      proxy_roles=(PROXY_ROLE,)) as broker:
        for role in (PROXY_ROLE, PLAIN_ROLE, "svc-orders"):
            broker.admin("POST", f"/admin/v2/namespaces/public/default/permissions/{role}", ["produce", "consume"])
        yield broker


class Gateway(TwistdGateway):
    """``twistd -n gatekeeper`` with one ``protocol: pulsar`` listener (token authentication)."""

    def __init__(self, workdir: Path, broker_address: str, *, token: str, options: dict[str, Any] | None = None,
                 tls: dict[str, Any] | None = None, upstream_tls: dict[str, Any] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "gatekeeper.yaml"
        self.log_path = self.workdir / "gatekeeper.log"
        self.proc = None
        self.service_port, self.admin_port = free_port(), free_port()
        self.broker_ports = free_port_range(1)
        self.token_file = self.workdir / "broker-token"
        self.token_file.write_text(token + "\n")
        self.token_file.chmod(0o600)
        policies = self.workdir / "policies"
        policies.mkdir(exist_ok=True)
        (policies / "pulsar.rego").write_text(POLICY)
        listener: dict[str, Any] = {
            "name": "pulsar", "protocol": "pulsar", "bind": f"{LOOPBACK}:{self.service_port}",
            "advertised_host": LOOPBACK, "broker_ports": f"{self.broker_ports[0]}-{self.broker_ports[0]}",
            "authentication": {"required": True},
            "upstream": {"bootstrap_servers": [broker_address]},
            "options": {"brokers": [broker_address], "token_file": str(self.token_file), **(options or {})},
        }
        if tls is not None:
            listener["tls"] = tls
        if upstream_tls is not None:
            listener["upstream"]["tls"] = upstream_tls
        self.tls = tls is not None
        raw = {
            "listeners": [listener],
            "upstream": {"bootstrap_servers": [broker_address]},
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
        return f"pulsar{'+ssl' if self.tls else ''}://{LOOPBACK}:{self.service_port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="module")
def tls_gateway(secure_broker: PulsarBroker, ca: TestCa, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """pulsar+ssl towards the clients, TLS to the broker's TLS port, Gatekeeper as a proxy role."""
    cert, key = ca.issue("gatekeeper", "127.0.0.1", server=True)
    with Gateway(tmp_path_factory.mktemp("pulsar-tls-gw"), secure_broker.tls_address,
                 token=secure_broker.token(PROXY_ROLE), options={"original_principal": True},
                 tls={"cert_file": str(cert), "key_file": str(key)},
                 upstream_tls={"ca_file": str(ca.ca_file)}) as gw:
        yield gw


@pytest.fixture(scope="module")
def plain_gateway(secure_broker: PulsarBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Plain TCP both ways, Gatekeeper's own role, the client challenged 3 s before expiry."""
    with Gateway(tmp_path_factory.mktemp("pulsar-plain-gw"), secure_broker.address,
                 token=secure_broker.token(PLAIN_ROLE), options={"token_refresh_before": 3}) as gw:
        yield gw


def _topic() -> str:
    return f"persistent://public/default/identity-{uuid.uuid4().hex[:8]}"


def _tls_client(gw: Gateway, ca: TestCa, sub: str) -> Any:
    return pulsar.Client(gw.service_url, authentication=pulsar.AuthenticationToken(IDP.token(**IDP.claims(sub=sub))),
                         tls_trust_certs_file_path=str(ca.ca_file), operation_timeout_seconds=15,
                         connection_timeout_ms=10000)


# -- TLS both ways, original_principal -----------------------------------------------------------


def test_pulsar_ssl_to_gatekeeper_and_tls_to_the_broker(tls_gateway, secure_broker, ca):
    topic = _topic()
    client = _tls_client(tls_gateway, ca, "svc-orders")
    try:
        consumer = client.subscribe(topic, "readers", initial_position=pulsar.InitialPosition.Earliest)
        producer = client.create_producer(topic)
        for i in range(5):
            producer.send(f"tls-{i}".encode())
        got = []
        for _ in range(5):
            msg = consumer.receive(timeout_millis=15000)
            got.append(msg.data())
            consumer.acknowledge(msg)
        assert got == [f"tls-{i}".encode() for i in range(5)]
        # Gatekeeper, not the client, is connected to the broker, and on its TLS port.
        seen = secure_broker.connected_addresses(topic)
        assert seen and seen <= _local_addresses(tls_gateway.proc.pid, secure_broker.tls_port)
    finally:
        client.close()


def test_lookup_answers_on_a_tls_listener_name_gatekeepers_tls_url(tls_gateway, secure_broker, ca):
    token = IDP.token(**IDP.claims(sub="svc-orders")).encode()
    lookup = wire.BaseCommand(type=wire.BaseCommand.LOOKUP)
    lookup.lookupTopic.topic = _topic()
    lookup.lookupTopic.request_id = 11
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    context.check_hostname = False
    answers = _raw_session(tls_gateway.service_port, _connect(token), [lookup], context)
    assert [a.type for a in answers] == [wire.BaseCommand.CONNECTED, wire.BaseCommand.LOOKUP_RESPONSE]
    r = answers[1].lookupTopicResponse
    gateway_url = f"pulsar+ssl://{LOOPBACK}:{tls_gateway.broker_ports[0]}"
    assert r.brokerServiceUrlTls == gateway_url and r.brokerServiceUrl == gateway_url
    wire_text = r.SerializeToString().decode("latin-1")
    assert str(secure_broker.tls_port) not in wire_text and str(secure_broker.port) not in wire_text


def test_with_original_principal_the_broker_authorizes_the_clients_principal_too(tls_gateway, secure_broker, ca):
    """svc-unlisted is allowed by Gatekeeper's policy but has no grant on the broker: the broker,
    told the client's principal, refuses it; svc-orders (granted) is served (previous test)."""
    client = _tls_client(tls_gateway, ca, "svc-unlisted")
    try:
        with pytest.raises(pulsar.AuthorizationError):
            client.create_producer(_topic())
    finally:
        client.close()
    assert re.search(r"OriginalRole svc-unlisted is not authorized", secure_broker.log_path.read_text(errors="replace"))


# -- token refresh --------------------------------------------------------------------------------


def test_a_client_with_a_token_supplier_refreshes_and_keeps_its_session(plain_gateway):
    issued: list[float] = []

    def supplier() -> str:
        issued.append(time.monotonic())
        return IDP.token(**IDP.claims(sub="svc-orders", lifetime=6))

    topic = _topic()
    client = pulsar.Client(plain_gateway.service_url, authentication=pulsar.AuthenticationToken(supplier),
                           operation_timeout_seconds=15, connection_timeout_ms=10000)
    try:
        producer = client.create_producer(topic)
        began = time.monotonic()
        sent = 0
        while time.monotonic() - began < 16:  # more than two token lifetimes
            producer.send(f"m-{sent}".encode())
            sent += 1
            time.sleep(0.5)
        log = plain_gateway.log_text()
        assert log.count("pulsar client svc-orders refreshed its token") >= 2, log[-3000:]
        assert "the client's token expired" not in log
        assert len(issued) >= 3, "the client was not asked for a fresh token"
    finally:
        client.close()


def test_a_refresh_that_names_another_principal_is_refused(plain_gateway):
    began = time.monotonic()

    def supplier() -> str:  # the client asks at connect (more than once), then for the refresh 3 s later
        sub = "svc-orders" if time.monotonic() - began < 1.5 else "svc-intruder"
        return IDP.token(**IDP.claims(sub=sub, lifetime=6))

    client = pulsar.Client(plain_gateway.service_url, authentication=pulsar.AuthenticationToken(supplier),
                           operation_timeout_seconds=15, connection_timeout_ms=10000)
    try:
        client.create_producer(_topic())
        deadline = time.monotonic() + 20
        needle = "'svc-intruder', not the session's principal 'svc-orders'"
        while needle not in plain_gateway.log_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert needle in plain_gateway.log_text()
    finally:
        client.close()


# -- the broker token re-read on SIGHUP ----------------------------------------------------------


def test_the_broker_token_is_reread_on_sighup(secure_broker, tmp_path):
    forged = IDP.token(**IDP.claims(sub=PLAIN_ROLE))  # not signed with the broker's secret
    with Gateway(tmp_path / "gw", secure_broker.address, token=forged) as gw:
        client = pulsar.Client(gw.service_url, authentication=pulsar.AuthenticationToken(
            IDP.token(**IDP.claims(sub="svc-orders"))), operation_timeout_seconds=8, connection_timeout_ms=5000)
        try:
            with pytest.raises(Exception):  # noqa: B017 - the broker refuses Gatekeeper's own CONNECT
                client.create_producer(_topic())
        finally:
            client.close()
        gw.token_file.write_text(secure_broker.token(PLAIN_ROLE) + "\n")
        gw.reload()
        deadline = time.monotonic() + 10
        while "broker token re-read (changed)" not in gw.log_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "broker token re-read (changed)" in gw.log_text()
        client = pulsar.Client(gw.service_url, authentication=pulsar.AuthenticationToken(
            IDP.token(**IDP.claims(sub="svc-orders"))), operation_timeout_seconds=15, connection_timeout_ms=10000)
        try:
            client.create_producer(_topic()).send(b"with the new token")
        finally:
            client.close()


# -- helpers --------------------------------------------------------------------------------------


def _connect(token: bytes) -> Any:
    cmd = wire.BaseCommand(type=wire.BaseCommand.CONNECT)
    cmd.connect.client_version = "gatekeeper-test"
    cmd.connect.protocol_version = 21
    cmd.connect.auth_method_name = "token"
    cmd.connect.auth_data = token
    return cmd


def _raw_session(port: int, connect: Any, commands: list[Any], context: ssl.SSLContext, timeout: float = 15.0) -> list[Any]:
    """CONNECT, then each command once the previous is answered, over TLS; the answers."""
    answers: list[Any] = []
    decoder = FrameDecoder()
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=LOOPBACK) as s:
        for cmd in [connect, *commands]:
            s.sendall(encode_frame(cmd.SerializePartialToString()))
            want = len(answers) + 1
            while len(answers) < want:
                frame = decoder.next_frame()
                if frame is not None:
                    answer = wire.BaseCommand()
                    answer.MergeFromString(frame.command)
                    if answer.type != wire.BaseCommand.PING:
                        answers.append(answer)
                    continue
                data = s.recv(65536)
                if not data:
                    return answers
                decoder.receive_data(data)
    return answers


def _local_addresses(pid: int, remote_port: int) -> set[str]:
    from tests.integration.test_pulsar import _local_addresses as addresses

    return addresses(pid, remote_port)
