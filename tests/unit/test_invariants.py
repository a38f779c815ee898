"""Two invariants of the enforcement units, property-tested over every API and version offered.

For requests built from the catalogue with random names, and with their lists randomly empty or
null (which many APIs read as "all"):

1. A request that is forwarded has at least one decided operation, unless its API is on the
   short list that is not put to the policy (ApiVersions, SaslHandshake, SaslAuthenticate) or it
   names nothing the policy guards (Metadata v1+ asking for brokers only).
2. Every resource the broker can act on is named by one of its operations: each topic, group
   and transactional id in the request (as the broker reads it, after normalization) is an
   operation's resource, or named in a cluster operation's request; and a list that means "all"
   is a filtered listing or an operation that says "all".
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.api import CLUSTER, Decision
from gatekeeper.kafka import enforce
from gatekeeper.kafka.apis import UNITS
from gatekeeper.kafka.cluster import ClusterView
from gatekeeper.kafka.codec import API_TABLE
from gatekeeper.kafka.messages import INSPECTABLE, KafkaCodec
from tests.integration.requests_catalog import CATALOG, Names

_ENTITY_TYPES = {"topicName": "topic", "groupId": "group", "shareGroupId": "share_group", "transactionalId": "transactional_id"}
_CASES = [(name, v) for name, (key, _) in CATALOG.items() for v in range(INSPECTABLE[key][0], INSPECTABLE[key][1] + 1)]
_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12)
ALLOW = Decision("allow")


def _entities(obj: Any, version: int) -> tuple[list[tuple[str, str]], list[str]]:
    """(resource type, name) of every entity field in a decoded body, and the paths of the
    lists of entities that are empty or null (which may mean "all")."""
    found: list[tuple[str, str]] = []
    empty: list[str] = []

    def walk(o: Any, path: str) -> None:
        for attr, field in getattr(o, "fields", {}).items():
            if not hasattr(o, attr) or not _in(field._versions, version):
                continue
            value = getattr(o, attr)
            kind = _ENTITY_TYPES.get(getattr(field, "_entity_type", None) or "")
            if kind is not None:
                for v in value if isinstance(value, list) else [value]:
                    if isinstance(v, str) and v:
                        found.append((kind, v))
            if hasattr(field, "array_of"):
                if not value and _holds_entities(field):
                    empty.append(f"{path}.{attr}")
                for item in value or ():
                    walk(item, f"{path}.{attr}[]")

    walk(obj, "")
    return found, empty


def _in(versions: tuple[int, int] | None, version: int) -> bool:
    return versions is not None and versions[0] <= version <= versions[1]


def _holds_entities(field: Any) -> bool:
    """Whether a struct array's items name topics, groups or transactional ids (or ids of topics)."""
    for sub in (field._json.get("fields") or []):
        if sub.get("entityType") in _ENTITY_TYPES or sub.get("name") == "TopicId":
            return True
    return False


def _variants(draw: Any, body: Any, version: int) -> None:
    """Empty or null some of the body's top-level lists, where the version allows."""
    for attr, field in getattr(body, "fields", {}).items():
        if not hasattr(field, "array_of") or not _in(field._versions, version) or getattr(body, attr, None) is None:
            continue
        nullable = _in(field._nullable_versions, version)
        choice = draw(st.sampled_from(["keep", "empty", "null"] if nullable else ["keep", "empty"]))
        if choice == "empty":
            setattr(body, attr, [])
        elif choice == "null":
            setattr(body, attr, None)


@pytest.mark.parametrize(("name", "version"), _CASES, ids=[f"{n}-v{v}" for n, v in _CASES])
def test_forwarded_requests_are_decided_and_name_every_resource(name: str, version: int) -> None:
    # hypothesis runs inside the test body: pytest-twisted's hook does not wrap it then.
    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(data=st.data())
    def check(data: Any) -> None:
        _check(name, version, data)

    check()


def _check(name: str, version: int, data: Any) -> None:
    key = CATALOG[name][0]
    names = Names(topic=data.draw(_NAME), topic2=data.draw(_NAME), group=data.draw(_NAME), txn=data.draw(_NAME))
    fields = CATALOG[name][1](version, names)
    body = API_TABLE[key].request[version](**fields)
    _variants(data.draw, body, version)
    body.with_header(correlation_id=1, client_id="prop")
    cluster = ClusterView(3)
    cluster.observe_topics([(names.topic_id, names.topic)])
    codec = KafkaCodec(cluster)
    request = codec.decode(bytes(body.encode(version=version, header=True)))
    ops = codec.operations(request, strict=False)
    plan = enforce.plan(request, ops, [ALLOW] * len(ops), cluster.topic_name)
    forwarded = isinstance(plan, enforce.Forward | enforce.Partial)
    unit = UNITS[key]
    exempt = unit.negotiation or (unit.names_nothing is not None and unit.names_nothing(version, request.body))

    # 1. forwarded => decided
    if forwarded and not exempt:
        assert ops, f"{name} v{version} forwarded with no decided operation: {request.body}"

    # 2. every resource the broker can act on is named by an operation
    if not forwarded:
        return
    named = {(op.resource.type, op.resource.name) for op in ops}
    cluster_detail = json.dumps([op.request for op in ops if op.resource == CLUSTER], default=str)
    entities, empty_lists = _entities(request.body, version)
    for kind, value in entities:
        assert (kind, value) in named or json.dumps(value) in cluster_detail, \
            f"{name} v{version}: {kind} {value!r} is acted on but no operation names it ({[(o.name, o.resource) for o in ops]})"
    if empty_lists and not exempt:
        says_all = enforce.listing_of(request) is not None or any(
            v is None or v is True for op in ops for k, v in op.request.items() if k in ("topics", "users", "all_topics"))
        assert says_all or all(_names_nothing_acted_on(name, p) for p in empty_lists), \
            f"{name} v{version}: {empty_lists} empty or null, and no listing or 'all' operation ({[(o.name, o.request) for o in ops]})"


def _names_nothing_acted_on(name: str, path: str) -> bool:
    """Lists whose emptiness means "none" to the broker, not "all" (per the API's semantics,
    docs/security.md): an empty list there acts on nothing."""
    none_when_empty = {
        ("OffsetCommit", ".topics"), ("TxnOffsetCommit", ".topics"), ("OffsetDelete", ".topics"),
        ("AddPartitionsToTxn", ".v3_and_below_topics"), ("AlterReplicaLogDirs", ".dirs"),
        ("AlterPartitionReassignments", ".topics"), ("OffsetFetch", ".groups[].topics"),
        ("Fetch", ".forgotten_topics_data"), ("OffsetFetch", ".topics"),
        # null means all for these (an operation says so: "topics": null); an empty list, none
        ("DescribeLogDirs", ".topics"), ("ElectLeaders", ".topic_partitions"), ("ListPartitionReassignments", ".topics"),
        ("DescribeQuorum", ".topics"),
        # share groups: acknowledging or altering or deleting offsets of no topic acts on none
        ("ShareAcknowledge", ".topics"), ("ShareFetch", ".forgotten_topics_data"),
        ("AlterShareGroupOffsets", ".topics"), ("DeleteShareGroupOffsets", ".topics"),
        ("DescribeShareGroupOffsets", ".groups[].topics"),
    }
    return (name, path) in none_when_empty or path.endswith("].partitions") or path.endswith("partition_data")
