"""What every per-API enforcement unit is made of, and the pure helpers they share.

An :class:`ApiUnit` is everything Gatekeeper knows about one Kafka API: the versions it
inspects, how a request becomes operations, its entities for a partial deny, the error
response the broker itself would send, the listing it filters, and the response rewriting it
needs. The drivers (``operations``, ``denials``, ``enforce``, ``rewrite``) only dispatch.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from enum import IntEnum
from typing import Any

import attrs

from gatekeeper.api import CLUSTER, Decision, Operation, Resource
from gatekeeper.kafka.codec import CodecError

__all__ = [
    "ApiKey", "ApiUnit", "Denial", "Denials", "Entities", "ErrorBuilder", "Listing", "OpContext",
    "Resolve", "config_resource", "denial_of", "group", "message", "scoped_code", "topic_name", "topic_resource", "txn",
]

Resolve = Callable[[uuid.UUID], "str | None"]
_ZERO_UUID = uuid.UUID(int=0)
# The name given to a topic id the broker itself does not know (it will answer UNKNOWN_TOPIC_ID).
UNKNOWN_TOPIC_ID_PREFIX = "unknown-topic-id:"


class ApiKey(IntEnum):
    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DELETE_RECORDS = 21
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    ALTER_REPLICA_LOG_DIRS = 34
    DESCRIBE_LOG_DIRS = 35
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42
    ELECT_LEADERS = 43
    INCREMENTAL_ALTER_CONFIGS = 44
    ALTER_PARTITION_REASSIGNMENTS = 45
    LIST_PARTITION_REASSIGNMENTS = 46
    OFFSET_DELETE = 47
    DESCRIBE_CLIENT_QUOTAS = 48
    ALTER_CLIENT_QUOTAS = 49
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51
    DESCRIBE_QUORUM = 55
    UPDATE_FEATURES = 57
    DESCRIBE_CLUSTER = 60
    DESCRIBE_PRODUCERS = 61
    DESCRIBE_TRANSACTIONS = 65
    LIST_TRANSACTIONS = 66
    CONSUMER_GROUP_HEARTBEAT = 68
    CONSUMER_GROUP_DESCRIBE = 69
    LIST_CONFIG_RESOURCES = 74
    DESCRIBE_TOPIC_PARTITIONS = 75
    # Share groups (KIP-932).
    SHARE_GROUP_HEARTBEAT = 76
    SHARE_GROUP_DESCRIBE = 77
    SHARE_FETCH = 78
    SHARE_ACKNOWLEDGE = 79
    DESCRIBE_SHARE_GROUP_OFFSETS = 90
    ALTER_SHARE_GROUP_OFFSETS = 91
    DELETE_SHARE_GROUP_OFFSETS = 92


class AmbiguousTopic(CodecError):
    """A request entry names a topic both by name and by id: refused as malformed."""


class OpContext:
    """What an operations function needs besides the body: the version, topic ids to names, and
    what the connection remembers between requests (``state``: None where there is no
    connection, as in tests and replays; the units that use it decide without it then).

    Topic ids it cannot name are collected in ``missing`` (the caller asks the broker first)."""

    __slots__ = ("missing", "resolve", "state", "version")

    def __init__(self, version: int, resolve: Resolve, state: Any = None) -> None:
        self.version = version
        self.resolve = resolve
        self.state = state
        self.missing: set[uuid.UUID] = set()

    def topic(self, name: str | None, topic_id: uuid.UUID | None = None) -> Resource:
        if topic_id is not None and topic_id != _ZERO_UUID and name:
            # The broker goes by the id when there is one: deciding on the name would decide on
            # another topic than the one the broker acts on. No client sends both.
            raise AmbiguousTopic(f"names topic {name!r} and topic id {topic_id} in one entry")
        if topic_id is not None and topic_id != _ZERO_UUID:
            resolved = self.resolve(topic_id)
            if resolved is None:
                self.missing.add(topic_id)
                return Resource("topic", f"{UNKNOWN_TOPIC_ID_PREFIX}{topic_id}")
            name = resolved
        return Resource("topic", name or "")


def group(name: str | None) -> Resource:
    return Resource("group", name or "")


def txn(name: str | None) -> Resource:
    return Resource("transactional_id", name or "")


def topic_name(name: str | None, topic_id: Any, resolve: Resolve) -> str:
    """The name of the topic an entity names, by name, or by id when it has no name."""
    if not name and topic_id is not None and topic_id.int:
        name = resolve(topic_id) or f"{UNKNOWN_TOPIC_ID_PREFIX}{topic_id}"
    return name or ""


def topic_resource(name: str | None, topic_id: Any, resolve: Resolve) -> Resource:
    """The topic an entity names, by name, or by id when it has no name."""
    return Resource("topic", topic_name(name, topic_id, resolve))


def named_topic(entity: Any, resolve: Resolve) -> Resource:
    """The topic of an entity that names it by ``name`` or by ``topic_id`` (Produce's topic data
    and topic responses, and the like)."""
    return topic_resource(getattr(entity, "name", None), getattr(entity, "topic_id", None), resolve)


# Kafka's ConfigResource types (DescribeConfigs / AlterConfigs / IncrementalAlterConfigs).
CONFIG_RESOURCE_TYPES = {2: "topic", 4: "broker", 8: "broker_logger", 16: "client_metrics", 32: "group"}


def config_resource(rtype: int, name: str) -> Resource:
    kind = CONFIG_RESOURCE_TYPES.get(rtype)
    return Resource(kind, name) if kind in ("topic", "group") else CLUSTER


# -- denials ------------------------------------------------------------------------------------

TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
POLICY_VIOLATION = 44
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53

_BY_RESOURCE = {
    "topic": TOPIC_AUTHORIZATION_FAILED,
    "group": GROUP_AUTHORIZATION_FAILED,
    "share_group": GROUP_AUTHORIZATION_FAILED,
    "transactional_id": TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    "cluster": CLUSTER_AUTHORIZATION_FAILED,
}


@attrs.frozen
class Denial:
    code: int
    message: str


def denial_of(resource: Resource, decision: Decision) -> Denial:
    if decision.error == "policy_violation":
        return Denial(POLICY_VIOLATION, decision.reason)
    return Denial(_BY_RESOURCE.get(resource.type, CLUSTER_AUTHORIZATION_FAILED), decision.reason)


@attrs.frozen
class Denials:
    """The denials of one request, by resource. Calling it gives an entity's denial: its own,
    or ``fallback`` (the first denial) for an entity of a request refused as a whole because of
    another resource."""

    by_resource: Mapping[Resource, Denial]
    fallback: Denial
    everything: bool = False  # every resource is refused with ``fallback``

    def __call__(self, resource: Resource) -> Denial:
        return self.by_resource.get(resource, self.fallback)

    def get(self, resource: Resource) -> Denial | None:
        """The resource's own denial, None if it was allowed."""
        return self.fallback if self.everything else self.by_resource.get(resource)

    def scoped(self, scope: Resource, resource: Resource) -> Denial | None:
        """An entity inside ``scope`` (a topic in a group's offset request): the scope's denial
        if the scope is refused (Kafka checks it first), else the entity's own, else None."""
        return self.get(scope) or self.get(resource)

    @classmethod
    def uniform(cls, denial: Denial) -> Denials:
        """Every resource refused with ``denial``."""
        return cls({}, denial, everything=True)


