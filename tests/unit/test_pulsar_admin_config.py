"""A ``protocol: pulsar-admin`` listener: its options validated at load, and the settings and
HTTP site the adapter builds from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from twisted.internet.testing import MemoryReactorClock
from twisted.web.server import Site

pytest.importorskip("gatekeeper_pulsar.admin_adapter", reason="the gatekeeper-pulsar plugin distribution is not installed")

from gatekeeper_pulsar.admin_adapter import PulsarAdminAdapter  # noqa: E402
from gatekeeper_pulsar.admin_proxy import AdminProxy, WebBroker  # noqa: E402

from gatekeeper.api import AdapterServices  # noqa: E402
from gatekeeper.config import ConfigError, parse_config  # noqa: E402
from gatekeeper.metrics import Metrics  # noqa: E402

BASE = """
listeners:
  - name: padmin
    protocol: pulsar-admin
    bind: 127.0.0.1:8080
    advertised_host: gatekeeper.example
    broker_ports: 8081-8082
    options:
      admin_url: http://pulsar-lb.internal:8080
      brokers: [http://broker-1.internal:8080, http://broker-2.internal:8080/]
upstream:
  bootstrap_servers: [127.0.0.1:6650]
policy:
  engine: allow-all
"""


def _raw() -> dict[str, Any]:
    return dict(yaml.safe_load(BASE))


def _errors(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    return "\n".join(e.value.errors)


def test_options_are_validated_with_their_yaml_path() -> None:
    raw = _raw()
    del raw["listeners"][0]["options"]["admin_url"]
    raw["listeners"][0]["options"]["brokers"] = ["pulsar://broker-1:6650"]
    text = _errors(raw)
    assert "listeners[0].options: 'admin_url' is a required property" in text
    assert "listeners[0].options.brokers[0]: 'pulsar://broker-1:6650' does not match" in text


def test_a_listener_upstream_is_refused_as_the_adapter_takes_none() -> None:
    raw = _raw()
    raw["listeners"][0]["upstream"] = {"bootstrap_servers": ["10.0.0.5:8080"]}
    text = _errors(raw)
    assert ("listeners[0].upstream: the pulsar-admin adapter takes no upstream section: it reaches its brokers "
            "through the listener's options (listeners[0].options); remove it from the listener") in text
    assert "top-level upstream" not in text


def test_a_pulsar_admin_only_gatekeeper_needs_no_top_level_upstream() -> None:
    raw = _raw()
    del raw["upstream"]
    config = parse_config(raw)
    assert config.upstream_implicit and config.upstream.bootstrap_servers == ()
    assert config.listeners[0].protocol == "pulsar-admin"


def test_a_kafka_listener_beside_a_pulsar_admin_one_still_needs_the_top_level_upstream() -> None:
    raw = _raw()
    del raw["upstream"]
    raw["listeners"].append({"name": "kafka", "bind": "127.0.0.1:9092", "advertised_host": "gk", "broker_ports": "9093-9094"})
    text = _errors(raw)
    assert "listeners[1].upstream: listener 'kafka' has no upstream and there is no top-level upstream" in text
    assert "listeners[0]" not in text


def _adapter(raw: dict[str, Any]) -> PulsarAdminAdapter:
    config = parse_config(raw)
    return PulsarAdminAdapter(AdapterServices(
        config=config, metrics=Metrics(), clock=lambda: 0.0, identity=None, upstream_credentials=lambda: None,
        principal_for_client_id=lambda cid: None, next_bootstrap=lambda: None, inputs_decoded=lambda i: None,
        reactor=MemoryReactorClock(), decide_many=None))


def test_the_adapter_serves_each_port_with_its_broker(tmp_path: Path) -> None:
    raw = _raw()
    (tmp_path / "token").write_text("gk-admin-token\n")
    raw["listeners"][0]["options"]["token_file"] = str(tmp_path / "token")
    adapter = _adapter(raw)
    listener = parse_config(raw).listeners[0]
    targets = []
    for slot in (None, 0, 1):
        site = adapter.server_factory(listener, slot)
        assert isinstance(site, Site) and not site.displayTracebacks
        proxy = site.resource
        assert isinstance(proxy, AdminProxy)
        assert proxy.settings.token == "gk-admin-token"
        targets.append(proxy.settings.target)
    assert targets == [WebBroker("pulsar-lb.internal", 8080), WebBroker("broker-1.internal", 8080),
                       WebBroker("broker-2.internal", 8080)]
    settings = adapter.settings["padmin"]
    assert settings.rewrite_location("http://BROKER-2.internal:8080/admin/v2/tenants") == \
        "http://gatekeeper.example:8082/admin/v2/tenants"
    assert not settings.auth_required and settings.max_body == 1 << 20


def test_a_missing_token_variable_is_a_start_error() -> None:
    raw = _raw()
    raw["listeners"][0]["options"]["token_env"] = "GK_NO_SUCH_VARIABLE_SET"
    with pytest.raises(ValueError, match="listeners\\[0\\].options.token_env: the environment variable"):
        _adapter(raw)
