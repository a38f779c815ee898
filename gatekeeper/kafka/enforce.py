"""Turning decisions into what goes on the wire: forward, answer locally, split, or drop.

``plan(request, ops, decisions)`` is pure. Allowed requests go on as their original bytes (as
the API's unit normalizes them). A request denied as a whole is answered by Gatekeeper with the
API's own error response. A request over several topics (or groups, or config resources) with
some denied is split: the allowed entities go to the broker re-encoded, and the denied ones'
errors are merged into the broker's response. A denied acks=0 Produce is dropped and the
connection closed, as the broker does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from gatekeeper.api import CLUSTER, Decision, Operation, Resource
from gatekeeper.kafka import codec
from gatekeeper.kafka.apis import UNITS
from gatekeeper.kafka.apis.base import (
    Denial,
    Denials,
    Entities,
    Listing,
    Resolve,
    denial_of,
    withdrawn,
)
from gatekeeper.kafka.denials import ErrorResponseUnavailable, error_response
from gatekeeper.kafka.request import DecodedRequest

__all__ = ["Close", "Forward", "Partial", "Plan", "Respond", "listing_of", "plan"]


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


def plan(request: DecodedRequest, ops: Sequence[Operation], decisions: Sequence[Decision], resolve: Resolve,
         throttle_ms: int = 0) -> Plan:
    """What to do with a decided request. ``throttle_ms`` goes into the ``throttle_time_ms`` of
    a response that carries denials (where the API has the field), asking the client to wait
    before it sends again: Gatekeeper's brake on a client that repeats a refused request."""
    h = request.header
    unit = UNITS[h.api_key]
    if unit.settle is not None and unit.settle(h.api_version, request.body, ops, [d.allowed for d in decisions]):
        request = attrs.evolve(request, normalized=True)
    if unit.withdraw is not None and any(withdrawn(op, d.allowed) for op, d in zip(ops, decisions, strict=True)):
        unit.withdraw(h.api_version, request.body)
        request = attrs.evolve(request, normalized=True)
    if not ops and not unit.negotiation and not (unit.names_nothing is not None and unit.names_nothing(h.api_version, request.body)):
        # A request that names nothing has nothing decided: it is not forwarded. The broker
        # would have answered it with empty lists; so does Gatekeeper.
        if not request.expects_response:
            return Close("an acks=0 Produce naming no topic; dropped")
        try:
            empty = error_response(h.api_key, h.api_version, request.body, Denials.uniform(Denial(0, "")), resolve)
        except ErrorResponseUnavailable as e:
            return Close(f"{request.api_name} names nothing to decide; {e}")
        return Respond(codec.encode_body(empty, h.api_version))
    denied = [(op, d) for op, d in zip(ops, decisions, strict=True) if not d.allowed and not withdrawn(op, d.allowed)]
    if not denied:
        if unit.normalize_frame is None:
            return Forward(request.outgoing)
        return Forward(unit.normalize_frame(h.api_version, h.size, request.outgoing))
    denials: dict[Resource, Denial] = {}
    for op, d in denied:
        if d.action in ("mask", "approve"):  # a mask reaches here only where it cannot be applied
            d = Decision(action="deny", reason=f"{d.action} not enabled here: the policy said {d.action} ({d.reason}); denied, fail closed")
        denials.setdefault(op.resource, denial_of(op.resource, d))
    first = next(iter(denials.values()))
    summary = f"{denied[0][0].name} on {denied[0][0].resource.type} {denied[0][0].resource.name!r} denied: {first.message}"
    if not request.expects_response:
        return Close(f"acks=0 {summary}; request dropped")
    body = request.body
    listing = listing_of(request)
    if listing is not None and all(op.resource == CLUSTER for op, _ in denied):
        # A listing is never refused outright: with the listing itself denied it comes back
        # empty, as Kafka's authorizer filters what a principal may not describe.
        return Partial(request.outgoing, lambda response: listing.keep(response, [False] * len(listing.operations(response, resolve))))
    spec = unit.entities(h.api_version) if unit.entities is not None else None
    if spec is not None:
        entities = list(getattr(body, spec.request) or ())
        resources = [spec.resource(e, resolve) for e in entities]
        gate_denied = any(r not in resources for r in denials)
        allowed = [e for e, r in zip(entities, resources, strict=True) if r not in denials]
        if not gate_denied and (allowed or unit.forward_when_all_denied):
            return _partial(request, spec, entities, resources, allowed, denials, resolve, throttle_ms)
    try:
        response = error_response(h.api_key, h.api_version, body, Denials(denials, first), resolve)
    except ErrorResponseUnavailable as e:
        return Close(f"{summary}; {e}")
    _throttle(response, throttle_ms)
    return Respond(codec.encode_body(response, h.api_version))


def _throttle(response: Any, throttle_ms: int) -> None:
    if throttle_ms > 0 and getattr(response, "throttle_time_ms", None) is not None:
        response.throttle_time_ms = max(response.throttle_time_ms, throttle_ms)


def _partial(request: DecodedRequest, spec: Entities, entities: list[Any], resources: list[Resource],
             allowed: list[Any], denials: dict[Resource, Denial], resolve: Resolve, throttle_ms: int) -> Partial:
    h, body = request.header, request.body
    unit = UNITS[h.api_key]
    denied = [e for e, r in zip(entities, resources, strict=True) if r in denials]
    setattr(body, spec.request, denied)
    first = next(iter(denials.values()))
    errors = list(getattr(error_response(h.api_key, h.api_version, body, Denials(denials, first), resolve), spec.response))
    setattr(body, spec.request, allowed)
    if unit.normalize_body is not None:
        unit.normalize_body(h.api_version, body)
    frame = request.frame[: h.size] + codec.encode_body(body, h.api_version)
    keep = None if spec.keep is None else spec.keep(allowed)

    def merge(response: Any) -> Any:
        kept = list(getattr(response, spec.response) or ())
        if keep is not None:
            kept = [e for e in kept if keep(e)]
        setattr(response, spec.response, kept + errors)
        _throttle(response, throttle_ms)
        return response

    return Partial(frame, merge)


def listing_of(request: DecodedRequest) -> Listing | None:
    """The listing filter for a request's response: all-topics Metadata, ListGroups, ListTransactions."""
    unit = UNITS[request.header.api_key]
    return None if unit.listing is None else unit.listing(request.header.api_version, request.body)

