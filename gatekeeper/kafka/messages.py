"""The Kafka adapter's request and response handling: frames in, decoded
requests and operations out, broker responses learned from and rewritten on the way back.
Pure: the connection core calls it, it does no I/O.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Any

from gatekeeper.api import Operation
from gatekeeper.kafka import codec, operations
from gatekeeper.kafka.apis import UNITS
from gatekeeper.kafka.apis.base import ApiKey, ResponseContext
from gatekeeper.kafka.apis.negotiation import intersect_api_versions
from gatekeeper.kafka.cluster import ClusterView
from gatekeeper.kafka.codec import API_TABLE, CodecError, RequestHeader, UnsupportedApi
from gatekeeper.kafka.request import DecodedRequest, Undecoded
from gatekeeper.kafka.walks import produce_request

__all__ = ["INSPECTABLE", "DecodedRequest", "KafkaCodec"]

UNSUPPORTED_VERSION = 35
_PRODUCE = ApiKey.PRODUCE.to_bytes(2, "big")
# Rewritten responses kept for byte-identical ones (ApiUnit.memo): a few distinct Metadata
# answers (one per topic set asked for) cover a cluster's clients. Bounded in count and in bytes
# (each entry holds the broker's body and the rewritten one); a larger answer is not kept.
MEMO_ENTRIES = 64
MEMO_BYTES = 32 * 1024 * 1024
MEMO_MAX_BODY = 4 * 1024 * 1024


def _inspectable() -> dict[int, tuple[int, int]]:
    """The versions Gatekeeper inspects, per API: the schema's, capped by the API's unit."""
    out = {}
    for key, unit in UNITS.items():
        spec = API_TABLE[key]
        hi = spec.max_version if unit.max_version is None else min(spec.max_version, unit.max_version)
        if spec.min_version <= hi:
            out[key] = (spec.min_version, hi)
    return out


INSPECTABLE: dict[int, tuple[int, int]] = _inspectable()
# The APIs whose answers are processed, each from the version its rewrite starts at.
_RESPONSE_PROCESSED = {k: u.rewrite_since for k, u in UNITS.items() if u.rewrite is not None} | {ApiKey.API_VERSIONS: 0}


class KafkaCodec:
    """Decodes Kafka requests into operations and rewrites responses, for one gateway."""

    def __init__(self, cluster: ClusterView) -> None:
        self.cluster = cluster
        # The broker's ApiVersions answer as Gatekeeper last passed it on (intersected): what a
        # client that has not authenticated yet is told, without a broker connection for it.
        self.api_versions: Any = None
        # (api key, version, scope, response body) -> (observations to replay, rewritten body)
        self._memo: OrderedDict[tuple[int, int, Any, bytes], tuple[Any, bytes]] = OrderedDict()
        self._memo_bytes = 0

    def decode(self, frame: bytes) -> DecodedRequest:
        """Decode one request frame; CodecError/UnsupportedApi if it cannot be inspected. A
        Produce request is walked, not decoded (its body is decoded only if asked for)."""
        if frame[:2] == _PRODUCE:
            return self._walk_produce(frame)
        try:
            header, spec, body, trailing = codec.decode_request(frame)
        except UnsupportedApi:
            ids = codec.peek_ids(frame)
            if ids is not None and ids[0] == ApiKey.API_VERSIONS and ids[1] > API_TABLE[ApiKey.API_VERSIONS].max_version:
                return self._api_versions_too_new(frame, ids[2])
            raise
        lo, hi = INSPECTABLE.get(spec.key, (0, -1))
        if not lo <= header.api_version <= hi:
            raise UnsupportedApi(f"{spec.name} v{header.api_version} is outside the versions Gatekeeper inspects (v{lo}-v{hi})")
        expects = not (spec.key == ApiKey.PRODUCE and body.acks == 0)
        normalize = UNITS[spec.key].normalize
        normalized = normalize is not None and normalize(header.api_version, body)
        return DecodedRequest(header, spec, body, frame, expects, trailing=trailing, normalized=normalized)

    @staticmethod
    def _walk_produce(frame: bytes) -> DecodedRequest:
        # Walked, so nothing normalizes the body: Produce has no unit.normalize (a test holds it).
        header, spec = codec.parse_request_header(frame)
        lo, hi = INSPECTABLE[ApiKey.PRODUCE]
        if not lo <= header.api_version <= hi:
            raise UnsupportedApi(f"{spec.name} v{header.api_version} is outside the versions Gatekeeper inspects (v{lo}-v{hi})")
        try:
            view, end = produce_request(frame, header.size, header.api_version)
        except CodecError as e:
            raise CodecError(f"{spec.name} v{header.api_version} body does not decode: {e}") from e
        return DecodedRequest(header, spec, Undecoded(), frame, view.acks != 0, trailing=len(frame) - end, view=view)

    def _api_versions_too_new(self, frame: bytes, correlation_id: int) -> DecodedRequest:
        # KIP-511: answer an unknown ApiVersions version with a v0 response carrying
        # UNSUPPORTED_VERSION and the versions we do support, so the client retries lower.
        spec = API_TABLE[ApiKey.API_VERSIONS]
        body = spec.response[0](
            error_code=UNSUPPORTED_VERSION,
            api_keys=[spec.response.ApiVersion(api_key=ApiKey.API_VERSIONS, min_version=spec.min_version, max_version=spec.max_version)],
        )
        header = RequestHeader(ApiKey.API_VERSIONS, struct.unpack_from(">h", frame, 2)[0], correlation_id, None, 8)
        local = struct.pack(">i", correlation_id) + codec.encode_body(body, 0)
        return DecodedRequest(header, spec, None, frame, True, local_response=local)

    def operations(self, request: DecodedRequest, *, strict: bool = True, state: Any = None) -> list[Operation]:
        """One operation per (operation, resource); UnresolvedTopicIds if ids are unknown."""
        h = request.header
        return operations.operations_for(h.api_key, h.api_version, request.fields, self.cluster.topic_name, strict=strict,
                                         state=state)

    @staticmethod
    def needs_response_processing(request: DecodedRequest) -> bool:
        header = request.header
        since = _RESPONSE_PROCESSED.get(header.api_key)
        return since is not None and header.api_version >= since

    @staticmethod
    def decode_response(request: DecodedRequest, frame: bytes) -> tuple[bytes, Any]:
        """(header bytes, decoded body) of the broker's response to ``request``."""
        version = request.header.api_version
        try:
            return codec.decode_response_body(frame, request.spec, version)
        except CodecError as e:
            raise CodecError(f"broker response to {request.spec.name} v{version} does not decode: {e}") from e

    def finish_response(self, request: DecodedRequest, head: bytes, body: Any, ctx: ResponseContext) -> bytes:
        """Learn from and rewrite a decoded response, and encode it behind its original header."""
        key, version = request.header.api_key, request.header.api_version
        unit = UNITS[key]
        if key == ApiKey.API_VERSIONS:
            if body.error_code == 0:
                intersect_api_versions(body, INSPECTABLE)
                self.api_versions = body
        else:
            if unit.observe is not None:
                unit.observe(version, body, self.cluster)
            if unit.rewrite is not None:
                unit.rewrite(version, body, ctx)
        return head + codec.encode_body(body, version)

    def process_response(self, request: DecodedRequest, frame: bytes, ctx: ResponseContext) -> bytes:
        """Learn from and rewrite a broker response for ``request``; other responses pass as-is.
        A response byte for byte like one rewritten before (ApiUnit.memo) is not decoded again:
        its observations are replayed and its rewritten body reused."""
        if not self.needs_response_processing(request):
            return frame
        key, version = request.header.api_key, request.header.api_version
        unit = UNITS[key]
        if unit.rewrite_needed is not None:
            try:
                needed = unit.rewrite_needed(version, frame, codec.response_header_size(frame, request.spec, version))
            except CodecError as e:
                raise CodecError(f"broker response to {request.spec.name} v{version} does not decode: {e}") from e
            if not needed:
                return frame
        memo = unit.memo if ctx.scope is not None and len(frame) <= MEMO_MAX_BODY else None
        if memo is not None:
            start = codec.response_header_size(frame, request.spec, version)
            memo_key = (key, version, ctx.scope, bytes(frame[start:]))
            hit = self._memo.get(memo_key)
            if hit is not None:
                self._memo.move_to_end(memo_key)
                replay, rewritten = hit
                replay(self.cluster)
                return frame[:start] + rewritten
        head, body = self.decode_response(request, frame)
        if key == ApiKey.API_VERSIONS and body.error_code != 0:
            return frame  # the broker's own UNSUPPORTED_VERSION answer: relay as-is
        if memo is None:
            return self.finish_response(request, head, body, ctx)
        replay = memo(version, body)  # before the rewrite changes the body
        out = self.finish_response(request, head, body, ctx)
        rewritten = out[len(head):]
        self._memo[memo_key] = (replay, rewritten)
        self._memo_bytes += len(memo_key[3]) + len(rewritten)
        while len(self._memo) > MEMO_ENTRIES or self._memo_bytes > MEMO_BYTES:
            (_, _, _, body_in), (_, body_out) = self._memo.popitem(last=False)
            self._memo_bytes -= len(body_in) + len(body_out)
        return out

    def local_api_versions(self, request: DecodedRequest) -> bytes | None:
        """The last ApiVersions answer, for ``request``'s version and correlation id; None if
        none has been seen yet."""
        if self.api_versions is None or request.body is None:
            return None
        return struct.pack(">i", request.header.correlation_id) + codec.encode_body(self.api_versions, request.header.api_version)

    @staticmethod
    def response_header(request: DecodedRequest) -> bytes:
        """The header of a response Gatekeeper answers itself."""
        cid = struct.pack(">i", request.header.correlation_id)
        return cid + (b"\x00" if request.spec.response_header_version(request.header.api_version) == 1 else b"")

    def observe_metadata(self, frame: bytes, version: int) -> None:
        """Learn from a Metadata response to a request Gatekeeper sent itself."""
        _head, body = codec.decode_response_body(frame, API_TABLE[ApiKey.METADATA], version)
        observe = UNITS[ApiKey.METADATA].observe
        assert observe is not None
        observe(version, body, self.cluster)

    @staticmethod
    def metadata_request(correlation_id: int, topic_ids: Any, version: int = 12) -> bytes:
        """A Metadata request Gatekeeper sends to learn the names of ``topic_ids`` (by id,
        never all topics: the answer stays small whatever the cluster holds)."""
        T = API_TABLE[ApiKey.METADATA].request.MetadataRequestTopic
        topics = [T(topic_id=i, name=None) for i in sorted(topic_ids, key=str)]
        req = API_TABLE[ApiKey.METADATA].request[version](topics=topics, allow_auto_topic_creation=False)
        req.with_header(correlation_id=correlation_id, client_id="gatekeeper")
        return bytes(req.encode(header=True))

    @staticmethod
    def listing_request(correlation_id: int, version: int = 12) -> bytes:
        """A Metadata request for every topic, Gatekeeper's own: the names a regex subscription
        is resolved against (never passed to a client)."""
        req = API_TABLE[ApiKey.METADATA].request[version](topics=None, allow_auto_topic_creation=False)
        req.with_header(correlation_id=correlation_id, client_id="gatekeeper")
        return bytes(req.encode(header=True))

    def observe_listing(self, frame: bytes, now: float, version: int = 12) -> None:
        """Learn from Gatekeeper's own all-topics Metadata: ids, brokers, and the topic names."""
        _head, body = codec.decode_response_body(frame, API_TABLE[ApiKey.METADATA], version)
        observe = UNITS[ApiKey.METADATA].observe
        assert observe is not None
        observe(version, body, self.cluster)
        self.cluster.observe_listing([t.name for t in body.topics if t.error_code == 0 and t.name], now)
