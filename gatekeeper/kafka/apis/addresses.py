"""Broker addresses in responses, mapped to Gatekeeper's own (port-per-broker)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["AddressMapper", "map_address"]

# (node_id, real host, real port) -> (advertised host, gateway port), or None if unmappable.
AddressMapper = Callable[[int, str, int], "tuple[str, int] | None"]


def map_address(mapper: AddressMapper, node_id: int, host: str, port: int) -> tuple[str, int]:
    mapped = mapper(node_id, host, port)
    # A node with no free slot must not leak its real address: point it nowhere useful.
    return mapped if mapped is not None else ("unmapped.invalid", 1)
