"""Broker addresses in responses, mapped to Gatekeeper's own (port-per-broker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["UNMAPPED", "AddressMapper", "hide_controller_listeners", "map_address", "map_node_endpoints"]

# Where a node Gatekeeper has no port for is said to be: nowhere a client could reach.
UNMAPPED = ("unmapped.invalid", 1)
# (node_id, real host, real port) -> (advertised host, gateway port), or None if unmappable.
AddressMapper = Callable[[int, str, int], "tuple[str, int] | None"]


def map_address(mapper: AddressMapper, node_id: int, host: str, port: int) -> tuple[str, int]:
    mapped = mapper(node_id, host, port)
    # A node with no free slot must not leak its real address: point it nowhere useful.
    return mapped if mapped is not None else UNMAPPED


def map_node_endpoints(version: int, body: Any, ctx: Any) -> None:
    """A unit's ``rewrite``: KIP-951's ``node_endpoints`` (the new leader's address, in Produce,
    ShareFetch and ShareAcknowledge answers about a partition whose leader moved), mapped like
    every other broker address: a client that followed the real one would reach the broker
    directly."""
    for e in body.node_endpoints or ():
        e.host, e.port = map_address(ctx.mapper, e.node_id, e.host, e.port)


def hide_controller_listeners(version: int, body: Any, ctx: Any) -> None:
    """DescribeQuorum v2+ lists each voter's listeners, real host:port included. Gatekeeper does
    not relay controllers (a client that reached one would be outside every policy), so their
    addresses are never passed on: each is said to be ``unmapped.invalid:1``."""
    for node in body.nodes or ():
        for listener in node.listeners or ():
            listener.host, listener.port = UNMAPPED
