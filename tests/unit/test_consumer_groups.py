"""The pure parts of KIP-848 enforcement: topic regexes, what a connection remembers of its
members, how a heartbeat is decided and settled, and how answers are filtered."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from gatekeeper.api import Decision, Operation, Resource
from gatekeeper.kafka import enforce
from gatekeeper.kafka.apis import UNITS
from gatekeeper.kafka.apis.base import ApiKey, OpContext
from gatekeeper.kafka.apis.consumer_groups import (
    DESCRIBE_TOPICS_REFUSED,
    INVALID_REGULAR_EXPRESSION,
    Memberships,
    RefusedRequest,
    Subscription,
    TopicListingNeeded,
)
from gatekeeper.kafka.cluster import ClusterView
from gatekeeper.kafka.codec import API_TABLE
from gatekeeper.kafka.messages import INSPECTABLE, KafkaCodec
from gatekeeper.kafka.topic_regex import TopicRegex, UnsupportedRegex

HB = API_TABLE[ApiKey.CONSUMER_GROUP_HEARTBEAT]
DESCRIBE = API_TABLE[ApiKey.CONSUMER_GROUP_DESCRIBE]
ALLOW, DENY = Decision("allow"), Decision("deny", reason="no")

# -- topic regexes (checked once against RE2J itself: 0 differences over 121,840 pairs) -------------

MATCHES = [
    (r"orders\..*", "orders.eu", True), (r"orders\..*", "orders", False), (r"orders\..*", "xorders.eu", False),
    (r"(^orders\..*)", "orders.eu", True), (r"(^(sm|hidden)\..*)", "hidden.x", True), (r"^orders$", "orders", True),
    (r"(orders|payments)-.*", "payments-eu", True), (r"a{2,3}", "aaaa", False), (r"a{2,3}", "aaa", True),
    (r"(?i)ORDERS.*", "orders.x", True), (r"(?i:a)b", "Ab", True), (r"(?i:a)b", "AB", False), (r"[^a-c]+", "xyz", True),
    (r"[^a-c]+", "xaz", False), (r"\d+", "123", True), (r"[\d.]+", "1.2", True), (r"\w+", "a_1", True),
    (r"\w+", "a-1", False), (r"x\z", "x", True), (r"\Ax", "x", True), (r"a$b", "ab", False), (r"\Qa.b\E", "a.b", True),
    (r"\Qa.b\E", "axb", False), (r"[]a]+", "]a", True), (r"[a-]+", "a-", True), (r"(?P<n>a)+", "aa", True),
    (r"a|", "", True), (r"(a|b)*c", "ababc", True), (r"[a-z0-9._-]+", "topic.v-1_2", True), (r".*", "anything", True),
]
REFUSED = [r"(?=a)", r"(a)\1", r"a**", r"a*+", r"a{1001}", r"[[:alpha:]]+", r"\pL", r"a\b", r"a{,3}", r"(?<n>a)",
           r"(?x)a b", r"(?>a)", r"\x41", r"[a", r"(a", r"a)", r"*a", "a" * 1025]


@pytest.mark.parametrize(("pattern", "name", "expected"), MATCHES)
def test_topic_regex_matches_whole_names_as_re2j(pattern: str, name: str, expected: bool) -> None:
    assert TopicRegex(pattern).matches(name) is expected


@pytest.mark.parametrize("pattern", REFUSED)
def test_topic_regex_refuses_what_it_cannot_match_as_re2j_does(pattern: str) -> None:
    with pytest.raises(UnsupportedRegex):
        TopicRegex(pattern)


def test_topic_regex_is_linear_where_a_backtracking_engine_is_exponential() -> None:
    evil = TopicRegex(r"(a|a)*(a|aa)*.*.*.*.*.*b")
    start = time.monotonic()
    assert not evil.matches("a" * 249)  # the longest topic name
    assert time.monotonic() - start < 1.0


# -- what a connection remembers ---------------------------------------------------------------------


def test_memberships_remember_rename_forget_and_are_bounded() -> None:
    m = Memberships()
    m.put("g", "", Subscription(("a",), None))
    m.rename("g", "", "m-1")
    assert m.get("g", "m-1") == Subscription(("a",), None) and m.get("g", "") is None
    m.forget("g", "m-1")
    assert m.get("g", "m-1") is None
    for i in range(1000):
        m.put("g", f"m{i}", Subscription((), None))
    assert len(m) == 256 and m.get("g", "m999") is not None and m.get("g", "m0") is None


def test_memberships_resolve_a_regex_against_a_fresh_listing_only() -> None:
    listing: list[Any] = [None]
    m = Memberships(lambda: listing[0])
    with pytest.raises(TopicListingNeeded):
        m.matching(r"orders\..*")
    listing[0] = (1, ("orders", "orders.eu", "orders.us", "payments.eu"))
    assert m.matching(r"orders\..*") == ("orders.eu", "orders.us")
    listing[0] = (2, ("orders.eu", "orders.new"))
    assert m.matching(r"orders\..*") == ("orders.eu", "orders.new")
    with pytest.raises(UnsupportedRegex):
        m.matching("(?=x)")


# -- heartbeats: decided, settled -----------------------------------------------------------------------


class State:
    def __init__(self, topics: tuple[str, ...] = ()) -> None:
        self.consumer_groups = Memberships(lambda: (1, topics))


def heartbeat(version: int = 1, epoch: int = 5, member: str = "m-1", **fields: Any) -> Any:
    body: dict[str, Any] = {"group_id": "g", "member_id": member, "member_epoch": epoch, "instance_id": None, "rack_id": None,
                            "rebalance_timeout_ms": -1, "subscribed_topic_names": None, "server_assignor": None,
                            "topic_partitions": None}
    if version >= 1:
        body["subscribed_topic_regex"] = None
    body.update(fields)
    req = HB.request[version](**body)
    req.with_header(correlation_id=1, client_id="t")
    return KafkaCodec(ClusterView(3)).decode(bytes(req.encode(version=version, header=True)))


def ops_of(request: Any, state: Any = None) -> list[Operation]:
    return UNITS[ApiKey.CONSUMER_GROUP_HEARTBEAT].operations(request.body, OpContext(request.header.api_version, lambda _: None, state))


def summary(ops: list[Operation]) -> list[tuple[str, str]]:
    return [(op.name, op.resource.name) for op in ops]


def test_both_versions_are_inspected() -> None:
    assert INSPECTABLE[ApiKey.CONSUMER_GROUP_HEARTBEAT] == (0, 1)
    assert INSPECTABLE[ApiKey.CONSUMER_GROUP_DESCRIBE] == (0, 1)


def test_a_heartbeat_is_join_group_and_consume_on_each_subscribed_topic() -> None:
    ops = ops_of(heartbeat(epoch=0, subscribed_topic_names=["a", "b", "a"]))
    assert summary(ops) == [("join_group", "g"), ("consume", "a"), ("consume", "b")]
    assert ops[0].request == {"group_type": "consumer", "subscription": {"topics": ["a", "b"], "regex": None}}
    assert ops[1].request == {"group": "g", "source": "subscription"}


def test_later_heartbeats_are_decided_against_the_subscription_last_forwarded() -> None:
    state = State()
    first = heartbeat(epoch=0, subscribed_topic_names=["a"])
    ops = ops_of(first, state)
    unit = UNITS[ApiKey.CONSUMER_GROUP_HEARTBEAT]
    assert unit.remember is not None
    unit.remember(1, first.body, ops, state)
    assert summary(ops_of(heartbeat(epoch=5), state)) == [("join_group", "g"), ("consume", "a")]
    # Another connection (or none): only the group, the assignment is the backstop.
    assert summary(ops_of(heartbeat(epoch=5), State())) == [("join_group", "g")]
    # A rejoin (epoch 0) carries the whole subscription: nothing remembered applies.
    assert summary(ops_of(heartbeat(epoch=0, subscribed_topic_names=[]), state)) == [("join_group", "g")]
    # Leaving is always possible, and forgets the member.
    leave = heartbeat(epoch=-1)
    assert summary(ops_of(leave, state)) == [("join_group", "g")] and ops_of(leave, state)[0].request["leaving"]
    unit.remember(1, leave.body, ops_of(leave, state), state)
    assert state.consumer_groups.get("g", "m-1") is None


def test_a_regex_is_resolved_to_the_allowed_topics_and_never_reaches_the_broker() -> None:
    state = State(("orders", "orders.eu", "orders.secret", "orders.us", "payments"))
    request = heartbeat(epoch=0, subscribed_topic_names=["payments"], subscribed_topic_regex=r"orders\..*")
    ops = ops_of(request, state)
    assert summary(ops) == [("join_group", "g"), ("consume", "payments"),
                            ("describe_topic", "orders.eu"), ("consume", "orders.eu"),
                            ("describe_topic", "orders.secret"), ("consume", "orders.secret"),
                            ("describe_topic", "orders.us"), ("consume", "orders.us")]
    assert all(op.request["resolving"] for op in ops[2:])
    # orders.secret may not be described, orders.us not consumed: both left out, nothing denied.
    decisions = [DENY if (op.resource.name, op.name) in {("orders.secret", "describe_topic"), ("orders.us", "consume")} else ALLOW
                 for op in ops]
    plan = enforce.plan(request, ops, decisions, lambda _: None)
    assert isinstance(plan, enforce.Forward)
    sent = HB.request.decode(plan.frame[request.header.size:], version=1)
    assert sent.subscribed_topic_names == ["payments", "orders.eu"] and sent.subscribed_topic_regex is None


def test_a_regex_remembered_is_resolved_again_on_every_heartbeat() -> None:
    topics: list[tuple[str, ...]] = [("orders.eu",)]
    state = State()
    state.consumer_groups = Memberships(lambda: (len(topics[0]), topics[0]))
    first = heartbeat(epoch=0, subscribed_topic_names=[], subscribed_topic_regex=r"orders\..*")
    unit = UNITS[ApiKey.CONSUMER_GROUP_HEARTBEAT]
    assert unit.remember is not None
    unit.remember(1, first.body, ops_of(first, state), state)
    topics[0] = ("orders.eu", "orders.new")
    later = heartbeat(epoch=5)
    ops = ops_of(later, state)
    assert ("consume", "orders.new") in summary(ops)
    plan = enforce.plan(later, ops, [ALLOW] * len(ops), lambda _: None)
    assert isinstance(plan, enforce.Forward)
    sent = HB.request.decode(plan.frame[later.header.size:], version=1)
    assert sent.subscribed_topic_names == ["orders.eu", "orders.new"] and sent.subscribed_topic_regex is None


def test_without_a_connection_a_regex_resolves_to_nothing() -> None:
    request = heartbeat(epoch=0, subscribed_topic_names=[], subscribed_topic_regex=r"orders\..*")
    ops = ops_of(request)
    plan = enforce.plan(request, ops, [ALLOW] * len(ops), lambda _: None)
    assert isinstance(plan, enforce.Forward)
    sent = HB.request.decode(plan.frame[request.header.size:], version=1)
    assert sent.subscribed_topic_names == [] and sent.subscribed_topic_regex is None


def test_a_regex_gatekeeper_cannot_resolve_is_refused_as_invalid() -> None:
    with pytest.raises(RefusedRequest) as e:
        ops_of(heartbeat(epoch=0, subscribed_topic_names=[], subscribed_topic_regex="(?=x)"), State(("x",)))
    assert e.value.code == INVALID_REGULAR_EXPRESSION


def test_a_refused_group_or_topic_answers_as_the_broker_does() -> None:
    request = heartbeat(epoch=0, subscribed_topic_names=["a"])
    ops = ops_of(request)
    for decisions, code in (([DENY, DENY], 30), ([ALLOW, DENY], 29)):
        plan = enforce.plan(request, ops, decisions, lambda _: None)
        assert isinstance(plan, enforce.Respond)
        body = HB.response.decode(plan.body, version=1)
        assert body.error_code == code and body.error_message == "no" and body.assignment is None


def test_the_assignment_is_stripped_of_topics_the_member_may_not_consume() -> None:
    R = HB.response
    a, b = uuid.uuid4(), uuid.uuid4()
    body = R[1](throttle_time_ms=0, error_code=0, error_message=None, member_id="m", member_epoch=3, heartbeat_interval_ms=5000,
                assignment=R.Assignment(topic_partitions=[R.Assignment.TopicPartitions(topic_id=a, partitions=[0]),
                                                          R.Assignment.TopicPartitions(topic_id=b, partitions=[0, 1])]))
    unit = UNITS[ApiKey.CONSUMER_GROUP_HEARTBEAT]
    assert unit.listing is not None
    listing = unit.listing(1, heartbeat().body)
    assert listing is not None
    assert listing.topic_ids(body) == {a, b}
    names = {a: "ok", b: "secret"}
    ops = listing.operations(body, names.get)
    assert summary(ops) == [("consume", "ok"), ("consume", "secret")] and ops[0].request == {"group": "g", "source": "assignment"}
    listing.keep(body, [True, False])
    assert [tp.topic_id for tp in body.assignment.topic_partitions] == [a]


# -- ConsumerGroupDescribe ----------------------------------------------------------------------------


def test_describe_forces_authorized_operations_off_and_splits_groups() -> None:
    req = DESCRIBE.request[1](group_ids=["a", "b"], include_authorized_operations=True)
    req.with_header(correlation_id=1, client_id="t")
    request = KafkaCodec(ClusterView(3)).decode(bytes(req.encode(version=1, header=True)))
    assert request.normalized and request.body.include_authorized_operations is False
    ops = UNITS[ApiKey.CONSUMER_GROUP_DESCRIBE].operations(request.body, OpContext(1, lambda _: None))
    assert summary(ops) == [("describe_group", "a"), ("describe_group", "b")]
    plan = enforce.plan(request, ops, [ALLOW, DENY], lambda _: None)
    assert isinstance(plan, enforce.Partial)
    R = DESCRIBE.response
    merged = plan.merge(R[1](throttle_time_ms=0, groups=[]))
    assert [(g.group_id, g.error_code) for g in merged.groups] == [("b", 30)]


def _described(*members: tuple[list[str], list[str]]) -> Any:
    R = DESCRIBE.response
    G = R.DescribedGroup
    M = G.Member

    def assignment(names: list[str]) -> Any:
        return M.Assignment(topic_partitions=[M.Assignment.TopicPartitions(topic_id=uuid.uuid4(), topic_name=n, partitions=[0])
                                              for n in names])

    return G(error_code=0, error_message=None, group_id="g", group_state="Stable", group_epoch=1, assignment_epoch=1,
             assignor_name="uniform", authorized_operations=-2147483648, members=[
                 M(member_id=f"m{i}", instance_id=None, rack_id=None, member_epoch=1, client_id="c", client_host="h",
                   subscribed_topic_names=subscribed, subscribed_topic_regex=None, assignment=assignment(assigned),
                   target_assignment=assignment(assigned), member_type=1)
                 for i, (subscribed, assigned) in enumerate(members)])


def test_a_described_group_assigned_a_topic_it_may_not_describe_is_refused_as_the_broker_does() -> None:
    R = DESCRIBE.response
    unit = UNITS[ApiKey.CONSUMER_GROUP_DESCRIBE]
    assert unit.listing is not None
    body = R[1](throttle_time_ms=0, groups=[_described((["ok", "absent.secret"], ["ok"])), _described((["secret"], ["secret"]))])
    body.groups[1].group_id = "h"
    listing = unit.listing(1, None)
    assert listing is not None
    ops = listing.operations(body)
    assert summary(ops) == [("describe_topic", "ok"), ("describe_topic", "absent.secret"), ("describe_topic", "secret")]
    listing.keep(body, [True, False, False])
    ok, refused = body.groups
    assert ok.error_code == 0 and ok.members[0].subscribed_topic_names == ["ok"]
    assert (refused.group_id, refused.error_code, refused.error_message, refused.members) == ("h", 29, DESCRIBE_TOPICS_REFUSED, [])
    assert [Resource("topic", "ok")] == [op.resource for op in ops[:1]]
