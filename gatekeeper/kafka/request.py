"""A decoded Kafka request as it travels through Gatekeeper: header, body and original bytes."""

from __future__ import annotations

from typing import Any

import attrs

from gatekeeper.kafka.codec import ApiSpec, RequestHeader, decode_request, encode_body

__all__ = ["UNDECODED", "DecodedRequest"]

# The body of a request that was walked, not decoded: decoded the first time it is asked for.
UNDECODED: Any = object()


@attrs.frozen
class DecodedRequest:
    header: RequestHeader
    spec: ApiSpec
    _body: Any
    frame: bytes
    expects_response: bool
    local_response: bytes | None = None  # answered by Gatekeeper, never forwarded
    trailing: int = 0  # bytes after the body, ignored by the broker as by us
    normalized: bool = False  # the body was changed from the client's: re-encode before forwarding
    # A hot API's body as a read-only walk found it (``walks.ProduceRequestView``), with the
    # fields its operations read; the body itself (kafka-python's object, which the paths that
    # change or re-encode a request use) is then decoded only if one of them asks for it.
    view: Any = None

    @property
    def body(self) -> Any:
        body = self._body
        if body is UNDECODED:
            body = decode_request(self.frame)[2]
            object.__setattr__(self, "_body", body)
        return body

    @property
    def fields(self) -> Any:
        """What to read the request's fields from: the walk's view when there is one."""
        return self.body if self.view is None else self.view

    @property
    def outgoing(self) -> bytes:
        """The request as it goes to the broker: the client's bytes, or re-encoded if normalized."""
        if not self.normalized:
            return self.frame
        return self.frame[: self.header.size] + encode_body(self.body, self.header.api_version)

    @property
    def api_name(self) -> str:
        return self.spec.name
