"""The admin HTTP endpoint: ``/healthz`` and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web import resource, server

__all__ = ["listen_admin"]


class _Health(resource.Resource):
    isLeaf = True

    def __init__(self, health: Callable[[], tuple[bool, dict[str, Any]]]) -> None:
        super().__init__()
        self.health = health

    def render_GET(self, request: Any) -> bytes:
        ok, body = self.health()
        request.setResponseCode(200 if ok else 503)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body).encode()


class _Metrics(resource.Resource):
    isLeaf = True

    def __init__(self, render: Callable[[], str]) -> None:
        super().__init__()
        self.render_metrics = render

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        return self.render_metrics().encode()


def listen_admin(reactor: Any, bind: Any, health: Callable[[], tuple[bool, dict[str, Any]]],
                 metrics: Callable[[], str]) -> defer.Deferred[Any]:
    """Listen on ``bind`` (host, port): ``/healthz`` from ``health()`` (ok, body), ``/metrics``."""
    root = resource.Resource()
    root.putChild(b"healthz", _Health(health))
    root.putChild(b"metrics", _Metrics(metrics))
    site = server.Site(root)
    site.noisy = False
    endpoint = TCP4ServerEndpoint(reactor, bind.port, interface=bind.host)
    return endpoint.listen(site)
