"""Share groups (KIP-932): membership (ShareGroupHeartbeat), ShareGroupDescribe, ShareFetch,
ShareAcknowledge and the share-group offset admin APIs.

A share group is a resource of its own (``share_group``). As Kafka's authorizer does, the group
is checked before the topics, and a refused group refuses the whole request:

- ShareGroupHeartbeat: ``join_group`` on the share group and ``consume`` on each subscribed
  topic; a refused topic answers the heartbeat with TOPIC_AUTHORIZATION_FAILED. The client sends
  its subscription only when it changes, so the connection remembers the last one decided on
  (:class:`Subscriptions`) and decides it again on every heartbeat; the assignment in the
  response is decided too, and an assigned topic the principal may not consume is taken out.
- ShareFetch / ShareAcknowledge: ``consume`` on the share group and on each topic named; a
  refused topic gets TOPIC_AUTHORIZATION_FAILED per partition and the rest is forwarded (even
  with no topic left, so the broker keeps the share session's epoch in step). A share session
  keeps fetching topics earlier requests named, so the topics of every ShareFetch response are
  decided again: refused ones lose their records and acquired records, masked ones are masked.
- ShareFetch and ShareAcknowledge answers about a partition whose leader moved name the new
  leader (``node_endpoints``): its address is mapped to Gatekeeper's, as in every answer.
- ShareGroupDescribe: ``describe_group``; members' subscriptions and assignments keep only the
  topics the principal may describe; authorized operations are never asked for.
- DescribeShareGroupOffsets / AlterShareGroupOffsets / DeleteShareGroupOffsets: ``fetch_offset``
  / ``commit_offset`` / ``delete_offsets`` on the share group and on each topic named.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import attrs

from gatekeeper.api import Operation, Resource
from gatekeeper.kafka.apis.addresses import map_node_endpoints
from gatekeeper.kafka.apis.base import (
    ApiKey,
    ApiUnit,
    Denial,
    Denials,
    Entities,
    Listing,
    OpContext,
    Resolve,
    force,
    scoped_code,
    topic_resource,
)

__all__ = ["SHARE_GROUP", "UNITS", "Subscriptions", "share_group"]

SHARE_GROUP = "share_group"
_ZERO_UUID = uuid.UUID(int=0)


def share_group(name: str | None) -> Resource:
    return Resource(SHARE_GROUP, name or "")


def _group_denial(deny: Denials, group_id: str | None) -> Denial | None:
    return deny.get(share_group(group_id))


# -- ShareGroupHeartbeat ------------------------------------------------------------------------


def _heartbeat(b: Any, c: OpContext) -> list[Operation]:
    ops = [Operation("join_group", share_group(b.group_id), {"member_epoch": b.member_epoch})]
    for name in b.subscribed_topic_names or ():
        ops.append(Operation("consume", Resource("topic", name), {"share_group": b.group_id, "subscription": True}))
    return ops


def _heartbeat_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    # The group first, as Kafka checks it; else the refused topic of the subscription (Kafka
    # answers TOPIC_AUTHORIZATION_FAILED for the whole heartbeat).
    d = _group_denial(deny, b.group_id) or deny.fallback
    return R[v](throttle_time_ms=0, error_code=d.code, error_message=d.message, member_id=None, member_epoch=0,
                heartbeat_interval_ms=0, assignment=None)


@attrs.define
class Subscriptions:
    """The last subscription decided on per (share group, member) of one connection.

    A heartbeat carries its subscription only when it changes (null otherwise); the remembered
    one is decided again on each heartbeat, so a policy change reaches a member that keeps its
    subscription. A member leaving (epoch -1) is forgotten."""

    by_member: dict[tuple[str, str], tuple[str, ...]] = attrs.field(factory=dict)
    limit: int = 64  # members remembered per connection (a client has one or a few)

    def operations(self, body: Any, ops: list[Operation]) -> list[Operation]:
        """``ops`` of a heartbeat ``body`` with the remembered subscription's topics added when
        the heartbeat carries none; remembers the subscription it carries."""
        key = (body.group_id or "", body.member_id or "")
        if body.member_epoch == -1:
            self.by_member.pop(key, None)
            return ops
        if body.subscribed_topic_names is not None:
            self.by_member.pop(key, None)
            if len(self.by_member) >= self.limit:
                self.by_member.pop(next(iter(self.by_member)))
            self.by_member[key] = tuple(body.subscribed_topic_names)
            return ops
        return ops + [Operation("consume", Resource("topic", name), {"share_group": body.group_id, "subscription": True,
                                                                     "remembered": True})
                      for name in self.by_member.get(key, ())]


@attrs.frozen
class _Assignment(Listing):
    """The assignment in a heartbeat response: each assigned topic Gatekeeper can name is
    decided (``consume``), and one the principal may not consume is taken out, so the client
    never fetches it. Ids not yet named are left in (ShareFetch decides them by name)."""

    group_id: str = ""
    decided: list[uuid.UUID] = attrs.field(factory=list)
    mask_allows: bool = True  # a topic consumed masked is consumed: it stays assigned

    def operations(self, body: Any, resolve: Resolve | None = None) -> list[Operation]:
        self.decided.clear()
        ops = []
        for t in body.assignment.topic_partitions if body.assignment is not None else ():
            name = resolve(t.topic_id) if resolve is not None else None
            if name is not None and t.topic_id not in self.decided:
                self.decided.append(t.topic_id)
                ops.append(Operation("consume", Resource("topic", name), {"share_group": self.group_id, "assignment": True,
                                                                          "partitions": list(t.partitions)}))
        return ops

    def keep(self, body: Any, allowed: Sequence[bool]) -> Any:
        refused = {i for i, ok in zip(self.decided, allowed, strict=True) if not ok}
        if refused and body.assignment is not None:
            body.assignment.topic_partitions = [t for t in body.assignment.topic_partitions if t.topic_id not in refused]
        return body


def _heartbeat_listing(version: int, body: Any) -> Listing:
    return _Assignment("assignment", "consume", "topic", str, body.group_id or "")


# -- ShareGroupDescribe -------------------------------------------------------------------------


def _describe(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("describe_group", share_group(g), {}) for g in b.group_ids]


def _describe_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    G = R.DescribedGroup
    out = []
    for g in b.group_ids:
        d = deny(share_group(g))
        out.append(G(error_code=d.code, error_message=d.message, group_id=g, group_state="", group_epoch=0,
                     assignment_epoch=0, assignor_name="", members=[], authorized_operations=-2147483648))
    return R[v](throttle_time_ms=0, groups=out)


@attrs.frozen
class _MemberTopics(Listing):
    """Members' subscriptions and assignments in a ShareGroupDescribe answer keep only the
    topics the principal may describe."""

    decided: list[str] = attrs.field(factory=list)

    def operations(self, body: Any, resolve: Resolve | None = None) -> list[Operation]:
        names: dict[str, None] = {}
        for g in body.groups or ():
            for m in g.members or ():
                for name in m.subscribed_topic_names or ():
                    names[name] = None
                for t in m.assignment.topic_partitions if m.assignment is not None else ():
                    names[t.topic_name] = None
        self.decided[:] = list(names)
        return [Operation("describe_topic", Resource("topic", n), {"listing": True}) for n in self.decided]

    def keep(self, body: Any, allowed: Sequence[bool]) -> Any:
        ok = {n for n, a in zip(self.decided, allowed, strict=True) if a}
        for g in body.groups or ():
            for m in g.members or ():
                m.subscribed_topic_names = [n for n in m.subscribed_topic_names or () if n in ok]
                if m.assignment is not None:
                    m.assignment.topic_partitions = [t for t in m.assignment.topic_partitions if t.topic_name in ok]
        return body


# -- ShareFetch and ShareAcknowledge ------------------------------------------------------------


def _acknowledges(t: Any) -> bool:
    return any(p.acknowledgement_batches for p in t.partitions)


def _share_topics(operation_request: dict[str, Any]) -> Any:
    def build(b: Any, c: OpContext) -> list[Operation]:
        ops = [Operation("consume", share_group(b.group_id), {"member_id": b.member_id, **operation_request})]
        for t in b.topics:
            ops.append(Operation("consume", c.topic(None, t.topic_id), {
                "share_group": b.group_id, "partitions": [p.partition_index for p in t.partitions],
                "acknowledge": _acknowledges(t), **operation_request}))
        return ops

    return build


def _leader(T: Any) -> Any:
    return T.LeaderIdAndEpoch(leader_id=-1, leader_epoch=-1)


def _fetch_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    gd = _group_denial(deny, b.group_id)
    if gd is not None:
        return R[v](throttle_time_ms=0, error_code=gd.code, error_message=gd.message, acquisition_lock_timeout_ms=0,
                    responses=[], node_endpoints=[])
    T = R.ShareFetchableTopicResponse
    P = T.PartitionData
    out = []
    for t in b.topics:
        d = deny(topic_resource(None, t.topic_id, resolve))
        acked = _acknowledges(t)
        out.append(T(topic_id=t.topic_id, partitions=[
            P(partition_index=p.partition_index, error_code=d.code, error_message=d.message,
              acknowledge_error_code=d.code if acked else 0, acknowledge_error_message=d.message if acked else None,
              current_leader=_leader(P), records=b"", acquired_records=[])
            for p in t.partitions]))
    return R[v](throttle_time_ms=0, error_code=0, error_message=None, acquisition_lock_timeout_ms=0, responses=out,
                node_endpoints=[])


def _acknowledge_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    gd = _group_denial(deny, b.group_id)
    if gd is not None:
        return R[v](throttle_time_ms=0, error_code=gd.code, error_message=gd.message, acquisition_lock_timeout_ms=0,
                    responses=[], node_endpoints=[])
    T = R.ShareAcknowledgeTopicResponse
    P = T.PartitionData
    out = [T(topic_id=t.topic_id, partitions=[
        P(partition_index=p.partition_index, error_code=(d := deny(topic_resource(None, t.topic_id, resolve))).code,
          error_message=d.message, current_leader=_leader(P)) for p in t.partitions]) for t in b.topics]
    return R[v](throttle_time_ms=0, error_code=0, error_message=None, acquisition_lock_timeout_ms=0, responses=out,
                node_endpoints=[])


_TOPIC_ENTITIES = Entities("topics", "responses", lambda e, r: topic_resource(None, e.topic_id, r))


@attrs.frozen
class ShareFetchTopics(Listing):
    """The topics of a ShareFetch response, decided again (``consume``): a share session keeps
    fetching what earlier requests named. ``keep`` answers a refused topic's partitions with
    TOPIC_AUTHORIZATION_FAILED, no records and no acquired records (they are released when
    their acquisition lock times out); a mask decision's plan is applied by the connection."""

    group_id: str = ""
    decided: list[uuid.UUID] = attrs.field(factory=list)
    maskable: bool = True

    def operations(self, body: Any, resolve: Resolve | None = None) -> list[Operation]:
        self.decided.clear()
        ops = []
        for t in body.responses or ():
            if t.topic_id in self.decided or not any(p.records or p.acquired_records for p in t.partitions or ()):
                continue
            self.decided.append(t.topic_id)
            ops.append(Operation("consume", topic_resource(None, t.topic_id, resolve or (lambda _: None)),
                                 {"share_group": self.group_id, "partitions": [p.partition_index for p in t.partitions],
                                  "response": True}))
        return ops

    def keep(self, body: Any, allowed: Sequence[bool]) -> Any:
        refused = {i for i, ok in zip(self.decided, allowed, strict=True) if not ok}
        for t in body.responses or ():
            if t.topic_id in refused:
                for p in t.partitions or ():
                    p.error_code = 29  # TOPIC_AUTHORIZATION_FAILED
                    p.error_message = "refused by policy"
                    p.records = b""
                    p.acquired_records = []
        return body


