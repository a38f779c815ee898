"""Metadata: ``describe_topic`` per named topic, ``list_topics`` for all topics (a listing
filtered by describe rights); broker addresses learned and rewritten to Gatekeeper's."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from gatekeeper.api import CLUSTER, Operation
from gatekeeper.kafka.apis.addresses import map_address
from gatekeeper.kafka.apis.base import (
    ApiKey,
    ApiUnit,
    Denials,
    Entities,
    Listing,
    OpContext,
    Resolve,
    force,
    topic_resource,
)


def _operations(b: Any, c: OpContext) -> list[Operation]:
    if _all_topics(c.version, b):
        return [Operation("list_topics", CLUSTER, {})]
    # Versions 0-3 carry no flag: the broker creates every named topic that does not exist (as
    # Gatekeeper's principal, which may). There is no flag to withdraw, so a refused create_topic
    # is a denial of that topic ("implicit"), never a withdrawal.
    implicit = c.version < 4
    auto = implicit or bool(getattr(b, "allow_auto_topic_creation", False))
    ops = []
    for t in b.topics:
        topic = c.topic(t.name, getattr(t, "topic_id", None))
        ops.append(Operation("describe_topic", topic, {"allow_auto_topic_creation": auto}))
        if auto and t.name:
            # The broker creates a named topic that does not exist: a create_topic, decided.
            # Refused, it is not a denial of the request: the flag is withdrawn (withdraw_auto_create).
            ops.append(Operation("create_topic", topic, {"auto_create": True, "implicit": True} if implicit
                                 else {"auto_create": True}))
    return ops


def _withdraw_auto_create(version: int, body: Any) -> None:
    body.allow_auto_topic_creation = False


def _error_response(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    T = R.MetadataResponseTopic
    topics = []
    for t in b.topics or ():
        r = topic_resource(t.name, getattr(t, "topic_id", None), resolve)
        # A topic asked for by id has no name; the answer's name is nullable only from v12 (and
        # a denied topic's name is never disclosed): empty before that.
        name = t.name if t.name is not None or v >= 12 else ""
        topics.append(T(error_code=deny(r).code, name=name, topic_id=getattr(t, "topic_id", None) or uuid.UUID(int=0),
                        is_internal=False, partitions=[], authorized_operations=None))
    return R[v](throttle_time_ms=0, brokers=[], cluster_id=None, controller_id=-1, topics=topics)


def _only_asked(allowed: list[Any]) -> Any:
    wanted = {k for e in allowed for k in (e.name, getattr(e, "topic_id", None)) if k}
    return lambda t: t.name in wanted or getattr(t, "topic_id", None) in wanted


# A request left with no topic after a split still goes to the broker (the client needs the
# brokers); in v0 an empty list means "all topics", so the answer keeps only what was asked.
_ENTITIES = Entities("topics", "topics", lambda e, r: topic_resource(e.name, getattr(e, "topic_id", None), r),
                     keep=_only_asked)
_LISTING = Listing("topics", "describe_topic", "topic", lambda t: t.name)


def _all_topics(version: int, body: Any) -> bool:
    """No list (null) means all topics; in v0 an empty list does too."""
    return body.topics is None or (version == 0 and not body.topics)


def _listing(version: int, body: Any) -> Listing | None:
    return _LISTING if _all_topics(version, body) else None


def _observe(version: int, body: Any, cluster: Any) -> None:
    for b in body.brokers:
        cluster.observe_broker(b.node_id, b.host, b.port)
    cluster.observe_topics((getattr(t, "topic_id", None), t.name) for t in body.topics)


def _memo(version: int, body: Any) -> Callable[[Any], None]:
    """What ``_observe`` of this body does, to replay for a byte-identical response."""
    brokers = [(b.node_id, b.host, b.port) for b in body.brokers]
    topics = [(getattr(t, "topic_id", None), t.name) for t in body.topics]

    def replay(cluster: Any) -> None:
        for node_id, host, port in brokers:
            cluster.observe_broker(node_id, host, port)
        cluster.observe_topics(topics)

    return replay


def _rewrite(version: int, body: Any, ctx: Any) -> None:
    for b in body.brokers:
        b.host, b.port = map_address(ctx.mapper, b.node_id, b.host, b.port)


def _no_authorized_operations(version: int, body: Any) -> bool:
    """The broker would report Gatekeeper's own rights, not the client's: never asked for."""
    cluster = force(body, "include_cluster_authorized_operations", False)
    return force(body, "include_topic_authorized_operations", False) or cluster


UNITS = [ApiUnit(ApiKey.METADATA, _operations, _error_response, entities=lambda v: _ENTITIES, listing=_listing,
                 observe=_observe, rewrite=_rewrite, memo=_memo, forward_when_all_denied=True, normalize=_no_authorized_operations,
                 withdraw=_withdraw_auto_create,
                 # v1+ with an empty list asks for the brokers only: no topic, nothing to decide.
                 names_nothing=lambda version, body: body.topics == [] and version >= 1)]
