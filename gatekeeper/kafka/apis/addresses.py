"""Broker addresses in responses, mapped to Gatekeeper's own (port-per-broker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["AddressMapper", "map_address", "map_node_endpoints"]

# (node_id, real host, real port) -> (advertised host, gateway port), or None if unmappable.
AddressMapper = Callable[[int, str, int], "tuple[str, int] | None"]


def map_address(mapper: AddressMapper, node_id: int, host: str, port: int) -> tuple[str, int]:
    mapped = mapper(node_id, host, port)
    # A node with no free slot must not leak its real address: point it nowhere useful.
    return mapped if mapped is not None else ("unmapped.invalid", 1)


def map_node_endpoints(mapper: AddressMapper, body: Any) -> None:
    """KIP-951's ``node_endpoints`` (the new leader's address, in Produce, ShareFetch and
    ShareAcknowledge answers about a partition whose leader moved), mapped like every other
    broker address: a client that followed the real one would reach the broker directly."""
    for e in body.node_endpoints or ():
        e.host, e.port = map_address(mapper, e.node_id, e.host, e.port)
