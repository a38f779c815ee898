"""The ``pulsar`` protocol adapter (entry point ``gatekeeper.adapters: pulsar``).

Selected by ``listeners[].protocol: pulsar``. One per gateway: it holds the settings of every
Pulsar listener and makes a sans-I/O :class:`PulsarConnection` per client connection.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from gatekeeper.api import AdapterServices, ConnectionIO
from gatekeeper_pulsar.connection import PulsarConnection
from gatekeeper_pulsar.settings import (
    LISTENER_OPTIONS_SCHEMA,
    ListenerSettings,
    PulsarSettings,
    read_token,
)

__all__ = ["PulsarAdapter"]


class PulsarAdapter:
    name = "pulsar"
    listener_options_schema: ClassVar[dict[str, Any]] = LISTENER_OPTIONS_SCHEMA
    listener_upstream: ClassVar[bool] = True

    def __init__(self, services: AdapterServices) -> None:
        config = services.config
        self.listeners: dict[str, ListenerSettings] = {}
        tokens: dict[str, str | None] = {}
        for i, lst in enumerate(config.listeners):
            if lst.protocol != self.name:
                continue
            self.listeners[lst.name] = ListenerSettings.from_listener(lst, tuple(config.upstream.bootstrap_servers))
            tokens[lst.name] = read_token(lst.options, f"listeners[{i}].options")
        self.tokens = tokens
        self.services = services
        self._settings = {
            name: PulsarSettings(
                clock=services.clock, identity=services.identity, metrics=services.metrics,
                authentication_timeout=config.limits.authentication_timeout,
                inputs_decoded=services.inputs_decoded, grants_for=services.grants_for,
                upstream_token=partial(self.tokens.get, name),
                approvals_max_wait=None if config.approvals is None else config.approvals.max_wait,
                audit=services.audit, policy_revision=services.policy_revision,
            )
            for name in self.listeners
        }

    def connection(self, listener: Any, slot: int | None, io: ConnectionIO) -> PulsarConnection:
        return PulsarConnection(self._settings[listener.name], self.listeners[listener.name], slot, io)
