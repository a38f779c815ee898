"""The admin HTTP endpoint: ``/livez``, ``/readyz``, ``/healthz`` and ``/metrics``.

- ``/livez``: 200 while the process runs its reactor (a supervisor restarts it otherwise).
- ``/readyz``: 200 when this instance can serve clients, else 503 with a JSON body saying why
  (a load balancer takes it out).
- ``/healthz``: kept as it was before ``/readyz`` (200 once listening, 503 while the audit trail
  is unavailable), for existing checks.
- ``/metrics``: Prometheus text format, from prometheus-client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web import resource, server

from gatekeeper.metrics import CONTENT_TYPE

__all__ = ["listen_admin"]

Probe = Callable[[], tuple[bool, dict[str, Any]]]


class _Json(resource.Resource):
    isLeaf = True

    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    def render_GET(self, request: Any) -> bytes:
        ok, body = self.probe()
        request.setResponseCode(200 if ok else 503)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(body).encode()


class _Metrics(resource.Resource):
    isLeaf = True

    def __init__(self, render: Callable[[], str]) -> None:
        super().__init__()
        self.render_metrics = render

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE.encode())
        return self.render_metrics().encode()


def _alive() -> tuple[bool, dict[str, Any]]:
    return True, {"status": "alive"}


def listen_admin(reactor: Any, bind: Any, health: Probe, metrics: Callable[[], str],
                 ready: Probe | None = None) -> defer.Deferred[Any]:
    """Listen on ``bind`` (host, port): ``/healthz`` from ``health()`` (ok, body), ``/readyz``
    from ``ready()``, ``/livez`` and ``/metrics``."""
    root = resource.Resource()
    root.putChild(b"healthz", _Json(health))
    root.putChild(b"livez", _Json(_alive))
    root.putChild(b"readyz", _Json(ready or health))
    root.putChild(b"metrics", _Metrics(metrics))
    site = server.Site(root)
    site.noisy = False
    endpoint = TCP4ServerEndpoint(reactor, bind.port, interface=bind.host)
    return endpoint.listen(site)
