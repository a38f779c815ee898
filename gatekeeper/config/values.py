"""The config values: frozen attrs classes, each built by a ``from_dict`` classmethod.

``from_dict`` receives YAML that ``gatekeeper.config.loading`` has already validated against
the schema, so it only converts (durations to seconds, paths relative to the config file,
lists to tuples); it never does ``Cls(**yaml)``. Each default is written once, as the attrs
field default: an absent key takes it through ``_get``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import attrs

from gatekeeper.values import HostPort, parse_duration

__all__ = [
    "AdminConfig",
    "ApprovalsConfig",
    "AuditConfig",
    "AuthenticationConfig",
    "Config",
    "IdentityConfig",
    "JwtSettings",
    "LimitsConfig",
    "ListenerConfig",
    "LoggingConfig",
    "MAX_GROUP_COMMIT",
    "MaskingConfig",
    "NotifierConfig",
    "PolicyConfig",
    "ShutdownConfig",
    "TlsConfig",
    "UpstreamConfig",
    "UpstreamSaslConfig",
    "UpstreamTlsConfig",
    "default_of",
]

# audit.group_commit at most: the writer wakes at least this often for the sink's idle work
# (``_IDLE`` in gatekeeper.audit.writer, which caps its sleep at that however long the linger).
MAX_GROUP_COMMIT = 0.5


def default_of(cls: type[Any], name: str) -> Any:
    """The attrs default of field ``name`` of ``cls`` (a factory is called)."""
    default = attrs.fields_dict(cls)[name].default
    if default is attrs.NOTHING:
        raise TypeError(f"{cls.__name__}.{name} has no default: the YAML key is required")  # our bug
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]  # a class at run time
        return cast(Any, default).factory()
    return default


def _get(cls: type[Any], raw: Mapping[str, Any], key: str, convert: Callable[[Any], Any] | None = None,
         *, field: str | None = None) -> Any:
    """``raw[key]`` (through ``convert``) when present, else the default of ``cls``'s field
    ``field`` (named like the key unless given)."""
    if key in raw:
        return raw[key] if convert is None else convert(raw[key])
    return default_of(cls, field or key)


def _paths(base: Path | None) -> Callable[[str], Path]:
    """Converter for a path from the config: absolute as written, else relative to the config file."""

    def convert(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() or base is None else base / p

    return convert


@attrs.frozen
class AuthenticationConfig:
    required: bool = True
    mechanisms: tuple[str, ...] = ("OAUTHBEARER", "PLAIN")
    failure_delay: float = 0.2

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AuthenticationConfig:
        return cls(
            required=_get(cls, raw, "required"),
            mechanisms=_get(cls, raw, "mechanisms", tuple),
            failure_delay=_get(cls, raw, "failure_delay", parse_duration),
        )


@attrs.frozen
class TlsConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None) -> TlsConfig:
        path = _paths(base)
        return cls(path(raw["cert_file"]), path(raw["key_file"]), _get(cls, raw, "client_ca_file", path))


@attrs.frozen
class ListenerConfig:
    name: str
    bind: HostPort
    advertised_host: str
    broker_ports: tuple[int, ...]
    authentication: AuthenticationConfig | None = None
    tls: TlsConfig | None = None
    protocol: str = "kafka"  # the adapter serving it: an entry point in gatekeeper.adapters
    # The brokers this listener fronts when its adapter serves a cluster of its own (None: the
    # top-level upstream section), and the adapter's own settings (its listener_options_schema).
    upstream_servers: tuple[HostPort, ...] | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    upstream_tls: UpstreamTlsConfig | None = None  # TLS towards the listener's own upstream

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> ListenerConfig:
        bind = HostPort.parse(raw["bind"])
        first, _, last = raw["broker_ports"].partition("-")
        upstream = raw.get("upstream")
        return cls(
            name=raw["name"],
            bind=bind,
            advertised_host=raw.get("advertised_host", bind.host),
            broker_ports=tuple(range(int(first), int(last) + 1)),
            authentication=_get(cls, raw, "authentication", AuthenticationConfig.from_dict),
            tls=_get(cls, raw, "tls", lambda t: TlsConfig.from_dict(t, base)),
            protocol=_get(cls, raw, "protocol"),
            upstream_servers=None if upstream is None else tuple(HostPort.parse(s) for s in upstream["bootstrap_servers"]),
            options=dict(raw.get("options", {})),
            upstream_tls=None if upstream is None or "tls" not in upstream
            else UpstreamTlsConfig.from_dict(upstream["tls"], base),
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
        return cls(
            mechanism=raw["mechanism"],
            username=raw["username"],
            password_file=_get(cls, raw, "password_file", _paths(base)),
            password_env=_get(cls, raw, "password_env"),
            password=_get(cls, raw, "password"),
        )


@attrs.frozen
class UpstreamTlsConfig:
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    server_hostname: str | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None) -> UpstreamTlsConfig:
        path = _paths(base)
        return cls(
            ca_file=path(raw["ca_file"]),
            cert_file=_get(cls, raw, "cert_file", path),
            key_file=_get(cls, raw, "key_file", path),
            server_hostname=_get(cls, raw, "server_hostname"),
        )


@attrs.frozen
class UpstreamConfig:
    bootstrap_servers: tuple[HostPort, ...]
    connect_timeout: float = 10.0
    sasl: UpstreamSaslConfig | None = None
    tls: UpstreamTlsConfig | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> UpstreamConfig:
        return cls(
            bootstrap_servers=tuple(HostPort.parse(s) for s in raw["bootstrap_servers"]),
            connect_timeout=_get(cls, raw, "connect_timeout", parse_duration),
            sasl=_get(cls, raw, "sasl", lambda s: UpstreamSaslConfig.from_dict(s, base)),
            tls=_get(cls, raw, "tls", lambda t: UpstreamTlsConfig.from_dict(t, base)),
        )


@attrs.frozen
class PolicyConfig:
    engine: str  # required in the YAML: no fail-open default
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
            url=_get(cls, raw, "url"),
            decision=_get(cls, raw, "decision"),
            policies=_get(cls, raw, "policies", _paths(base)),
            data=_get(cls, raw, "data", _paths(base)),
            cache_max_entries=_get(cls, cache, "max_entries", field="cache_max_entries"),
            cache_default_ttl=_get(cls, cache, "default_ttl", parse_duration, field="cache_default_ttl"),
            timeout=_get(cls, raw, "timeout", parse_duration),
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
            jwks_file=_get(cls, raw, "jwks_file", _paths(base)),
            jwks_url=_get(cls, raw, "jwks_url"),
            algorithms=_get(cls, raw, "algorithms", tuple),
            principal_claim=_get(cls, raw, "principal_claim"),
            groups_claim=_get(cls, raw, "groups_claim"),
            leeway=_get(cls, raw, "leeway", parse_duration),
            max_token_bytes=_get(cls, raw, "max_token_bytes"),
        )


@attrs.frozen
class IdentityConfig:
    client_id_principals: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    jwt: JwtSettings | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> IdentityConfig:
        return cls(
            client_id_principals=_get(cls, raw, "client_id_principals", dict),
            jwt=_get(cls, raw, "jwt", lambda j: JwtSettings.from_dict(j, base)),
        )


@attrs.frozen
class AdminConfig:
    bind: HostPort | None = None
    readiness_interval: float = 2.0  # seconds between readiness probes (broker, policy engine)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AdminConfig:
        return cls(bind=_get(cls, raw, "bind", HostPort.parse),
                   readiness_interval=_get(cls, raw, "readiness_interval", parse_duration))


@attrs.frozen
class LoggingConfig:
    level: str = "info"
    format: str = "text"  # text | json (one JSON object per line)
    max_files: int = 10  # rotated log files kept beside the current one (twistd --logfile)
    max_file_bytes: int = 10_000_000  # the log file is rotated past this size

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LoggingConfig:
        return cls(level=_get(cls, raw, "level"), format=_get(cls, raw, "format"),
                   max_files=_get(cls, raw, "max_files"), max_file_bytes=_get(cls, raw, "max_file_bytes"))


@attrs.frozen
class ShutdownConfig:
    grace: float = 10.0  # seconds in-flight requests get to finish after SIGTERM

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ShutdownConfig:
        return cls(grace=_get(cls, raw, "grace", parse_duration))


@attrs.frozen
class LimitsConfig:
    max_frame_bytes: int = 100 * 1024 * 1024  # the broker's socket.request.max.bytes default
    max_response_frame_bytes: int = 1024 * 1024 * 1024
    denied_requests_per_second: float = 50.0
    denied_requests_burst: int = 100
    denial_throttle_max: float = 1.0
    denial_log_interval: float = 10.0
    # Before a client has authenticated (listeners that require it): SASL frames are small.
    max_unauthenticated_frame_bytes: int = 64 * 1024
    authentication_timeout: float = 10.0
    max_pending_requests: int = 1000  # per connection: reading pauses past this many unanswered
    max_connections_per_listener: int = 10_000
    max_connections_per_address: int = 1_000
    # Masking decompresses record batches: one batch's records may not inflate past this.
    max_decompressed_bytes: int = 256 * 1024 * 1024

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LimitsConfig:
        return cls(
            max_decompressed_bytes=_get(cls, raw, "max_decompressed_bytes"),
            max_unauthenticated_frame_bytes=_get(cls, raw, "max_unauthenticated_frame_bytes"),
            authentication_timeout=_get(cls, raw, "authentication_timeout", parse_duration),
            max_pending_requests=_get(cls, raw, "max_pending_requests"),
            max_connections_per_listener=_get(cls, raw, "max_connections_per_listener"),
            max_connections_per_address=_get(cls, raw, "max_connections_per_address"),
            max_frame_bytes=_get(cls, raw, "max_frame_bytes"),
            max_response_frame_bytes=_get(cls, raw, "max_response_frame_bytes"),
            denied_requests_per_second=_get(cls, raw, "denied_requests_per_second"),
            denied_requests_burst=_get(cls, raw, "denied_requests_burst"),
            denial_throttle_max=_get(cls, raw, "denial_throttle_max", parse_duration),
            denial_log_interval=_get(cls, raw, "denial_log_interval", parse_duration),
        )


@attrs.frozen
class MaskingConfig:
    """Settings of the maskers. ``hash_key`` is the secret the ``hash`` masker keys its HMAC
    with: read from ``hash_key_file`` or ``hash_key_env`` when the config is loaded
    (``gatekeeper.config.loading``), never per record, and never shown in a repr."""

    hash_key_file: Path | None = None
    hash_key_env: str | None = None
    hash_key: bytes | None = attrs.field(default=None, repr=False)
    plan_cache_entries: int = 1024

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> MaskingConfig:
        return cls(
            hash_key_file=_get(cls, raw, "hash_key_file", _paths(base)),
            hash_key_env=_get(cls, raw, "hash_key_env"),
            plan_cache_entries=_get(cls, raw, "plan_cache_entries"),
        )


@attrs.frozen
class NotifierConfig:
    """One entry of ``approvals.notifiers``: a plugin of ``gatekeeper.notifiers`` by ``name``, the
    events it is told of, and its own options (every other key; checked against the plugin's
    ``options_schema`` when the config is loaded). ``base`` is the config file's directory, for
    the plugin's relative paths."""

    name: str
    options: Mapping[str, Any] = attrs.field(factory=dict)
    events: tuple[str, ...] = ("request_opened",)
    base: Path | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> NotifierConfig:
        return cls(
            name=raw["name"],
            options={k: v for k, v in raw.items() if k not in ("name", "events")},
            events=_get(cls, raw, "events", tuple),
            base=base,
        )


