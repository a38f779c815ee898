"""The built-in ``kafka`` protocol adapter (entry point ``gatekeeper.adapters: kafka``).

One per gateway: it holds what all Kafka connections share (what is known of the cluster, the
codec, the denial log sampler) and makes a sans-I/O :class:`KafkaConnection` per client.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.api import AdapterServices, ConnectionIO
from gatekeeper.kafka.apis.base import GatewayIdentity
from gatekeeper.kafka.cluster import ClusterView
from gatekeeper.kafka.connection import KafkaConnection
from gatekeeper.kafka.messages import KafkaCodec
from gatekeeper.kafka.settings import KafkaSettings
from gatekeeper.ratelimit import LogSampler

__all__ = ["KafkaAdapter"]


class KafkaAdapter:
    name = "kafka"

    def __init__(self, services: AdapterServices) -> None:
        config = services.config
        slots = min(len(lst.broker_ports) for lst in config.listeners if lst.protocol == self.name)
        self.cluster = ClusterView(max_slots=slots)
        self.codec = KafkaCodec(self.cluster)
        self.settings = KafkaSettings(
            config=config, codec=self.codec, cluster=self.cluster, metrics=services.metrics, clock=services.clock,
            identity=services.identity, upstream_credentials=services.upstream_credentials,
            principal_for_client_id=services.principal_for_client_id, next_bootstrap=services.next_bootstrap,
            inputs_decoded=services.inputs_decoded, denial_log=LogSampler(config.limits.denial_log_interval),
            gateway=GatewayIdentity(config.upstream.sasl.username if config.upstream.sasl is not None else None),
            masking=services.masking,
            grants_for=services.grants_for,
            audit=services.audit,
            policy_revision=services.policy_revision,
        )

    def connection(self, listener: Any, slot: int | None, io: ConnectionIO) -> KafkaConnection:
        return KafkaConnection(self.settings, listener, slot, io)
