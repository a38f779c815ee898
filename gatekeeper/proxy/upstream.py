"""The broker side of one client connection: the broker's bytes go to the connection core."""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

__all__ = ["UpstreamProtocol", "no_delay"]


def no_delay(transport: Any) -> None:
    """Kafka is request/response with small requests: Nagle's algorithm would hold them back."""
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        set_no_delay(True)


class UpstreamProtocol(Protocol):
    def __init__(self, core: Any) -> None:
        self.core = core
        self.closed = False

    def connectionMade(self) -> None:
        no_delay(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self.core.upstream_data(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True
        self.core.upstream_lost(reason.getErrorMessage() if reason is not None else "closed")
