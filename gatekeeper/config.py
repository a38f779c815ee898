"""Load and validate the YAML config into frozen attrs values.

The YAML is validated against ``schemas/config.schema.json`` first; the values are then built
by classmethods, never ``Cls(**yaml)``. Every error names the YAML path, what was expected and
what arrived, so an operator can fix the file without reading code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import yaml

from gatekeeper.values import HostPort, parse_duration

__all__ = [
    "AdminConfig",
    "Config",
    "IdentityConfig",
    "ConfigError",
    "LimitsConfig",
    "ListenerConfig",
    "PolicyConfig",
    "UpstreamConfig",
    "load_config",
    "parse_config",
]

DEFAULT_MAX_FRAME_BYTES = 100 * 1024 * 1024  # the broker's socket.request.max.bytes default
DEFAULT_MAX_RESPONSE_FRAME_BYTES = 1024 * 1024 * 1024


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


def _resolve(value: str | None, base: Path | None) -> Path | None:
    """A path from the config: absolute as written, else relative to the config file."""
    if value is None:
        return None
    p = Path(value)
    return p if p.is_absolute() or base is None else base / p


@attrs.frozen
class AuthenticationConfig:
    required: bool = True
    mechanisms: tuple[str, ...] = ("OAUTHBEARER", "PLAIN")
    failure_delay: float = 0.2

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AuthenticationConfig:
        return cls(
            required=raw.get("required", True),
            mechanisms=tuple(raw.get("mechanisms", ("OAUTHBEARER", "PLAIN"))),
            failure_delay=parse_duration(raw.get("failure_delay", "200ms")),
        )


@attrs.frozen
class TlsConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None) -> TlsConfig:
        return cls(_resolve(raw["cert_file"], base), _resolve(raw["key_file"], base),  # type: ignore[arg-type]
                   _resolve(raw.get("client_ca_file"), base))


@attrs.frozen
class ListenerConfig:
    name: str
    bind: HostPort
    advertised_host: str
    broker_ports: tuple[int, ...]
    authentication: AuthenticationConfig | None = None
    tls: TlsConfig | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> ListenerConfig:
        bind = HostPort.parse(raw["bind"])
        first, _, last = raw["broker_ports"].partition("-")
        ports = tuple(range(int(first), int(last) + 1))
        auth = raw.get("authentication")
        return cls(
            name=raw["name"],
            bind=bind,
            advertised_host=raw.get("advertised_host", bind.host),
            broker_ports=ports,
            authentication=None if auth is None else AuthenticationConfig.from_dict(auth),
            tls=None if raw.get("tls") is None else TlsConfig.from_dict(raw["tls"], base),
        )


@attrs.frozen
class UpstreamSaslConfig:
    """Gatekeeper's own broker credentials. The secret is read at start and on SIGHUP."""

    mechanism: str
    username: str
    password_file: Path | None = None
    password_env: str | None = None
    password: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None) -> UpstreamSaslConfig:
        return cls(raw["mechanism"], raw["username"], _resolve(raw.get("password_file"), base),
                   raw.get("password_env"), raw.get("password"))


@attrs.frozen
class UpstreamTlsConfig:
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    server_hostname: str | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None) -> UpstreamTlsConfig:
        return cls(_resolve(raw["ca_file"], base), _resolve(raw.get("cert_file"), base),  # type: ignore[arg-type]
                   _resolve(raw.get("key_file"), base), raw.get("server_hostname"))


@attrs.frozen
class UpstreamConfig:
    bootstrap_servers: tuple[HostPort, ...]
    connect_timeout: float = 10.0
    sasl: UpstreamSaslConfig | None = None
    tls: UpstreamTlsConfig | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> UpstreamConfig:
        sasl = raw.get("sasl")
        return cls(
            bootstrap_servers=tuple(HostPort.parse(s) for s in raw["bootstrap_servers"]),
            connect_timeout=parse_duration(raw.get("connect_timeout", "10s")),
            sasl=None if sasl is None else UpstreamSaslConfig.from_dict(sasl, base),
            tls=None if raw.get("tls") is None else UpstreamTlsConfig.from_dict(raw["tls"], base),
        )


@attrs.frozen
class PolicyConfig:
    engine: str = "allow-all"
    url: str | None = None
    decision: str = "gatekeeper/decision"
    policies: Path | None = None
    data: Path | None = None
    cache_max_entries: int = 100_000
    cache_default_ttl: float = 5.0
    timeout: float = 0.25

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> PolicyConfig:
        cache = raw.get("cache", {})
        return cls(
            engine=raw["engine"],
            url=raw.get("url"),
            decision=raw.get("decision", "gatekeeper/decision"),
            policies=_resolve(raw.get("policies"), base),
            data=_resolve(raw.get("data"), base),
            cache_max_entries=cache.get("max_entries", 100_000),
            cache_default_ttl=parse_duration(cache.get("default_ttl", "5s")),
            timeout=parse_duration(raw.get("timeout", "250ms")),
        )


