"""Metadata's topic auto-creation: decided as create_topic; refused, the flag is withdrawn (v4+),
and where the request has no flag (v0-3: the broker always creates a named topic that does not
exist), the topic is denied instead, never forwarded for the broker to create."""

from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.api import Decision, Operation
from gatekeeper.kafka import enforce
from gatekeeper.kafka.apis import UNITS
from gatekeeper.kafka.apis.base import ApiKey, OpContext, withdrawn
from gatekeeper.kafka.cluster import ClusterView
from gatekeeper.kafka.codec import API_TABLE
from gatekeeper.kafka.messages import KafkaCodec

M = API_TABLE[ApiKey.METADATA]
ALLOW, DENY = Decision("allow"), Decision("deny", reason="no create")


def metadata(version: int, names: list[str], auto: bool | None = None) -> Any:
    R = M.request[version]
    body: dict[str, Any] = {"topics": [R.MetadataRequestTopic(name=n) for n in names]}
    if version >= 4:
        body["allow_auto_topic_creation"] = bool(auto)
    if version >= 8:
        body["include_topic_authorized_operations"] = False
        if version <= 10:
            body["include_cluster_authorized_operations"] = False
    req = R(**body)
    req.with_header(correlation_id=1, client_id="t")
    return KafkaCodec(ClusterView(3)).decode(bytes(req.encode(version=version, header=True)))


def ops_of(request: Any) -> list[Operation]:
    return UNITS[ApiKey.METADATA].operations(request.body, OpContext(request.header.api_version, lambda _: None))


@pytest.mark.parametrize("version", [1, 2, 3])
def test_before_v4_every_named_topic_is_an_implicit_create_topic_denied_when_refused(version: int) -> None:
    request = metadata(version, ["orders", "new.topic"])
    ops = ops_of(request)
    assert [(op.name, op.resource.name, op.request.get("implicit")) for op in ops] == [
        ("describe_topic", "orders", None), ("create_topic", "orders", True),
        ("describe_topic", "new.topic", None), ("create_topic", "new.topic", True)]
    decisions = [DENY if op.name == "create_topic" and op.resource.name == "new.topic" else ALLOW for op in ops]
    assert not any(withdrawn(op, d.allowed) for op, d in zip(ops, decisions, strict=True))
    plan = enforce.plan(request, ops, decisions, lambda _: None)
    # new.topic is not sent to the broker (which would create it); orders goes on.
    assert isinstance(plan, enforce.Partial), plan
    sent = M.request[version].decode(plan.frame[request.header.size:], version=version)
    assert [t.name for t in sent.topics] == ["orders"]


def test_from_v4_a_refused_create_topic_withdraws_the_flag_and_denies_nothing() -> None:
    request = metadata(12, ["orders", "new.topic"], auto=True)
    ops = ops_of(request)
    assert [(op.name, op.resource.name) for op in ops if op.name == "create_topic"] == [
        ("create_topic", "orders"), ("create_topic", "new.topic")]
    assert not any(op.request.get("implicit") for op in ops)
    decisions = [DENY if op.name == "create_topic" else ALLOW for op in ops]
    plan = enforce.plan(request, ops, decisions, lambda _: None)
    assert isinstance(plan, enforce.Forward), plan
    sent = M.request[12].decode(plan.frame[request.header.size:], version=12)
    assert [t.name for t in sent.topics] == ["orders", "new.topic"] and sent.allow_auto_topic_creation is False


def test_v0_empty_list_is_a_listing_with_nothing_to_create() -> None:
    ops = ops_of(metadata(0, []))
    assert [op.name for op in ops] == ["list_topics"]


@pytest.mark.parametrize("version", [10, 11, 12])
def test_a_denied_topic_asked_for_by_id_is_answered_with_a_name_the_version_allows(version: int) -> None:
    """Names in Metadata answers are nullable only from v12: a denied topic asked for by id is
    answered with an empty name before that (never its real name), null from v12."""
    import uuid

    from gatekeeper.kafka.codec import decode_response_body

    R = M.request[version]
    req = R(topics=[R.MetadataRequestTopic(name=None, topic_id=uuid.uuid4())], allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
            **({"include_cluster_authorized_operations": False} if version <= 10 else {}))
    req.with_header(correlation_id=1, client_id="t")
    request = KafkaCodec(ClusterView(3)).decode(bytes(req.encode(version=version, header=True)))
    ops = ops_of(request)
    plan = enforce.plan(request, ops, [DENY] * len(ops), lambda _: None)
    assert isinstance(plan, enforce.Partial), plan  # still forwarded (the client needs the brokers), denial merged in
    broker = M.response[version](throttle_time_ms=0, brokers=[], cluster_id=None, controller_id=-1, topics=[])
    merged = plan.merge(broker)
    header = KafkaCodec.response_header(request)
    raw = header + bytes(merged.encode(version=version))
    _, body = decode_response_body(raw, M, version)  # the strict decoder: no null where none may be
    (topic,) = body.topics
    assert topic.error_code != 0 and topic.name == ("" if version < 12 else None)
