"""A decoded Kafka request as it travels through Gatekeeper: header, body and original bytes."""

from __future__ import annotations

from typing import Any

import attrs

from gatekeeper.kafka.codec import ApiSpec, RequestHeader

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

    @property
    def api_name(self) -> str:
        return self.spec.name
