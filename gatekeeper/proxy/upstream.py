"""The broker side of one client connection: frames from the broker go to the client side."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from gatekeeper.kafka.framing import FrameDecoder, FrameError

if TYPE_CHECKING:
    from gatekeeper.proxy.client import ClientProtocol

__all__ = ["UpstreamProtocol"]


class UpstreamProtocol(Protocol):
    def __init__(self, client: ClientProtocol, max_frame_bytes: int) -> None:
        self.client = client
        self.decoder = FrameDecoder(max_frame_bytes)
        self.closed = False

    def dataReceived(self, data: bytes) -> None:
        self.client.gateway.metrics.inc("gatekeeper_bytes_total", len(data), direction="from_broker")
        self.decoder.receive_data(data)
        try:
            while not self.closed:
                frame = self.decoder.next_frame()
                if frame is None:
                    return
                self.client.upstream_frame(frame)
        except FrameError as e:
            self.client.upstream_failed(f"broker sent an unframeable response: {e}")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True
        self.client.upstream_lost(reason)
