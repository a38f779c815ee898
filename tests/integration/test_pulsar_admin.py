"""The Pulsar admin REST API through ``twistd gatekeeper`` (``protocol: pulsar-admin``), in front
of a real Pulsar standalone broker, driven with plain HTTP.

Between Gatekeeper and the broker's web service sits a TCP relay that records every byte
Gatekeeper sends (a real socket hop, nothing answered in its place), so the tests see what the
broker sees: Gatekeeper's admin token, never the client's.

The policy: ``svc-admin`` may do anything, except delete topics whose name contains ``ledger``
(immutable); ``svc-viewer`` may list namespaces' topics and describe the ``visible-*`` ones; the
rest is denied.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import deps
from harness.gateway import TwistdGateway
from harness.ports import LOOPBACK, free_port, free_port_range
from harness.tokens import AUDIENCE, ISSUER, TestIdp

pytest.importorskip("gatekeeper_pulsar.admin_adapter", reason="the gatekeeper-pulsar plugin distribution is not installed")

IDP = TestIdp()
GATEKEEPER_TOKEN = "gatekeeper-own-admin-token-" + uuid.uuid4().hex
NS = "/admin/v2/persistent/public/default"

POLICY = """
package gatekeeper

default decision := {"action": "deny", "reason": "not allowed by the pulsar admin test policy"}

decision := {"action": "allow", "reason": "platform admin"} if {
    input.principal.sub == "svc-admin"
    not immutable_delete
}

decision := {"action": "deny", "reason": sprintf("topic %q is immutable: delete_topic is never allowed on it", [input.resource.name])} if {
    immutable_delete
}

immutable_delete if {
    input.operation == "delete_topic"
    contains(input.resource.name, "ledger")
}

decision := {"action": "allow", "reason": "viewer lists"} if {
    input.principal.sub == "svc-viewer"
    input.operation == "list_topics"
}

decision := {"action": "allow", "reason": "viewer sees visible topics"} if {
    input.principal.sub == "svc-viewer"
    input.operation == "describe_topic"
    contains(input.resource.name, "/visible-")
}
"""


class RecordingRelay:
    """A TCP relay on a loopback port to ``target``: records what the proxy side sends."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server((LOOPBACK, 0))
        self.port = self.server.getsockname()[1]
        self.sent = bytearray()
        self.lock = threading.Lock()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    with self.lock:
                        self.sent += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def recorded(self) -> bytes:
        with self.lock:
            return bytes(self.sent)

    def close(self) -> None:
        self.server.close()


class AdminGateway(TwistdGateway):
    """``twistd -n gatekeeper`` with one ``protocol: pulsar-admin`` listener."""

    def __init__(self, workdir: Path, broker: Any, relay: RecordingRelay) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "gatekeeper.yaml"
        self.log_path = self.workdir / "gatekeeper.log"
        self.proc = None
        self.http_port, self.admin_port = free_port(), free_port()
        self.broker_ports = free_port_range(1)
        policies = self.workdir / "policies"
        policies.mkdir(exist_ok=True)
        (policies / "pulsar_admin.rego").write_text(POLICY)
        token_file = self.workdir / "admin-token"
        token_file.write_text(GATEKEEPER_TOKEN + "\n")
        token_file.chmod(0o600)
        raw = {
            "listeners": [{
                "name": "pulsar-admin",
                "protocol": "pulsar-admin",
                "bind": f"{LOOPBACK}:{self.http_port}",
                "advertised_host": LOOPBACK,
                "broker_ports": f"{self.broker_ports[0]}-{self.broker_ports[-1]}",
                "authentication": {"required": True},
                "options": {"admin_url": f"http://{LOOPBACK}:{relay.port}", "brokers": [broker.web_url],
                            "token_file": str(token_file), "timeout": 20},
            }],
            "upstream": {"bootstrap_servers": [broker.address]},
            "policy": {"engine": "embedded", "policies": str(policies)},
            "identity": {"jwt": {"issuer": ISSUER, "audience": AUDIENCE,
                                 "jwks_file": str(IDP.write_jwks(self.workdir / "jwks.json"))}},
            "admin": {"bind": f"{LOOPBACK}:{self.admin_port}"},
            "logging": {"level": "info"},
        }
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.listening = [self.http_port, self.admin_port]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"


@pytest.fixture(scope="module")
def relay(pulsar_broker: Any) -> Iterator[RecordingRelay]:
    r = RecordingRelay((LOOPBACK, pulsar_broker.web_port))
    yield r
    r.close()