def _fetch_listing(version: int, body: Any) -> Listing:
    return ShareFetchTopics("responses", "consume", "topic", str, body.group_id or "")


# -- offsets ------------------------------------------------------------------------------------


def _describe_offsets(b: Any, c: OpContext) -> list[Operation]:
    ops = []
    for g in b.groups:
        ops.append(Operation("fetch_offset", share_group(g.group_id), {"all_topics": g.topics is None}))
        for t in g.topics or ():
            ops.append(Operation("fetch_offset", Resource("topic", t.topic_name),
                                 {"share_group": g.group_id, "partitions": list(t.partitions)}))
    return ops


def _describe_offsets_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    G = R.DescribeShareGroupOffsetsResponseGroup
    T = G.DescribeShareGroupOffsetsResponseTopic
    P = T.DescribeShareGroupOffsetsResponsePartition
    groups = []
    for g in b.groups:
        scope = share_group(g.group_id)
        gd = deny.get(scope)
        topics = [] if gd is not None else [
            T(topic_name=t.topic_name, topic_id=_ZERO_UUID, partitions=[
                P(partition_index=i, start_offset=-1, leader_epoch=-1, lag=-1,
                  error_code=scoped_code(deny, scope, Resource("topic", t.topic_name)),
                  error_message=(deny.get(Resource("topic", t.topic_name)) or Denial(0, "")).message or None)
                for i in t.partitions])
            for t in g.topics or ()]
        groups.append(G(group_id=g.group_id, topics=topics, error_code=0 if gd is None else gd.code,
                        error_message=None if gd is None else gd.message))
    return R[v](throttle_time_ms=0, groups=groups)


