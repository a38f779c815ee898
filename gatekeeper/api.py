"""The small public API that plugins import: value types and interfaces, apart from the runtime.

Third-party protocol adapters, maskers and engines depend on this module only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
from zope.interface import Interface

__all__ = [
    "ANONYMOUS",
    "CLUSTER",
    "AdapterServices",
    "Connection",
    "ConnectionIO",
    "Decision",
    "IPolicyEngine",
    "Operation",
    "Principal",
    "ProtocolAdapter",
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


# -- protocol adapters ---------------------------------------------------------------------------
#
# A protocol adapter (entry-point group ``gatekeeper.adapters``) turns one client connection's
# bytes into policy inputs and enforces the decisions on the wire. The proxy shell knows nothing
# of the protocol: it moves bytes between the client, the broker and the adapter's connection
# core, asks the policy engine when the core asks it to, and runs the core's timers.


class ConnectionIO(Protocol):
    """What a connection core asks of the shell that carries its bytes. Every call returns at
    once; results come back later as calls on the :class:`Connection`."""

    def to_client(self, data: Sequence[bytes]) -> None:
        """Write bytes to the client."""

    def to_upstream(self, data: Sequence[bytes]) -> None:
        """Write bytes to the broker (only after ``upstream_connected``)."""

    def connect_upstream(self, target: Any) -> None:
        """Connect to the broker at ``target`` (``host``, ``port``); then ``upstream_connected``
        or ``upstream_failed`` is called. Reading from the client pauses until then."""

    def decide(self, token: int, inputs: list[dict[str, Any]]) -> None:
        """Ask the policy engine; then ``decided(token, decisions)`` or ``decision_failed``."""

    def close(self, abort_upstream: bool = False) -> None:
        """Close the client connection (the core has logged why), and the broker's."""

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Any:
        """Run ``fn`` later; the result has ``cancel()`` and ``active()``."""

    def pause_client(self) -> None:
        """Stop reading from the client until ``resume_client``."""

    def resume_client(self) -> None:
        """Read from the client again."""

    def peer_principal(self) -> Any:
        """The principal of a verified TLS client certificate, or None."""


class Connection(Protocol):
    """A sans-I/O connection core: one per client connection, made by the adapter. It takes
    bytes and results in, and gives bytes and requests out through its :class:`ConnectionIO`."""

    closing: bool

    def start(self, peer_host: str, peer_port: int) -> None: ...

    def client_data(self, data: bytes) -> None: ...

    def client_lost(self) -> None: ...

    def upstream_connected(self) -> None: ...

    def upstream_failed(self, reason: str) -> None: ...

    def upstream_data(self, data: bytes) -> None: ...

    def upstream_lost(self, reason: str) -> None: ...

    def decided(self, token: int, decisions: list[Decision]) -> None: ...

    def decision_failed(self, token: int, reason: str) -> None: ...


@attrs.frozen
class AdapterServices:
    """What Gatekeeper hands an adapter when it loads it: the configuration and the shared
    services, never the gateway itself."""

    config: Any  # gatekeeper.config.Config
    metrics: Any  # gatekeeper.metrics.Metrics
    clock: Callable[[], float]  # seconds since the epoch
    identity: Any  # gatekeeper.identity.service.IdentityService, or None without identity.jwt
    upstream_credentials: Callable[[], Any]  # the broker credentials in force (re-read on reload), or None
    principal_for_client_id: Callable[[str | None], Any]  # principal of an unauthenticated connection
    next_bootstrap: Callable[[], Any]  # the next bootstrap broker address to try
    inputs_decoded: Callable[[list[dict[str, Any]]], None]  # every policy input built (debug log)


class ProtocolAdapter(Protocol):
    """An entry point in ``gatekeeper.adapters``: ``Adapter(services)`` then, per client
    connection, ``connection(listener, slot, io)``. ``slot`` is the index of the listener's
    broker port the client connected to, or None for the bootstrap port."""

    name: str

    def connection(self, listener: Any, slot: int | None, io: ConnectionIO) -> Connection: ...
