"""Pulsar admin REST calls to policy operations: a pure mapping, no I/O.

:func:`route` takes a request's method, raw path and body and returns the :class:`Route`: the
operations to decide (all must be allowed) and, for a listing, how each listed name is decided
before it is shown. The names a policy sees are the names the broker acts on: a path Gatekeeper
cannot read the same way the broker does (empty or dot segments, ``;``, ``+``, an encoded ``/``
or control character, bad percent-encoding) is refused with :class:`RouteError`, never guessed.

Resources are full topic names (``persistent://tenant/ns/topic``), ``tenant/ns`` namespaces,
tenants, subscriptions as ``group`` (the same key policies read for Kafka consumer groups and for
Pulsar's SUBSCRIBE) and the cluster. Anything not mapped here is ``other`` on the cluster with
the method and path, so a default-deny policy refuses it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote

import attrs

from gatekeeper.api import Operation, Resource

__all__ = ["CLUSTER", "Listing", "Route", "RouteError", "route"]

CLUSTER = Resource("cluster", "pulsar-cluster")

DOMAINS = ("persistent", "non-persistent")

# GET .../{topic}/<one of these>: reads of the topic's state, never of its messages.
TOPIC_READS = frozenset({
    "stats", "internalStats", "partitioned-stats", "partitioned-internalStats", "internal-info",
    "lastMessageId", "subscriptions", "partitions", "backlog",
})

# .../{topic}/<key>: topic-level policies (GET: describe, POST/PUT/DELETE: alter).
TOPIC_POLICIES = frozenset({
    "retention", "messageTTL", "backlogQuota", "backlogQuotaMap", "persistence", "maxProducers",
    "maxConsumers", "maxUnackedMessagesOnConsumer", "maxUnackedMessagesOnSubscription",
    "deduplicationEnabled", "deduplicationSnapshotInterval", "delayedDelivery", "inactiveTopicPolicies",
    "offloadPolicies", "dispatchRate", "subscriptionDispatchRate", "replicatorDispatchRate", "publishRate",
    "compactionThreshold", "maxMessageSize", "maxSubscriptionsPerTopic", "maxConsumersPerSubscription",
    "subscribeRate", "subscriptionTypesEnabled", "schemaCompatibilityStrategy", "schemaValidationEnforced",
    "entryFilters", "autoSubscriptionCreation", "dispatcherPauseOnAckStatePersistent", "replication",
    "properties",
})

# .../namespaces/{tenant}/{ns}/<key>: namespace policies (GET: describe, POST/PUT/DELETE: alter).
NAMESPACE_POLICIES = frozenset({
    "retention", "messageTTL", "backlogQuota", "backlogQuotaMap", "persistence", "deduplication",
    "deduplicationSnapshotInterval", "autoTopicCreation", "autoSubscriptionCreation", "dispatchRate",
    "subscriptionDispatchRate", "replicatorDispatchRate", "publishRate", "subscribeRate",
    "maxProducersPerTopic", "maxConsumersPerTopic", "maxConsumersPerSubscription",
    "maxUnackedMessagesPerConsumer", "maxUnackedMessagesPerSubscription", "maxSubscriptionsPerTopic",
    "maxTopicsPerNamespace", "compactionThreshold", "offloadThreshold", "offloadThresholdInSeconds",
    "offloadDeletionLagMs", "offloadPolicies", "delayedDelivery", "inactiveTopicPolicies",
    "subscriptionExpirationTime", "schemaCompatibilityStrategy", "schemaValidationEnforced",
    "schemaAutoUpdateCompatibilityStrategy", "isAllowAutoUpdateSchema", "encryptionRequired",
    "subscriptionAuthMode", "replication", "antiAffinity", "properties", "resourcegroup", "entryFilters",
    "allowedClusters", "dispatcherPauseOnAckStatePersistent",
})

# POST .../subscription/{sub}/<action>[/<arg>]: moves the subscription's cursor.
CURSOR_ACTIONS = frozenset({"resetcursor", "skip", "skip_all", "expireMessages"})

_WRITES = ("POST", "PUT", "DELETE")


class RouteError(ValueError):
    """The client's request cannot be mapped unambiguously (answered 400, never forwarded)."""


@attrs.frozen
class Listing:
    """A listing's JSON array of names is filtered: each name is shown only when
    ``operation`` on ``Resource(resource_type, name)`` is allowed."""

    operation: str
    resource_type: str


@attrs.frozen
class Route:
    api: str  # the endpoint as a template, e.g. "DELETE /admin/v2/{domain}/{tenant}/{namespace}/{topic}"
    operations: tuple[Operation, ...]
    listing: Listing | None = None


