"""Build the configured policy engine (backend + cache) for a gateway."""

from __future__ import annotations

from typing import Any

from gatekeeper.config import PolicyConfig
from gatekeeper.metrics import Metrics
from gatekeeper.policy.cache import DecisionCache
from gatekeeper.policy.engine import AllowAllBackend, IPolicyBackend, PolicyEngine

__all__ = ["make_engine"]


def make_backend(config: PolicyConfig, reactor: Any) -> IPolicyBackend:
    if config.engine == "allow-all":
        return AllowAllBackend()
    if config.engine == "opa":
        from gatekeeper.policy.opa import OpaBackend

        assert config.url is not None
        return OpaBackend(config.url, config.decision, config.policies, config.data, reactor)
    if config.engine == "embedded":
        from gatekeeper.policy.embedded_backend import EmbeddedBackend

        assert config.policies is not None
        return EmbeddedBackend(config.policies, config.data, config.decision, reactor)
    raise ValueError(f"policy.engine: unknown engine {config.engine!r}")


def make_engine(config: PolicyConfig, metrics: Metrics, reactor: Any) -> PolicyEngine:
    cache = DecisionCache(config.cache_max_entries, config.cache_default_ttl, reactor.seconds)
    return PolicyEngine(make_backend(config, reactor), cache, metrics, reactor, config.timeout)
