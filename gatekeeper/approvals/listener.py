"""The approvals listener: the API and page of ``gatekeeper.approvals.http`` on ``approvals.bind``,
over TLS when ``approvals.tls`` is set (the same certificate handling as client listeners)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.web import server

from gatekeeper.approvals.events import EventStreams
from gatekeeper.approvals.http import ApprovalsApi
from gatekeeper.proxy.tls import server_options

__all__ = ["ApprovalsListener"]

# An idle connection is closed after this; an event stream's keep-alive comments (15 s) keep it.
IDLE_TIMEOUT = 60


class _Site(server.Site):
    noisy = False

    def log(self, request: Any) -> None:
        """No access log line per request (the service logs every decision)."""


class ApprovalsListener:
    """Listens for the approvals API and page; ``start()`` then ``stop()``."""

    def __init__(self, reactor: Any, settings: Any, approvals: Any, identity: Any) -> None:
        if settings.bind is None:
            raise ValueError("approvals.bind is not set: there is nothing to listen on")  # our bug: caller checks
        self.reactor, self.settings = reactor, settings
        self.streams = EventStreams(approvals, reactor)
        self.api = ApprovalsApi(approvals, identity, reactor, self.streams)
        self.site = _Site(self.api, timeout=IDLE_TIMEOUT)
        self.port: IListeningPort | None = None

    @property
    def url(self) -> str:
        """The base URL actually bound (port 0 in tests becomes the real port)."""
        scheme = "https" if self.settings.tls is not None else "http"
        host = self.settings.bind.host
        port = self.port.getHost().port if self.port is not None else self.settings.bind.port  # type: ignore[attr-defined]
        return f"{scheme}://{host}:{port}"

    @defer.inlineCallbacks
    def start(self) -> Any:
        bind = self.settings.bind
        if self.settings.tls is None:
            endpoint: Any = TCP4ServerEndpoint(self.reactor, bind.port, interface=bind.host)
        else:
            endpoint = SSL4ServerEndpoint(self.reactor, bind.port, server_options(self.settings.tls), interface=bind.host)
        self.port = yield endpoint.listen(self.site)
        self.streams.start()
        return self

    def stop(self) -> defer.Deferred[Any]:
        self.streams.stop()
        port, self.port = self.port, None
        if port is None:
            return defer.succeed(None)
        return defer.maybeDeferred(port.stopListening)
