"""The small public API that plugins import: value types and interfaces, apart from the runtime.

Third-party protocol adapters, maskers and engines depend on this module only.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeAlias

import attrs
from zope.interface import Interface

__all__ = [
    "ANONYMOUS",
    "CLUSTER",
    "DROP",
    "AdapterServices",
    "AuditHead",
    "AuditLine",
    "AuditOpened",
    "AuditSink",
    "AuditSinkContext",
    "AuditSinkError",
    "SegmentPolicy",
    "Connection",
    "ConnectionIO",
    "Decision",
    "Detector",
    "Drop",
    "IPolicyEngine",
    "JsonScalar",
    "JsonValue",
    "MaskPluginError",
    "Masker",
    "MaskingContext",
    "Notifier",
    "NotifierContext",
    "Operation",
    "Principal",
    "ProtocolAdapter",
    "Resource",
    "Span",
    "UpstreamTarget",
    "approval_decision",
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
class UpstreamTarget:
    """A broker address for ``ConnectionIO.connect_upstream`` with the TLS settings to reach
    it (a ``gatekeeper.config.UpstreamTlsConfig``, or None: plain TCP). An adapter whose listener
    fronts a cluster of its own passes one, so the top-level upstream's TLS settings (those of
    the Kafka cluster) never apply to it; a bare ``host``/``port`` target uses them."""

    host: str
    port: int
    tls: Any = None


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
        """Connect to the broker at ``target`` (``host``, ``port``; an :class:`UpstreamTarget`
        also says which TLS settings); then ``upstream_connected`` or ``upstream_failed`` is
        called. Reading from the client pauses until then."""

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

    def hold(self, token: int, requests: list[dict[str, Any]], wait: float) -> None:
        """Open (or join) an approval request for each of ``requests`` (principal, client,
        operation, resource, summary, reason, approval) and wait up to ``wait`` seconds for their
        decisions; then ``held(token, outcomes)``, one per request: ``{"id", "status":
        approved | denied | pending | unavailable, "approvers", "by", "reason"}``. A connection
        that closes abandons its wait, never the approval requests."""

    def offload(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run ``work()`` off the reactor thread (CPU-bound and pure: it must not touch the
        connection), then ``done(result)`` back on it; ``result`` is the exception if
        ``work`` raised one. Calls to ``done`` may come in any order."""


def approval_decision(outcome: dict[str, Any]) -> Decision:
    """The deny that stands for an approve decision once its approval request is known (an
    outcome of :meth:`ConnectionIO.hold`): not approved in time, denied, or approved while the
    policy still asks (decided again with the grant; ``{"status": "unheld"}``: an approve for an
    operation that was not held). Its reason is the protocol's authorization error message: it
    names the approval request and, with ``approvals.page_url``, where to find it."""
    rid, status = outcome.get("id", "?"), outcome.get("status")
    if status == "approved":
        return Decision("deny", reason=f"approval request {rid} was approved, but the policy still asks for approval "
                                       "with the grant in its input (does it allow on input.grants?); denied")
    if status == "denied":
        return Decision("deny", reason=f"approval request {rid} was denied by {', '.join(outcome.get('by') or ()) or '?'}: "
                                       f"{outcome.get('reason') or 'no reason given'}")
    if status == "unheld":
        return Decision("deny", reason="the policy asks for approval of an operation it did not ask about when "
                                       "this request was held; denied, retry")
    if status in ("pending", "expired"):
        return Decision("deny", reason=f"{outcome.get('message') or f'approval required: request {rid} is {status}'}; "
                                       "retry once it is approved")
    return Decision("deny", reason=f"approval required, but no approval request could be opened: "
                                   f"{outcome.get('reason') or status}; denied, fail closed")