@attrs.frozen
class JwtSettings:
    issuer: str
    audience: str
    jwks_file: Path | None = None
    jwks_url: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    principal_claim: str = "sub"
    groups_claim: str = "groups"
    leeway: float = 30.0
    max_token_bytes: int = 16384

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None) -> JwtSettings:
        return cls(
            issuer=raw["issuer"],
            audience=raw["audience"],
            jwks_file=_resolve(raw.get("jwks_file"), base),
            jwks_url=raw.get("jwks_url"),
            algorithms=tuple(raw.get("algorithms", ("RS256", "ES256"))),
            principal_claim=raw.get("principal_claim", "sub"),
            groups_claim=raw.get("groups_claim", "groups"),
            leeway=parse_duration(raw.get("leeway", "30s")),
            max_token_bytes=raw.get("max_token_bytes", 16384),
        )


@attrs.frozen
class IdentityConfig:
    client_id_principals: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    jwt: JwtSettings | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> IdentityConfig:
        j = raw.get("jwt")
        return cls(
            client_id_principals=dict(raw.get("client_id_principals", {})),
            jwt=None if j is None else JwtSettings.from_dict(j, base),
        )


@attrs.frozen
class AdminConfig:
    bind: HostPort | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AdminConfig:
        bind = raw.get("bind")
        return cls(bind=HostPort.parse(bind) if bind else None)


@attrs.frozen
class LimitsConfig:
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_response_frame_bytes: int = DEFAULT_MAX_RESPONSE_FRAME_BYTES
    denied_requests_per_second: float = 50.0
    denied_requests_burst: int = 100
    denial_throttle_max: float = 1.0
    denial_log_interval: float = 10.0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LimitsConfig:
        d = cls()
        return cls(
            max_frame_bytes=raw.get("max_frame_bytes", d.max_frame_bytes),
            max_response_frame_bytes=raw.get("max_response_frame_bytes", d.max_response_frame_bytes),
            denied_requests_per_second=raw.get("denied_requests_per_second", d.denied_requests_per_second),
            denied_requests_burst=raw.get("denied_requests_burst", d.denied_requests_burst),
            denial_throttle_max=_duration_or(raw, "denial_throttle_max", d.denial_throttle_max),
            denial_log_interval=_duration_or(raw, "denial_log_interval", d.denial_log_interval),
        )


def _duration_or(raw: Mapping[str, Any], key: str, default: float) -> float:
    return parse_duration(raw[key]) if key in raw else default


@attrs.frozen
class Config:
    listeners: tuple[ListenerConfig, ...]
    upstream: UpstreamConfig
    policy: PolicyConfig
    admin: AdminConfig
    limits: LimitsConfig
    log_level: str = "info"
    identity: IdentityConfig = attrs.field(factory=IdentityConfig)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> Config:
        return cls(
            listeners=tuple(ListenerConfig.from_dict(item, base) for item in raw["listeners"]),
            upstream=UpstreamConfig.from_dict(raw["upstream"], base),
            identity=IdentityConfig.from_dict(raw.get("identity", {}), base),
            policy=PolicyConfig.from_dict(raw.get("policy", {"engine": "allow-all"}), base),
            admin=AdminConfig.from_dict(raw.get("admin", {})),
            limits=LimitsConfig.from_dict(raw.get("limits", {})),
            log_level=raw.get("logging", {}).get("level", "info"),
        )


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
    sasl = raw["upstream"].get("sasl") or {}
    if "password" in sasl and not sasl.get("allow_inline_secret"):
        errors.append(
            "upstream.sasl.password: inline secrets are refused; use password_file or password_env "
            "(or set allow_inline_secret: true, for tests only)"
        )
    names = [item["name"] for item in raw["listeners"]]
    for i, name in enumerate(names):
        if name in names[:i]:
            errors.append(f"listeners[{i}].name: duplicate listener name {name!r}")
    return errors


def parse_config(raw: Any, base: Path | None = None) -> Config:
    """Validate a parsed YAML document and build the config values, or raise ConfigError.

    Relative paths in the config (policies, data) are taken relative to ``base``."""
    if not isinstance(raw, Mapping):
        raise ConfigError([f"(top level): expected a mapping, got {_describe(raw)}"])
    validator = jsonschema.Draft202012Validator(_schema())
    errors = []
    for err in sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path))):
        where = _yaml_path(list(err.absolute_path))
        if err.validator == "additionalProperties" or err.validator == "required":
            errors.append(f"{where}: {err.message}")
        else:
            errors.append(
                f"{where}: expected {err.validator} {json.dumps(err.validator_value)}, "
                f"got {_describe(err.instance)}"
            )
    if errors:
        raise ConfigError(errors)
    errors = _semantic_errors(raw)
    if errors:
        raise ConfigError(errors)
    return Config.from_dict(raw, base)


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
