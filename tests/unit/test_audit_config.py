"""The ``audit`` config section: values and defaults, the key read at load, sink options
checked against the sink's schema, and the errors an operator gets (each naming the YAML path)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.config import AuditConfig, ConfigError, load_config, parse_config
from gatekeeper.identity.secrets import exposed_secret_files

BASE = """
listeners:
  - name: default
    bind: 127.0.0.1:9192
    broker_ports: 9193-9199
upstream:
  bootstrap_servers: [127.0.0.1:9092]
policy:
  engine: allow-all
"""


@pytest.fixture
def key(tmp_path: Path) -> Path:
    p = tmp_path / "audit.key"
    p.write_text("0123456789abcdef0123456789abcdef\n")
    p.chmod(0o600)
    return p


def raw(audit: Any) -> dict[str, Any]:
    doc = yaml.safe_load(BASE)
    doc["audit"] = audit
    return doc  # type: ignore[no-any-return]


def errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(doc)
    return e.value.errors


def test_absent_section_means_no_audit() -> None:
    assert parse_config(yaml.safe_load(BASE)).audit is None


def test_file_sink_defaults(key: Path, tmp_path: Path) -> None:
    cfg = parse_config(raw({"hmac_key_file": str(key), "directory": str(tmp_path / "audit")})).audit
    assert cfg is not None
    assert (cfg.sink, cfg.fsync, cfg.segment_bytes, cfg.segment_age, cfg.checkpoint_interval) == (
        "file", "always", 64 * 1024 * 1024, 3600.0, 60.0)
    assert (cfg.queue_records, cfg.on_failure) == (10_000, "deny")
    assert cfg.hmac_key == b"0123456789abcdef0123456789abcdef"
    assert "hmac_key=" not in repr(cfg) and "0123456789abcdef" not in repr(cfg)
    assert cfg.instance  # this host's name
    assert cfg.sink_options() == {"directory": str(tmp_path / "audit"), "segment_bytes": 64 * 1024 * 1024,
                                  "segment_age": 3600.0, "fsync": "always", "fsync_interval": 1.0}


def test_every_key(tmp_path: Path, key: Path) -> None:
    path = tmp_path / "gk.yaml"
    doc = raw({"sink": "file", "instance": "gk-1", "hmac_key_file": "audit.key", "directory": "trail",
               "segment_bytes": 1048576, "segment_age": "15m", "fsync": "interval", "fsync_interval": "250ms",
               "checkpoint_interval": "30s", "group_commit": "50ms", "queue_records": 500, "on_failure": "block"})
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path).audit
    assert cfg == AuditConfig(hmac_key_file=key, sink="file", instance="gk-1", directory=tmp_path / "trail",
                              segment_bytes=1048576, segment_age=900.0, fsync="interval", fsync_interval=0.25,
                              checkpoint_interval=30.0, group_commit=0.05, queue_records=500, on_failure="block", base=tmp_path,
                              hmac_key=b"0123456789abcdef0123456789abcdef")


def test_kafka_sink(key: Path) -> None:
    cfg = parse_config(raw({"sink": "kafka", "hmac_key_file": str(key), "topic": "audit.gk", "timeout": "5s"})).audit
    assert cfg is not None and cfg.sink_options() == {"topic": "audit.gk", "timeout": 5.0}


@pytest.mark.parametrize("audit, expected", [
    ({}, "audit: 'hmac_key_file' is a required property"),
    ({"hmac_key_file": "k"}, "audit.directory: required with sink: file"),
    ({"hmac_key_file": "k", "directory": "d", "topic": "t"}, "audit.topic: not a setting of sink 'file'; remove it"),
    ({"hmac_key_file": "k", "sink": "kafka", "fsync": "never"}, "audit.fsync: not a setting of sink 'kafka'"),
    ({"hmac_key_file": "k", "directory": "d", "fsync": "sometimes"}, "audit.fsync: expected enum"),
    ({"hmac_key_file": "k", "directory": "d", "on_failure": "ignore"}, "audit.on_failure: expected enum"),
    ({"hmac_key_file": "k", "directory": "d", "segment_bytes": 10}, "audit.segment_bytes: expected minimum"),
    ({"hmac_key_file": "k", "directory": "d", "instance": "gk 1"}, "audit.instance: expected pattern"),
    ({"hmac_key_file": "k", "directory": "d", "options": {"x": 1}}, "audit.options: not a setting of sink 'file'"),
    ({"hmac_key_file": "k", "sink": "s3"}, "audit.sink: no plugin 's3' in entry-point group 'gatekeeper.audit_sinks'"),
    ({"hmac_key_file": "k", "directory": "d", "surprise": 1}, "Additional properties are not allowed ('surprise'"),
])
def test_errors_name_the_setting(audit: dict[str, Any], expected: str) -> None:
    found = errors(raw(audit))
    assert any(expected in e for e in found), found


def test_the_key_must_be_readable_and_long_enough(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("tooshort")
    [found] = errors(raw({"hmac_key_file": str(short), "directory": str(tmp_path)}))
    assert found.startswith(f"audit.hmac_key_file: {short} holds 8 bytes; the key must have at least 16 bytes")
    [found] = errors(raw({"hmac_key_file": str(tmp_path / "missing.key"), "directory": str(tmp_path)}))
    assert "cannot read the key file: No such file or directory" in found


def test_a_plugin_sink_options_are_checked_against_its_schema(monkeypatch: pytest.MonkeyPatch, key: Path) -> None:
    import gatekeeper.plugins as plugins

    class S3Sink:
        options_schema = {"type": "object", "required": ["bucket"], "properties": {"bucket": {"type": "string"}}}

    real_load = plugins.load
    monkeypatch.setattr(plugins, "load", lambda group, name: S3Sink if name == "s3" else real_load(group, name))
    found = errors(raw({"hmac_key_file": str(key), "sink": "s3", "options": {"region": "eu"}}))
    assert found == ["audit.options: 'bucket' is a required property"]
    cfg = parse_config(raw({"hmac_key_file": str(key), "sink": "s3", "options": {"bucket": "b"}})).audit
    assert cfg is not None and cfg.sink_options() == {"bucket": "b"}


def test_a_readable_key_file_is_warned_about(key: Path, tmp_path: Path) -> None:
    config = parse_config(raw({"hmac_key_file": str(key), "directory": str(tmp_path)}))
    assert exposed_secret_files(config) == []
    os.chmod(key, 0o644)
    assert exposed_secret_files(config) == [f"audit.hmac_key_file {key} (mode 0644)"]


def test_group_commit_is_bounded(key: Path) -> None:
    cfg = parse_config(raw({"hmac_key_file": str(key), "directory": "/tmp/trail", "group_commit": "500ms"})).audit
    assert cfg is not None and cfg.group_commit == 0.5
    with pytest.raises(ConfigError, match=r"audit.group_commit: at most 500ms"):
        parse_config(raw({"hmac_key_file": str(key), "directory": "/tmp/trail", "group_commit": "2s"}))
