"""Kafka message definitions kafka-python 3.0.12 does not ship (Kafka 4's group protocols).

Each API is a JSON message definition in this package, in the format kafka-python's
``ApiMessage`` reads (Kafka's own message-definition format: name, apiKey, type, validVersions,
flexibleVersions, fields with versions, nullableVersions, tag and taggedVersions). The classes
below load them from here instead of from kafka-python's resources; the codec's API table
picks up every ``ApiMessage`` subclass, so a definition added here becomes decodable.

A definition lists only versions the broker we test against serves and that Gatekeeper's unit
for the API inspects; round-trip tests check each against the real broker's answers.
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.api_message import ApiMessage

__all__ = ["DEFINED"]

_PACKAGE = __name__
DEFINED: dict[str, Any] = {}


def _define(name: str) -> None:
    """Declare the request and response classes of one API from ``<name>Request.json`` and
    ``<name>Response.json`` in this package."""
    for kind in ("Request", "Response"):
        cls = type(name + kind, (ApiMessage,), {"__module__": __name__}, load_json=_PACKAGE)
        DEFINED[cls.__name__] = cls


# Definitions are added here, one line per API, as their JSON files land:
_APIS: tuple[str, ...] = (
    # The consumer group protocol (KIP-848).
    "ConsumerGroupHeartbeat", "ConsumerGroupDescribe",
    # Share groups (KIP-932).
    "ShareGroupHeartbeat", "ShareGroupDescribe", "ShareFetch", "ShareAcknowledge",
    "DescribeShareGroupOffsets", "AlterShareGroupOffsets", "DeleteShareGroupOffsets",
)
for _api in _APIS:
    _define(_api)
