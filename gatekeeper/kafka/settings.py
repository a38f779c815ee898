"""What every connection of the Kafka adapter shares: a narrow, frozen view of the gateway."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from gatekeeper.kafka.apis.base import GatewayIdentity
from gatekeeper.kafka.cluster import ClusterView
from gatekeeper.kafka.messages import KafkaCodec
from gatekeeper.ratelimit import LogSampler

__all__ = ["HotCounters", "KafkaSettings"]


@attrs.frozen
class HotCounters:
    """The counters the data path adds to on every request, bound once per adapter
    (``Metrics.counters``): bytes each way, requests by API and decisions by (action,
    operation)."""

    bytes: Any  # by direction: from_client, from_broker
    requests: Any  # by API name
    decisions: Any  # by (action, operation)

    @classmethod
    def of(cls, metrics: Any) -> HotCounters:
        return cls(bytes=metrics.counters("gatekeeper_bytes_total", "direction"),
                   requests=metrics.counters("gatekeeper_requests_total", "api"),
                   decisions=metrics.counters("gatekeeper_decisions_total", "action", "operation"))


@attrs.frozen
class KafkaSettings:
    config: Any  # gatekeeper.config.Config
    codec: KafkaCodec
    cluster: ClusterView
    metrics: Any
    clock: Callable[[], float]
    identity: Any  # IdentityService or None
    upstream_credentials: Callable[[], tuple[str, str, str] | None]  # (mechanism, user, password)
    principal_for_client_id: Callable[[str | None], Any]
    next_bootstrap: Callable[[], Any]
    inputs_decoded: Callable[[list[dict[str, Any]]], None]
    denial_log: LogSampler
    gateway: GatewayIdentity  # Gatekeeper's own principal at the broker
    masking: Any = None  # gatekeeper.masking.Masking, or None: a mask decision is then a deny
    grants_for: Callable[[Any, float], list[dict[str, Any]]] = lambda principal, now: []  # live approval grants
    audit: Any = None  # gatekeeper.audit.AuditTrail, or None: no audit trail
    policy_revision: Callable[[], str | None] = lambda: None  # the digest of the policies and data in force
    hot: HotCounters = attrs.field(default=attrs.Factory(lambda self: HotCounters.of(self.metrics), takes_self=True))