@attrs.frozen
class ApprovalsConfig:
    """The ``approvals`` section: where approval requests and grants are kept, how long a
    Kafka request is held and a pending request lives, the approver API's listener, and who is
    told that a request waits. Absent section: approvals are off (an approve decision denies)."""

    store: Path
    bind: HostPort | None = None
    tls: TlsConfig | None = None
    page_url: str | None = None
    max_wait: float = 20.0
    request_ttl: float = 24 * 3600.0
    default_grant_ttl: float = 15 * 60.0
    max_grant_ttl: float = 24 * 3600.0
    history: float = 24 * 3600.0
    max_pending_per_principal: int = 20
    notifiers: tuple[NotifierConfig, ...] = ()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> ApprovalsConfig:
        return cls(
            store=_paths(base)(raw["store"]),
            bind=_get(cls, raw, "bind", HostPort.parse),
            tls=_get(cls, raw, "tls", lambda t: TlsConfig.from_dict(t, base)),
            page_url=_get(cls, raw, "page_url"),
            max_wait=_get(cls, raw, "max_wait", parse_duration),
            request_ttl=_get(cls, raw, "request_ttl", parse_duration),
            default_grant_ttl=_get(cls, raw, "default_grant_ttl", parse_duration),
            max_grant_ttl=_get(cls, raw, "max_grant_ttl", parse_duration),
            history=_get(cls, raw, "history", parse_duration),
            max_pending_per_principal=_get(cls, raw, "max_pending_per_principal"),
            notifiers=_get(cls, raw, "notifiers", lambda items: tuple(NotifierConfig.from_dict(n, base) for n in items)),
        )


