"""A decoded Kafka request as it travels through Gatekeeper: header, body and original bytes."""

from __future__ import annotations

from typing import Any

import attrs

from gatekeeper.kafka.codec import ApiSpec, RequestHeader, decode_request, encode_body

__all__ = ["DecodedRequest", "Undecoded"]


class Undecoded:
    """The body of a request that was walked, not decoded: decoded the first time it is asked
    for, once for every copy of the request (``attrs.evolve`` passes this same holder on, so a
    change made through one copy's body is in every copy's ``outgoing``)."""

    __slots__ = ("body",)

    def __init__(self) -> None:
        self.body: Any = None


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
    # change or re-encode a request use) is then an ``Undecoded``, decoded only if one of them
    # asks for it.
    view: Any = None

    @property
    def body(self) -> Any:
        body = self._body
        if type(body) is not Undecoded:
            return body
        if body.body is None:
            # The walk accepted these bytes, and it refuses everything the decoder refuses
            # (property-tested); a CodecError here would be a bug, and closes the connection.
            body.body = decode_request(self.frame)[2]
        return body.body

    @property
    def fields(self) -> Any:
        """What to read the client's request from: the walk's view when there is one. It is the
        request as the client sent it, not as forwarded after a partial deny or masking."""
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
