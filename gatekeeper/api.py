"""The small public API that plugins import: value types and interfaces, apart from the runtime.

Third-party protocol adapters, maskers and engines depend on this module only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from zope.interface import Interface

__all__ = [
    "ANONYMOUS",
    "CLUSTER",
    "Decision",
    "IPolicyEngine",
    "Operation",
    "Principal",
    "Resource",
]


@attrs.frozen
class Resource:
    """What an operation acts on: ``topic``, ``group``, ``transactional_id`` or ``cluster``."""

    type: str
    name: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "name": self.name}


CLUSTER = Resource("cluster", "kafka-cluster")


@attrs.frozen
class Operation:
    """One (operation, resource) pair decoded from a request: one policy decision each."""

    name: str
    resource: Resource
    request: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Principal:
    """Who a connection acts as: from a validated token, a client certificate, or anonymous."""

    sub: str
    issuer: str | None = None
    groups: tuple[str, ...] = ()
    claims: Mapping[str, Any] = attrs.field(factory=dict)
    mechanism: str = "NONE"

    def to_json(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "issuer": self.issuer,
            "groups": list(self.groups),
            "claims": dict(self.claims),
            "mechanism": self.mechanism,
        }


ANONYMOUS = Principal(sub="anonymous", mechanism="NONE")


@attrs.frozen
class Decision:
    """A policy engine's verdict on one policy input."""

    action: str  # allow | deny | mask | approve
    reason: str = ""
    mask: tuple[Mapping[str, Any], ...] = ()
    approval: Mapping[str, Any] | None = None
    ttl: float | None = None
    error: str = "authorization"  # for deny: authorization | policy_violation

    @property
    def allowed(self) -> bool:
        return self.action == "allow"


class IPolicyEngine(Interface):
    """Decides policy inputs. ``decide`` returns a Deferred firing with a Decision."""

    def decide(policy_input: Mapping[str, Any]) -> Any:  # type: ignore[misc]
        """Return a Deferred[Decision] for one policy input document."""
