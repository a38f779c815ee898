"""The ``pulsar`` protocol adapter (entry point ``gatekeeper.adapters: pulsar``).

Selected by ``listeners[].protocol: pulsar``. One per gateway: it holds the settings of every
Pulsar listener and makes a sans-I/O :class:`PulsarConnection` per client connection. Its
broker tokens are read at start and again on SIGHUP (:meth:`PulsarAdapter.reload`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from twisted.logger import Logger

from gatekeeper.api import AdapterServices, ConnectionIO
from gatekeeper_pulsar.connection import PulsarConnection
from gatekeeper_pulsar.settings import (
    LISTENER_OPTIONS_SCHEMA,
    ListenerSettings,
    PulsarSettings,
    read_token,
)

__all__ = ["PulsarAdapter"]

log = Logger()


class PulsarAdapter:
    name = "pulsar"
    listener_options_schema: ClassVar[dict[str, Any]] = LISTENER_OPTIONS_SCHEMA
    listener_upstream: ClassVar[bool] = True

    def __init__(self, services: AdapterServices) -> None:
        config = services.config
        self.listeners: dict[str, ListenerSettings] = {}
        tokens: dict[str, str | None] = {}
        self._token_options: dict[str, tuple[str, Any]] = {}  # listener -> (YAML path, options)
        for i, lst in enumerate(config.listeners):
            if lst.protocol != self.name:
                continue
            self.listeners[lst.name] = ListenerSettings.from_listener(lst, tuple(config.upstream.bootstrap_servers))
            tokens[lst.name] = read_token(lst.options, f"listeners[{i}].options")
            if "token_file" in lst.options or "token_env" in lst.options:
                self._token_options[lst.name] = (f"listeners[{i}].options", lst.options)
            if "token_file" in lst.options and Path(lst.options["token_file"]).stat().st_mode & 0o077:
                log.warn("secret file readable by others than its owner: listeners[{i}].options.token_file {file}; "
                         "chmod 600 it", i=i, file=lst.options["token_file"])
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
                masking=services.masking, max_decompressed=config.limits.max_decompressed_bytes,
            )
            for name in self.listeners
        }

    def connection(self, listener: Any, slot: int | None, io: ConnectionIO) -> PulsarConnection:
        return PulsarConnection(self._settings[listener.name], self.listeners[listener.name], slot, io)

    def reload(self) -> list[dict[str, Any]]:
        """Re-read every listener's broker token (SIGHUP): connections opened from now on
        present the new one; when a token cannot be read, the previous one stays."""
        results: list[dict[str, Any]] = []
        for name, (where, options) in self._token_options.items():
            key = "token_file" if "token_file" in options else "token_env"
            result: dict[str, Any] = {"name": f"{where}.{key}", key[len("token_"):]: str(options[key])}
            try:
                token = read_token(options, where)
            except ValueError as e:
                log.error("re-reading the broker token of listener {name} failed, the previous one stays: {err}",
                          name=name, err=str(e))
                results.append({**result, "result": "failed", "error": str(e)})
                continue
            changed = token != self.tokens.get(name)
            self.tokens[name] = token
            log.info("listener {name}: broker token re-read ({what}); new broker connections use it",
                     name=name, what="changed" if changed else "unchanged")
            results.append({**result, "result": "loaded" if changed else "unchanged"})
        return results
