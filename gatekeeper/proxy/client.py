"""The Twisted shell of one client connection: it moves bytes and Deferreds, nothing else.

Everything the protocol means lives in the adapter's sans-I/O connection core; this class
carries the core's bytes to the client and the broker, asks the policy engine when the core
asks, runs the core's timers, and couples the two sockets' flow control.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from gatekeeper.proxy.context import ProxyContext
from gatekeeper.proxy.splicing import SpliceRelay, splice_relay
from gatekeeper.proxy.tls import certificate_principal
from gatekeeper.proxy.upstream import UpstreamProtocol, no_delay
from gatekeeper.proxy.writes import write_through

__all__ = ["ClientProtocol"]

_WRITE_BUFFER_PAUSE = 4 * 1024 * 1024  # bytes queued for a peer before its source is paused


class _ReadGate:
    """Reading from the client pauses while any reason holds: the core asked, the broker
    connection is not up yet, the broker is not taking bytes, the client is not reading its
    answers. One gate, so one reason's end never resumes what another still holds."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.reasons: set[str] = set()

    def hold(self, reason: str) -> None:
        if not self.reasons:
            self.transport.pauseProducing()
        self.reasons.add(reason)

    def release(self, reason: str) -> None:
        if reason in self.reasons:
            self.reasons.discard(reason)
            if not self.reasons:
                self.transport.resumeProducing()


class _Backpressure:
    """A producer registered with one transport: when that transport's write buffer is full,
    the sources of its bytes pause (the other socket, and the client's own requests, whose
    answers Gatekeeper may write itself)."""

    def __init__(self, gate: _ReadGate, reason: str, other: Any) -> None:
        self.gate, self.reason, self.other = gate, reason, other

    def pauseProducing(self) -> None:
        self.gate.hold(self.reason)
        if self.other is not None:
            self.other.pauseProducing()

    def resumeProducing(self) -> None:
        self.gate.release(self.reason)
        if self.other is not None:
            self.other.resumeProducing()

    def stopProducing(self) -> None:
        pass


class ClientProtocol(Protocol):
    def __init__(self, context: ProxyContext, listener: Any, slot: int | None) -> None:
        self.context = context
        self.listener = listener
        self.slot = slot
        self.upstream: UpstreamProtocol | None = None
        self.gate: _ReadGate | None = None
        self.core = context.adapters[listener.protocol].connection(listener, slot, self)
        self._holds: set[Any] = set()  # approval waits of held requests, abandoned on disconnect
        self._relay: SpliceRelay | None = None  # answers passed through unread, moved in the kernel

    # -- Twisted -----------------------------------------------------------------------------

    def connectionMade(self) -> None:
        no_delay(self.transport)
        self.gate = _ReadGate(self.transport)
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        refusal = self.context.opened(self)
        if refusal is not None:
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        self.core.start(str(getattr(peer, "host", "?")), getattr(peer, "port", 0))

    def dataReceived(self, data: bytes) -> None:
        self.core.client_data(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self.gate is None:
            return
        if self._relay is not None:
            self._relay.close()
        self.core.client_lost()
        for hold in list(self._holds):
            hold.cancel()  # abandons the wait; the approval request stays open
        self.context.closed(self)
        if self.upstream is not None and not self.upstream.closed:
            self.upstream.transport.loseConnection()  # type: ignore[union-attr]

    def drain(self) -> bool:
        """Shutting down: read no more requests; True once the connection is closed (its
        requests in flight answered), else False (ask again later)."""
        if self.gate is None:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return True
        self.gate.hold("draining")
        return self.core.drain()

    # -- what the core asks of us (ConnectionIO) ---------------------------------------------------

    def to_client(self, data: Sequence[bytes]) -> None:
        write_through(self.transport, data)

    def to_upstream(self, data: Sequence[bytes]) -> None:
        assert self.upstream is not None, "the core writes upstream only once it is connected"
        write_through(self.upstream.transport, data)

    def connect_upstream(self, target: Any) -> None:
        assert self.gate is not None
        self.gate.hold("connecting")
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
        assert self.gate is not None
        self.transport.registerProducer(_Backpressure(self.gate, "client_not_reading", upstream.transport), True)  # type: ignore[union-attr]
        upstream.transport.registerProducer(_Backpressure(self.gate, "broker_not_reading", None), True)  # type: ignore[union-attr]
        if self._relay is not None:
            self._relay.close()
        self._relay = splice_relay(self.core, upstream.transport, self.transport)
        self.core.upstream_connected()
        self.gate.release("connecting")

    def decide(self, token: int, inputs: list[dict[str, Any]]) -> None:
        d = self.context.engine.decide_now(inputs)
        if type(d) is list:  # every decision cached: answered now
            self.core.decided(token, d)
            return
        d.addCallbacks(lambda decisions: self.core.decided(token, decisions),
                       lambda f: self.core.decision_failed(token, f.getErrorMessage()))

    def close(self, abort_upstream: bool = False) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]
        if abort_upstream and self.upstream is not None:
            self.upstream.transport.abortConnection()  # type: ignore[union-attr]

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Any:
        return self.context.clock.callLater(seconds, fn)

    def pause_client(self) -> None:
        assert self.gate is not None
        self.gate.hold("core")

    def resume_client(self) -> None:
        assert self.gate is not None
        self.gate.release("core")

    def peer_principal(self) -> Any:
        return certificate_principal(self.transport)

    def hold(self, token: int, requests: list[dict[str, Any]], wait: float) -> None:
        approvals = self.context.approvals
        if approvals is None:
            self.core.held(token, [{"status": "unavailable", "reason": "approvals are not running"}] * len(requests))
            return
        waits = []
        for r in requests:
            try:
                waits.append(approvals.wait(approvals.open(**r).id, timeout=wait))
            except Exception as e:  # Refused (anonymous, too many pending, malformed): said to the client
                waits.append(defer.succeed(e))
        everything = defer.DeferredList(waits, consumeErrors=True)
        self._holds.add(everything)

        def finish(results: list[tuple[bool, Any]]) -> None:
            self._holds.discard(everything)
            if not self.core.closing:
                self.core.held(token, [approvals.outcome(value if ok else value.value) for ok, value in results])

        everything.addCallback(finish)

    def offload(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        d = self.context.offload(work)
        d.addCallbacks(done, lambda f: done(f.value))
