"""The broker side of one client connection: bytes from the broker go to the client side."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

if TYPE_CHECKING:
    from gatekeeper.proxy.client import ClientProtocol

__all__ = ["UpstreamProtocol"]


class UpstreamProtocol(Protocol):
    def __init__(self, client: ClientProtocol) -> None:
        self.client = client
        self.closed = False

    def connectionMade(self) -> None:
        from gatekeeper.proxy.client import _no_delay

        _no_delay(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self.client.upstream_data(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True
        self.client.upstream_lost(reason)
