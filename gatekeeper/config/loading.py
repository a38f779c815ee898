"""Read the YAML config, validate it, and build the values, or say what is wrong.

The YAML is validated against ``schemas/config.schema.json`` first, then checked for what a
schema cannot express (port clashes, settings that exclude each other); only then are the
values built (``gatekeeper.config.values``), and the one secret needed as bytes rather than at
connect time, the masking hash key, read. Every error names the YAML path, what was expected
and what arrived (never a secret), so an operator can fix the file without reading code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import yaml

from gatekeeper.config.values import (
    MAX_GROUP_COMMIT,
    AuditConfig,
    Config,
    MaskingConfig,
    NotifierConfig,
)
from gatekeeper.values import parse_duration

__all__ = ["ConfigError", "load_config", "parse_config"]


class ConfigError(Exception):
    """The operator's config is wrong. ``errors`` holds one line per problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


def _schema() -> dict[str, Any]:
    text = resources.files("gatekeeper").joinpath("schemas/config.schema.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


def _yaml_path(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


# What to tell the operator when a required key is missing, by the key's YAML path.
_REQUIRED_HINTS = {
    "policy": "required; choose an engine (opa, embedded) or say `engine: allow-all` explicitly",
    "policy.engine": "required; choose an engine (opa, embedded) or say `engine: allow-all` explicitly",
}


def _missing_key(err: jsonschema.ValidationError) -> str | None:
    """The key a ``required`` error is about (jsonschema reports one error per missing key)."""
    for key in err.validator_value:
        if err.message == f"{key!r} is a required property":
            return str(key)
    return None


def _schema_error(err: jsonschema.ValidationError) -> str:
    where = _yaml_path(list(err.absolute_path))
    if err.validator == "required":
        key = _missing_key(err)
        path = _yaml_path([*err.absolute_path, key]) if key is not None else where
        if path in _REQUIRED_HINTS:
            return f"{path}: {_REQUIRED_HINTS[path]}"
    if err.validator == "additionalProperties" or err.validator == "required":
        return f"{where}: {err.message}"
    return f"{where}: expected {err.validator} {json.dumps(err.validator_value)}, got {_describe(err.instance)}"


def _semantic_errors(raw: Mapping[str, Any]) -> list[str]:
    """Checks a JSON Schema cannot express: port ranges and clashes between listeners."""
    errors: list[str] = []
    used: dict[int, str] = {}
    for i, item in enumerate(raw["listeners"]):
        path = f"listeners[{i}]"
        first, _, last = item["broker_ports"].partition("-")
        lo, hi = int(first), int(last)
        if not (1 <= lo <= hi <= 65535):
            errors.append(
                f"{path}.broker_ports: expected an ascending range of ports 1-65535, "
                f"got {_describe(item['broker_ports'])}"
            )
            continue
        bind_port = int(item["bind"].rpartition(":")[2])
        if not 1 <= bind_port <= 65535:
            errors.append(f"{path}.bind: expected a port 1-65535, got {_describe(item['bind'])}")
        for port, where in [(bind_port, f"{path}.bind"), *[(p, f"{path}.broker_ports") for p in range(lo, hi + 1)]]:
            if port in used:
                errors.append(f"{where}: port {port} is already used by {used[port]}")
            else:
                used[port] = where
    has_jwt = bool(raw.get("identity", {}).get("jwt"))
    by_client_id = bool(raw.get("identity", {}).get("client_id_principals"))
    for i, item in enumerate(raw["listeners"]):
        if item.get("authentication") is not None and not has_jwt:
            errors.append(f"listeners[{i}].authentication: needs identity.jwt to validate tokens")
        if item.get("authentication") is not None and by_client_id:
            errors.append(
                f"identity.client_id_principals: cannot be combined with listeners[{i}].authentication: "
                "any client can claim any client id, so it would undercut the authenticated identity; "
                "remove one of them"
            )
    sasl = (raw.get("upstream") or {}).get("sasl") or {}
    if "password" in sasl and not sasl.get("allow_inline_secret"):
        errors.append(
            "upstream.sasl.password: inline secrets are refused; use password_file or password_env "
            "(or set allow_inline_secret: true, for tests only)"
        )
    masking = raw.get("masking") or {}
    if "hash_key_file" in masking and "hash_key_env" in masking:
        errors.append("masking: hash_key_file and hash_key_env exclude each other; keep one")
    errors.extend(_adapter_errors(raw))
    errors.extend(_approvals_errors(raw, used))
    errors.extend(_audit_errors(raw))
    names = [item["name"] for item in raw["listeners"]]
    for i, name in enumerate(names):
        if name in names[:i]:
            errors.append(f"listeners[{i}].name: duplicate listener name {name!r}")
    return errors


def _adapter_errors(raw: Mapping[str, Any]) -> list[str]:
    """Each listener's protocol is an installed adapter that accepts the listener's ``upstream``
    and ``options`` (its ``listener_options_schema``, JSON Schema; none: no options)."""
    from gatekeeper.plugins import ADAPTERS, PluginError, available, load

    errors: list[str] = []
    for i, item in enumerate(raw["listeners"]):
        path = f"listeners[{i}]"
        name = item.get("protocol", "kafka")
        if name not in available(ADAPTERS):
            errors.append(f"{path}.protocol: no adapter {name!r} is installed (installed: "
                          f"{', '.join(available(ADAPTERS))}); install the distribution that provides it")
            continue
        try:
            adapter = load(ADAPTERS, name)
        except PluginError as e:
            errors.append(f"{path}.protocol: {e}")
            continue
        own_upstream = getattr(adapter, "listener_upstream", False)
        uses_upstream = getattr(adapter, "uses_upstream", True)
        if "upstream" in item and not uses_upstream:
            errors.append(f"{path}.upstream: the {name} adapter takes no upstream section: it reaches its brokers "
                          f"through the listener's options ({path}.options); remove it from the listener")
        elif "upstream" in item and not own_upstream:
            errors.append(f"{path}.upstream: the {name} adapter fronts the top-level upstream section only; "
                          "remove it from the listener")
        if uses_upstream and "upstream" not in raw and "upstream" not in item:
            errors.append(f"{path}.upstream: listener {item.get('name')!r} has no upstream and there is no top-level "
                          "upstream section; " + ("give the listener an upstream, or add the top-level upstream"
                                                  if own_upstream else
                                                  f"the {name} adapter fronts the top-level upstream section: add it"))
        schema = getattr(adapter, "listener_options_schema", None)
        options = item.get("options")
        if options is not None and schema is None:
            errors.append(f"{path}.options: the {name} adapter takes no options; remove them")
        elif schema is not None:
            validator = jsonschema.Draft202012Validator(schema)
            for err in sorted(validator.iter_errors(options or {}), key=lambda e: list(map(str, e.absolute_path))):
                where = _yaml_path([*["listeners", i, "options"], *err.absolute_path])
                errors.append(f"{where}: {err.message}")
    return errors


def _approvals_errors(raw: Mapping[str, Any], used: Mapping[int, str]) -> list[str]:
    """The approvals section: approvers authenticate with tokens (identity.jwt), its listener's
    port is its own, and each notifier is installed and accepts its options."""
    approvals = raw.get("approvals")
    if approvals is None:
        return []
    errors = []
    if not raw.get("identity", {}).get("jwt"):
        errors.append("approvals: needs identity.jwt: approvers authenticate with tokens validated as "
                      "client tokens are")
    if "bind" in approvals:
        port = int(approvals["bind"].rpartition(":")[2])
        admin = (raw.get("admin") or {}).get("bind")
        if not 1 <= port <= 65535:
            errors.append(f"approvals.bind: expected a port 1-65535, got {_describe(approvals['bind'])}")
        elif port in used:
            errors.append(f"approvals.bind: port {port} is already used by {used[port]}")
        elif admin is not None and admin.rpartition(":")[2] == str(port):
            errors.append(f"approvals.bind: port {port} is already used by admin.bind")
    # Imported here: loading notifier plugins is only needed when approvals are configured.
    from gatekeeper.approvals.notifiers import options_errors

    for i, item in enumerate(approvals.get("notifiers", ())):
        errors.extend(options_errors(NotifierConfig.from_dict(item), f"approvals.notifiers[{i}]"))
    return errors


def _audit_errors(raw: Mapping[str, Any]) -> list[str]:
    """The audit section: each sink's settings, and a plugin sink installed and accepting its
    options. Settings of another sink than the one chosen are refused (they would be ignored)."""
    audit = raw.get("audit")
    if audit is None:
        return []
    sink = audit.get("sink", "file")
    file_keys = ("directory", "segment_bytes", "segment_age", "fsync", "fsync_interval")
    kafka_keys = ("topic", "timeout")
    errors = []
    if sink == "kafka" and "upstream" not in raw:
        errors.append("audit.sink: kafka writes to the top-level upstream cluster, and there is no upstream section; "
                      "add it or use another sink")
    if sink == "file" and "directory" not in audit:
        errors.append("audit.directory: required with sink: file (the directory of the segments)")
    if "group_commit" in audit and parse_duration(audit["group_commit"]) > MAX_GROUP_COMMIT:
        errors.append(f"audit.group_commit: at most {int(MAX_GROUP_COMMIT * 1000)}ms (the writer wakes at least "
                      f"that often for the sink's time-based work), got {audit['group_commit']}")
    for key in (*file_keys, *kafka_keys, "options"):
        if key in audit and not ((key in file_keys and sink == "file") or (key in kafka_keys and sink == "kafka")
                                 or (key == "options" and sink not in ("file", "kafka"))):
            errors.append(f"audit.{key}: not a setting of sink {sink!r}; remove it")
    if errors:
        return errors
    # Imported here: loading sink plugins is only needed when audit is configured.
    from gatekeeper.plugins import AUDIT_SINKS, PluginError, load

    try:
        sink_cls = load(AUDIT_SINKS, sink)
    except PluginError as e:
        return [f"audit.sink: {e}"]
    options = AuditConfig.from_dict(audit).sink_options()
    schema = getattr(sink_cls, "options_schema", {"type": "object"})
    where = "audit.options" if sink not in ("file", "kafka") else "audit"
    for err in sorted(jsonschema.Draft202012Validator(schema).iter_errors(options), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join([where, *map(str, err.absolute_path)])
        errors.append(f"{path}: {err.message}")
    return errors


def parse_config(raw: Any, base: Path | None = None) -> Config:
    """Validate a parsed YAML document and build the config values, or raise ConfigError.

    Relative paths in the config (policies, data) are taken relative to ``base``."""
    if not isinstance(raw, Mapping):
        raise ConfigError([f"(top level): expected a mapping, got {_describe(raw)}"])
    validator = jsonschema.Draft202012Validator(_schema())
    found = sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path)))
    errors = [_schema_error(err) for err in found]
    if errors:
        raise ConfigError(errors)
    errors = _semantic_errors(raw)
    if errors:
        raise ConfigError(errors)
    config = Config.from_dict(raw, base)
    if config.masking.hash_key_file is not None or config.masking.hash_key_env is not None:
        config = attrs.evolve(config, masking=attrs.evolve(config.masking, hash_key=_hash_key(config.masking)))
    if config.audit is not None:
        config = attrs.evolve(config, audit=attrs.evolve(config.audit, hmac_key=_secret_key(
            config.audit.hmac_key_file, "audit.hmac_key_file")))
    return config


