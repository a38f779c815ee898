"""The built-in ``kafka`` protocol adapter: frames in, decoded requests and operations out,
broker responses rewritten on the way back. Pure: the proxy calls it, it does no I/O.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs

from gatekeeper.api import Operation
from gatekeeper.kafka import codec, operations, rewrite
from gatekeeper.kafka.cluster import ClusterView
from gatekeeper.kafka.codec import API_TABLE, ApiSpec, CodecError, RequestHeader, UnsupportedApi

__all__ = ["DecodedRequest", "KafkaAdapter"]

API_VERSIONS = 18
UNSUPPORTED_VERSION = 35
_REWRITTEN = frozenset({3, 10, 60})  # Metadata, FindCoordinator, DescribeCluster
_OBSERVED_BUT_NOT_DECODED = frozenset({0, 1})  # hot path: never decode Produce/Fetch responses


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


class KafkaAdapter:
    """Decodes Kafka requests into operations and rewrites responses for one gateway."""

    name = "kafka"

    def __init__(self, cluster: ClusterView) -> None:
        self.cluster = cluster
        self.inspectable = {k: (s.min_version, s.max_version) for k, s in API_TABLE.items()}

    def decode(self, frame: bytes) -> DecodedRequest:
        """Decode one request frame; CodecError/UnsupportedApi if it cannot be inspected."""
        try:
            header, spec, body, trailing = codec.decode_request(frame)
        except UnsupportedApi:
            ids = codec.peek_ids(frame)
            if ids is not None and ids[0] == API_VERSIONS and ids[1] > API_TABLE[API_VERSIONS].max_version:
                return self._api_versions_too_new(frame, ids[2])
            raise
        expects = not (spec.key == 0 and body.acks == 0)
        return DecodedRequest(header, spec, body, frame, expects, trailing=trailing)

    def _api_versions_too_new(self, frame: bytes, correlation_id: int) -> DecodedRequest:
        # KIP-511: answer an unknown ApiVersions version with a v0 response carrying
        # UNSUPPORTED_VERSION and the versions we do support, so the client retries lower.
        spec = API_TABLE[API_VERSIONS]
        body = spec.response[0](
            error_code=UNSUPPORTED_VERSION,
            api_keys=[spec.response.ApiVersion(api_key=API_VERSIONS, min_version=spec.min_version, max_version=spec.max_version)],
        )
        header = RequestHeader(API_VERSIONS, struct.unpack_from(">h", frame, 2)[0], correlation_id, None, 8)
        local = struct.pack(">i", correlation_id) + codec.encode_body(body, 0)
        return DecodedRequest(header, spec, None, frame, True, local_response=local)

    def operations(self, request: DecodedRequest, *, strict: bool = True) -> list[Operation]:
        """One operation per (operation, resource); UnresolvedTopicIds if ids are unknown."""
        h = request.header
        return operations.operations_for(
            h.api_key, request.spec.name, h.api_version, request.body, self.cluster.topic_name, strict=strict
        )

    def needs_response_processing(self, request: DecodedRequest) -> bool:
        return request.header.api_key in _REWRITTEN or request.header.api_key == API_VERSIONS

    def decode_response(self, request: DecodedRequest, frame: bytes) -> tuple[bytes, Any]:
        """(header bytes, decoded body) of the broker's response to ``request``."""
        version = request.header.api_version
        try:
            return codec.decode_response_body(frame, request.spec, version)
        except CodecError as e:
            raise CodecError(f"broker response to {request.spec.name} v{version} does not decode: {e}") from e

    def finish_response(self, request: DecodedRequest, head: bytes, body: Any, mapper: rewrite.AddressMapper) -> bytes:
        """Learn from and rewrite a decoded response, and encode it behind its original header."""
        key, version = request.header.api_key, request.header.api_version
        if key == API_VERSIONS:
            if body.error_code == 0:
                rewrite.intersect_api_versions(body, self.inspectable)
        else:
            rewrite.observe(key, version, body, self.cluster)
            rewrite.rewrite_addresses(key, version, body, mapper)
        return head + codec.encode_body(body, version)

    def process_response(self, request: DecodedRequest, frame: bytes, mapper: rewrite.AddressMapper) -> bytes:
        """Learn from and rewrite a broker response for ``request``; other responses pass as-is."""
        key = request.header.api_key
        if key not in _REWRITTEN and key != API_VERSIONS:
            return frame
        head, body = self.decode_response(request, frame)
        if key == API_VERSIONS and body.error_code != 0:
            return frame  # the broker's own UNSUPPORTED_VERSION answer: relay as-is
        return self.finish_response(request, head, body, mapper)

    def response_header(self, request: DecodedRequest) -> bytes:
        """The header of a response Gatekeeper answers itself."""
        cid = struct.pack(">i", request.header.correlation_id)
        return cid + (b"\x00" if request.spec.response_header_version(request.header.api_version) == 1 else b"")

    def observe_metadata(self, frame: bytes, version: int) -> None:
        """Learn from a Metadata response to a request Gatekeeper sent itself."""
        spec = API_TABLE[3]
        _head, body = codec.decode_response_body(frame, spec, version)
        rewrite.observe(3, version, body, self.cluster)

    @staticmethod
    def metadata_request(correlation_id: int, version: int = 12) -> bytes:
        """An all-topics Metadata request Gatekeeper sends to learn topic ids and brokers."""
        spec = API_TABLE[3]
        req = spec.request[version](topics=None, allow_auto_topic_creation=False)
        req.with_header(correlation_id=correlation_id, client_id="gatekeeper")
        return bytes(req.encode(header=True))