@attrs.frozen
class _AllGroupTopics(Listing):
    """DescribeShareGroupOffsets with no topics (null) answers every topic the group has
    offsets for: only those the principal may describe are kept."""

    groups: frozenset[str] = frozenset()

    def _entries(self, body: Any) -> list[tuple[Any, Any]]:
        return [(g, t) for g in body.groups or () if g.group_id in self.groups for t in g.topics or ()]

    def operations(self, body: Any, resolve: Resolve | None = None) -> list[Operation]:
        return [Operation("describe_topic", Resource("topic", t.topic_name), {"listing": True}) for _, t in self._entries(body)]

    def keep(self, body: Any, allowed: Sequence[bool]) -> Any:
        dropped = {id(t) for (_, t), ok in zip(self._entries(body), allowed, strict=True) if not ok}
        for g in body.groups or ():
            if g.group_id in self.groups:
                g.topics = [t for t in g.topics or () if id(t) not in dropped]
        return body


def _describe_offsets_listing(version: int, body: Any) -> Listing | None:
    everything = frozenset(g.group_id for g in body.groups if g.topics is None)
    return _AllGroupTopics("groups", "describe_topic", "topic", str, everything) if everything else None


def _alter_offsets(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("commit_offset", share_group(b.group_id), {"topics": [t.topic_name for t in b.topics]})] + [
        Operation("commit_offset", Resource("topic", t.topic_name),
                  {"share_group": b.group_id, "partitions": [p.partition_index for p in t.partitions]})
        for t in b.topics]