def default_instance() -> str:
    """This host's name, as an audit instance id (``[A-Za-z0-9_.-]``, other characters as ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "gatekeeper"


@attrs.frozen
class AuditConfig:
    """The ``audit`` section: where the audit trail goes (``sink``: ``file``, ``kafka`` or a
    plugin of ``gatekeeper.audit_sinks``), how segments rotate and are synced, the checkpoint
    key and interval, the writer's queue bound and what happens when the trail cannot take
    records. ``hmac_key`` is read from ``hmac_key_file`` when the config is loaded
    (``gatekeeper.config.loading``), never shown in a repr. Absent section: audit is off."""

    hmac_key_file: Path
    sink: str = "file"
    instance: str = attrs.field(factory=default_instance)
    directory: Path | None = None
    segment_bytes: int = 64 * 1024 * 1024
    segment_age: float = 3600.0
    fsync: str = "always"
    fsync_interval: float = 1.0
    checkpoint_interval: float = 60.0
    group_commit: float = 0.2  # at most MAX_GROUP_COMMIT (checked when the config is loaded)
    topic: str = "gatekeeper-audit"
    timeout: float = 10.0
    queue_records: int = 10_000
    on_failure: str = "deny"
    options: Mapping[str, Any] = attrs.field(factory=dict)
    base: Path | None = None
    hmac_key: bytes | None = attrs.field(default=None, repr=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> AuditConfig:
        path = _paths(base)
        return cls(
            hmac_key_file=path(raw["hmac_key_file"]),
            sink=_get(cls, raw, "sink"),
            instance=_get(cls, raw, "instance"),
            directory=_get(cls, raw, "directory", path),
            segment_bytes=_get(cls, raw, "segment_bytes"),
            segment_age=_get(cls, raw, "segment_age", parse_duration),
            fsync=_get(cls, raw, "fsync"),
            fsync_interval=_get(cls, raw, "fsync_interval", parse_duration),
            checkpoint_interval=_get(cls, raw, "checkpoint_interval", parse_duration),
            group_commit=_get(cls, raw, "group_commit", parse_duration),
            topic=_get(cls, raw, "topic"),
            timeout=_get(cls, raw, "timeout", parse_duration),
            queue_records=_get(cls, raw, "queue_records"),
            on_failure=_get(cls, raw, "on_failure"),
            options=_get(cls, raw, "options", dict),
            base=base,
        )

    def sink_options(self) -> dict[str, Any]:
        """The options the sink plugin is built with: the section's keys for the built-in
        ``file`` and ``kafka`` sinks, ``audit.options`` for any other."""
        if self.sink == "file":
            return {"directory": str(self.directory), "segment_bytes": self.segment_bytes,
                    "segment_age": self.segment_age, "fsync": self.fsync, "fsync_interval": self.fsync_interval}
        if self.sink == "kafka":
            return {"topic": self.topic, "timeout": self.timeout}
        return dict(self.options)


@attrs.frozen
class Config:
    listeners: tuple[ListenerConfig, ...]
    upstream: UpstreamConfig
    policy: PolicyConfig
    admin: AdminConfig
    limits: LimitsConfig
    log_level: str = "info"
    identity: IdentityConfig = attrs.field(factory=IdentityConfig)
    masking: MaskingConfig = attrs.field(factory=MaskingConfig)
    approvals: ApprovalsConfig | None = None  # None: approvals are off
    audit: AuditConfig | None = None  # None: no audit trail
    logging: LoggingConfig = attrs.field(factory=LoggingConfig)
    shutdown: ShutdownConfig = attrs.field(factory=ShutdownConfig)
    # No top-level upstream section (every listener has its own): ``upstream`` then holds the
    # listeners' upstream servers, without credentials, for what probes the upstreams (readiness).
    upstream_implicit: bool = False

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base: Path | None = None) -> Config:
        """The whole config from validated YAML; relative paths are taken relative to ``base``."""
        return cls(
            listeners=tuple(ListenerConfig.from_dict(item, base) for item in raw["listeners"]),
            upstream=UpstreamConfig.from_dict(raw["upstream"] if "upstream" in raw else _implicit_upstream(raw), base),
            upstream_implicit="upstream" not in raw,
            identity=IdentityConfig.from_dict(raw.get("identity", {}), base),
            policy=PolicyConfig.from_dict(raw["policy"], base),
            admin=AdminConfig.from_dict(raw.get("admin", {})),
            limits=LimitsConfig.from_dict(raw.get("limits", {})),
            masking=MaskingConfig.from_dict(raw.get("masking", {}), base),
            approvals=_get(cls, raw, "approvals", lambda a: ApprovalsConfig.from_dict(a, base)),
            audit=_get(cls, raw, "audit", lambda a: AuditConfig.from_dict(a, base)),
            log_level=_get(cls, raw.get("logging", {}), "level", field="log_level"),
            logging=LoggingConfig.from_dict(raw.get("logging", {})),
            shutdown=ShutdownConfig.from_dict(raw.get("shutdown", {})),
        )


def _implicit_upstream(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every listener's own upstream servers, in order, as the upstream of a config without a
    top-level section (the loader has checked that each listener has one)."""
    servers = [s for item in raw["listeners"] for s in item.get("upstream", {}).get("bootstrap_servers", ())]
    return {"bootstrap_servers": list(dict.fromkeys(servers))}
