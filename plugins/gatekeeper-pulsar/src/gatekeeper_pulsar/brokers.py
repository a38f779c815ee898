"""Which brokers a Pulsar listener fronts, and the Gatekeeper address each is reached through.

Port-per-broker, as for Kafka: broker ``i`` of the listener's broker list is reached through the
listener's broker port ``i``. Every broker address the broker hands out (LOOKUP_RESPONSE, and
TOPIC_MIGRATED) is rewritten to that port on the listener's advertised host, so a client never
learns an address that bypasses Gatekeeper; a broker not in the list cannot be reached at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from gatekeeper.values import HostPort

__all__ = ["BrokerMap", "parse_service_url"]


def parse_service_url(url: str) -> HostPort | None:
    """``pulsar://host:port`` (or ``pulsar+ssl://``) as a HostPort; None if it is not one."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("pulsar", "pulsar+ssl"):
        return None
    rest = rest.rstrip("/")
    host, colon, port = rest.rpartition(":")
    if not colon or not host or not port.isdigit():
        return None
    return HostPort(host.strip("[]"), int(port))


@attrs.frozen
class BrokerMap:
    """The brokers behind one listener, in slot order, and the listener's advertised addresses."""

    brokers: tuple[HostPort, ...]
    advertised_host: str
    broker_ports: tuple[int, ...]
    service_port: int

    @classmethod
    def build(cls, brokers: Sequence[HostPort], advertised_host: str, broker_ports: Sequence[int],
              service_port: int) -> BrokerMap:
        return cls(tuple(brokers), advertised_host, tuple(broker_ports), service_port)

    def slot_of(self, broker: HostPort) -> int | None:
        """The slot of a broker address (host compared case-insensitively), or None."""
        for i, known in enumerate(self.brokers[: len(self.broker_ports)]):
            if known.port == broker.port and known.host.lower() == broker.host.lower():
                return i
        return None

    def gateway_url(self, slot: int, tls: bool = False) -> str:
        scheme = "pulsar+ssl" if tls else "pulsar"
        return f"{scheme}://{self.advertised_host}:{self.broker_ports[slot]}"

    def slot_of_url(self, url: str) -> int | None:
        """The slot of the broker at ``url`` (``pulsar://`` or ``pulsar+ssl://``), or None: not a
        broker we front."""
        address = parse_service_url(url)
        return None if address is None else self.slot_of(address)

    def rewrite(self, url: str, tls: bool = False) -> str | None:
        """The Gatekeeper URL standing for the broker at ``url``, or None: not a broker we front."""
        slot = self.slot_of_url(url)
        return None if slot is None else self.gateway_url(slot, tls)

    def target_of_proxy_url(self, url: str) -> int | None:
        """The slot a CONNECT's ``proxy_to_broker_url`` asks for: one of Gatekeeper's own broker
        URLs, or a broker in the list. None: neither (refused)."""
        address = parse_service_url(url)
        if address is None:
            return None
        if address.host.lower() == self.advertised_host.lower() and address.port in self.broker_ports:
            slot = self.broker_ports.index(address.port)
            return slot if slot < len(self.brokers) else None
        return self.slot_of(address)