class Connection(Protocol):
    """A sans-I/O connection core: one per client connection, made by the adapter. It takes
    bytes and results in, and gives bytes and requests out through its :class:`ConnectionIO`.

    A core may also offer ``passthrough_next(read) -> bool``, ``passthrough_left(read) -> int``,
    ``passthrough_view() -> memoryview | None`` and ``passed_through(n, queued, read)``: which of
    the broker's next bytes go to the client unchanged, so the shell may move them itself, and
    where it copies those the core reads (the Kafka core does, ``gatekeeper/kafka/responses.py``;
    the shell splices them, ``gatekeeper/proxy/splicing.py``). A core without them is relayed as
    it reads."""

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

    def held(self, token: int, outcomes: list[dict[str, Any]]) -> None: ...

    def drain(self) -> bool:
        """Gatekeeper is shutting down (the shell no longer reads from the client): close the
        connection and return True if no request taken is still unanswered, else return False
        (asked again shortly, until the shutdown grace ends)."""


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
    masking: Any = None  # gatekeeper.masking.Masking: compiles mask decisions (None: a mask is a deny)
    # The live time-boxed grants (from approvals) of a principal at a time: policy inputs carry them.
    grants_for: Callable[[Any, float], list[dict[str, Any]]] = lambda principal, now: []
    audit: Any = None  # gatekeeper.audit.AuditTrail: record(kind, fields), reserve(); None: no audit trail
    policy_revision: Callable[[], str | None] = lambda: None  # digest of the policies and data in force
    # For adapters that serve a listener themselves (``server_factory``): the reactor, and the
    # policy engine's ``decide_many(inputs) -> Deferred[list[Decision]]`` (None: nothing can be
    # decided, so such an adapter must deny everything).
    reactor: Any = None
    decide_many: Callable[[list[dict[str, Any]]], Any] | None = None


class ProtocolAdapter(Protocol):
    """An entry point in ``gatekeeper.adapters``: ``Adapter(services)`` then, per client
    connection, ``connection(listener, slot, io)``. ``slot`` is the index of the listener's
    broker port the client connected to, or None for the bootstrap port.

    Two optional class attributes, read when the config is loaded (before the adapter is
    constructed): ``listener_options_schema``, a JSON Schema (draft 2020-12) for the listener's
    ``options`` (absent: the adapter takes none), and ``listener_upstream`` (default False): True
    when the adapter honours a listener's own ``upstream`` (``ListenerConfig.upstream_servers``)
    instead of the top-level upstream section. A third, ``uses_upstream`` (default True): False
    for an adapter whose listeners reach their brokers through their ``options`` alone (the
    ``pulsar-admin`` adapter): such a listener takes no ``upstream`` and needs no top-level one.

    An adapter that speaks a request/response protocol of its own (HTTP) may instead provide
    ``server_factory(listener, slot)``: a Twisted protocol factory the gateway listens with on
    the listener's bind port (slot None) and each broker port (slot i), in place of the
    connection shell; ``connection`` is then never called. Such an adapter decides through
    ``AdapterServices.decide_many`` and counts nothing in the gateway's connection limits.

    An adapter may also have ``reload()``, called on SIGHUP (with the policy reload): it re-reads
    the adapter's own secrets, keeps the previous ones when that fails, and returns one
    ``{"name", "result": "loaded" | "failed", "error"?}`` per secret for the audit trail (never
    a value); connections opened afterwards use the new ones."""

    name: str

    def connection(self, listener: Any, slot: int | None, io: ConnectionIO) -> Connection: ...


# -- maskers and detectors -----------------------------------------------------------------------
#
# A masker (entry-point group ``gatekeeper.maskers``) replaces a sensitive value; a detector
# (``gatekeeper.detectors``) finds sensitive spans in text. Both are classes with a JSON Schema
# for their options, constructed once per distinct options (when a policy revision's mask rules
# are compiled, never per record) as ``Cls(options, context)``, then called for every record.
# They are pure: no I/O, no clock, no state that changes between calls. ``docs/plugins.md`` is
# the author's guide.

JsonScalar: TypeAlias = str | int | float | bool | None
JsonValue: TypeAlias = JsonScalar | list[Any] | dict[str, Any]
Span: TypeAlias = tuple[int, int]


class Drop(enum.Enum):
    """The type of :data:`DROP`."""

    DROP = "drop"

    def __repr__(self) -> str:
        return "DROP"


DROP = Drop.DROP
"""Returned by ``Masker.mask_value``: remove the field from its object (or the element from its
array) instead of replacing it."""


class MaskPluginError(Exception):
    """Raised by a masker or detector. From ``__init__``: options it cannot accept beyond what its
    schema says (the rules fail to compile, so the decision becomes a deny). From ``mask_value``,
    ``mask_text`` or ``find``: a value it cannot handle (the rule's ``on_error`` applies).

    Gatekeeper prefixes the plugin's kind and name. The message must never contain the value
    being masked: record-time messages are not shown for that reason, only the plugin's name."""


