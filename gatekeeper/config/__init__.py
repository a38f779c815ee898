"""The YAML config: load and validate it (``loading``) into frozen attrs values (``values``)."""

from gatekeeper.config.loading import ConfigError, load_config, parse_config
from gatekeeper.config.values import (
    AdminConfig,
    ApprovalsConfig,
    AuditConfig,
    AuthenticationConfig,
    Config,
    IdentityConfig,
    JwtSettings,
    LimitsConfig,
    ListenerConfig,
    MaskingConfig,
    NotifierConfig,
    PolicyConfig,
    TlsConfig,
    UpstreamConfig,
    UpstreamSaslConfig,
    UpstreamTlsConfig,
)

__all__ = [
    "AdminConfig",
    "ApprovalsConfig",
    "AuditConfig",
    "AuthenticationConfig",
    "Config",
    "ConfigError",
    "IdentityConfig",
    "JwtSettings",
    "LimitsConfig",
    "ListenerConfig",
    "MaskingConfig",
    "NotifierConfig",
    "PolicyConfig",
    "TlsConfig",
    "UpstreamConfig",
    "UpstreamSaslConfig",
    "UpstreamTlsConfig",
    "load_config",
    "parse_config",
]
