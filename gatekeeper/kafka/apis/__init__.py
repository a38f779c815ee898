"""One enforcement unit per Kafka API, by API key: the only place Kafka API knowledge lives.

``UNITS[key]`` is the :class:`~gatekeeper.kafka.apis.base.ApiUnit` of an API Gatekeeper
inspects; an API with no unit is not offered to clients and is refused if sent.
"""

from __future__ import annotations

from types import ModuleType

from gatekeeper.kafka.apis import (
    acls,
    admin,
    cluster,
    configs,
    consumer_groups,
    coordinator,
    fetch,
    groups,
    metadata,
    negotiation,
    offsets,
    produce,
    share_groups,
    topic_info,
    topics,
    transactions,
)
from gatekeeper.kafka.apis.base import ApiKey, ApiUnit

__all__ = ["UNITS", "ApiKey", "ApiUnit"]

_MODULES: tuple[ModuleType, ...] = (produce, fetch, metadata, topic_info, offsets, coordinator, groups, topics, transactions,
                                    configs, acls, cluster, admin, negotiation, consumer_groups, share_groups)

UNITS: dict[int, ApiUnit] = {unit.key: unit for module in _MODULES for unit in module.UNITS}
