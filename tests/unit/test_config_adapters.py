"""Listener protocols are installed adapters, and each adapter validates its listeners' own
``upstream`` and ``options`` (the pulsar plugin distribution is one such adapter)."""

from __future__ import annotations

import pytest
import yaml

from gatekeeper.config import ConfigError, parse_config
from gatekeeper.values import HostPort

BASE = """
listeners:
  - name: kafka
    bind: 127.0.0.1:9192
    broker_ports: 9193-9195
  - name: pulsar
    protocol: pulsar
    bind: 127.0.0.1:6650
    broker_ports: 6651-6652
    upstream:
      bootstrap_servers: [10.0.0.5:6650]
    options:
      brokers: [10.0.0.5:6650, 10.0.0.6:6650]
upstream:
  bootstrap_servers: [127.0.0.1:9092]
policy:
  engine: allow-all
"""


def _raw() -> dict:
    return yaml.safe_load(BASE)


def test_a_pulsar_listener_beside_a_kafka_one() -> None:
    cfg = parse_config(_raw())
    kafka, pulsar = cfg.listeners
    assert kafka.protocol == "kafka" and kafka.upstream_servers is None and kafka.options == {}
    assert pulsar.protocol == "pulsar" and pulsar.upstream_servers == (HostPort("10.0.0.5", 6650),)
    assert pulsar.options["brokers"] == ["10.0.0.5:6650", "10.0.0.6:6650"]


def test_a_protocol_no_adapter_provides_is_refused() -> None:
    raw = _raw()
    raw["listeners"][1]["protocol"] = "amqp"
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert any(line.startswith("listeners[1].protocol: no adapter 'amqp' is installed (installed: kafka, pulsar")
               for line in e.value.errors)


def test_adapter_options_are_validated_by_the_adapter() -> None:
    raw = _raw()
    raw["listeners"][1]["options"] = {"brokers": ["no-port"], "tokenfile": "/x"}
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    text = "\n".join(e.value.errors)
    assert "listeners[1].options: Additional properties are not allowed ('tokenfile'" in text
    assert "listeners[1].options.brokers[0]: 'no-port' does not match" in text


def test_the_kafka_adapter_takes_no_listener_upstream_or_options() -> None:
    raw = _raw()
    raw["listeners"][0]["upstream"] = {"bootstrap_servers": ["127.0.0.1:9093"]}
    raw["listeners"][0]["options"] = {"x": 1}
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert "listeners[0].upstream: the kafka adapter fronts the top-level upstream section only; remove it from the listener" in e.value.errors
    assert "listeners[0].options: the kafka adapter takes no options; remove them" in e.value.errors


def test_a_pulsar_only_gatekeeper_needs_no_top_level_upstream() -> None:
    raw = _raw()
    del raw["upstream"]
    del raw["listeners"][0]
    cfg = parse_config(raw)
    assert cfg.upstream_implicit
    # What probes the upstreams (readiness) probes the listener's own servers, without credentials.
    assert cfg.upstream.bootstrap_servers == (HostPort("10.0.0.5", 6650),) and cfg.upstream.sasl is None
    assert not parse_config(_raw()).upstream_implicit


def test_a_kafka_listener_without_any_upstream_is_refused_by_its_yaml_path() -> None:
    raw = _raw()
    del raw["upstream"]
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert e.value.errors == [
        "listeners[0].upstream: listener 'kafka' has no upstream and there is no top-level upstream section; "
        "the kafka adapter fronts the top-level upstream section: add it"]


def test_a_pulsar_listener_without_its_own_upstream_needs_the_top_level_one() -> None:
    raw = _raw()
    del raw["upstream"]
    del raw["listeners"][0]
    del raw["listeners"][0]["upstream"]
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert e.value.errors == [
        "listeners[0].upstream: listener 'pulsar' has no upstream and there is no top-level upstream section; "
        "give the listener an upstream, or add the top-level upstream"]


def test_the_kafka_audit_sink_needs_the_top_level_upstream() -> None:
    raw = _raw()
    del raw["upstream"]
    del raw["listeners"][0]
    raw["audit"] = {"sink": "kafka", "topic": "gatekeeper-audit", "hmac_key_file": "/nonexistent"}
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert any(line.startswith("audit.sink: kafka writes to the top-level upstream cluster") for line in e.value.errors)