def route(method: str, raw_path: str, body: bytes = b"") -> Route:
    """The route of one admin request. ``raw_path`` is the request target as sent, query
    included; raises RouteError for a path or body that cannot be read unambiguously."""
    method = method.upper()
    if "#" in raw_path:
        raise RouteError(f"the request target {raw_path[:200]!r} has a '#': refused as ambiguous")
    path, _, query_text = raw_path.partition("?")
    segments = _segments(path)
    query = parse_qs(query_text, keep_blank_values=True)
    force = query.get("force", [""])[0].lower() == "true"  # the broker reads the first value
    other = Route(f"{method} {path}", (Operation("other", CLUSTER, {"method": method, "path": path,
                                                                    "query": query_text}),))
    if segments[:2] != ["admin", "v2"] or len(segments) < 3:
        return other
    kind, rest = segments[2], segments[3:]
    found: Route | None = None
    if kind in DOMAINS:
        found = _topic_route(method, kind, rest, body, force)
    elif kind == "namespaces":
        found = _namespace_route(method, rest, body, force)
    elif kind == "tenants":
        found = _tenant_route(method, rest, force)
    return found if found is not None else other


def _segments(path: str) -> list[str]:
    if not path.startswith("/"):
        raise RouteError(f"the request target {path[:200]!r} is not an absolute path")
    raw = path[1:].split("/")
    out = []
    for seg in raw:
        if seg == "" or any(ch in seg for ch in ";+\\#"):
            raise RouteError(f"the path {path[:200]!r} has an empty segment, ';', '+', '#' or '\\': refused as ambiguous")
        try:
            text = unquote(seg, errors="strict")
        except UnicodeDecodeError as e:
            raise RouteError(f"the path {path[:200]!r} is not percent-encoded UTF-8") from e
        if "%" in seg and not _well_encoded(seg):
            raise RouteError(f"the path {path[:200]!r} has a malformed percent-escape")
        if text in (".", "..") or any(ch in text for ch in "/\\;") or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
            raise RouteError(f"the path {path[:200]!r} has a dot segment, an encoded '/', '\\' or ';', or a control character")
        out.append(text)
    return out


def _well_encoded(seg: str) -> bool:
    i = seg.find("%")
    while i != -1:
        if len(seg) < i + 3 or any(c not in "0123456789abcdefABCDEF" for c in seg[i + 1:i + 3]):
            return False
        i = seg.find("%", i + 3)
    return True


def _json_body(body: bytes, what: str) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError as e:
        raise RouteError(f"{what}: the body is not JSON ({e})") from e


def _topic_route(method: str, domain: str, rest: list[str], body: bytes, force: bool) -> Route | None:
    base = "/admin/v2/{domain}/{tenant}/{namespace}"
    if len(rest) < 2:
        return None
    tenant, ns = rest[0], rest[1]
    namespace = Resource("namespace", f"{tenant}/{ns}")
    listing = Listing("describe_topic", "topic")
    if len(rest) == 2:
        if method != "GET":
            return None
        return Route(f"GET {base}", (Operation("list_topics", namespace, {"domain": domain}),), listing)
    if len(rest) == 3 and rest[2] == "partitioned" and method == "GET":
        return Route(f"GET {base}/partitioned",
                     (Operation("list_topics", namespace, {"domain": domain, "partitioned": True}),), listing)
    topic = Resource("topic", f"{domain}://{tenant}/{ns}/{rest[2]}")
    tail = rest[3:]
    api = f"{method} {base}/{{topic}}"
    if not tail:
        if method == "PUT":
            return Route(api, (Operation("create_topic", topic, {"partitioned": False}),))
        if method == "DELETE":
            return Route(api, (Operation("delete_topic", topic, {"force": force}),))
        return None
    head = tail[0]
    if len(tail) == 1 and head == "partitions":
        api += "/partitions"
        if method == "PUT":
            return Route(api, (Operation("create_topic", topic, {"partitioned": True,
                                                                 "num_partitions": _count(body, api)}),))
        if method == "POST":
            return Route(api, (Operation("create_partitions", topic, {"count": _count(body, api)}),))
        if method == "DELETE":
            return Route(api, (Operation("delete_topic", topic, {"partitioned": True, "force": force}),))
    if len(tail) == 1 and method == "GET" and head in TOPIC_READS:
        return Route(f"{api}/{head}", (Operation("describe_topic", topic, {"admin": head}),))
    if len(tail) == 1 and head in TOPIC_POLICIES:
        return _config_route(method, f"{api}/{head}", "topic", topic, head, body)
    if len(tail) == 1 and head == "truncate" and method == "DELETE":
        return Route(f"{api}/truncate", (Operation("delete_records", topic, {"admin": "truncate"}),))
    if head == "permissions":
        if len(tail) == 1 and method == "GET":
            return Route(f"{api}/permissions", (Operation("describe_acls", topic, {}),))
        if len(tail) == 2 and method in ("POST", "DELETE"):
            return Route(f"{api}/permissions/{{role}}",
                         (Operation("alter_acls", topic, {"role": tail[1], "actions": _json_body(body, api)}),))
    if head == "subscription" and len(tail) >= 2:
        return _subscription_route(method, api, topic, tail[1], tail[2:], force)
    return None


