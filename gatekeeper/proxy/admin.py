"""The admin HTTP endpoint: ``/healthz`` and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web import resource, server

if TYPE_CHECKING:
    from gatekeeper.proxy.gateway import Gateway
    from gatekeeper.values import HostPort

__all__ = ["listen_admin"]


class _Health(resource.Resource):
    isLeaf = True

    def __init__(self, gateway: Gateway) -> None:
        super().__init__()
        self.gateway = gateway

    def render_GET(self, request: Any) -> bytes:
        listening = bool(self.gateway.ports)
        request.setResponseCode(200 if listening else 503)
        request.setHeader(b"content-type", b"application/json")
        body = {"status": "ok" if listening else "starting", "connections": len(self.gateway.connections)}
        return json.dumps(body).encode()


class _Metrics(resource.Resource):
    isLeaf = True

    def __init__(self, gateway: Gateway) -> None:
        super().__init__()
        self.gateway = gateway

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        return self.gateway.metrics.render().encode()


def listen_admin(gateway: Gateway, bind: HostPort) -> defer.Deferred[Any]:
    root = resource.Resource()
    root.putChild(b"healthz", _Health(gateway))
    root.putChild(b"metrics", _Metrics(gateway))
    site = server.Site(root)
    site.noisy = False
    endpoint = TCP4ServerEndpoint(gateway.reactor, bind.port, interface=bind.host)
    return endpoint.listen(site)