@attrs.frozen
class MaskingContext:
    """What Gatekeeper hands a masker or detector besides its options.

    ``name`` is the name the plugin was registered (and is used) under; ``hash_key`` the secret
    from ``masking.hash_key_file`` / ``masking.hash_key_env`` (read once at config load), or
    None when none is configured: a plugin that needs it raises MaskPluginError."""

    name: str
    hash_key: bytes | None = attrs.field(default=None, repr=False)


class Masker(Protocol):
    """A class in entry-point group ``gatekeeper.maskers``: ``Masker(options, context)``.

    ``options`` has been validated against ``options_schema`` (a JSON Schema, draft 2020-12) and
    is ``{}`` when the rule gives none. ``masks_containers`` (optional, default False): False, a rule
    that selects an object or array masks each scalar beneath it; True, the object or array itself
    is passed to ``mask_value`` (the built-in ``null`` and ``drop`` do this).
    """

    options_schema: ClassVar[Mapping[str, Any]]
    masks_containers: ClassVar[bool]

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None: ...

    def mask_value(self, value: JsonValue) -> JsonValue | Drop:
        """The replacement for one JSON value (a field, an array element, or a string that a
        detector matched whole), or DROP. Keep the document valid JSON: return JSON types only
        (a masked number may well become a string: ``"****"``)."""

    def mask_text(self, text: str) -> str:
        """The replacement for a span of text that a detector found (``""`` removes it)."""


class Detector(Protocol):
    """A class in entry-point group ``gatekeeper.detectors``: ``Detector(options, context)``,
    options validated against ``options_schema`` as for a masker.

    ``find`` is called once per string of a document (each string value, object key and integer
    of a JSON value, or the whole value when it is text). ``accepts_joined_text`` (optional,
    default False) True lets Gatekeeper call it once per document instead, with the strings
    joined by ``"\\x00"``: faster, and right only for a detector whose matches never depend on
    where the text starts or ends (no ``^``, ``$`` or ``\\A``) and never contain ``"\\x00"``.
    """

    options_schema: ClassVar[Mapping[str, Any]]
    accepts_joined_text: ClassVar[bool]

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None: ...

    def find(self, text: str) -> Iterable[Span]:
        """The ``(start, end)`` character offsets of each sensitive span in ``text``, in any
        order (overlapping spans are merged)."""


# -- notifiers -----------------------------------------------------------------------------------
#
# A notifier (entry-point group ``gatekeeper.notifiers``) tells people that an approval request
# waits, was decided, or that a grant was revoked: a chat message, a webhook, a ticket. It is
# configured in ``approvals.notifiers`` and constructed once at start as
# ``Notifier(options, context)``. ``docs/plugins.md`` is the author's guide.


@attrs.frozen
class NotifierContext:
    """What Gatekeeper hands a notifier besides its options: the name it is configured under,
    the reactor (for timers and network clients: a notifier never blocks it), the config file's
    directory (for relative paths in its options, None when unknown), and the approver page's
    public address (``approvals.page_url``, or None)."""

    name: str
    reactor: Any
    base: Path | None = None
    page_url: str | None = None

    def path(self, value: str) -> Path:
        """A path from the options: absolute as written, else relative to the config file."""
        p = Path(value)
        return p if p.is_absolute() or self.base is None else self.base / p


class Notifier(Protocol):
    """A class in entry-point group ``gatekeeper.notifiers``: ``Notifier(options, context)``.

    ``options`` are the keys of its ``approvals.notifiers`` entry other than ``name`` and
    ``events``, validated against ``options_schema`` (JSON Schema, draft 2020-12) when the config
    is loaded. ``__init__`` may read files named in the options (it runs once, at start) and
    raises ``ValueError`` for options it cannot use (a start-up error naming the notifier).

    ``notify`` is called on the reactor thread for each event the entry subscribes to:
    ``{"type": "request_opened" | "request_decided" | "grant_revoked", "at": RFC 3339,
    "request": {...}, "grant": {...}, "url": the request on the approver page}`` (``request``
    for request events, ``grant`` when one was made or revoked, ``url`` with ``page_url``).
    It must return at once: None, or a Deferred that fails when the notification could not be
    delivered after the notifier's own retries (Gatekeeper logs and counts that, and nothing
    else depends on it; the Deferred is cancelled when Gatekeeper stops).
    """

    options_schema: ClassVar[Mapping[str, Any]]

    def __init__(self, options: Mapping[str, Any], context: NotifierContext) -> None: ...

    def notify(self, event: Mapping[str, Any]) -> Any: ...


