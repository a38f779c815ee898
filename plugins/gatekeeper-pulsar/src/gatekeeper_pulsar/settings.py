"""What every Pulsar connection shares (:class:`PulsarSettings`) and each listener's own
settings (:class:`ListenerSettings`), built once from the config when the adapter loads."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from gatekeeper.api import UpstreamTarget
from gatekeeper.values import HostPort
from gatekeeper_pulsar.brokers import BrokerMap
from gatekeeper_pulsar.framing import DEFAULT_MAX_FRAME

__all__ = ["LISTENER_OPTIONS_SCHEMA", "ListenerSettings", "PulsarSettings"]

LISTENER_OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "brokers": {
            "description": "The brokers behind this listener, in broker_ports order (broker i is reached through "
                           "broker port i). Default: the listener's upstream bootstrap_servers.",
            "type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^[^:]+:[0-9]{1,5}$"},
        },
        "token_file": {"description": "Gatekeeper's own token for the broker (CONNECT auth 'token'), read at start.",
                       "type": "string", "minLength": 1},
        "token_env": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "max_frame_bytes": {"type": "integer", "minimum": 1024, "maximum": 268435456},
        "token_refresh_before": {
            "description": "Seconds before a client's token expires that Gatekeeper asks the client for a fresh one "
                           "(AUTH_CHALLENGE; at most half the time left). 0: no challenge, the session ends at "
                           "expiry. Default 30.",
            "type": "number", "minimum": 0, "maximum": 86400,
        },
        "original_principal": {
            "description": "Gatekeeper's role is one of the broker's proxyRoles: its CONNECT to the broker names "
                           "the client's principal (sub) as original_principal, and the broker authorizes both.",
            "type": "boolean",
        },
    },
}


@attrs.define
class ListenerSettings:
    name: str
    brokers: BrokerMap
    service: tuple[HostPort, ...]
    auth_required: bool
    max_frame: int = DEFAULT_MAX_FRAME
    refresh_before: float = 30.0
    original_principal: bool = False
    tls: bool = False  # the listener's ports speak TLS (listeners[].tls)
    upstream_tls: Any = None  # gatekeeper.config.UpstreamTlsConfig towards the brokers, or None
    _cycle: Iterator[HostPort] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._cycle = itertools.cycle(self.service)

    def next_service_address(self) -> HostPort:
        """Where a client of the listener's service port is connected: the next service address."""
        return next(self._cycle)

    def upstream_target(self, broker: HostPort) -> UpstreamTarget:
        """How Gatekeeper reaches ``broker``: with the listener's upstream TLS settings, or plain."""
        return UpstreamTarget(broker.host, broker.port, self.upstream_tls)

    def broker_url(self, plain: str, tls: str) -> str:
        """The broker URL of a lookup answer Gatekeeper connects to: the TLS one when Gatekeeper
        reaches the brokers over TLS (``options.brokers`` then lists their TLS ports)."""
        first, second = (tls, plain) if self.upstream_tls is not None else (plain, tls)
        return first or second

    def set_gateway_urls(self, answer: Any, slot: int) -> None:
        """Point a LOOKUP_RESPONSE or TOPIC_MIGRATED at Gatekeeper's port for broker ``slot``:
        ``brokerServiceUrl`` (and, on a TLS listener, ``brokerServiceUrlTls``) in the listener's
        scheme, every other address removed; the client comes to that port itself."""
        url = self.brokers.gateway_url(slot, self.tls)
        answer.brokerServiceUrl = url
        if self.tls:
            answer.brokerServiceUrlTls = url
        else:
            answer.ClearField("brokerServiceUrlTls")
        if answer.DESCRIPTOR.fields_by_name.get("proxy_through_service_url") is not None:
            answer.proxy_through_service_url = False

    @classmethod
    def from_listener(cls, listener: Any, default_servers: tuple[HostPort, ...]) -> ListenerSettings:
        options = listener.options
        service = listener.upstream_servers or default_servers
        brokers = tuple(HostPort.parse(b) for b in options.get("brokers", ())) or service
        auth = listener.authentication
        return cls(
            name=listener.name,
            brokers=BrokerMap.build(brokers, listener.advertised_host, listener.broker_ports, listener.bind.port),
            service=tuple(service),
            auth_required=auth is not None and auth.required,
            max_frame=int(options.get("max_frame_bytes", DEFAULT_MAX_FRAME)),
            refresh_before=float(options.get("token_refresh_before", 30.0)),
            original_principal=bool(options.get("original_principal", False)),
            tls=listener.tls is not None,
            upstream_tls=getattr(listener, "upstream_tls", None),
        )


@attrs.frozen
class PulsarSettings:
    clock: Callable[[], float]
    identity: Any
    metrics: Any
    authentication_timeout: float
    inputs_decoded: Callable[[list[dict[str, Any]]], None]
    grants_for: Callable[[Any, float], list[dict[str, Any]]]
    upstream_token: Callable[[], str | None]
    approvals_max_wait: float | None = None  # approvals.max_wait; None: approvals are not configured
    audit: Any = None  # the audit trail (AdapterServices.audit), or None
    policy_revision: Callable[[], str | None] = lambda: None
    masking: Any = None  # gatekeeper.masking.Masking: compiles mask decisions (None: a mask is a deny)
    max_decompressed: int = 256 * 1024 * 1024  # limits.max_decompressed_bytes, per masked payload


def read_token(options: Any, where: str) -> str | None:
    """Gatekeeper's broker token from ``token_file`` or ``token_env`` (None: connect without)."""
    if "token_file" in options:
        path = Path(options["token_file"])
        try:
            return path.read_text().strip()
        except OSError as e:
            raise ValueError(f"{where}.token_file: cannot read {path}: {e.strerror}") from e
    if "token_env" in options:
        value = os.environ.get(options["token_env"])
        if not value:
            raise ValueError(f"{where}.token_env: the environment variable {options['token_env']} is not set")
        return value.strip()
    return None
