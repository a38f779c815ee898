"""Broker responses: response headers, the decoders and walks Gatekeeper uses, the rewrites
(broker addresses, ApiVersions intersection), the audit outcomes, the listing filters and
Fetch masking: everything a response goes through before the client sees it.

Input: a 4-byte prefix (api key, api version; int16 each), then the response frame without
its length prefix (correlation id, header, body). A (key, version) Gatekeeper does not
inspect is replaced by one it does, picked from the prefix.
"""

from __future__ import annotations

import struct

from fuzz.common import make_cluster, mask_plan
from gatekeeper.kafka import codec as kcodec
from gatekeeper.kafka.apis import UNITS
from gatekeeper.kafka.apis.base import GatewayIdentity, ResponseContext
from gatekeeper.kafka.auditing import broker_outcome
from gatekeeper.kafka.codec import API_TABLE, CodecError, RequestHeader
from gatekeeper.kafka.masking import mask_fetch, mask_share_fetch
from gatekeeper.kafka.messages import INSPECTABLE, KafkaCodec
from gatekeeper.kafka.request import DecodedRequest
from gatekeeper.kafka.walks import fetch_response_partitions, produce_response_read

EXPECTED = (CodecError,)
_KEYS = sorted(INSPECTABLE)
_PLAN = mask_plan()


def _mapper(node_id: int, host: str, port: int) -> tuple[str, int] | None:
    return None if node_id % 3 == 2 else ("gk.example", 9193 + node_id % 3)


_CTX = ResponseContext(_mapper, GatewayIdentity("gatekeeper"))  # entries about it are filtered out


def key_version(data: bytes) -> tuple[int, int]:
    key, version = struct.unpack_from(">hh", data)
    span = INSPECTABLE.get(key)
    if span is not None and span[0] <= version <= span[1]:
        return key, version
    key = _KEYS[(data[0] << 8 | data[1]) % len(_KEYS)]
    lo, hi = INSPECTABLE[key]
    return key, lo + (data[2] << 8 | data[3]) % (hi - lo + 1)


def _request(key: int, version: int, body: object) -> DecodedRequest:
    spec = API_TABLE[key]
    return DecodedRequest(RequestHeader(key, version, 0, "fuzz", 10), spec, body, b"", True)


def _request_body(key: int, version: int) -> object:
    """A plain request for the response to answer (an all-topics listing where there is one)."""
    R = API_TABLE[key].request[version]
    try:
        return R() if key != 3 else R(topics=None, allow_auto_topic_creation=False)
    except Exception:
        return None


def one_input(data: bytes) -> None:
    if len(data) < 8:
        return
    key, version = key_version(data)
    frame = data[4:]
    spec = API_TABLE[key]
    kcodec.response_header_size(frame, spec, version)
    codec = KafkaCodec(make_cluster())
    request = _request(key, version, _request_body(key, version))
    if key == 0 and 3 <= version <= 13:
        try:
            produce_response_read(frame, kcodec.response_header_size(frame, spec, version), version)
        except IndexError:  # what broker_outcome turns into a CodecError
            pass
    if key == 1 and 4 <= version <= 18:
        try:
            fetch_response_partitions(frame, kcodec.response_header_size(frame, spec, version), version)
        except IndexError:  # the response header's own walk; broker_outcome turns it into a CodecError
            pass
    if key in (0, 1) and request.body is not None:
        broker_outcome(request, frame, codec.cluster.topic_name)
    head, body = codec.decode_response(request, frame)
    unit = UNITS[key]
    if unit.learn is not None and request.body is not None:
        unit.learn(version, request.body, body, None)
    if key == 1:  # the mask path: every topic masked
        topics = {t.topic_id if version >= 13 else t.topic: ("t", _PLAN) for t in body.responses or ()}
        mask_fetch(body, version, topics, 1 << 20)
    elif key == 78:
        mask_share_fetch(body, {t.topic_id: ("t", _PLAN) for t in body.responses or ()}, 1 << 20)
    listing = unit.listing(version, request.body) if unit.listing is not None and request.body is not None else None
    if listing is not None:
        listing.topic_ids(body)
        ops = listing.operations(body, codec.cluster.topic_name)
        listing.keep(body, [i % 2 == 0 for i in range(len(ops))])
    codec.finish_response(request, head, body, _CTX)
    if key == 3 and version == 12:  # Gatekeeper's own all-topics listing
        codec.observe_listing(frame, 0.0, version)
