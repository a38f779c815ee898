"""``GET /api/v1/events``: server-sent events for the approver page (and anyone who wants them).

One subscription to the approvals service feeds every open stream; each stream is told only of
the requests and grants its principal may see (``gatekeeper.approvals.views``), as the same JSON
the API answers with (``event: request`` / ``event: grant``). A stream opens with
``event: ready`` (the client then loads the lists, so nothing between is missed), carries a
comment line every 15 s so proxies and the listener's idle timeout keep it open, and ends with
``event: expired`` when the token it was opened with expires: a stream lives no longer than
the token that opened it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs
from twisted.internet import task
from twisted.logger import Logger
from twisted.web import server

from gatekeeper.api import Principal
from gatekeeper.approvals.views import grant_json, may_see_grant, may_see_request, request_json

__all__ = ["EventStreams"]

log = Logger()

HEARTBEAT_SECONDS = 15.0
MAX_STREAMS = 200
RETRY_MS = 3000


@attrs.define(eq=False)
class _Stream:
    request: Any
    principal: Principal
    expiry: Any = None  # IDelayedCall

    def send(self, event: str, data: Any) -> None:
        self.request.write(f"event: {event}\ndata: {json.dumps(data, sort_keys=True)}\n\n".encode())


class EventStreams:
    """The open event streams of one listener."""

    def __init__(self, approvals: Any, clock: Any) -> None:
        self.approvals, self.clock = approvals, clock
        self.streams: list[_Stream] = []
        self._unsubscribe: Any = None
        self._heartbeat: task.LoopingCall | None = None

    def start(self) -> None:
        self._unsubscribe = self.approvals.subscribe(self.publish)
        self._heartbeat = task.LoopingCall(self._beat)
        self._heartbeat.clock = self.clock
        self._heartbeat.start(HEARTBEAT_SECONDS, now=False)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        for stream in list(self.streams):
            self._end(stream)

    def open(self, request: Any, principal: Principal, expires_at: float) -> Any:
        """Start a stream on ``request``; None when too many are open already."""
        if len(self.streams) >= MAX_STREAMS:
            return None
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"x-accel-buffering", b"no")
        stream = _Stream(request, principal)
        self.streams.append(stream)
        request.notifyFinish().addBoth(lambda _: self._forget(stream))
        stream.expiry = self.clock.callLater(max(0.0, expires_at - self.clock.seconds()), self._expire, stream)
        request.write(f"retry: {RETRY_MS}\n\n".encode())
        stream.send("ready", {"principal": principal.sub})
        return server.NOT_DONE_YET

    def publish(self, event: Mapping[str, Any]) -> None:
        """The service's subscriber (``{"type", "at", "request"?, "grant"?}``): tell each stream
        whose principal may see them of the request and grant as they are now."""
        if not self.streams:
            return
        request = self.approvals.request(event["request"]["id"]) if "request" in event else None
        grant = self.approvals.grant(event["grant"]["id"]) if event.get("grant") else None
        now = self.clock.seconds()
        for stream in list(self.streams):
            try:
                if request is not None and may_see_request(request, stream.principal):
                    stream.send("request", request_json(request, stream.principal, now))
                if grant is not None and may_see_grant(grant, stream.principal):
                    stream.send("grant", grant_json(grant, stream.principal, now))
            except Exception:  # one broken stream must not keep the event from the others
                log.failure("approvals events: writing to a stream failed; closing it")
                self._end(stream)

    def _beat(self) -> None:
        for stream in list(self.streams):
            stream.request.write(b": keep-alive\n\n")

    def _expire(self, stream: _Stream) -> None:
        stream.expiry = None
        if stream in self.streams:
            stream.send("expired", {"reason": "the token this stream was opened with has expired"})
            self._end(stream)

    def _end(self, stream: _Stream) -> None:
        self._forget(stream)
        if not stream.request.finished and not getattr(stream.request, "_disconnected", False):
            stream.request.finish()

    def _forget(self, stream: _Stream) -> None:
        if stream in self.streams:
            self.streams.remove(stream)
        if stream.expiry is not None and stream.expiry.active():
            stream.expiry.cancel()
        stream.expiry = None