def _subscription_route(method: str, api: str, topic: Resource, sub: str, tail: list[str],
                        force: bool) -> Route | None:
    api += "/subscription/{subscription}"
    group = Resource("group", sub)
    if not tail:
        if method == "DELETE":
            return Route(api, (Operation("delete_group", group, {"topics": [topic.name], "force": force}),))
        if method == "PUT":
            return Route(api, _cursor_ops(topic, group, "create"))
        return None
    action = tail[0]
    if method == "POST" and action in CURSOR_ACTIONS and len(tail) <= 2:
        suffix = "/{value}" if len(tail) == 2 else ""
        return Route(f"{api}/{action}{suffix}", _cursor_ops(topic, group, action))
    if method == "GET" and action == "position" and len(tail) == 2:
        # Peeking messages reads them: it is decided as consuming the topic.
        return Route(f"{api}/position/{{n}}", (Operation("consume", topic, {"group": sub, "admin": "peek"}),))
    return None


def _cursor_ops(topic: Resource, group: Resource, action: str) -> tuple[Operation, ...]:
    """Moving a subscription's cursor is committing its offsets: decided on the group and on the
    topic, as Kafka's OffsetCommit is."""
    return (Operation("commit_offset", group, {"topics": [topic.name], "admin": action}),
            Operation("commit_offset", topic, {"group": group.name, "admin": action}))


def _config_route(method: str, api: str, kind: str, resource: Resource, key: str, body: bytes) -> Route | None:
    if method == "GET":
        return Route(api, (Operation(f"describe_{kind}_config", resource, {"keys": [key]}),))
    if method in _WRITES:
        value = None if method == "DELETE" else _json_body(body, api)
        return Route(api, (Operation(f"alter_{kind}_config", resource,
                                     {"keys": [key], "configs": {key: value}, "remove": method == "DELETE"}),))
    return None


def _count(body: bytes, api: str) -> int:
    value = _json_body(body, api)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RouteError(f"{api}: the body must be the number of partitions, got {body[:100]!r}")
    return value


def _namespace_route(method: str, rest: list[str], body: bytes, force: bool) -> Route | None:
    if not rest:
        return None
    tenant = Resource("tenant", rest[0])
    if len(rest) == 1:
        if method == "GET":
            return Route("GET /admin/v2/namespaces/{tenant}", (Operation("list_namespaces", tenant, {}),),
                         Listing("describe_namespace", "namespace"))
        return None
    namespace = Resource("namespace", f"{rest[0]}/{rest[1]}")
    api = f"{method} /admin/v2/namespaces/{{tenant}}/{{namespace}}"
    tail = rest[2:]
    if not tail:
        op = {"PUT": "create_namespace", "DELETE": "delete_namespace", "GET": "describe_namespace"}.get(method)
        if op is None:
            return None
        request: dict[str, Any] = {"force": force} if method == "DELETE" else {}
        if method == "PUT":
            request["policies"] = _json_body(body, api)
        return Route(api, (Operation(op, namespace, request),))
    if tail == ["topics"] and method == "GET":
        return Route(f"{api}/topics", (Operation("list_topics", namespace, {}),), Listing("describe_topic", "topic"))
    if len(tail) == 1 and tail[0] in NAMESPACE_POLICIES:
        return _config_route(method, f"{api}/{tail[0]}", "namespace", namespace, tail[0], body)
    if tail[0] == "permissions":
        if len(tail) == 1 and method == "GET":
            return Route(f"{api}/permissions", (Operation("describe_acls", namespace, {}),))
        if len(tail) == 2 and method in ("POST", "DELETE"):
            return Route(f"{api}/permissions/{{role}}",
                         (Operation("alter_acls", namespace, {"role": tail[1], "actions": _json_body(body, api)}),))
    return None


def _tenant_route(method: str, rest: list[str], force: bool) -> Route | None:
    if not rest:
        if method == "GET":
            return Route("GET /admin/v2/tenants", (Operation("list_tenants", CLUSTER, {}),),
                         Listing("describe_tenant", "tenant"))
        return None
    if len(rest) != 1:
        return None
    op = {"PUT": "create_tenant", "POST": "alter_tenant", "DELETE": "delete_tenant", "GET": "describe_tenant"}.get(method)
    if op is None:
        return None
    return Route(f"{method} /admin/v2/tenants/{{tenant}}",
                 (Operation(op, Resource("tenant", rest[0]), {"force": force} if method == "DELETE" else {}),))