def _alter_offsets_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    scope = share_group(b.group_id)
    gd = deny.get(scope)
    if gd is not None:
        return R[v](throttle_time_ms=0, error_code=gd.code, error_message=gd.message, responses=[])
    T = R.AlterShareGroupOffsetsResponseTopic
    P = T.AlterShareGroupOffsetsResponsePartition
    out = []
    for t in b.topics:
        d = deny(Resource("topic", t.topic_name))
        out.append(T(topic_name=t.topic_name, topic_id=_ZERO_UUID, partitions=[
            P(partition_index=p.partition_index, error_code=d.code, error_message=d.message) for p in t.partitions]))
    return R[v](throttle_time_ms=0, error_code=0, error_message=None, responses=out)


def _delete_offsets(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("delete_offsets", share_group(b.group_id), {"topics": [t.topic_name for t in b.topics]})] + [
        Operation("delete_offsets", Resource("topic", t.topic_name), {"share_group": b.group_id}) for t in b.topics]


def _delete_offsets_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    scope = share_group(b.group_id)
    gd = deny.get(scope)
    if gd is not None:
        return R[v](throttle_time_ms=0, error_code=gd.code, error_message=gd.message, responses=[])
    T = R.DeleteShareGroupOffsetsResponseTopic
    out = [T(topic_name=t.topic_name, topic_id=_ZERO_UUID, error_code=(d := deny(Resource("topic", t.topic_name))).code,
             error_message=d.message) for t in b.topics]
    return R[v](throttle_time_ms=0, error_code=0, error_message=None, responses=out)


_NAMED_TOPICS = Entities("topics", "responses", lambda e, r: Resource("topic", e.topic_name))

UNITS = [
    ApiUnit(ApiKey.SHARE_GROUP_HEARTBEAT, _heartbeat, _heartbeat_error, listing=_heartbeat_listing,
            hold_denials=True),
    ApiUnit(ApiKey.SHARE_GROUP_DESCRIBE, _describe, _describe_error,
            entities=lambda v: Entities("group_ids", "groups", lambda e, r: share_group(e)),
            listing=lambda v, b: _MemberTopics("groups", "describe_topic", "topic", str),
            # The broker would report Gatekeeper's own rights, not the client's: never asked for.
            normalize=lambda version, body: force(body, "include_authorized_operations", False)),
    ApiUnit(ApiKey.SHARE_FETCH, _share_topics({}), _fetch_error, entities=lambda v: _TOPIC_ENTITIES,
            listing=_fetch_listing, forward_when_all_denied=True, rewrite=map_node_endpoints),
    ApiUnit(ApiKey.SHARE_ACKNOWLEDGE, _share_topics({"acknowledge": True}), _acknowledge_error,
            entities=lambda v: _TOPIC_ENTITIES, forward_when_all_denied=True, rewrite=map_node_endpoints),
    ApiUnit(ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS, _describe_offsets, _describe_offsets_error,
            listing=_describe_offsets_listing),
    ApiUnit(ApiKey.ALTER_SHARE_GROUP_OFFSETS, _alter_offsets, _alter_offsets_error, entities=lambda v: _NAMED_TOPICS),
    ApiUnit(ApiKey.DELETE_SHARE_GROUP_OFFSETS, _delete_offsets, _delete_offsets_error, entities=lambda v: _NAMED_TOPICS),
]
