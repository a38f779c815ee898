"""Turning decisions into what goes on the wire: forward, answer locally, split, or drop.

``plan(request, ops, decisions)`` is pure. Allowed requests go on as their original bytes. A
request denied as a whole is answered by Gatekeeper with the API's own error response. A
request over several topics (or groups, or config resources) with some denied is split: the
allowed entities go to the broker re-encoded, and the denied ones' errors are merged into the
broker's response. A denied acks=0 Produce is dropped and the connection closed, as the broker
does.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from gatekeeper.api import Decision, Operation, Resource
from gatekeeper.kafka import codec
from gatekeeper.kafka.adapter import DecodedRequest
from gatekeeper.kafka.denials import (
    Denial,
    Denials,
    ErrorResponseUnavailable,
    config_resource,
    denial_of,
    error_response,
    topic_resource,
)

__all__ = ["Close", "Forward", "Listing", "Partial", "Plan", "Respond", "disable_fetch_session", "listing_of", "plan"]

Resolve = Callable[[uuid.UUID], "str | None"]


@attrs.frozen
class Forward:
    frame: bytes


@attrs.frozen
class Respond:
    body: bytes  # response body (no header); the caller adds the response header


@attrs.frozen
class Partial:
    frame: bytes  # the request with only the allowed entities
    merge: Callable[[Any], Any]  # adds the denied entities' errors to the decoded response body


@attrs.frozen
class Close:
    reason: str


Plan = Forward | Respond | Partial | Close


def _config(r: Any, resolve: Resolve) -> Resource:
    return config_resource(r.resource_type, r.resource_name)


# api key -> (request list, response list, entity -> resource), by version where it differs.
_Entities = tuple[str, str, Callable[[Any, Resolve], Resource]]


def _entities(api_key: int, version: int) -> _Entities | None:
    topic_name = lambda e, r: Resource("topic", e.name)  # noqa: E731
    table: dict[int, _Entities] = {
        0: ("topic_data", "responses", lambda e, r: topic_resource(getattr(e, "name", None), getattr(e, "topic_id", None), r)),
        1: ("topics", "responses", lambda e, r: topic_resource(getattr(e, "topic", None), getattr(e, "topic_id", None), r)),
        2: ("topics", "topics", topic_name),
        3: ("topics", "topics", lambda e, r: topic_resource(e.name, getattr(e, "topic_id", None), r)),
        8: ("topics", "topics", lambda e, r: topic_resource(getattr(e, "name", None), getattr(e, "topic_id", None), r)),
        15: ("groups", "groups", lambda e, r: Resource("group", e)),
        19: ("topics", "topics", topic_name),
        20: ("topics", "responses", lambda e, r: topic_resource(e.name, e.topic_id, r)) if version >= 6
        else ("topic_names", "responses", lambda e, r: Resource("topic", e)),
        21: ("topics", "topics", topic_name),
        23: ("topics", "topics", lambda e, r: Resource("topic", e.topic)),
        32: ("resources", "results", _config),
        33: ("resources", "responses", _config),
        37: ("topics", "results", topic_name),
        42: ("groups_names", "results", lambda e, r: Resource("group", e)),
        44: ("resources", "responses", _config),
        61: ("topics", "topics", topic_name),
        75: ("topics", "topics", topic_name),
    }
    return table.get(api_key)


def plan(request: DecodedRequest, ops: Sequence[Operation], decisions: Sequence[Decision], resolve: Resolve,
         throttle_ms: int = 0) -> Plan:
    """What to do with a decided request. ``throttle_ms`` goes into the ``throttle_time_ms`` of
    a response that carries denials (where the API has the field), asking the client to wait
    before it sends again: Gatekeeper's brake on a client that repeats a refused request."""
    denied = [(op, d) for op, d in zip(ops, decisions, strict=True) if not d.allowed]
    if not denied:
        return Forward(disable_fetch_session(request) if request.header.api_key == 1 else request.frame)
    denials: dict[Resource, Denial] = {}
    for op, d in denied:
        if d.action in ("mask", "approve"):
            d = Decision(action="deny", reason=f"mask/approve not enabled: the policy said {d.action} ({d.reason}); denied, fail closed")
        denials.setdefault(op.resource, denial_of(op.resource, d))
    first = next(iter(denials.values()))
    summary = f"{denied[0][0].name} on {denied[0][0].resource.type} {denied[0][0].resource.name!r} denied: {first.message}"
    if not request.expects_response:
        return Close(f"acks=0 {summary}; request dropped")
    h, body = request.header, request.body
    if h.api_key == 3 and body.topics is None:
        # Listing all topics is never refused outright (the client needs the brokers): with
        # list_topics denied the listing comes back empty, as Kafka's authorizer would filter it.
        return Partial(request.frame, _no_topics)
    spec = _entities(h.api_key, h.api_version)
    if spec is not None:
        req_attr, resp_attr, resource_of = spec
        entities = list(getattr(body, req_attr) or ())
        resources = [resource_of(e, resolve) for e in entities]
        gate_denied = any(r not in resources for r in denials)
        allowed = [e for e, r in zip(entities, resources, strict=True) if r not in denials]
        if not gate_denied and (allowed or h.api_key == 3):
            return _partial(request, req_attr, resp_attr, entities, resources, allowed, denials, resolve, throttle_ms)
    try:
        response = error_response(h.api_key, h.api_version, body, Denials(denials, first), resolve)
    except ErrorResponseUnavailable as e:
        return Close(f"{summary}; {e}")
    _throttle(response, throttle_ms)
    return Respond(codec.encode_body(response, h.api_version))