# -- audit sinks ---------------------------------------------------------------------------------
#
# An audit sink (entry-point group ``gatekeeper.audit_sinks``) stores the audit trail's records:
# the built-in ``file`` (JSON Lines segments in a directory) and ``kafka`` (a topic on the
# upstream cluster), or a third party's. Gatekeeper chains and signs the records; the sink only
# stores lines. Every method runs on the trail's writer thread, one call at a time, and may
# block (the reactor never waits on a sink). ``docs/plugins.md`` is the author's guide.


class AuditSinkError(Exception):
    """Raised by a sink that cannot store records now (disk full, broker unreachable …): the
    writer retries the same lines with backoff, and the trail is unavailable meanwhile. The
    message names what failed and never holds record data or a secret."""


@attrs.frozen
class AuditHead:
    """The last record of a chain: the next record's ``seq`` is ``seq + 1``, its ``prev`` ``hash``."""

    seq: int
    hash: str


@attrs.frozen
class AuditOpened:
    """What ``AuditSink.open`` found: the chain to write (``chain``, ``[A-Za-z0-9_.@-]+``) and its
    head when the sink continues a chain it already holds (None: a new chain, from seq 0).
    ``repaired`` says what the sink had to cut off to continue (e.g. a torn last line after a
    crash: ``{"segment", "torn_bytes", "sha256"}``); it goes into the signed start checkpoint."""

    chain: str
    head: AuditHead | None = None
    repaired: Mapping[str, Any] | None = None


@attrs.frozen
class AuditLine:
    """One chained record as a sink stores it: ``data`` is its canonical JSON line (newline
    included) and must be stored byte for byte. ``key`` is its partitioning key (the session
    id, or the chain for records of no session). ``last_in_segment``: the writer closed the
    segment with this record (a rotate checkpoint); the next line starts a new one."""

    chain: str
    seq: int
    kind: str
    time: float  # seconds since the epoch
    key: bytes
    data: bytes
    last_in_segment: bool = False


@attrs.frozen
class SegmentPolicy:
    """Segments a sink wants the writer to close: past ``max_bytes`` or older than ``max_age``
    seconds. The trail closes each with a signed rotate checkpoint."""

    max_bytes: int
    max_age: float


@attrs.frozen
class AuditSinkContext:
    """What Gatekeeper hands a sink besides its options: the name it is configured under, the
    instance id (``audit.instance``), the config file's directory (for relative paths), the
    upstream section (``gatekeeper.config.UpstreamConfig``: bootstrap servers, SASL and TLS
    settings) and a callable returning Gatekeeper's own broker credentials in force
    (``(mechanism, username, password)`` or None; re-read on reload)."""

    name: str
    instance: str
    base: Path | None = None
    upstream: Any = None
    credentials: Callable[[], Any] = lambda: None

    def path(self, value: str) -> Path:
        """A path from the options: absolute as written, else relative to the config file."""
        p = Path(value)
        return p if p.is_absolute() or self.base is None else self.base / p


class AuditSink(Protocol):
    """A class in entry-point group ``gatekeeper.audit_sinks``: ``Sink(options, context)``.

    ``options`` (``audit.options`` in the config for a plugin sink) are validated against
    ``options_schema`` (JSON Schema, draft 2020-12) when the config is loaded; ``__init__``
    raises ``ValueError`` for options it cannot use. ``segments`` is a SegmentPolicy or None.

    ``open()`` prepares the sink and returns an AuditOpened; ``write(lines)`` stores lines in
    order and returns once they are as durable as the sink promises, or raises AuditSinkError.
    After a failure the writer calls ``write`` again with the same lines first (and maybe
    more): the sink must not store a line twice in a way a reader cannot tell (a file sink
    cuts off what it wrote of the failed call; a sink that cannot may repeat whole lines, which
    readers drop as exact duplicates). ``idle()`` is called when there is nothing to write
    (at least every half second): time-based work such as an fsync. ``close()`` at stop.
    """

    options_schema: ClassVar[Mapping[str, Any]]
    segments: SegmentPolicy | None

    def __init__(self, options: Mapping[str, Any], context: AuditSinkContext) -> None: ...

    def open(self) -> AuditOpened: ...

    def write(self, lines: Sequence[AuditLine]) -> None: ...

    def idle(self) -> None: ...

    def close(self) -> None: ...
