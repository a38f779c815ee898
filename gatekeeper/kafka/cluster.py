"""What Gatekeeper knows of the cluster behind it, learned from the responses it relays.

Broker node ids get a port slot in the order they are first seen (slot i is the i-th port of
every listener's ``broker_ports``); topic ids map to names for the APIs that name topics by id.
Pure state, updated by the proxy from decoded responses; no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from gatekeeper.values import HostPort

__all__ = ["ClusterView"]

_MAX_UNKNOWN = 10_000


class ClusterView:
    def __init__(self, max_slots: int) -> None:
        self.max_slots = max_slots
        self._nodes: dict[int, HostPort] = {}
        self._slots: dict[int, int] = {}  # node id -> slot index
        self._slot_nodes: dict[int, int] = {}  # slot index -> node id
        self._topic_names: dict[uuid.UUID, str] = {}
        self._unknown: dict[uuid.UUID, float] = {}  # topic id -> until when it is taken as unknown
        # Every topic's name, from Gatekeeper's own all-topics Metadata (regex subscriptions are
        # resolved against it): the names, when they were listed, and a generation that changes
        # when they do.
        self._listing: tuple[str, ...] | None = None
        self._listed_at = 0.0
        self._listing_generation = 0

    def observe_broker(self, node_id: int, host: str, port: int) -> int | None:
        """Record a broker's real address; return its slot, or None if all slots are taken."""
        if node_id < 0:
            return None
        self._nodes[node_id] = HostPort(host, port)
        slot = self._slots.get(node_id)
        if slot is None and len(self._slots) < self.max_slots:
            slot = len(self._slots)
            self._slots[node_id] = slot
            self._slot_nodes[slot] = node_id
        return slot

    def observe_topics(self, pairs: Iterable[tuple[uuid.UUID | None, str | None]]) -> None:
        for topic_id, name in pairs:
            if topic_id is not None and topic_id.int and name:
                self._topic_names[topic_id] = name

    def topic_name(self, topic_id: uuid.UUID) -> str | None:
        return self._topic_names.get(topic_id)

    def observe_listing(self, names: Iterable[str], now: float) -> None:
        listing = tuple(sorted(set(names)))
        if listing != self._listing:
            self._listing = listing
            self._listing_generation += 1
        self._listed_at = now

    def topic_listing(self, now: float, max_age: float) -> tuple[int, tuple[str, ...]] | None:
        """(generation, names) of every topic, if listed less than ``max_age`` seconds ago."""
        if self._listing is None or now - self._listed_at > max_age:
            return None
        return self._listing_generation, self._listing

    def mark_unknown(self, topic_ids: Iterable[uuid.UUID], until: float) -> None:
        """Topic ids the broker did not know when asked: not asked about again until ``until``
        (a client naming made-up ids costs one small probe, not one per request)."""
        for topic_id in topic_ids:
            self._unknown.pop(topic_id, None)
            self._unknown[topic_id] = until
        while len(self._unknown) > _MAX_UNKNOWN:
            del self._unknown[next(iter(self._unknown))]

    def known_unknown(self, topic_id: uuid.UUID, now: float) -> bool:
        until = self._unknown.get(topic_id)
        return until is not None and now < until

    def slot_of(self, node_id: int) -> int | None:
        return self._slots.get(node_id)

    def node_at_slot(self, slot: int) -> int | None:
        return self._slot_nodes.get(slot)

    def address_of(self, node_id: int) -> HostPort | None:
        return self._nodes.get(node_id)

    @property
    def nodes(self) -> dict[int, HostPort]:
        return dict(self._nodes)
