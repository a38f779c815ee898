"""Kafka 4's consumer group protocol (KIP-848): ConsumerGroupHeartbeat and ConsumerGroupDescribe.

A member joins, stays in and leaves its group by heartbeats alone: there is no JoinGroup and no
SyncGroup, and the broker assigns the partitions. How the broker reads a heartbeat, with
Gatekeeper's rights:

- ``SubscribedTopicNames`` is sent only when it changes (null otherwise): the subscription
  lives at the broker, not in the request. So each connection remembers, per (group, member),
  the subscription it last decided on and forwarded (:class:`Memberships`), and every heartbeat
  is decided against it: ``join_group`` on the group and ``consume`` on each subscribed topic,
  as the broker authorizes READ on the group and DESCRIBE on the topics (KafkaApis
  .handleConsumerGroupHeartbeat): a refused group answers GROUP_AUTHORIZATION_FAILED, a refused
  topic TOPIC_AUTHORIZATION_FAILED.
- ``SubscribedTopicRegex`` (v1) is resolved by the broker against every topic it has, filtered
  by DESCRIBE for the requesting principal (Gatekeeper's). Gatekeeper resolves it itself
  (:mod:`gatekeeper.kafka.topic_regex`, RE2 syntax, whole names, linear time) against the
  cluster's topic names (an all-topics Metadata of its own, at most ``LISTING_MAX_AGE`` old),
  decides ``describe_topic`` and ``consume`` on each match (``resolving``: a refusal leaves the
  topic out, never denies the heartbeat, and the client never learns its name), and sends the
  broker the explicit names instead, with no regex. Each later heartbeat of that member is
  resolved again, so a new matching topic is picked up within one listing refresh and a topic
  whose rights are gone drops out.
- The assignment in the response names topics by id: each is resolved (by id, as for requests)
  and decided ``consume``; an assigned topic the principal may not consume is taken out of the
  assignment. This is the backstop that holds whatever the request said or where the
  subscription was sent (another connection, before a restart).

ConsumerGroupDescribe is ``describe_group`` per group (split allow/deny), with the broker's
``include_authorized_operations`` (Gatekeeper's own rights) forced off; in the answer, as the
broker does (KafkaApis.handleConsumerGroupDescribe), a group whose members' assignments name a
topic the principal may not describe becomes TOPIC_AUTHORIZATION_FAILED, and, beyond the broker,
subscribed topic names it may not describe are taken out.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from gatekeeper.api import Operation, Resource
from gatekeeper.kafka.apis.base import (
    ApiKey,
    ApiUnit,
    Denials,
    Entities,
    Listing,
    OpContext,
    Resolve,
    force,
    group,
    topic_resource,
)
from gatekeeper.kafka.topic_regex import TopicRegex, UnsupportedRegex

__all__ = ["LISTING_MAX_AGE", "MAX_REGEX_MATCHES", "Memberships", "RefusedRequest", "Subscription",
           "TopicListingNeeded", "UNITS"]

LISTING_MAX_AGE = 10.0  # seconds an all-topics listing is used to resolve regex subscriptions
MAX_REGEX_MATCHES = 5000  # a regex matching more topics than this is refused
_MAX_MEMBERS = 256  # members remembered per connection (a client runs a handful)
_MAX_PATTERNS = 64  # compiled regexes kept per connection

TOPIC_AUTHORIZATION_FAILED = 29
INVALID_REGULAR_EXPRESSION = 128
_UNKNOWN_MEMBER_ID = 25
_FENCED_MEMBER_EPOCH = 110
_NO_AUTH_OPS = -2147483648
# KafkaApis.handleConsumerGroupDescribe's message for a group using topics the client may not describe.
DESCRIBE_TOPICS_REFUSED = "The group has described topic(s) that the client is not authorized to describe."


class TopicListingNeeded(Exception):
    """A regex subscription is to be resolved and the cluster's topic names are not known (or
    too old): the caller lists the topics and decides again."""


class RefusedRequest(Exception):
    """A request Gatekeeper answers with an error of its own, whatever the policy says."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- what a connection remembers ---------------------------------------------------------------