def scoped_code(deny: Denials, scope: Resource, resource: Resource) -> int:
    d = deny.scoped(scope, resource)
    return 0 if d is None else d.code


def message(version: int, since: int, d: Denial) -> dict[str, Any]:
    """The error message field, for versions that have it."""
    return {"error_message": d.message} if version >= since else {}


# (response class, version, request body, denials, topic-id resolver) -> response body
ErrorBuilder = Callable[[Any, int, Any, Denials, Resolve], Any]


# -- partial deny and listings ----------------------------------------------------------------


@attrs.frozen
class Entities:
    """The entities a request is split by for a partial deny: the list on the request, the
    list on the response, and the resource each request entity names."""

    request: str
    response: str
    resource: Callable[[Any, Resolve], Resource]
    # For an API whose answer may hold more than was asked (Metadata v0 with no topic left
    # means all topics): the allowed request entities -> which response entities to keep.
    keep: Callable[[list[Any]], Callable[[Any], bool]] | None = None


@attrs.frozen
class Listing:
    """A response that lists resources: each entry is kept only if the principal may describe
    it, as Kafka's own authorizer filters such listings, so existence is not leaked."""

    attr: str
    operation: str
    resource_type: str
    name: Callable[[Any], str]

    def operations(self, body: Any, resolve: Resolve | None = None) -> list[Operation]:
        return [Operation(self.operation, Resource(self.resource_type, self.name(e)), {"listing": True})
                for e in getattr(body, self.attr) or ()]

    def keep(self, body: Any, allowed: Sequence[bool]) -> Any:
        setattr(body, self.attr, [e for e, ok in zip(getattr(body, self.attr) or (), allowed, strict=True) if ok])
        return body

    def topic_ids(self, body: Any) -> set[uuid.UUID]:
        """Topic ids the answer names by id alone, to be resolved before its operations."""
        return set()


