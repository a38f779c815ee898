"""The ``approvals`` config section: values and defaults, paths relative to the config file,
and the errors an operator gets (each naming the YAML path)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.config import (
    ApprovalsConfig,
    ConfigError,
    NotifierConfig,
    load_config,
    parse_config,
)
from gatekeeper.identity.secrets import exposed_secret_files
from gatekeeper.values import HostPort

BASE = """
listeners:
  - name: default
    bind: 127.0.0.1:9192
    broker_ports: 9193-9199
upstream:
  bootstrap_servers: [127.0.0.1:9092]
policy:
  engine: allow-all
admin:
  bind: 127.0.0.1:9180
identity:
  jwt: {issuer: "https://idp.example", audience: kafka, jwks_file: /jwks.json}
"""


def raw(approvals: Any) -> dict[str, Any]:
    doc = yaml.safe_load(BASE)
    doc["approvals"] = approvals
    return doc  # type: ignore[no-any-return]


def errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(doc)
    return e.value.errors


def test_absent_section_means_approvals_are_off() -> None:
    assert parse_config(yaml.safe_load(BASE)).approvals is None


def test_defaults() -> None:
    cfg = parse_config(raw({"store": "/var/lib/gatekeeper/approvals.db"})).approvals
    assert cfg == ApprovalsConfig(store=Path("/var/lib/gatekeeper/approvals.db"))
    assert (cfg.max_wait, cfg.request_ttl, cfg.default_grant_ttl, cfg.max_grant_ttl) == (20.0, 86400.0, 900.0, 86400.0)
    assert (cfg.bind, cfg.tls, cfg.page_url, cfg.notifiers, cfg.max_pending_per_principal) == (None, None, None, (), 20)


def test_everything_set_with_paths_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "webhook.key").write_bytes(b"x" * 32)
    doc = raw({
        "store": "approvals.db",
        "bind": "0.0.0.0:9443",
        "tls": {"cert_file": "tls/cert.pem", "key_file": "tls/key.pem"},
        "page_url": "https://gatekeeper.example/approvals",
        "max_wait": "30s",
        "request_ttl": "8h",
        "default_grant_ttl": "10m",
        "max_grant_ttl": "4h",
        "history": "168h",
        "max_pending_per_principal": 5,
        "notifiers": [
            {"name": "log"},
            {"name": "webhook", "url": "https://hooks.example/gk", "secret_file": "webhook.key", "timeout": "5s",
             "retries": 5, "events": ["request_opened", "request_decided"]},
        ],
    })
    path = tmp_path / "gk.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path).approvals
    assert cfg is not None
    assert cfg.store == tmp_path / "approvals.db"
    assert cfg.bind == HostPort("0.0.0.0", 9443)
    assert cfg.tls is not None and cfg.tls.key_file == tmp_path / "tls/key.pem"
    assert (cfg.max_wait, cfg.request_ttl, cfg.default_grant_ttl, cfg.max_grant_ttl, cfg.history) == \
        (30.0, 8 * 3600.0, 600.0, 4 * 3600.0, 168 * 3600.0)
    assert cfg.max_pending_per_principal == 5
    assert cfg.notifiers == (
        NotifierConfig("log", {}, ("request_opened",), tmp_path),
        NotifierConfig("webhook", {"url": "https://hooks.example/gk", "secret_file": "webhook.key", "timeout": "5s",
                                   "retries": 5}, ("request_opened", "request_decided"), tmp_path),
    )


def test_store_is_required() -> None:
    assert errors(raw({"max_wait": "5s"})) == ["approvals: 'store' is a required property"]


def test_unknown_keys_and_bad_values_name_the_path() -> None:
    found = errors(raw({"store": "a.db", "max_wait": "soon", "sotre": "x"}))
    assert any(line.startswith("approvals: Additional properties") for line in found)
    assert any(line.startswith("approvals.max_wait: expected pattern") for line in found)


def test_approvers_need_token_validation() -> None:
    doc = raw({"store": "a.db"})
    del doc["identity"]
    assert errors(doc) == ["approvals: needs identity.jwt: approvers authenticate with tokens validated as "
                           "client tokens are"]


def test_the_listener_port_must_be_free() -> None:
    assert errors(raw({"store": "a.db", "bind": "0.0.0.0:9192"})) == [
        "approvals.bind: port 9192 is already used by listeners[0].bind"]
    assert errors(raw({"store": "a.db", "bind": "0.0.0.0:9180"})) == [
        "approvals.bind: port 9180 is already used by admin.bind"]


def test_notifiers_are_checked_against_their_plugin_schema() -> None:
    found = errors(raw({"store": "a.db", "notifiers": [
        {"name": "webhook", "url": "ftp://x"},
        {"name": "pager"},
        {"name": "log", "colour": "red"},
    ]}))
    assert any(line.startswith("approvals.notifiers[0]: 'secret_file' is a required property") for line in found)
    assert any(line.startswith("approvals.notifiers[0].url: 'ftp://x' does not match") for line in found)
    assert any(line.startswith("approvals.notifiers[1].name: no plugin 'pager' in entry-point group "
                               "'gatekeeper.notifiers'") for line in found)
    assert any(line.startswith("approvals.notifiers[2]: Additional properties") for line in found)
    found = errors(raw({"store": "a.db", "notifiers": [{"name": "log", "events": ["request_exploded"]}]}))
    assert [line.split(":")[0] for line in found] == ["approvals.notifiers[0].events[0]"]


def test_webhook_key_and_tls_key_readable_by_others_are_reported(tmp_path: Path) -> None:
    key = tmp_path / "webhook.key"
    key.write_bytes(b"x" * 32)
    os.chmod(key, 0o644)
    tls_key = tmp_path / "key.pem"
    tls_key.write_text("k")
    os.chmod(tls_key, 0o600)
    doc = raw({"store": "a.db", "tls": {"cert_file": "c.pem", "key_file": "key.pem"},
               "notifiers": [{"name": "webhook", "url": "https://h.example/", "secret_file": "webhook.key"}]})
    cfg = parse_config(doc, tmp_path)
    assert exposed_secret_files(cfg) == [f"approvals.notifiers[0].secret_file {key} (mode 0644)"]