@attrs.frozen
class Subscription:
    """A member's subscription as its client sent it: explicit names (None: not known on this
    connection) and a regex (None or "": none)."""

    topics: tuple[str, ...] | None = None
    regex: str | None = None

    def to_input(self) -> dict[str, Any]:
        return {"topics": None if self.topics is None else list(self.topics), "regex": self.regex or None}


class Memberships:
    """Per connection: the subscription each (group, member) last forwarded, the regexes it
    compiled and the topics each matched in a listing. Bounded; least recently used goes first."""

    def __init__(self, listing: Callable[[], tuple[int, tuple[str, ...]] | None] = lambda: None) -> None:
        self._listing = listing  # (generation, names) of the cluster's topics, None if stale
        self._members: OrderedDict[tuple[str, str], Subscription] = OrderedDict()
        self._patterns: OrderedDict[str, TopicRegex | UnsupportedRegex] = OrderedDict()
        self._matches: dict[str, tuple[int, tuple[str, ...]]] = {}

    def get(self, group_id: str, member_id: str) -> Subscription | None:
        key = (group_id, member_id)
        sub = self._members.get(key)
        if sub is not None:
            self._members.move_to_end(key)
        return sub

    def put(self, group_id: str, member_id: str, sub: Subscription) -> None:
        self._members[(group_id, member_id)] = sub
        self._members.move_to_end((group_id, member_id))
        while len(self._members) > _MAX_MEMBERS:
            self._members.popitem(last=False)

    def forget(self, group_id: str, member_id: str) -> None:
        self._members.pop((group_id, member_id), None)

    def rename(self, group_id: str, old: str, new: str) -> None:
        """A member the coordinator named (v0 joins with an empty member id)."""
        sub = self._members.pop((group_id, old), None)
        if sub is not None:
            self.put(group_id, new, sub)

    def __len__(self) -> int:
        return len(self._members)

    def compile(self, pattern: str) -> TopicRegex:
        found = self._patterns.get(pattern)
        if found is None:
            try:
                found = TopicRegex(pattern)
            except UnsupportedRegex as e:
                found = e
            self._patterns[pattern] = found
            while len(self._patterns) > _MAX_PATTERNS:
                old, _ = self._patterns.popitem(last=False)
                self._matches.pop(old, None)
        else:
            self._patterns.move_to_end(pattern)
        if isinstance(found, UnsupportedRegex):
            raise found
        return found

    def matching(self, pattern: str) -> tuple[str, ...]:
        """The cluster's topics whose whole name matches ``pattern``, sorted; TopicListingNeeded
        if the listing is stale, UnsupportedRegex if the pattern is not one Gatekeeper matches."""
        regex = self.compile(pattern)
        listing = self._listing()
        if listing is None:
            raise TopicListingNeeded(pattern)
        generation, names = listing
        cached = self._matches.get(pattern)
        if cached is not None and cached[0] == generation:
            return cached[1]
        found = tuple(sorted(n for n in names if regex.matches(n)))
        self._matches[pattern] = (generation, found)
        return found


# -- ConsumerGroupHeartbeat ---------------------------------------------------------------------


def _memberships(c: OpContext) -> Memberships | None:
    state = c.state
    return None if state is None else getattr(state, "consumer_groups", None)


def _subscription(b: Any, c: OpContext) -> Subscription:
    """What the member is subscribed to after this heartbeat, as far as this connection knows:
    the request's fields where it sends them, else what was last forwarded for the member."""
    memory = _memberships(c)
    known = memory.get(b.group_id, b.member_id) if memory is not None and b.member_epoch != 0 else None
    names = b.subscribed_topic_names
    topics = tuple(dict.fromkeys(names)) if names is not None else (None if known is None else known.topics)
    regex = getattr(b, "subscribed_topic_regex", None)
    if regex is None:
        regex = None if known is None else known.regex
    return Subscription(topics, regex or None)


def _heartbeat_operations(b: Any, c: OpContext) -> list[Operation]:
    g = group(b.group_id)
    if b.member_epoch < 0:  # leaving: always possible, whatever the member may still consume
        return [Operation("join_group", g, {"group_type": "consumer", "leaving": True})]
    sub = _subscription(b, c)
    ops = [Operation("join_group", g, {"group_type": "consumer", "subscription": sub.to_input()})]
    for name in sub.topics or ():
        ops.append(Operation("consume", c.topic(name), {"group": b.group_id, "source": "subscription"}))
    if sub.regex:
        explicit = set(sub.topics or ())
        for name in _regex_matches(sub.regex, c):
            if name in explicit:
                continue
            why = {"group": b.group_id, "source": "regex", "regex": sub.regex, "resolving": True}
            ops += [Operation("describe_topic", Resource("topic", name), why), Operation("consume", Resource("topic", name), why)]
    return ops