@pytest.fixture(scope="module")
def admin_gateway(pulsar_broker: Any, relay: RecordingRelay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminGateway]:
    gw = AdminGateway(tmp_path_factory.mktemp("pulsar-admin-gw"), pulsar_broker, relay)
    with gw:
        yield gw


def call(gw: AdminGateway, method: str, path: str, sub: str | None, body: Any = None,
         token: str | None = None) -> tuple[int, Any]:
    """One admin call through Gatekeeper: (status, decoded JSON body or None)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token is None and sub is not None:
        token = IDP.token(sub=sub)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(gw.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    return status, (json.loads(text) if text.strip() else None)


def topics_on_broker(broker: Any) -> list[str]:
    return list(broker.admin("GET", NS))


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_create_and_delete_a_topic_through_gatekeeper(admin_gateway, pulsar_broker, relay):
    name = _name("orders")
    full = f"persistent://public/default/{name}"
    status, _ = call(admin_gateway, "PUT", f"{NS}/{name}", "svc-admin")
    assert status == 204
    assert full in topics_on_broker(pulsar_broker)
    status, stats = call(admin_gateway, "GET", f"{NS}/{name}/stats", "svc-admin")
    assert status == 200 and "publishers" in stats and "subscriptions" in stats  # streamed back as the broker sent it
    status, _ = call(admin_gateway, "DELETE", f"{NS}/{name}", "svc-admin")
    assert status == 204
    assert full not in topics_on_broker(pulsar_broker)


def test_a_partitioned_topic_is_created_with_its_count(admin_gateway, pulsar_broker):
    name = _name("orders-p")
    status, _ = call(admin_gateway, "PUT", f"{NS}/{name}/partitions", "svc-admin", body=3)
    assert status == 204
    assert pulsar_broker.admin("GET", f"{NS}/{name}/partitions")["partitions"] == 3
    status, meta = call(admin_gateway, "GET", f"{NS}/{name}/partitions", "svc-admin")
    assert status == 200 and meta["partitions"] == 3
    status, _ = call(admin_gateway, "DELETE", f"{NS}/{name}/partitions", "svc-admin")
    assert status == 204


def test_deleting_an_immutable_topic_is_denied_and_the_topic_stays(admin_gateway, pulsar_broker, relay):
    name = _name("ledger")
    full = f"persistent://public/default/{name}"
    pulsar_broker.admin("PUT", f"{NS}/{name}")
    before = relay.recorded()
    status, body = call(admin_gateway, "DELETE", f"{NS}/{name}", "svc-admin")
    assert status == 403
    assert body["reason"] == f'topic "{full}" is immutable: delete_topic is never allowed on it'
    assert body["operation"] == "delete_topic" and body["resource"] == {"type": "topic", "name": full}
    assert full in topics_on_broker(pulsar_broker)
    assert b"DELETE " not in relay.recorded()[len(before):], "the denied call reached the broker"


def test_a_listing_shows_only_the_topics_the_policy_lets_the_caller_describe(admin_gateway, pulsar_broker):
    visible, hidden = _name("visible"), _name("hidden")
    for name in (visible, hidden):
        pulsar_broker.admin("PUT", f"{NS}/{name}")
    on_broker = topics_on_broker(pulsar_broker)
    assert f"persistent://public/default/{hidden}" in on_broker  # the broker lists both
    status, listed = call(admin_gateway, "GET", NS, "svc-viewer")
    assert status == 200
    assert f"persistent://public/default/{visible}" in listed
    assert f"persistent://public/default/{hidden}" not in listed
    assert all("/visible-" in t for t in listed)
    # The admin sees the broker's whole list.
    status, everything = call(admin_gateway, "GET", NS, "svc-admin")
    assert status == 200 and set(everything) == set(topics_on_broker(pulsar_broker))
    # Describing a hidden topic is denied; a visible one is not.
    assert call(admin_gateway, "GET", f"{NS}/{hidden}/stats", "svc-viewer")[0] == 403
    assert call(admin_gateway, "GET", f"{NS}/{visible}/stats", "svc-viewer")[0] == 200


def test_unmapped_calls_are_other_and_denied_by_default(admin_gateway):
    status, body = call(admin_gateway, "GET", "/admin/v2/clusters", "svc-viewer")
    assert status == 403
    assert body["operation"] == "other" and body["resource"] == {"type": "cluster", "name": "pulsar-cluster"}
    assert call(admin_gateway, "GET", "/admin/v2/clusters", "svc-admin")[0] == 200  # forwarded when allowed


def test_without_a_valid_token_nothing_reaches_the_broker(admin_gateway, relay):
    before = len(relay.recorded())
    status, body = call(admin_gateway, "GET", NS, None)
    assert status == 401 and "authentication is required" in body["reason"]
    status, body = call(admin_gateway, "GET", NS, None, token=IDP.unsigned_token(**IDP.claims(sub="svc-admin")))
    assert status == 401 and body["reason"].startswith("token refused")
    status, body = call(admin_gateway, "PUT", f"{NS}/{_name('x')}", None, token="not-a-jwt")
    assert status == 401
    assert len(relay.recorded()) == before


def test_ambiguous_paths_are_refused_before_the_policy(admin_gateway, relay):
    before = len(relay.recorded())
    status, body = call(admin_gateway, "DELETE", f"{NS}/a%2Fb", "svc-admin")
    assert status == 400 and "encoded '/'" in body["reason"]
    assert len(relay.recorded()) == before


def test_the_broker_sees_gatekeepers_token_never_the_clients(admin_gateway, relay):
    client_token = IDP.token(sub="svc-admin")
    status, listed = call(admin_gateway, "GET", NS, None, token=client_token)
    assert status == 200 and isinstance(listed, list)
    sent = relay.recorded()
    assert f"Bearer {GATEKEEPER_TOKEN}".encode() in sent
    assert client_token.encode() not in sent
    assert client_token.split(".")[1].encode() not in sent  # not even the claims
    authorizations = [line for line in sent.split(b"\r\n") if line.lower().startswith(b"authorization:")]
    assert authorizations and all(line.endswith(GATEKEEPER_TOKEN.encode()) for line in authorizations)


def test_a_body_over_the_limit_closes_the_connection_before_it_is_read(admin_gateway, relay):
    """Declared over options.max_body_bytes (1 MiB here): the connection closes at once, nothing
    is spooled and nothing reaches the broker."""
    before = len(relay.recorded())
    token = IDP.token(sub="svc-admin")
    with socket.create_connection((LOOPBACK, admin_gateway.http_port), timeout=10) as s:
        s.sendall((f"POST {NS}/{_name('x')}/retention HTTP/1.1\r\nHost: gk\r\nAuthorization: Bearer {token}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {64 << 20}\r\n\r\n").encode())
        sent, answer = 0, b""
        try:
            while sent < 8 << 20:
                s.sendall(b"0" * 65536)
                sent += 65536
        except OSError:
            pass  # closed under us: what is expected
        try:
            answer = s.recv(65536)
        except OSError:
            answer = b""
    assert sent < 8 << 20, f"Gatekeeper kept reading an oversized body ({sent} bytes taken)"
    assert answer == b""
    assert len(relay.recorded()) == before


PROBE = Path(__file__).resolve().parent / "java" / "PulsarAdminProbe.java"


def test_pulsars_java_admin_client_through_gatekeeper(admin_gateway, pulsar_broker):
    """PulsarAdmin (pulsar-client-admin-original, among the broker's jars): an allowed create,
    a filtered listing, and a denied delete it reports as NotAuthorized with the policy's reason."""
    name, ledger = _name("visible-java"), _name("ledger-java")
    full, ledger_full = (f"persistent://public/default/{n}" for n in (name, ledger))
    pulsar_broker.admin("PUT", f"{NS}/{ledger}")
    hidden = _name("hidden-java")
    pulsar_broker.admin("PUT", f"{NS}/{hidden}")
    proc = subprocess.run(
        [deps.java_executable(), "-Xmx128m", "-cp", deps.pulsar_classpath(), str(PROBE), admin_gateway.url,
         IDP.token(sub="svc-admin"), f"create:{full}", f"delete:{ledger_full}"],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    created, denied = (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))
    assert created["ok"], created
    assert full in topics_on_broker(pulsar_broker)
    assert not denied["ok"] and denied["status"] == 403 and denied["exception"] == "NotAuthorizedException"
    assert "is immutable: delete_topic is never allowed on it" in denied["message"]
    assert ledger_full in topics_on_broker(pulsar_broker)
    viewer = subprocess.run(
        [deps.java_executable(), "-Xmx128m", "-cp", deps.pulsar_classpath(), str(PROBE), admin_gateway.url,
         IDP.token(sub="svc-viewer"), "list:public/default"],
        capture_output=True, text=True, timeout=240)
    assert viewer.returncode == 0, viewer.stderr[-3000:]
    (listed,) = (json.loads(line) for line in viewer.stdout.splitlines() if line.startswith("{"))
    assert full in listed["topics"] and f"persistent://public/default/{hidden}" not in listed["topics"]
