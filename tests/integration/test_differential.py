"""Kafka's own authorizer as the oracle: Gatekeeper must never answer with more than it would.

The same principal, ``alice``, is given the same rights twice: as broker ACLs on a broker that
runs Kafka's StandardAuthorizer (topics ``pub.*`` READ/WRITE/DESCRIBE, groups ``pub-*`` READ),
and as a Gatekeeper policy (``policy_differential/acl.rego``) in front of that same broker,
where Gatekeeper talks to it as a super user. Crafted requests (hypothesis: APIs, versions,
empty and null lists, names and ids, flags) go (a) directly to the broker as alice over SCRAM's
sibling PLAIN, and (b) through ``twistd gatekeeper`` as alice with a JWT. What each answer grants
(a topic described, an offset disclosed, a creation validated, a group listed) is collected;
Gatekeeper's must be a subset of the broker's.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.kafka.codec import API_TABLE
from gatekeeper.kafka.messages import INSPECTABLE
from harness.gateway import TwistdGateway
from harness.tokens import AUDIENCE, ISSUER, TestIdp
from tests.conftest import AUTHZ_ALICE
from tests.integration.rawkafka import RawKafka, RawKafkaError

pytestmark = pytest.mark.integration

POLICY = Path(__file__).parent / "policy_differential"
TOPICS = ("pub.a", "pub.b", "secret.x", "secret.y")
NAMES = (*TOPICS, "pub.missing", "secret.missing")
GROUPS = ("pub-g", "secret-g")
TOPIC, GROUP, PREFIXED, READ, WRITE, DESCRIBE, ALLOW = 2, 3, 4, 3, 4, 8, 3


class World:
    def __init__(self, broker: Any, gateway: TwistdGateway, token: str, ids: dict[str, uuid.UUID]) -> None:
        self.broker, self.gateway, self.token, self.ids = broker, gateway, token, ids
        self.versions: dict[int, tuple[int, int]] = {}

    def direct(self) -> RawKafka:
        return RawKafka(self.broker.sasl_bootstrap, user=AUTHZ_ALICE[0], password=AUTHZ_ALICE[1])

    def through(self) -> RawKafka:
        return RawKafka(self.gateway.bootstrap, user="alice", password=self.token)


@pytest.fixture(scope="module")
def world(authz_broker, tmp_path_factory) -> Any:
    for topic in TOPICS:
        authz_broker.create_topic(topic, partitions=2)
    C = API_TABLE[30].request.AclCreation
    acls = [C(resource_type=TOPIC, resource_name="pub.", resource_pattern_type=PREFIXED, principal="User:alice", host="*",
              operation=op, permission_type=ALLOW) for op in (READ, WRITE, DESCRIBE)]
    acls.append(C(resource_type=GROUP, resource_name="pub-", resource_pattern_type=PREFIXED, principal="User:alice",
                  host="*", operation=READ, permission_type=ALLOW))
    with RawKafka(authz_broker.bootstrap) as admin:
        created = admin.request(30, 3, creations=acls)
        assert all(r.error_code == 0 for r in created.results), created
        M = API_TABLE[3].request
        md = admin.request(3, 12, topics=[M.MetadataRequestTopic(name=t) for t in TOPICS], allow_auto_topic_creation=False)
        ids = {t.name: t.topic_id for t in md.topics}
        versions = admin.request(18, 3, client_software_name="t", client_software_version="1")
    _commit(authz_broker.bootstrap, "pub-g", ["pub.a", "secret.x"])
    _commit(authz_broker.bootstrap, "secret-g", ["pub.a"])
    workdir = tmp_path_factory.mktemp("differential")
    idp = TestIdp()
    jwks = idp.write_jwks(workdir / "jwks.json")
    secret = workdir / "broker-password"
    secret.write_text(authz_broker.plain_password)
    secret.chmod(0o600)
    extra = {"policy": {"engine": "embedded", "policies": str(POLICY)},
             "identity": {"jwt": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(jwks)}},
             "upstream": {"bootstrap_servers": [authz_broker.sasl_bootstrap],
                          "sasl": {"mechanism": "PLAIN", "username": authz_broker.plain_user, "password_file": str(secret)}},
             "limits": {"denied_requests_per_second": 0}}
    with TwistdGateway(workdir, authz_broker.sasl_bootstrap, extra=extra, auth={"mechanisms": ["PLAIN"]}) as gw:
        w = World(authz_broker, gw, idp.token(sub="alice", groups=(), lifetime=3600), ids)
        broker_range = {a.api_key: (a.min_version, a.max_version) for a in versions.api_keys}
        w.versions = {k: (max(lo, broker_range[k][0]), min(hi, broker_range[k][1]))
                      for k, (lo, hi) in INSPECTABLE.items() if k in broker_range}
        yield w


def _commit(bootstrap: str, group: str, topics: list[str]) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    c.commit({TopicPartition(t, 0): OffsetAndMetadata(0, f"meta-{t}", -1) for t in topics})
    c.close()


# -- requests and what their answers grant -------------------------------------------------------


def _metadata(draw: Any, w: World, v: int) -> tuple[int, int, dict[str, Any]]:
    M = API_TABLE[3].request.MetadataRequestTopic
    shape = draw(st.sampled_from(["null", "empty", "names", "ids"] if v >= 10 else ["null", "empty", "names"]))
    if shape == "null" and v == 0:
        shape = "empty"
    chosen = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    topics: Any = {"null": None, "empty": []}.get(shape)
    if shape == "names":
        topics = [M(name=n) for n in chosen]
    elif shape == "ids":
        topics = [M(name=None, topic_id=w.ids[n]) for n in chosen if n in w.ids] or [M(name=None, topic_id=uuid.uuid4())]
    return 3, v, {"topics": topics, "allow_auto_topic_creation": False,
                  "include_cluster_authorized_operations": draw(st.booleans()),
                  "include_topic_authorized_operations": draw(st.booleans())}


def _describe_partitions(draw: Any, w: World, v: int) -> tuple[int, int, dict[str, Any]]:
    T = API_TABLE[75].request.TopicRequest
    names = draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True))
    return 75, v, {"topics": [T(name=n) for n in names], "response_partition_limit": 100, "cursor": None}


def _offset_fetch(draw: Any, w: World, v: int) -> tuple[int, int, dict[str, Any]]:
    R = API_TABLE[9].request
    group = draw(st.sampled_from(GROUPS))
    names = draw(st.one_of(st.none(), st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True)))
    if v < 8:
        if names is None and v < 2:
            names = ["pub.a"]
        topics = None if names is None else [R.OffsetFetchRequestTopic(name=n, partition_indexes=[0]) for n in names]
        return 9, v, {"group_id": group, "topics": topics, "require_stable": False}
    G = R.OffsetFetchRequestGroup
    topics = None if names is None else [G.OffsetFetchRequestTopics(name=n, topic_id=w.ids.get(n, uuid.UUID(int=0)), partition_indexes=[0])
                                         for n in names]
    return 9, v, {"groups": [G(group_id=group, member_id=None, member_epoch=-1, topics=topics)], "require_stable": False}


def _list_offsets(draw: Any, w: World, v: int) -> tuple[int, int, dict[str, Any]]:
    T = API_TABLE[2].request.ListOffsetsTopic
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    return 2, v, {"replica_id": draw(st.sampled_from([-1, -2, 0])), "isolation_level": 0, "timeout_ms": 1000,
                  "topics": [T(name=n, partitions=[T.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1, timestamp=-1)])
                             for n in names]}


def _describe_configs(draw: Any, w: World, v: int) -> tuple[int, int, dict[str, Any]]:
    R = API_TABLE[32].request.DescribeConfigsResource
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True))
    return 32, v, {"resources": [R(resource_type=2, resource_name=n, configuration_keys=None) for n in names],
                   "include_synonyms": False, "include_documentation": False}


def _create_topics(draw: Any, w: World, v: int) -> tuple[int, int, dict[str, Any]]:
    T = API_TABLE[19].request.CreatableTopic
    name = draw(st.sampled_from(["pub.new", "secret.new"]))
    return 19, v, {"topics": [T(name=name, num_partitions=1, replication_factor=1, assignments=[], configs=[])],
                   "timeout_ms": 1000, "validate_only": True}


def _groups(draw: Any, w: World, v: int) -> tuple[int, int, dict[str, Any]]:
    if draw(st.booleans()):
        return 16, w.versions[16][1], {"states_filter": [], "types_filter": []}
    return 15, w.versions[15][1], {"groups": draw(st.lists(st.sampled_from(GROUPS), min_size=1, unique=True)),
                                   "include_authorized_operations": draw(st.booleans())}


BUILDERS = {3: _metadata, 75: _describe_partitions, 9: _offset_fetch, 2: _list_offsets, 32: _describe_configs,
            19: _create_topics, 15: _groups}


def granted(key: int, body: Any, w: World) -> set[tuple[Any, ...]]:
    """What an answer gives away or does: facts comparable between the two paths."""
    names = {v: k for k, v in w.ids.items()}
    out: set[tuple[Any, ...]] = set()
    if key in (3, 75):
        for t in body.topics or ():
            if t.error_code == 0:
                out.add(("topic", t.name or names.get(t.topic_id, str(t.topic_id))))
        if key == 3 and getattr(body, "authorized_operations", None):
            out.add(("cluster_ops", str(body.authorized_operations)))
    elif key == 9:
        groups = body.groups if getattr(body, "groups", None) else [body]
        for g in groups:
            for t in g.topics or ():
                for p in t.partitions:
                    if p.error_code == 0 and p.committed_offset >= 0:
                        out.add(("offset", getattr(g, "group_id", "-"), t.name or names.get(t.topic_id), p.committed_offset, p.metadata))
    elif key == 2:
        out |= {("offsets", t.name) for t in body.topics for p in t.partitions if p.error_code == 0}
    elif key == 32:
        out |= {("configs", r.resource_name) for r in body.results if r.error_code == 0}
    elif key == 19:
        out |= {("create", t.name) for t in body.topics if t.error_code == 0}
    elif key == 16:
        out |= {("group", g.group_id) for g in body.groups}
    elif key == 15:
        out |= {("group", g.group_id) for g in body.groups if g.error_code == 0}
    return out


def _ask(connect: Any, key: int, version: int, fields: dict[str, Any]) -> Any:
    try:
        with connect() as conn:
            return conn.request(key, version, **fields)
    except RawKafkaError:
        return None  # the connection was closed: the request was refused


@pytest.mark.parametrize("key", sorted(BUILDERS))
def test_gatekeeper_never_grants_more_than_kafkas_authorizer(world: World, key: int) -> None:
    lo, hi = world.versions[key]

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: Any) -> None:
        version = data.draw(st.integers(lo, hi))
        api, v, fields = BUILDERS[key](data.draw, world, version)
        direct = _ask(world.direct, api, v, fields)
        through = _ask(world.through, api, v, fields)
        assert direct is not None, f"the broker closed the connection for {api} v{v} {fields}"
        assert through is not None, f"Gatekeeper closed the connection for {api} v{v} {fields}"
        ours = granted(api, through, world)
        theirs = granted(api, direct, world)
        assert ours <= theirs, f"API {api} v{v}: Gatekeeper granted {ours - theirs} that Kafka's authorizer did not ({fields})"

    check()


def test_both_paths_grant_what_the_rights_allow(world: World) -> None:
    """The oracle is not vacuous: the same allowed facts come back both ways, and the refused
    ones neither way."""
    M = API_TABLE[3].request.MetadataRequestTopic
    fields = {"topics": [M(name=n) for n in ("pub.a", "secret.x")], "allow_auto_topic_creation": False}
    for connect in (world.direct, world.through):
        answer = _ask(connect, 3, 12, fields)
        assert granted(3, answer, world) == {("topic", "pub.a")}, answer
    offsets = {"group_id": "pub-g", "topics": None, "require_stable": False}
    for connect in (world.direct, world.through):
        answer = _ask(connect, 9, 7, offsets)
        assert {f[2] for f in granted(9, answer, world)} == {"pub.a"}, answer
