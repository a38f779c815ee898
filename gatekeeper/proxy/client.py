"""The Twisted shell of one client connection: it moves bytes and Deferreds, nothing else.

Everything the protocol means lives in the adapter's sans-I/O connection core; this class
carries the core's bytes to the client and the broker, asks the policy engine when the core
asks, runs the core's timers, and couples the two sockets' flow control.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from gatekeeper.proxy.context import ProxyContext
from gatekeeper.proxy.tls import certificate_principal
from gatekeeper.proxy.upstream import UpstreamProtocol, no_delay

__all__ = ["ClientProtocol"]

_WRITE_BUFFER_PAUSE = 4 * 1024 * 1024  # bytes queued for a peer before its source is paused


class ClientProtocol(Protocol):
    def __init__(self, context: ProxyContext, listener: Any, slot: int | None) -> None:
        self.context = context
        self.listener = listener
        self.slot = slot
        self.upstream: UpstreamProtocol | None = None
        self.core = context.adapters[listener.protocol].connection(listener, slot, self)

    # -- Twisted -----------------------------------------------------------------------------

    def connectionMade(self) -> None:
        no_delay(self.transport)
        self.context.opened(self)
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        self.core.start(str(getattr(peer, "host", "?")), getattr(peer, "port", 0))

    def dataReceived(self, data: bytes) -> None:
        self.core.client_data(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.core.client_lost()
        self.context.closed(self)
        if self.upstream is not None and not self.upstream.closed:
            self.upstream.transport.loseConnection()  # type: ignore[union-attr]

    # -- what the core asks of us (ConnectionIO) ---------------------------------------------------

    def to_client(self, data: Sequence[bytes]) -> None:
        self.transport.writeSequence(data)  # type: ignore[union-attr]

    def to_upstream(self, data: Sequence[bytes]) -> None:
        assert self.upstream is not None, "the core writes upstream only once it is connected"
        self.upstream.transport.writeSequence(data)  # type: ignore[union-attr]

    def connect_upstream(self, target: Any) -> None:
        self.transport.pauseProducing()  # type: ignore[union-attr]
        d = self.context.connect(target, UpstreamProtocol(self.core))
        d.addCallbacks(self._upstream_connected, lambda f: self.core.upstream_failed(f.getErrorMessage()))

    def _upstream_connected(self, upstream: UpstreamProtocol) -> None:
        if self.core.closing:
            upstream.transport.loseConnection()  # type: ignore[union-attr]
            return
        self.upstream = upstream
        # Backpressure both ways: a slow reader pauses the other side's reads. The pause
        # threshold is raised from Twisted's 64 KiB so a large Fetch response keeps flowing
        # while the client drains it, instead of stop-and-go at every 64 KiB.
        for t in (self.transport, upstream.transport):
            if hasattr(t, "bufferSize"):
                t.bufferSize = _WRITE_BUFFER_PAUSE  # type: ignore[union-attr]
        self.transport.registerProducer(upstream.transport, True)  # type: ignore[union-attr]
        upstream.transport.registerProducer(self.transport, True)  # type: ignore[union-attr]
        self.core.upstream_connected()
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def decide(self, token: int, inputs: list[dict[str, Any]]) -> None:
        d = self.context.engine.decide_many(inputs)
        d.addCallbacks(lambda decisions: self.core.decided(token, decisions),
                       lambda f: self.core.decision_failed(token, f.getErrorMessage()))

    def close(self, abort_upstream: bool = False) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]
        if abort_upstream and self.upstream is not None:
            self.upstream.transport.abortConnection()  # type: ignore[union-attr]

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Any:
        return self.context.clock.callLater(seconds, fn)

    def pause_client(self) -> None:
        self.transport.pauseProducing()  # type: ignore[union-attr]

    def resume_client(self) -> None:
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def peer_principal(self) -> Any:
        return certificate_principal(self.transport)