def _throttle(response: Any, throttle_ms: int) -> None:
    if throttle_ms > 0 and getattr(response, "throttle_time_ms", None) is not None:
        response.throttle_time_ms = max(response.throttle_time_ms, throttle_ms)


def _partial(request: DecodedRequest, req_attr: str, resp_attr: str, entities: list[Any], resources: list[Resource],
             allowed: list[Any], denials: dict[Resource, Denial], resolve: Resolve, throttle_ms: int) -> Partial:
    h, body = request.header, request.body
    denied = [e for e, r in zip(entities, resources, strict=True) if r in denials]
    setattr(body, req_attr, denied)
    first = next(iter(denials.values()))
    errors = list(getattr(error_response(h.api_key, h.api_version, body, Denials(denials, first), resolve), resp_attr))
    setattr(body, req_attr, allowed)
    if h.api_key == 1 and h.api_version >= 7:  # see disable_fetch_session
        body.session_id, body.session_epoch = 0, -1
    frame = request.frame[: h.size] + codec.encode_body(body, h.api_version)

    # Metadata answers only the topics it was asked for; a v0 request left with no topic means
    # "all topics" to the broker, so its answer is cut back to the allowed ones.
    wanted = {k for e in allowed for k in (e.name, getattr(e, "topic_id", None)) if k} if h.api_key == 3 else None

    def merge(response: Any) -> Any:
        kept = list(getattr(response, resp_attr) or ())
        if wanted is not None:
            kept = [t for t in kept if t.name in wanted or getattr(t, "topic_id", None) in wanted]
        setattr(response, resp_attr, kept + errors)
        _throttle(response, throttle_ms)
        return response

    return Partial(frame, merge)


@attrs.frozen
class Listing:
    """A response that lists resources: each entry is kept only if the principal may describe
    it, as Kafka's own authorizer filters such listings, so existence is not leaked."""

    attr: str
    operation: str
    resource_type: str
    name: Callable[[Any], str]

    def operations(self, body: Any) -> list[Operation]:
        return [Operation(self.operation, Resource(self.resource_type, self.name(e)), {"listing": True})
                for e in getattr(body, self.attr) or ()]

    def keep(self, body: Any, allowed: Sequence[bool]) -> Any:
        setattr(body, self.attr, [e for e, ok in zip(getattr(body, self.attr) or (), allowed, strict=True) if ok])
        return body


_LISTINGS = {
    3: Listing("topics", "describe_topic", "topic", lambda t: t.name),
    16: Listing("groups", "describe_group", "group", lambda g: g.group_id),
    66: Listing("transaction_states", "describe_transaction", "transactional_id", lambda s: s.transactional_id),
}


def listing_of(request: DecodedRequest) -> Listing | None:
    """The listing filter for a request's response: all-topics Metadata, ListGroups, ListTransactions."""
    key = request.header.api_key
    if key == 3 and request.body.topics is not None:
        return None
    return _LISTINGS.get(key)


def _no_topics(response: Any) -> Any:
    response.topics = []
    return response


_I32x2 = struct.Struct(">ii")


def disable_fetch_session(request: DecodedRequest) -> bytes:
    """The Fetch request as a sessionless full fetch (session id 0, epoch -1), patched in place.

    Incremental fetch sessions let a client stop naming partitions it keeps fetching; with them
    off, every Fetch names every partition, so every partition is decided on every fetch.
    """
    h = request.header
    if h.api_version < 7:
        return request.frame
    offset = h.size + (4 if h.api_version < 15 else 0) + 4 + 4 + 4 + 1
    frame = bytearray(request.frame)
    _I32x2.pack_into(frame, offset, 0, -1)
    return bytes(frame)
