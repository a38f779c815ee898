"""Response rewriting: broker addresses → Gatekeeper's, and ApiVersions → what we can inspect.

Each function takes a decoded response body and returns it changed in place; the caller keeps
the original response header bytes and re-encodes only the body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gatekeeper.kafka.cluster import ClusterView

__all__ = ["AddressMapper", "intersect_api_versions", "rewrite_addresses"]

# (node_id, real host, real port) -> (advertised host, gateway port), or None if unmappable.
AddressMapper = Callable[[int, str, int], "tuple[str, int] | None"]


def _map(mapper: AddressMapper, node_id: int, host: str, port: int) -> tuple[str, int]:
    mapped = mapper(node_id, host, port)
    # A node with no free slot must not leak its real address: point it nowhere useful.
    return mapped if mapped is not None else ("unmapped.invalid", 1)


def rewrite_addresses(api_key: int, version: int, body: Any, mapper: AddressMapper) -> Any:
    """Replace broker host/port in Metadata, FindCoordinator and DescribeCluster bodies."""
    if api_key == 3:
        for b in body.brokers:
            b.host, b.port = _map(mapper, b.node_id, b.host, b.port)
    elif api_key == 60:
        for b in body.brokers:
            b.host, b.port = _map(mapper, b.broker_id, b.host, b.port)
    elif api_key == 10:
        if version >= 4:
            for c in body.coordinators:
                if c.node_id >= 0 and c.error_code == 0:
                    c.host, c.port = _map(mapper, c.node_id, c.host, c.port)
        elif body.node_id >= 0 and body.error_code == 0:
            body.host, body.port = _map(mapper, body.node_id, body.host, body.port)
    return body


def observe(api_key: int, version: int, body: Any, cluster: ClusterView) -> None:
    """Learn broker addresses and topic ids from a response before it is rewritten."""
    if api_key == 3:
        for b in body.brokers:
            cluster.observe_broker(b.node_id, b.host, b.port)
        cluster.observe_topics((getattr(t, "topic_id", None), t.name) for t in body.topics)
    elif api_key == 60:
        for b in body.brokers:
            cluster.observe_broker(b.broker_id, b.host, b.port)
    elif api_key == 10:
        if version >= 4:
            for c in body.coordinators:
                if c.error_code == 0:
                    cluster.observe_broker(c.node_id, c.host, c.port)
        elif body.error_code == 0:
            cluster.observe_broker(body.node_id, body.host, body.port)


def intersect_api_versions(body: Any, ours: Mapping[int, tuple[int, int]]) -> Any:
    """Keep only the APIs and versions both the broker offers and Gatekeeper can inspect."""
    kept = []
    for k in body.api_keys:
        mine = ours.get(k.api_key)
        if mine is None:
            continue
        lo, hi = max(k.min_version, mine[0]), min(k.max_version, mine[1])
        if lo > hi:
            continue
        k.min_version, k.max_version = lo, hi
        kept.append(k)
    body.api_keys = kept
    return body
