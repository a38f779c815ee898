"""Policy engines behind one interface: ``decide(input) -> Deferred[Decision]``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from gatekeeper.api import Decision, IPolicyEngine
from gatekeeper.config import PolicyConfig

__all__ = ["ALLOW", "AllowAllEngine", "make_engine"]

ALLOW = Decision(action="allow", reason="allow-all engine")


@implementer(IPolicyEngine)
class AllowAllEngine:
    """Allows everything. For bringing up the data path; never for production."""

    name = "allow-all"

    def decide(self, policy_input: Mapping[str, Any]) -> defer.Deferred[Decision]:
        return defer.succeed(ALLOW)


def make_engine(config: PolicyConfig) -> IPolicyEngine:
    if config.engine == "allow-all":
        return AllowAllEngine()
    raise ValueError(f"policy.engine: unknown engine {config.engine!r}")