MIN_HASH_KEY_BYTES = 16


def _secret_key(path: Path, setting: str) -> bytes:
    """A key from a file (surrounding whitespace stripped), at least MIN_HASH_KEY_BYTES long;
    errors name the setting and the file, never the key."""
    where = f"{setting}: {path}"
    try:
        key = path.read_bytes().strip()
    except OSError as e:
        raise ConfigError([f"{where}: cannot read the key file: {e.strerror}"]) from e
    if len(key) < MIN_HASH_KEY_BYTES:
        what = "is empty" if not key else f"holds {len(key)} bytes"
        raise ConfigError([f"{where} {what}; the key must have at least {MIN_HASH_KEY_BYTES} bytes "
                           "(e.g. `head -c 32 /dev/urandom | base64`)"])
    return key


def _hash_key(cfg: MaskingConfig) -> bytes:
    """The hash masker's key, read once here (at config load and reload), never per record.
    Errors name the setting and the file or variable, never the key."""
    if cfg.hash_key_file is not None:
        where = f"masking.hash_key_file: {cfg.hash_key_file}"
        try:
            key = cfg.hash_key_file.read_bytes().strip()
        except OSError as e:
            raise ConfigError([f"{where}: cannot read the key file: {e.strerror}"]) from e
    else:
        where = f"masking.hash_key_env: environment variable {cfg.hash_key_env}"
        key = os.environ.get(str(cfg.hash_key_env), "").strip().encode()
    if len(key) < MIN_HASH_KEY_BYTES:
        what = "is empty or unset" if not key else f"holds {len(key)} bytes"
        raise ConfigError([f"{where} {what}; the key must have at least {MIN_HASH_KEY_BYTES} bytes "
                           "(e.g. `head -c 32 /dev/urandom | base64`)"])
    return key


def load_config(path: str | Path) -> Config:
    """Read a YAML file and return the validated config, or raise ConfigError."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError([f"{p}: cannot read the config file: {e.strerror}"]) from e
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError([f"{p}: not valid YAML: {e}"]) from e
    try:
        return parse_config(raw, p.parent)
    except ConfigError as e:
        raise ConfigError([f"{p}: {line}" for line in e.errors]) from e