def _regex_matches(pattern: str, c: OpContext) -> tuple[str, ...]:
    memory = _memberships(c)
    try:
        if memory is None:  # no connection (tests, replays): the regex resolves to nothing
            TopicRegex(pattern)
            return ()
        found = memory.matching(pattern)
    except UnsupportedRegex as e:
        raise RefusedRequest(INVALID_REGULAR_EXPRESSION,
                             f"SubscribedTopicRegex `{pattern}` is not a regular expression Gatekeeper resolves: {e}") from e
    if len(found) > MAX_REGEX_MATCHES:
        raise RefusedRequest(INVALID_REGULAR_EXPRESSION, f"SubscribedTopicRegex `{pattern}` matches {len(found)} topics, "
                                                         f"more than the {MAX_REGEX_MATCHES} Gatekeeper resolves; narrow it")
    return found


def _settle(version: int, b: Any, ops: Sequence[Operation], allowed: Sequence[bool]) -> bool:
    """The heartbeat as the broker gets it: never a regex (the topics it resolved to instead,
    those the policy let the member describe and consume), never a subscription on a leave."""
    changed = False
    if b.member_epoch < 0:
        changed = b.subscribed_topic_names is not None
        b.subscribed_topic_names = None
        if getattr(b, "subscribed_topic_regex", None) is not None:
            b.subscribed_topic_regex = None
            changed = True
        return changed
    sub = ops[0].request.get("subscription") or {}
    regex_sent = getattr(b, "subscribed_topic_regex", None) is not None
    if not sub.get("regex") and not regex_sent:
        return False
    refused = {op.resource.name for op, ok in zip(ops, allowed, strict=True) if op.request.get("resolving") and not ok}
    resolved = [op.resource.name for op in ops if op.request.get("resolving") and op.name == "consume"
                and op.resource.name not in refused]
    explicit = sub.get("topics")
    if explicit is not None or sub.get("regex"):
        b.subscribed_topic_names = list(dict.fromkeys(list(explicit or ()) + resolved))
        changed = True
    if regex_sent:
        b.subscribed_topic_regex = None
        changed = True
    return changed


def _remember(version: int, b: Any, ops: Sequence[Operation], state: Any) -> None:
    memory = getattr(state, "consumer_groups", None)
    if memory is None:
        return
    if b.member_epoch < 0:
        memory.forget(b.group_id, b.member_id)
        return
    sub = ops[0].request["subscription"]
    topics = sub.get("topics")
    memory.put(b.group_id, b.member_id, Subscription(None if topics is None else tuple(topics), sub.get("regex")))


def _learn(version: int, request: Any, response: Any, state: Any) -> None:
    memory = getattr(state, "consumer_groups", None)
    if memory is None:
        return
    if response.error_code in (_UNKNOWN_MEMBER_ID, _FENCED_MEMBER_EPOCH):
        memory.forget(request.group_id, request.member_id)  # it rejoins with its whole subscription
    elif response.error_code == 0 and not request.member_id and response.member_id:
        memory.rename(request.group_id, request.member_id, response.member_id)


def _heartbeat_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    # The broker authorizes the group first (GROUP_AUTHORIZATION_FAILED), then the topics.
    d = deny.get(Resource("group", b.group_id)) or deny.fallback
    return R[v](throttle_time_ms=0, error_code=d.code, error_message=d.message, member_id=None, member_epoch=0,
                heartbeat_interval_ms=0, assignment=None)


