"""The Pulsar admin REST path → operation mapping (gatekeeper_pulsar.admin_routes), from one table."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("gatekeeper_pulsar.admin_routes", reason="the gatekeeper-pulsar plugin distribution is not installed")

from gatekeeper_pulsar.admin_routes import Listing, RouteError, route  # noqa: E402

T = "persistent://acme/orders/payments"
V2 = "/admin/v2"

# (method, path, body) -> [(operation, resource type, resource name, request subset)], listing or None
CASES: list[tuple[str, str, bytes, list[tuple[str, str, str, dict[str, Any]]], Listing | None]] = [
    ("PUT", f"{V2}/persistent/acme/orders/payments", b"", [("create_topic", "topic", T, {"partitioned": False})], None),
    ("PUT", f"{V2}/non-persistent/acme/orders/payments", b"",
     [("create_topic", "topic", "non-persistent://acme/orders/payments", {})], None),
    ("PUT", f"{V2}/persistent/acme/orders/payments/partitions", b"4",
     [("create_topic", "topic", T, {"partitioned": True, "num_partitions": 4})], None),
    ("POST", f"{V2}/persistent/acme/orders/payments/partitions", b"8", [("create_partitions", "topic", T, {"count": 8})], None),
    ("DELETE", f"{V2}/persistent/acme/orders/payments", b"", [("delete_topic", "topic", T, {"force": False})], None),
    ("DELETE", f"{V2}/persistent/acme/orders/payments?force=true&force=false", b"",
     [("delete_topic", "topic", T, {"force": True})], None),
    ("DELETE", f"{V2}/persistent/acme/orders/payments/partitions?force=TRUE", b"",
     [("delete_topic", "topic", T, {"partitioned": True, "force": True})], None),
    ("GET", f"{V2}/persistent/acme/orders/payments/stats", b"", [("describe_topic", "topic", T, {"admin": "stats"})], None),
    ("GET", f"{V2}/persistent/acme/orders/payments/internalStats", b"", [("describe_topic", "topic", T, {})], None),
    ("GET", f"{V2}/persistent/acme/orders/payments/partitions", b"",
     [("describe_topic", "topic", T, {"admin": "partitions"})], None),
    ("GET", f"{V2}/persistent/acme/orders/pay%20ments/stats", b"",
     [("describe_topic", "topic", "persistent://acme/orders/pay ments", {})], None),
    ("GET", f"{V2}/persistent/acme/orders/payments/retention", b"",
     [("describe_topic_config", "topic", T, {"keys": ["retention"]})], None),
    ("POST", f"{V2}/persistent/acme/orders/payments/retention", b'{"retentionTimeInMinutes": 5, "retentionSizeInMB": 1}',
     [("alter_topic_config", "topic", T,
       {"keys": ["retention"], "configs": {"retention": {"retentionTimeInMinutes": 5, "retentionSizeInMB": 1}}})], None),
    ("DELETE", f"{V2}/persistent/acme/orders/payments/retention", b"",
     [("alter_topic_config", "topic", T, {"configs": {"retention": None}, "remove": True})], None),
    ("DELETE", f"{V2}/persistent/acme/orders/payments/truncate", b"", [("delete_records", "topic", T, {})], None),
    ("POST", f"{V2}/persistent/acme/orders/payments/permissions/alice", b'["produce"]',
     [("alter_acls", "topic", T, {"role": "alice", "actions": ["produce"]})], None),
    # subscriptions are groups, cursor moves are offset commits on the group and the topic
    ("DELETE", f"{V2}/persistent/acme/orders/payments/subscription/billing", b"",
     [("delete_group", "group", "billing", {"topics": [T]})], None),
    ("POST", f"{V2}/persistent/acme/orders/payments/subscription/billing/resetcursor/1700000000000", b"",
     [("commit_offset", "group", "billing", {"topics": [T], "admin": "resetcursor"}),
      ("commit_offset", "topic", T, {"group": "billing", "admin": "resetcursor"})], None),
    ("POST", f"{V2}/persistent/acme/orders/payments/subscription/billing/resetcursor", b'{"ledgerId": 1, "entryId": 2}',
     [("commit_offset", "group", "billing", {}), ("commit_offset", "topic", T, {})], None),
    ("POST", f"{V2}/persistent/acme/orders/payments/subscription/billing/skip/10", b"",
     [("commit_offset", "group", "billing", {"admin": "skip"}), ("commit_offset", "topic", T, {"admin": "skip"})], None),
    ("POST", f"{V2}/persistent/acme/orders/payments/subscription/billing/skip_all", b"",
     [("commit_offset", "group", "billing", {"admin": "skip_all"}), ("commit_offset", "topic", T, {})], None),
    ("POST", f"{V2}/persistent/acme/orders/payments/subscription/billing/expireMessages/60", b"",
     [("commit_offset", "group", "billing", {"admin": "expireMessages"}), ("commit_offset", "topic", T, {})], None),
    ("PUT", f"{V2}/persistent/acme/orders/payments/subscription/billing", b"",
     [("commit_offset", "group", "billing", {"admin": "create"}), ("commit_offset", "topic", T, {"admin": "create"})], None),
    ("GET", f"{V2}/persistent/acme/orders/payments/subscription/billing/position/3", b"",
     [("consume", "topic", T, {"group": "billing", "admin": "peek"})], None),
    # listings: decided, then filtered name by name
    ("GET", f"{V2}/persistent/acme/orders", b"", [("list_topics", "namespace", "acme/orders", {"domain": "persistent"})],
     Listing("describe_topic", "topic")),
    ("GET", f"{V2}/persistent/acme/orders/partitioned", b"", [("list_topics", "namespace", "acme/orders", {"partitioned": True})],
     Listing("describe_topic", "topic")),
    ("GET", f"{V2}/namespaces/acme/orders/topics", b"", [("list_topics", "namespace", "acme/orders", {})],
     Listing("describe_topic", "topic")),
    ("GET", f"{V2}/namespaces/acme", b"", [("list_namespaces", "tenant", "acme", {})], Listing("describe_namespace", "namespace")),
    ("GET", f"{V2}/tenants", b"", [("list_tenants", "cluster", "pulsar-cluster", {})], Listing("describe_tenant", "tenant")),
    # namespaces and tenants
    ("PUT", f"{V2}/namespaces/acme/orders", b"", [("create_namespace", "namespace", "acme/orders", {"policies": None})], None),
    ("DELETE", f"{V2}/namespaces/acme/orders?force=true", b"", [("delete_namespace", "namespace", "acme/orders", {"force": True})], None),
    ("GET", f"{V2}/namespaces/acme/orders", b"", [("describe_namespace", "namespace", "acme/orders", {})], None),
    ("POST", f"{V2}/namespaces/acme/orders/messageTTL", b"60",
     [("alter_namespace_config", "namespace", "acme/orders", {"keys": ["messageTTL"], "configs": {"messageTTL": 60}})], None),
    ("GET", f"{V2}/namespaces/acme/orders/retention", b"",
     [("describe_namespace_config", "namespace", "acme/orders", {"keys": ["retention"]})], None),
    ("GET", f"{V2}/namespaces/acme/orders/permissions", b"", [("describe_acls", "namespace", "acme/orders", {})], None),
    ("PUT", f"{V2}/tenants/acme", b'{"allowedClusters": ["standalone"]}', [("create_tenant", "tenant", "acme", {})], None),
    ("POST", f"{V2}/tenants/acme", b"{}", [("alter_tenant", "tenant", "acme", {})], None),
    ("DELETE", f"{V2}/tenants/acme", b"", [("delete_tenant", "tenant", "acme", {"force": False})], None),
    ("GET", f"{V2}/tenants/acme", b"", [("describe_tenant", "tenant", "acme", {})], None),
]

# Anything else is `other` on the cluster, with the method and the path.
OTHER = [
    ("GET", f"{V2}/brokers/standalone"),
    ("GET", f"{V2}/clusters"),
    ("POST", f"{V2}/persistent/acme/orders/payments/unload"),
    ("POST", f"{V2}/persistent/acme/orders/payments/terminate"),
    ("GET", f"{V2}/persistent/acme/orders/payments/examinemessage"),  # reads a message: not a describe
    ("GET", f"{V2}/persistent/acme/orders/payments/ledger/1/entry/2"),
    ("GET", f"{V2}/persistent/acme/orders/payments"),
    ("POST", f"{V2}/persistent/acme/orders"),
    ("POST", f"{V2}/namespaces/acme/orders/clearBacklog"),
    ("POST", f"{V2}/namespaces/acme/orders/unload"),
    ("PATCH", f"{V2}/tenants/acme"),
    ("GET", "/admin/namespaces/acme/standalone/orders"),
    ("GET", "/lookup/v2/topic/persistent/acme/orders/payments"),
    ("GET", "/metrics"),
    ("GET", f"{V2}/persistent/acme"),
]

REFUSED = [
    f"{V2}/persistent/acme/orders/pay%2Fments",  # an encoded '/' moves a segment boundary
    f"{V2}/persistent/acme/orders/../payments",
    f"{V2}/persistent/acme/orders/./payments",
    f"{V2}/persistent/acme//orders/payments",
    f"{V2}/persistent/acme/orders/payments;x=1",
    f"{V2}/persistent/acme/orders/pay+ments",  # the broker's decoder reads '+' as a space
    f"{V2}/persistent/acme/orders/pay%zzments",
    f"{V2}/persistent/acme/orders/pay%00ments",
    f"{V2}/persistent/acme/orders/pay%ffments",  # not UTF-8
    "admin/v2/tenants",
    f"{V2}/persistent/acme/orders/ledger#x",  # the broker's parser would cut a fragment off
    f"{V2}/persistent/acme/orders/ledger?force=true#x",
    f"{V2}/persistent/acme/orders/pay%5Cments",  # an encoded '\\'
    f"{V2}/persistent/acme/orders/pay%3Bx=1",  # an encoded ';'
    f"{V2}/persistent/acme/orders/%2e%2e",  # an encoded dot segment
    "/",
]


@pytest.mark.parametrize(("method", "path", "body", "expected", "listing"), CASES,
                         ids=[f"{c[0]} {c[1].removeprefix(V2)}" for c in CASES])
def test_route(method: str, path: str, body: bytes, expected: list[tuple[str, str, str, dict[str, Any]]],
               listing: Listing | None) -> None:
    r = route(method, path, body)
    assert [(op.name, op.resource.type, op.resource.name) for op in r.operations] == [e[:3] for e in expected]
    for op, (_, _, _, subset) in zip(r.operations, expected, strict=True):
        assert {k: op.request.get(k) for k in subset} == subset
    assert r.listing == listing
    assert r.api.startswith(f"{method} ")
    assert "acme" not in r.api and "payments" not in r.api  # the template, not the names


@pytest.mark.parametrize(("method", "path"), OTHER, ids=[f"{m} {p}" for m, p in OTHER])
def test_unmapped_is_other_with_method_and_path(method: str, path: str) -> None:
    r = route(method, path)
    assert [(op.name, op.resource.type, op.resource.name) for op in r.operations] == [("other", "cluster", "pulsar-cluster")]
    assert r.operations[0].request["method"] == method
    assert r.operations[0].request["path"] == path
    assert r.listing is None


@pytest.mark.parametrize("path", REFUSED)
def test_ambiguous_paths_are_refused(path: str) -> None:
    with pytest.raises(RouteError):
        route("GET", path)


@pytest.mark.parametrize(("path", "body"), [
    (f"{V2}/persistent/acme/orders/payments/partitions", b"four"),
    (f"{V2}/persistent/acme/orders/payments/partitions", b"true"),
    (f"{V2}/persistent/acme/orders/payments/partitions", b'"4"'),
])
def test_partition_count_must_be_a_number(path: str, body: bytes) -> None:
    with pytest.raises(RouteError, match="number of partitions|not JSON"):
        route("PUT", path, body)


def test_a_config_body_that_is_not_json_is_refused() -> None:
    with pytest.raises(RouteError, match="not JSON"):
        route("POST", f"{V2}/persistent/acme/orders/payments/retention", b"{retention")