# -- Gatekeeper's own identity --------------------------------------------------------------


@attrs.frozen
class GatewayIdentity:
    """Gatekeeper's own principal at the broker: never to be altered or described by a client,
    whatever the policy says (its credentials, ACLs, quotas)."""

    user: str | None = None  # the SASL username Gatekeeper authenticates with, if any

    @property
    def principal(self) -> str | None:
        return None if self.user is None else f"User:{self.user}"


@attrs.frozen
class ResponseContext:
    """What a response rewrite needs: broker addresses mapped to Gatekeeper's, and who
    Gatekeeper itself is (entries about it are taken out of answers)."""

    mapper: Callable[[int, str, int], tuple[str, int] | None]
    gateway: GatewayIdentity
    # What else the rewrite depends on (the listener: its name, advertised host and broker
    # ports): byte-identical responses of a unit with ``memo`` in the same scope are rewritten
    # once. None: nothing is memoised.
    scope: Hashable = None


# -- the unit -----------------------------------------------------------------------------------


@attrs.frozen
class ApiUnit:
    """One Kafka API as Gatekeeper enforces it. Only ``key`` and ``operations`` are required."""

    key: ApiKey
    operations: Callable[[Any, OpContext], list[Operation]]
    # The broker's own error response to this request, all entities denied; None: the generic
    # top-level error code (and message, where the version has one).
    error_response: ErrorBuilder | None = None
    # The lists a request is split by when only some entities are denied, by version.
    entities: Callable[[int], Entities | None] | None = None
    # The listing filter for the response to this request (version, body), if it lists resources.
    listing: Callable[[int, Any], Listing | None] | None = None
    # Learn from (before) and rewrite (after) a decoded response: broker addresses, entries
    # about Gatekeeper's own identity (version, body, ResponseContext).
    observe: Callable[[int, Any, Any], None] | None = None
    rewrite: Callable[[int, Any, ResponseContext], None] | None = None
    # The first version whose answers ``rewrite`` may change; older ones pass as they came.
    rewrite_since: int = 0
    # Whether the broker's answer holds anything ``rewrite`` changes, read from its bytes
    # (version, frame, body start) before it is decoded; an answer it clears passes as it came.
    # None: every answer is decoded and rewritten.
    rewrite_needed: Callable[[int, bytes, int], bool] | None = None
    # Responses that come back byte for byte the same (every client's Metadata of the same
    # topics) are decoded, observed and rewritten once: ``memo(version, body)``, given the decoded
    # body before it is observed, returns what observing that body again does to the cluster
    # view; a later identical response (same version and ResponseContext.scope) replays it and
    # gets the same rewritten bytes. Only for a rewrite that depends on nothing but the body,
    # the scope and the cluster view's broker slots (which never change once given).
    memo: Callable[[int, Any], Callable[[Any], None]] | None = None
    # A reason to refuse the request whatever the policy says (version, body, GatewayIdentity
    # -> reason or None): it would alter or expose Gatekeeper's own identity at the broker.
    guard: Callable[[int, Any, GatewayIdentity], str | None] | None = None
    # Fields the broker would act on with Gatekeeper's rights, not the client's, forced to the
    # client's value on the decoded body before anything is decided (version, body -> changed?);
    # a changed request is re-encoded before it is forwarded.
    normalize: Callable[[int, Any], bool] | None = None
    # Applied to an allowed request before it is forwarded: the original frame (version,
    # header size, frame -> frame) and, for a split request, the decoded body (version, body).
    normalize_frame: Callable[[int, int, bytes], bytes] | None = None
    normalize_body: Callable[[int, Any], None] | None = None
    # Operations marked ``auto_create`` in their request are side effects the broker would
    # take on its own (creating a topic a Metadata request names): refused, they do not deny
    # the request; ``withdraw(version, body)`` takes the side effect out of it instead.
    withdraw: Callable[[int, Any], None] | None = None
    # Forwarded even when every entity is denied (with none left), the errors merged into the
    # broker's answer: Metadata, whose answer carries the brokers a client needs.
    forward_when_all_denied: bool = False
    # A request that names no resource is answered by Gatekeeper (empty, as the broker would)
    # and not forwarded, since nothing was decided; unless this says the broker's answer to it
    # (version, body) is about no resource the policy guards (Metadata for brokers only).
    names_nothing: Callable[[int, Any], bool] | None = None
    # Decoded and logged but not put to the policy, and never answered with an error.
    negotiation: bool = False
    # The highest version offered to clients, below the schema's where the newer ones are not
    # clients' to send.
    max_version: int | None = None
    # A request whose content depends on its decisions (version, body, operations, allowed ->
    # changed?), called before it is planned: a server-side regex subscription becomes the
    # topics the policy allowed (operations marked ``resolving``, which a refusal leaves out
    # rather than denying the request). A changed body is re-encoded.
    settle: Callable[[int, Any, Sequence[Operation], Sequence[bool]], bool] | None = None
    # What the connection remembers of a request it forwarded (version, body, operations, state)
    # and learns from the broker's answer to it (version, request body, response body, state).
    remember: Callable[[int, Any, Sequence[Operation], Any], None] | None = None
    learn: Callable[[int, Any, Any, Any], None] | None = None
    # Clients retry this API's refusals at once, whatever the throttle time says (the Java
    # consumer heartbeats again immediately while it joins): a repeated denial's answer is held
    # for the throttle time, as a broker delays a throttled response.
    hold_denials: bool = False

    @property
    def name(self) -> str:
        return "".join(part.capitalize() for part in self.key.name.split("_"))


def force(body: Any, field: str, value: Any) -> bool:
    """Set ``body.field`` to ``value`` where the version has it; True if that changed it."""
    current = getattr(body, field, value)
    if current is None or current == value:
        return False
    setattr(body, field, value)
    return True


def withdrawn(op: Operation, allowed: bool) -> bool:
    """A refused side effect that is withdrawn from the request rather than denied, or a refused
    candidate of a pattern Gatekeeper resolves (left out of the resolved subscription). An
    ``implicit`` auto-creation (a request version with no flag to withdraw) is denied instead."""
    if allowed:
        return False
    return bool((op.request.get("auto_create") and not op.request.get("implicit")) or op.request.get("resolving"))
