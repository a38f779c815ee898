"""The broker side of one client connection: bytes from the broker go to the client side.

When Gatekeeper holds broker credentials, the connection first authenticates itself (SASL with
Gatekeeper's own secret); only then is it handed to the client side (``ready`` fires).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from gatekeeper.identity.upstream_auth import UpstreamAuthenticator, UpstreamAuthError
from gatekeeper.kafka.framing import FrameDecoder, FrameError

if TYPE_CHECKING:
    from gatekeeper.proxy.client import ClientProtocol

__all__ = ["UpstreamProtocol"]


class UpstreamProtocol(Protocol):
    def __init__(self, client: ClientProtocol, authenticator: UpstreamAuthenticator | None = None) -> None:
        self.client = client
        self.closed = False
        self.authenticator = authenticator
        self.ready: defer.Deferred[UpstreamProtocol] = defer.Deferred()
        self._auth_frames = FrameDecoder(1024 * 1024)

    def connectionMade(self) -> None:
        from gatekeeper.proxy.client import _no_delay

        _no_delay(self.transport)
        if self.authenticator is None:
            self.ready.callback(self)
        else:
            self.transport.writeSequence(self.authenticator.start())  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self.authenticator is not None and not self.authenticator.done:
            self._authenticating(data)
            return
        self.client.upstream_data(data)

    def _authenticating(self, data: bytes) -> None:
        assert self.authenticator is not None
        self._auth_frames.receive_data(data)
        try:
            while not self.authenticator.done:
                frame = self._auth_frames.next_frame()
                if frame is None:
                    return
                out = self.authenticator.receive(frame)
                if out:
                    self.transport.writeSequence(out)  # type: ignore[union-attr]
        except (UpstreamAuthError, FrameError) as e:
            self.transport.abortConnection()  # type: ignore[union-attr]
            if not self.ready.called:
                self.ready.errback(Failure(UpstreamAuthError(str(e))))
            return
        except Exception as e:  # a response that does not decode
            self.transport.abortConnection()  # type: ignore[union-attr]
            if not self.ready.called:
                self.ready.errback(Failure(UpstreamAuthError(f"broker's SASL response does not decode: {e}")))
            return
        leftover = self._auth_frames.take(self._auth_frames.buffered)
        self.ready.callback(self)
        if leftover:
            self.client.upstream_data(leftover)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True
        if not self.ready.called:
            self.ready.errback(reason or Failure(ConnectionError("broker closed the connection")))
            return
        self.client.upstream_lost(reason)
