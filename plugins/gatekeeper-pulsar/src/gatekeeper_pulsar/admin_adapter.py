"""The ``pulsar-admin`` adapter (entry point ``gatekeeper.adapters: pulsar-admin``): Pulsar's
admin REST API on a listener of its own, served by :mod:`gatekeeper_pulsar.admin_proxy`.

Selected by ``listeners[].protocol: pulsar-admin``. The listener's bind port forwards to
``options.admin_url``; broker port ``i`` forwards to ``options.brokers[i]``, the web service of
one broker, and is where a broker's redirect to that broker is rewritten to.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

import attrs

from gatekeeper.api import AdapterServices
from gatekeeper_pulsar.admin_proxy import (
    AdminProxy,
    AdminSettings,
    AdminSite,
    BoundedRequest,
    WebBroker,
)
from gatekeeper_pulsar.settings import read_token

__all__ = ["ADMIN_OPTIONS_SCHEMA", "PulsarAdminAdapter"]

_URL = {"type": "string", "pattern": "^http://[^/?#:]+:[0-9]{1,5}/?$"}

ADMIN_OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["admin_url"],
    "properties": {
        "admin_url": {**_URL, "description": "The broker web service (admin REST) behind the listener's bind port: "
                                             "any broker or a load balancer, http://host:port."},
        "brokers": {"description": "The web service URL of every broker that may redirect a call, in broker_ports "
                                   "order (broker port i stands for broker i). Default: [admin_url].",
                    "type": "array", "minItems": 1, "items": _URL},
        "token_file": {"description": "Gatekeeper's own admin token for the brokers (Authorization: Bearer), "
                                      "read at start. Absent (and no token_env): calls go without credentials.",
                       "type": "string", "minLength": 1},
        "token_env": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "max_body_bytes": {"description": "Largest request body taken (default 1 MiB).",
                           "type": "integer", "minimum": 1024, "maximum": 67108864},
        "max_listing_bytes": {"description": "Largest listing the broker may answer before it is filtered (default 16 MiB).",
                              "type": "integer", "minimum": 1024, "maximum": 268435456},
        "timeout": {"description": "Seconds to wait for the broker's answer (default 30).",
                    "type": "number", "exclusiveMinimum": 0, "maximum": 3600},
    },
}


def _web_broker(url: str) -> WebBroker:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None  # the schema's pattern
    return WebBroker(parts.hostname, parts.port)


class PulsarAdminAdapter:
    name = "pulsar-admin"
    listener_options_schema: ClassVar[dict[str, Any]] = ADMIN_OPTIONS_SCHEMA
    listener_upstream: ClassVar[bool] = False
    uses_upstream: ClassVar[bool] = False  # options.admin_url and options.brokers, never an upstream section

    def __init__(self, services: AdapterServices) -> None:
        self.services = services
        self.settings: dict[str, AdminSettings] = {}
        for i, lst in enumerate(services.config.listeners):
            if lst.protocol != self.name:
                continue
            options = lst.options
            admin = _web_broker(options["admin_url"])
            brokers = tuple(_web_broker(u) for u in options.get("brokers", [options["admin_url"]]))
            auth = lst.authentication
            self.settings[lst.name] = AdminSettings(
                listener=lst.name, service=admin, brokers=brokers, advertised_host=lst.advertised_host,
                broker_ports=tuple(lst.broker_ports), scheme="https" if lst.tls is not None else "http",
                token=read_token(options, f"listeners[{i}].options"),
                auth_required=auth is not None and auth.required, authenticate=auth is not None,
                max_body=int(options.get("max_body_bytes", 1 << 20)),
                max_listing=int(options.get("max_listing_bytes", 16 << 20)),
                timeout=float(options.get("timeout", 30.0)),
            )

    def server_factory(self, listener: Any, slot: int | None) -> AdminSite:
        settings = self.settings[listener.name]
        if slot is not None:
            settings = attrs.evolve(settings, slot=slot)
        request = type("BoundedRequest", (BoundedRequest,), {"max_body": settings.max_body})
        site = AdminSite(AdminProxy(settings, self.services), requestFactory=request)
        site.displayTracebacks = False
        site.noisy = False
        return site

    def connection(self, listener: Any, slot: int | None, io: Any) -> Any:
        raise RuntimeError("the pulsar-admin adapter serves HTTP itself (server_factory); it has no connection core")
