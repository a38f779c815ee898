from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gatekeeper.config import (
    AuthenticationConfig,
    ConfigError,
    LimitsConfig,
    MaskingConfig,
    PolicyConfig,
    UpstreamConfig,
    load_config,
    parse_config,
)
from gatekeeper.config.values import default_of

GOOD = """
listeners:
  - name: default
    bind: 127.0.0.1:9192
    advertised_host: 127.0.0.1
    broker_ports: 9193-9199
upstream:
  bootstrap_servers: [127.0.0.1:9092]
policy:
  engine: allow-all
admin:
  bind: 127.0.0.1:9180
"""


def test_good_config_loads_into_values(tmp_path) -> None:
    p = tmp_path / "gk.yaml"
    p.write_text(GOOD)
    cfg = load_config(p)
    assert cfg.listeners[0].broker_ports == tuple(range(9193, 9200))
    assert str(cfg.upstream.bootstrap_servers[0]) == "127.0.0.1:9092"
    assert cfg.admin.bind is not None and cfg.admin.bind.port == 9180
    assert cfg.limits.max_frame_bytes == 100 * 1024 * 1024


def test_absent_keys_take_the_field_defaults() -> None:
    raw = yaml.safe_load(GOOD)
    raw["listeners"][0]["authentication"] = {}
    raw["identity"] = {"jwt": {"issuer": "https://idp.example", "audience": "kafka", "jwks_file": "/jwks.json"}}
    cfg = parse_config(raw)
    assert cfg.limits == LimitsConfig()
    assert cfg.policy == PolicyConfig(engine="allow-all")
    assert cfg.listeners[0].authentication == AuthenticationConfig()
    assert cfg.upstream.connect_timeout == default_of(UpstreamConfig, "connect_timeout") == 10.0
    assert cfg.identity.jwt is not None and cfg.identity.jwt.leeway == 30.0
    assert cfg.identity.client_id_principals == {}
    assert cfg.log_level == "info"


def test_present_keys_are_converted() -> None:
    raw = yaml.safe_load(GOOD)
    raw["policy"] = {"engine": "embedded", "policies": "rego", "cache": {"default_ttl": "250ms"}, "timeout": "1m"}
    raw["limits"] = {"denial_throttle_max": "0s"}
    cfg = parse_config(raw, Path("/etc/gk"))
    assert cfg.policy.policies == Path("/etc/gk/rego")
    assert cfg.policy.cache_default_ttl == 0.25 and cfg.policy.timeout == 60.0
    assert cfg.policy.cache_max_entries == default_of(PolicyConfig, "cache_max_entries")
    assert cfg.limits.denial_throttle_max == 0.0


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (lambda d: d["listeners"][0].update(bind="nohost"), "listeners[0].bind: expected pattern"),
        (lambda d: d["listeners"][0].update(broker_ports="9199-9193"), "listeners[0].broker_ports: expected an ascending range"),
        (lambda d: d["listeners"][0].update(bind="127.0.0.1:9195"), "port 9195 is already used"),
        (lambda d: d["upstream"].update(bootstrap_servers=[]), "upstream.bootstrap_servers: expected minItems"),
        (lambda d: d["policy"].update(engine="magic"), "policy.engine: expected enum"),
        (lambda d: d["policy"].update(engine="opa"), "policy: 'url' is a required property"),
        (lambda d: d["policy"].update(engine="embedded"), "policy: 'policies' is a required property"),
        (lambda d: d.update(extra=1), "Additional properties are not allowed ('extra'"),
        (lambda d: d["listeners"][0].pop("name"), "listeners[0]: 'name' is a required property"),
        (lambda d: d.update(limits={"max_frame_bytes": "big"}), "limits.max_frame_bytes: expected type \"integer\", got 'big' (str)"),
        (lambda d: (d["listeners"][0].update(authentication={"mechanisms": ["OAUTHBEARER"]}),
                    d.update(identity={"client_id_principals": {"ci": {"sub": "ci"}}})),
         "identity.client_id_principals: cannot be combined with listeners[0].authentication"),
    ],
)
def test_each_error_names_the_yaml_path(patch, expected) -> None:
    raw = yaml.safe_load(GOOD)
    patch(raw)
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert any(expected in line for line in err.value.errors), err.value.errors


