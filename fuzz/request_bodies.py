"""Every request body Gatekeeper decodes: all API keys and versions in ``INSPECTABLE``.

Input: one request frame (without its length prefix), as a client sends it. A frame whose
(api key, version) Gatekeeper does not inspect has them replaced by one it does, picked from
its first four bytes, so every input exercises a decoder; real frames pass unchanged. The
decoded request then goes where a connection takes it: its operations, the enforcement plan
for a mix of allow and deny decisions (error responses, partial-deny re-encoding), the mask
path's Produce record rewriting and its Fetch mask keys.
"""

from __future__ import annotations

import struct
import zlib

from fuzz.common import make_cluster, mask_plan
from gatekeeper.api import Decision
from gatekeeper.kafka import enforce
from gatekeeper.kafka.apis.consumer_groups import RefusedRequest, TopicListingNeeded
from gatekeeper.kafka.codec import CodecError
from gatekeeper.kafka.masking import fetch_mask_keys, mask_produce, produce_plans
from gatekeeper.kafka.messages import INSPECTABLE, KafkaCodec
from gatekeeper.kafka.operations import UnresolvedTopicIds

EXPECTED = (CodecError, UnresolvedTopicIds, TopicListingNeeded, RefusedRequest)
_KEYS = sorted(INSPECTABLE)
_ALLOW = Decision("allow")
_DENY = Decision("deny", reason="fuzz")
_MASK = Decision("mask", reason="fuzz", mask=({"field": "$.card", "masker": "redact"},))
_CODEC = KafkaCodec(make_cluster())
_PLAN = mask_plan()


def to_inspectable(data: bytes) -> bytes:
    """``data`` with its api key and version made ones Gatekeeper inspects."""
    if len(data) < 4:
        return data
    key, version = struct.unpack_from(">hh", data)
    span = INSPECTABLE.get(key)
    if span is not None and span[0] <= version <= span[1]:
        return data
    key = _KEYS[(data[0] << 8 | data[1]) % len(_KEYS)]
    lo, hi = INSPECTABLE[key]
    version = lo + (data[2] << 8 | data[3]) % (hi - lo + 1)
    return struct.pack(">hh", key, version) + data[4:]


def one_input(data: bytes) -> None:
    frame = to_inspectable(data)
    request = _CODEC.decode(frame)
    if request.body is None:  # answered locally (ApiVersions too new)
        return
    strict = bool(len(frame) & 1)
    ops = _CODEC.operations(request, strict=strict)
    bits = zlib.crc32(frame)
    decisions = [(_ALLOW, _DENY, _MASK)[(bits >> (2 * i)) % 3] for i in range(len(ops))]
    resolve = _CODEC.cluster.topic_name
    if request.header.api_key == 0 and any(d.action == "mask" for d in decisions):
        plans = produce_plans(request.body, {op.resource: _PLAN for op, d in zip(ops, decisions, strict=True)
                                             if d.action == "mask"}, resolve)
        mask_produce(request.body, plans, 1 << 20)
    if request.header.api_key == 1:
        fetch_mask_keys(request, {op.resource: _PLAN for op in ops}, resolve)
    decisions = [_DENY if d.action == "mask" else d for d in decisions]
    enforce.plan(request, ops, decisions, resolve, throttle_ms=bits & 0xFF)
    enforce.listing_of(request)
