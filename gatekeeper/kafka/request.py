"""A decoded Kafka request as it travels through Gatekeeper: header, body and original bytes."""

from __future__ import annotations

from typing import Any

import attrs

from gatekeeper.kafka.codec import ApiSpec, RequestHeader, encode_body

__all__ = ["DecodedRequest"]


@attrs.frozen
class DecodedRequest:
    header: RequestHeader
    spec: ApiSpec
    body: Any
    frame: bytes
    expects_response: bool
    local_response: bytes | None = None  # answered by Gatekeeper, never forwarded
    trailing: int = 0  # bytes after the body, ignored by the broker as by us
    normalized: bool = False  # the body was changed from the client's: re-encode before forwarding

    @property
    def outgoing(self) -> bytes:
        """The request as it goes to the broker: the client's bytes, or re-encoded if normalized."""
        if not self.normalized:
            return self.frame
        return self.frame[: self.header.size] + encode_body(self.body, self.header.api_version)

    @property
    def api_name(self) -> str:
        return self.spec.name
