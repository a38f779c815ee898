"""The default policy library (policies/gatekeeper) on Pulsar full names, through ``twistd
gatekeeper`` in front of a real Pulsar standalone broker: one Gatekeeper with a ``pulsar-admin``
listener and a ``pulsar`` listener, the embedded engine, and a ``gatekeeper_config`` that marks
``persistent://public/default/ledger-*`` immutable and grants by full-name globs.

- ``svc-ops`` (group ``platform``) has every topic operation (``**``): it may delete an ordinary
  topic through the admin REST API, never an immutable one or one of its partitions.
- ``svc-orders`` (group ``orders-writers``) may produce to and look up
  ``persistent://public/default/orders-*``, and nothing in another namespace.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.gateway import TwistdGateway
from harness.ports import LOOPBACK, free_port, free_port_range
from harness.tokens import AUDIENCE, ISSUER, TestIdp

pulsar = pytest.importorskip("pulsar")
pytest.importorskip("gatekeeper_pulsar.admin_adapter", reason="the gatekeeper-pulsar plugin distribution is not installed")

ROOT = Path(__file__).resolve().parents[2]
IDP = TestIdp()
NS = "/admin/v2/persistent/public/default"
IMMUTABLE = "persistent://public/default/ledger-*"

CONFIG = {"gatekeeper_config": {
    "default_ttl": "5s",
    "always_allowed": [],
    "immutable_topics": [IMMUTABLE],
    "grants": [
        {"principals": {"groups": ["orders-writers"]},
         "resources": {"type": "topic", "patterns": ["persistent://public/default/orders-*"]},
         "operations": ["produce", "describe_topic"]},
        {"principals": {"groups": ["platform"]}, "resources": {"type": "topic", "patterns": ["**"]}, "operations": ["*"]},
    ],
}}


class LibraryGateway(TwistdGateway):
    """``twistd -n gatekeeper``: the default library, a pulsar-admin and a pulsar listener."""

    def __init__(self, workdir: Path, broker: Any) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "gatekeeper.yaml"
        self.log_path = self.workdir / "gatekeeper.log"
        self.proc = None
        self.http_port, self.service_port, self.admin_port = free_port(), free_port(), free_port()
        self.web_ports, self.broker_ports = free_port_range(1), free_port_range(1)
        data = self.workdir / "data.json"
        data.write_text(json.dumps(CONFIG))
        raw = {
            "listeners": [
                {"name": "pulsar-admin", "protocol": "pulsar-admin", "bind": f"{LOOPBACK}:{self.http_port}",
                 "advertised_host": LOOPBACK, "broker_ports": f"{self.web_ports[0]}-{self.web_ports[-1]}",
                 "authentication": {"required": True},
                 "options": {"admin_url": broker.web_url, "brokers": [broker.web_url], "timeout": 20}},
                {"name": "pulsar", "protocol": "pulsar", "bind": f"{LOOPBACK}:{self.service_port}",
                 "advertised_host": LOOPBACK, "broker_ports": f"{self.broker_ports[0]}-{self.broker_ports[-1]}",
                 "authentication": {"required": True},
                 "upstream": {"bootstrap_servers": [broker.address]}, "options": {"brokers": [broker.address]}},
            ],
            "upstream": {"bootstrap_servers": [broker.address]},  # the pulsar-admin listener still asks for it
            "policy": {"engine": "embedded", "policies": str(ROOT / "policies" / "gatekeeper"), "data": str(data)},
            "identity": {"jwt": {"issuer": ISSUER, "audience": AUDIENCE,
                                 "jwks_file": str(IDP.write_jwks(self.workdir / "jwks.json"))}},
            "admin": {"bind": f"{LOOPBACK}:{self.admin_port}"},
            "logging": {"level": "info"},
        }
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.listening = [self.http_port, self.service_port, self.admin_port]


@pytest.fixture(scope="module")
def gateway(pulsar_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LibraryGateway]:
    gw = LibraryGateway(tmp_path_factory.mktemp("pulsar-library-gw"), pulsar_broker)
    with gw:
        yield gw


def _token(sub: str, groups: tuple[str, ...]) -> str:
    return IDP.token(**IDP.claims(sub=sub, groups=groups))


def _delete(gw: LibraryGateway, path: str, token: str) -> tuple[int, Any]:
    req = urllib.request.Request(f"http://{LOOPBACK}:{gw.http_port}{path}", method="DELETE",
                                 headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    return status, (json.loads(text) if text.strip() else None)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _topics(broker: Any, partitioned: bool = False) -> list[str]:
    return list(broker.admin("GET", NS + ("/partitioned" if partitioned else "")))


OPS = ("svc-ops", ("platform",))


def test_deleting_an_immutable_topic_through_the_admin_api_is_refused_and_it_stays(gateway, pulsar_broker):
    name = _name("ledger")
    full = f"persistent://public/default/{name}"
    pulsar_broker.admin("PUT", f"{NS}/{name}")
    status, body = _delete(gateway, f"{NS}/{name}?force=true", _token(*OPS))
    assert status == 403, body
    assert body["reason"] == f'topic "{full}" is immutable: delete_topic is never allowed on it'
    assert body["operation"] == "delete_topic" and body["resource"] == {"type": "topic", "name": full}
    assert full in _topics(pulsar_broker)


def test_a_partition_of_an_immutable_topic_is_immutable_too(gateway, pulsar_broker):
    name = _name("ledger-p")
    full = f"persistent://public/default/{name}"
    pulsar_broker.admin("PUT", f"{NS}/{name}/partitions", 2)
    status, body = _delete(gateway, f"{NS}/{name}/partitions", _token(*OPS))
    assert status == 403 and body["reason"] == f'topic "{full}" is immutable: delete_topic is never allowed on it'
    status, body = _delete(gateway, f"{NS}/{name}-partition-1", _token(*OPS))
    assert status == 403
    assert body["reason"] == f'topic "{full}-partition-1" is immutable: delete_topic is never allowed on it'
    assert full in _topics(pulsar_broker, partitioned=True)
    assert pulsar_broker.admin("GET", f"{NS}/{name}/partitions")["partitions"] == 2


def test_deleting_an_ordinary_granted_topic_works(gateway, pulsar_broker):
    name = _name("ledgerx")  # a near miss of ledger-*
    full = f"persistent://public/default/{name}"
    pulsar_broker.admin("PUT", f"{NS}/{name}")
    status, body = _delete(gateway, f"{NS}/{name}", _token(*OPS))
    assert status == 204, body
    assert full not in _topics(pulsar_broker)


def test_deleting_without_a_grant_is_refused_as_authorization(gateway, pulsar_broker):
    name = _name("orders")
    full = f"persistent://public/default/{name}"
    pulsar_broker.admin("PUT", f"{NS}/{name}")
    status, body = _delete(gateway, f"{NS}/{name}", _token("svc-orders", ("orders-writers",)))
    assert status == 403
    assert body["reason"] == f"no grant allows delete_topic on topic {json.dumps(full)} for svc-orders (groups: orders-writers)"
    assert full in _topics(pulsar_broker)


def test_a_producer_on_a_globbed_full_name_is_allowed_and_another_namespace_denied(gateway, pulsar_broker):
    allowed = f"persistent://public/default/{_name('orders')}"
    elsewhere = f"persistent://public/other-{uuid.uuid4().hex[:6]}/{_name('orders')}"
    pulsar_broker.admin("PUT", f"/admin/v2/persistent/{allowed.split('://', 1)[1]}")
    client = pulsar.Client(f"pulsar://{LOOPBACK}:{gateway.service_port}",
                           authentication=pulsar.AuthenticationToken(_token("svc-orders", ("orders-writers",))),
                           operation_timeout_seconds=10, connection_timeout_ms=5000)
    try:
        producer = client.create_producer(allowed)
        producer.send(b"through the default library")
        producer.close()
        assert pulsar_broker.admin("GET", f"/admin/v2/persistent/{allowed.split('://', 1)[1]}/stats")["msgInCounter"] == 1
        with pytest.raises(pulsar.AuthorizationError):
            client.create_producer(elsewhere)
    finally:
        client.close()