@attrs.frozen
class _Assignment(Listing):
    """The topics a heartbeat response assigns, by id: each decided ``consume``; one the member
    may not consume is taken out of the assignment."""

    group_id: str = ""

    def _topics(self, body: Any) -> list[Any]:
        if body.error_code != 0 or body.assignment is None:
            return []
        return list(body.assignment.topic_partitions or ())

    def topic_ids(self, body: Any) -> set[uuid.UUID]:
        return {tp.topic_id for tp in self._topics(body)}

    def operations(self, body: Any, resolve: Resolve | None = None) -> list[Operation]:
        names = resolve or (lambda _: None)
        return [Operation("consume", topic_resource(None, tp.topic_id, names), {"group": self.group_id, "source": "assignment"})
                for tp in self._topics(body)]

    def keep(self, body: Any, allowed: Sequence[bool]) -> Any:
        topics = self._topics(body)
        if topics:
            body.assignment.topic_partitions = [tp for tp, ok in zip(topics, allowed, strict=True) if ok]
        return body


def _heartbeat_listing(version: int, body: Any) -> Listing:
    return _Assignment("topic_partitions", "consume", "topic", str, body.group_id)


# -- ConsumerGroupDescribe ----------------------------------------------------------------------


def _describe(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("describe_group", group(g), {"group_type": "consumer"}) for g in b.group_ids]


def _describe_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    G = R.DescribedGroup
    out = []
    for g in b.group_ids:
        d = deny(Resource("group", g))
        out.append(G(error_code=d.code, error_message=d.message, group_id=g, group_state="", group_epoch=0,
                     assignment_epoch=0, assignor_name="", members=[], authorized_operations=_NO_AUTH_OPS))
    return R[v](throttle_time_ms=0, groups=out)


def _assigned_names(member: Any) -> list[str]:
    return [tp.topic_name for a in (member.assignment, member.target_assignment) if a is not None
            for tp in a.topic_partitions or ()]


@attrs.frozen
class _DescribedTopics(Listing):
    """The topics the described groups' members are assigned and subscribed to, each decided
    ``describe_topic``: a group naming in an assignment a topic the principal may not describe
    is refused with TOPIC_AUTHORIZATION_FAILED, as the broker does; subscribed names it may not
    describe are taken out."""

    def _names(self, body: Any) -> list[str]:
        found: dict[str, None] = {}
        for g in body.groups or ():
            if g.error_code != 0:
                continue
            for m in g.members or ():
                found.update(dict.fromkeys(_assigned_names(m)))
                found.update(dict.fromkeys(m.subscribed_topic_names or ()))
        return list(found)

    def operations(self, body: Any, resolve: Resolve | None = None) -> list[Operation]:
        return [Operation("describe_topic", Resource("topic", n), {"listing": True}) for n in self._names(body)]

    def keep(self, body: Any, allowed: Sequence[bool]) -> Any:
        refused = {n for n, ok in zip(self._names(body), allowed, strict=True) if not ok}
        if not refused:
            return body
        G = type(body.groups[0])
        groups = []
        for g in body.groups:
            if g.error_code == 0 and any(n in refused for m in g.members or () for n in _assigned_names(m)):
                g = G(error_code=TOPIC_AUTHORIZATION_FAILED, error_message=DESCRIBE_TOPICS_REFUSED, group_id=g.group_id,
                      group_state="", group_epoch=0, assignment_epoch=0, assignor_name="", members=[],
                      authorized_operations=_NO_AUTH_OPS)
            else:
                for m in g.members or ():
                    m.subscribed_topic_names = [n for n in m.subscribed_topic_names or () if n not in refused]
            groups.append(g)
        body.groups = groups
        return body


_DESCRIBED_TOPICS = _DescribedTopics("groups", "describe_topic", "topic", str)
_DESCRIBE_ENTITIES = Entities("group_ids", "groups", lambda e, r: Resource("group", e))

UNITS = [
    ApiUnit(ApiKey.CONSUMER_GROUP_HEARTBEAT, _heartbeat_operations, _heartbeat_error, listing=_heartbeat_listing,
            settle=_settle, remember=_remember, learn=_learn, hold_denials=True),
    ApiUnit(ApiKey.CONSUMER_GROUP_DESCRIBE, _describe, _describe_error, entities=lambda v: _DESCRIBE_ENTITIES,
            listing=lambda version, body: _DESCRIBED_TOPICS,
            # The broker would report Gatekeeper's own rights, not the client's: never asked for.
            normalize=lambda version, body: force(body, "include_authorized_operations", False)),
]