POLICY_REQUIRED = "required; choose an engine (opa, embedded) or say `engine: allow-all` explicitly"


def test_a_config_without_policy_is_refused(tmp_path) -> None:
    raw = yaml.safe_load(GOOD)
    del raw["policy"]
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.errors == [f"policy: {POLICY_REQUIRED}"]
    p = tmp_path / "gk.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert err.value.errors == [f"{p}: policy: {POLICY_REQUIRED}"]


def test_a_policy_without_engine_is_refused() -> None:
    raw = yaml.safe_load(GOOD)
    raw["policy"] = {"timeout": "1s"}
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.errors == [f"policy.engine: {POLICY_REQUIRED}"]


def test_other_missing_keys_keep_the_schema_message() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"policy": {"engine": "allow-all"}})
    assert err.value.errors == ["(top level): 'listeners' is a required property"]


def test_unreadable_and_invalid_yaml_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("listeners: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_masking_defaults_to_no_hash_key() -> None:
    cfg = parse_config(yaml.safe_load(GOOD))
    assert cfg.masking == MaskingConfig()
    assert cfg.masking.hash_key is None and cfg.masking.plan_cache_entries == 1024


def test_masking_hash_key_is_read_from_a_file_at_load(tmp_path) -> None:
    key = tmp_path / "hash.key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    p = tmp_path / "gk.yaml"
    p.write_text(GOOD + "masking:\n  hash_key_file: hash.key\n  plan_cache_entries: 10\n")
    cfg = load_config(p)
    assert cfg.masking.hash_key_file == key  # relative to the config file
    assert cfg.masking.hash_key == b"0123456789abcdef0123456789abcdef"
    assert cfg.masking.plan_cache_entries == 10
    assert "0123456789abcdef" not in repr(cfg)


def test_masking_hash_key_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("GK_TEST_HASH_KEY", "an environment key of some length")
    raw = yaml.safe_load(GOOD)
    raw["masking"] = {"hash_key_env": "GK_TEST_HASH_KEY"}
    assert parse_config(raw).masking.hash_key == b"an environment key of some length"


@pytest.mark.parametrize(
    ("masking", "env", "file", "message"),
    [
        ({"hash_key_env": "GK_TEST_UNSET_KEY"}, None, None,
         "masking.hash_key_env: environment variable GK_TEST_UNSET_KEY is empty or unset; the key must have at least 16 bytes"),
        ({"hash_key_env": "GK_TEST_SHORT_KEY"}, "short", None, "environment variable GK_TEST_SHORT_KEY holds 5 bytes"),
        ({"hash_key_file": "missing.key"}, None, None, "masking.hash_key_file: .*missing.key: cannot read the key file"),
        ({"hash_key_file": "short.key"}, None, b"tiny", "short.key holds 4 bytes; the key must have at least 16"),
        ({"hash_key_file": "a", "hash_key_env": "B"}, None, None, "masking: hash_key_file and hash_key_env exclude each other"),
        ({"hash_key": "inline"}, None, None, "masking: Additional properties are not allowed"),
    ],
)
def test_masking_hash_key_errors_name_the_setting_never_the_key(tmp_path, monkeypatch, masking, env, file, message) -> None:
    monkeypatch.delenv("GK_TEST_UNSET_KEY", raising=False)
    if env is not None:
        monkeypatch.setenv("GK_TEST_SHORT_KEY", env)
    if file is not None:
        (tmp_path / "short.key").write_bytes(file)
    p = tmp_path / "gk.yaml"
    p.write_text(GOOD + "masking: " + json.dumps(masking) + "\n")
    with pytest.raises(ConfigError, match=message) as e:
        load_config(p)
    assert "tiny" not in str(e.value) and "short\n" not in str(e.value)
