"""The sans-I/O core of one client connection: Kafka bytes and decisions in, actions out.

It owns everything between the two sockets: framing, SASL at the listener, Gatekeeper's own
SASL to the broker, decoding into operations, asking for decisions, enforcing them, the order
of responses, cut-through of responses that need no rewriting, and the topic-id probe. It
never touches a socket, a Deferred or the reactor: the shell behind :class:`ConnectionIO`
carries its bytes, asks the policy engine and runs its timers.

Ordering: requests are forwarded in arrival order once decided; responses go back in request
order even when some are answered by Gatekeeper itself (``_order``).
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Any

import attrs
from twisted.logger import Logger

from gatekeeper.api import Connection, ConnectionIO, Decision, Operation, approval_decision
from gatekeeper.audit.shapes import principal_fields
from gatekeeper.kafka import enforce
from gatekeeper.kafka.apis import UNITS
from gatekeeper.kafka.apis.base import ApiKey, Denial, Denials, named_topic, withdrawn
from gatekeeper.kafka.apis.consumer_groups import (
    LISTING_MAX_AGE,
    Memberships,
    RefusedRequest,
    TopicListingNeeded,
)
from gatekeeper.kafka.apis.share_groups import Subscriptions
from gatekeeper.kafka.auditing import DecisionMemo, Outcome, RequestDraft
from gatekeeper.kafka.codec import CodecError, UnsupportedApi, encode_body
from gatekeeper.kafka.denials import ErrorResponseUnavailable, error_response
from gatekeeper.kafka.entry import Entry
from gatekeeper.kafka.framing import FrameDecoder, FrameError
from gatekeeper.kafka.login import LoginSide
from gatekeeper.kafka.masking import (
    MASKABLE,
    MaskCounts,
    fetch_mask_keys,
    mask_produce,
    masked_by_topic,
    produce_plans,
)
from gatekeeper.kafka.operations import UnresolvedTopicIds
from gatekeeper.kafka.request import DecodedRequest
from gatekeeper.kafka.responses import ResponseSide
from gatekeeper.kafka.sasl_client import UpstreamAuthenticator
from gatekeeper.kafka.sasl_server import SaslSession
from gatekeeper.kafka.settings import KafkaSettings
from gatekeeper.logsafe import printable
from gatekeeper.masking import MaskingError
from gatekeeper.policy.input import SessionInfo, build_input, new_session_id
from gatekeeper.ratelimit import RepeatBackoff, TokenBucket
from gatekeeper.values import parse_duration

__all__ = ["KafkaConnection", "approval_decision"]

log = Logger(namespace="gatekeeper.proxy.client")
_CID = struct.Struct(">i")
_NEGOTIATED = Decision(action="allow", reason="protocol negotiation is not subject to policy")
_INTERNAL_CORRELATION_BASE = -(2**31)  # never used by clients, which count up from 0
_DENIAL_THROTTLE_BASE = 0.05  # seconds: the first repeat of a denial asks the client to wait this long
_DENIAL_REPEAT_WINDOW = 1.0  # seconds: the same denial again within this is a repeat
_OFFLOAD_BYTES = 64 * 1024  # record bytes to mask from which the work goes to a worker thread


@attrs.define
class ConnectionState:
    """What the enforcement units remember between one connection's requests."""

    consumer_groups: Memberships  # KIP-848 members' subscriptions, regexes and their matches
    share_groups: Subscriptions = attrs.field(factory=Subscriptions)  # share group members' last subscriptions decided on


class KafkaConnection(LoginSide, ResponseSide, Connection):
    def __init__(self, settings: KafkaSettings, listener: Any, slot: int | None, io: ConnectionIO) -> None:
        self.s = settings
        self.listener = listener
        self.slot = slot
        self.io = io
        limits = settings.config.limits
        self.decoder = FrameDecoder(limits.max_frame_bytes)
        self.responses = FrameDecoder(limits.max_response_frame_bytes)
        self._from_client = settings.hot.bytes["from_client"]
        self._from_broker = settings.hot.bytes["from_broker"]
        self.closing = False
        self.peer = "?"
        self.session: SessionInfo | None = None
        self.principal: Any = None  # set by SASL (or a TLS client certificate)
        auth = listener.authentication
        self.sasl = SaslSession(auth.mechanisms, settings.identity) if auth is not None and settings.identity is not None else None
        self.auth_required = auth is not None and auth.required
        if self.auth_required:  # SASL frames are small: nothing bigger is buffered before login
            self.decoder.max_frame_bytes = min(limits.max_unauthenticated_frame_bytes, limits.max_frame_bytes)
        self._login_deadline: Any = None
        self._held = False  # reading paused: too many requests unanswered
        self._upstream_asked = False
        self._raw_sasl_next = False
        self._expiry: Any = None
        self._upstream_ready = False
        self._target: Any = None
        self._upstream_auth: UpstreamAuthenticator | None = None
        self._pending_upstream: list[bytes] = []
        self._stream_left = 0  # bytes of a response being passed through as it arrives
        self._streamed: tuple[Entry, bytearray, int] | None = None  # an audited answer passed through: a buffer the frame fills as it passes, the frame's size
        self._order: deque[Entry] = deque()  # arrival order, for responses
        self._undecided: deque[Entry] = deque()  # arrival order, not yet forwarded
        self._sent: deque[Entry] = deque()  # send order, awaiting the broker's response
        self._waiting_for_ids: list[Any] = []  # what to do once the probe on its way is answered
        self._waiting_for_listing: list[Any] = []  # what to do once the topic listing is answered
        self._probing: set[Any] = set()  # topic ids asked about in the probe on its way
        self._ids_to_probe: set[Any] = set()  # topic ids for the next probe
        self._internal_cid = _INTERNAL_CORRELATION_BASE
        self._decisions: dict[int, Any] = {}  # token -> what to do with the decisions
        self._holds: dict[int, Any] = {}  # token -> what to do when a held request's approvals are known
        # For the audit trail's session records.
        self._requests_seen = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self._audit_principal: tuple[Any, dict[str, Any] | None] | None = None  # (principal, its record fields)
        # Request records whose outcome is known, built and handed to the trail once the client
        # has its answer (_record_due, at the end of _flush): (slot, draft, outcome, latency).
        self._audit_due: list[tuple[Any, RequestDraft, Outcome, float]] = []
        self._audit_decisions = DecisionMemo()
        self._audit_client: dict[str, Any] | None = None
        self._audit_apis: dict[tuple[int, int], dict[str, Any]] = {}  # bounded: API keys and versions the codec knows
        self._close_reason: str | None = None
        self._ended_by = "client"
        self._ended = False
        self._token = 0
        # A client that repeats a refused request without backing off: asked to wait (throttle
        # time) on each repeat, and disconnected past a rate of denied requests.
        self._denial_budget = TokenBucket(limits.denied_requests_per_second, limits.denied_requests_burst)
        self._denial_backoff = RepeatBackoff(_DENIAL_THROTTLE_BASE, limits.denial_throttle_max, _DENIAL_REPEAT_WINDOW)
        # What the enforcement units remember between this connection's requests (OpContext.state).
        self.state = ConnectionState(Memberships(lambda: settings.cluster.topic_listing(settings.clock(), LISTING_MAX_AGE)))

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, peer_host: str, peer_port: int) -> None:
        self.peer = f"{peer_host}:{peer_port}"
        now = self.s.clock()
        self.session = SessionInfo(new_session_id(now), now, peer_host)
        if self.s.audit is not None:
            self.s.audit.record("session_start", {
                "session": self.session.id, "listener": self.listener.name,
                "client": {"address": peer_host, "port": int(peer_port)},
                # The handshake is not done yet here: the certificate's subject is the principal
                # of this session's request records.
                "tls": None if self.listener.tls is None else {"version": None, "cipher": None, "client_certificate": None}})
        if self.slot is None:
            target = self.s.next_bootstrap()
        else:
            node = self.s.cluster.node_at_slot(self.slot)
            target = None if node is None else self.s.cluster.address_of(node)
            if target is None:
                self._close(f"no broker is known for port slot {self.slot} yet; bootstrap again")
                return
        self._target = target
        if self.auth_required:
            # No broker connection (and no SCRAM on the reactor) for a client that has not logged
            # in: it is opened once the client has authenticated, or for the very first
            # ApiVersions Gatekeeper has no answer to yet.
            self._login_deadline = self.io.call_later(self.s.config.limits.authentication_timeout, self._login_timed_out)
            return
        self._connect_upstream()

    def _connect_upstream(self) -> None:
        if not self._upstream_asked and not self.closing:
            self._upstream_asked = True
            self.io.connect_upstream(self._target)

    def upstream_connected(self) -> None:
        credentials = self.s.upstream_credentials()
        if credentials is None:
            self._upstream_is_ready()
            return
        self._upstream_auth = UpstreamAuthenticator(*credentials)
        self.io.to_upstream(self._upstream_auth.start())

    def _upstream_is_ready(self) -> None:
        self._upstream_ready = True
        pending, self._pending_upstream = self._pending_upstream, []
        if pending:
            self.io.to_upstream(pending)

    def upstream_failed(self, reason: str) -> None:
        self.s.metrics.inc("gatekeeper_upstream_errors_total", kind="connect")
        self._close(f"cannot reach broker {self._target}: {reason}")

    def upstream_lost(self, reason: str) -> None:
        if self.closing:
            return
        if not self._upstream_ready:  # during Gatekeeper's own SASL (or TLS) with the broker
            self.upstream_failed(f"the broker closed the connection before it was ready ({reason})")
            return
        self.s.metrics.inc("gatekeeper_upstream_errors_total", kind="lost")
        self._ended_by = "broker"
        self._close(f"broker connection closed ({reason})")

    def client_lost(self) -> None:
        if not self.closing and self.decoder.buffered:
            self.s.metrics.inc("gatekeeper_rejected_total", reason="truncated")
            log.warn(
                "connection from {peer} (listener {listener}, session {session}) ended inside a "
                "frame: {n} bytes of an incomplete request dropped",
                peer=self.peer, listener=self.listener.name, session=self._session_id(), principal=self._principal_name(), n=self.decoder.buffered,
            )
        self.closing = True
        for timer in (self._expiry, self._login_deadline):
            if timer is not None and timer.active():
                timer.cancel()
        self._audit_session_end()

    def _audit_session_end(self) -> None:
        trail = self.s.audit
        if trail is None or self.session is None or self._ended:
            return
        self._ended = True
        unanswered = {"from": "none", "error": "the connection ended before the broker answered"}
        for entry in list(self._sent) + list(self._order):
            self._audit_outcome(entry, unanswered)
        if self._streamed is not None:
            entry, self._streamed = self._streamed[0], None
            self._audit_outcome(entry, {"from": "broker", "error": "the connection ended while the broker's answer was passed on"})
        self._record_due()
        trail.record("session_end", {
            "session": self.session.id, "duration_ms": max(0, int(1000 * (self.s.clock() - self.session.started_at))),
            "requests": self._requests_seen, "bytes": {"from_client": self._bytes_in, "to_client": self._bytes_out},
            "reason": self._close_reason or "the client closed the connection", "ended_by": self._ended_by,
            "principal": principal_fields(self.principal)})

    def drain(self) -> bool:
        if self.closing:
            return True
        if self._order or self._undecided or self._sent or self._stream_left or self._waiting_for_ids:
            return False
        self.closing = True
        self._close_reason = "Gatekeeper shut down"
        self._ended_by = "gatekeeper"
        self.io.close(False)
        return True

    def _write_client(self, data: Any) -> None:
        self._bytes_out += sum(len(d) for d in data)
        self.io.to_client(data)

    def _session_id(self) -> str:
        return self.session.id if self.session else "-"

    def _principal_name(self) -> str | None:
        """The authenticated principal's subject, for log lines' ``principal`` field."""
        principal = self.principal if self.principal is not None else (self.session.principal if self.session else None)
        sub = getattr(principal, "sub", None)
        return printable(sub) if sub else None

    def _close(self, why: str, *, rejected: str | None = None, abort_upstream: bool = False) -> None:
        """Close this client's connection (only this one) with a log line naming the client."""
        if self.closing:
            return
        self.closing = True
        self._close_reason = why
        if self._ended_by == "client":
            self._ended_by = "gatekeeper"
        if rejected:
            self.s.metrics.inc("gatekeeper_rejected_total", reason=rejected)
        log.warn(
            "closing connection from {peer} (listener {listener}, session {session}): {why}",
            peer=self.peer, listener=self.listener.name, session=self._session_id(), principal=self._principal_name(), why=why,
        )
        self.io.close(abort_upstream)
        self._record_due()  # what was answered before the close

    def _upstream_broken(self, why: str) -> None:
        self.s.metrics.inc("gatekeeper_upstream_errors_total", kind="protocol")
        self._close(why, abort_upstream=True)

    # -- requests ----------------------------------------------------------------------------------

    def client_data(self, data: bytes) -> None:
        if self.closing:
            return
        self._from_client.inc(len(data))
        self._bytes_in += len(data)
        self.decoder.receive_data(data)
        try:
            while not self.closing:
                raw = self.decoder.next_frame()
                if raw is None:
                    return
                self._request(raw)
        except FrameError as e:
            self._close(f"bad frame: {e}", rejected="frame")

    def _request(self, raw: bytes) -> None:
        if self._raw_sasl_next:  # after SaslHandshake v0 the token comes as a bare frame
            self._raw_sasl_next = False
            self._authenticate(None, raw, 0)
            return
        try:
            request = self.s.codec.decode(raw)
        except UnsupportedApi as e:
            self._close(f"refused request: {e}", rejected="unsupported_api")
            return
        except CodecError as e:
            self._close(f"malformed request: {e}", rejected="malformed")
            return
        self.s.hot.requests[request.api_name].inc()
        self._requests_seen += 1
        if request.trailing:
            self.s.metrics.inc("gatekeeper_trailing_bytes_total", request.trailing, api=request.api_name)
        key = request.header.api_key
        if self.sasl is not None and key in (ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE):
            self.s.inputs_decoded(self._inputs(request, self.s.codec.operations(request)))
            entry = self._queue(request)
            entry.decided = True
            if key == ApiKey.SASL_HANDSHAKE:
                body = self.sasl.handshake(request.body, request.header.api_version)
                entry.response = self.s.codec.response_header(request) + encode_body(body, request.header.api_version)
                self._raw_sasl_next = request.header.api_version == 0 and body.error_code == 0
                self._advance()
            else:
                self._authenticate(entry, request.body.auth_bytes, request.header.api_version)
            return
        if self.auth_required and self.principal is None and key != ApiKey.API_VERSIONS:
            self._close(f"{request.api_name} before authentication: refused", rejected="unauthenticated")
            return
        entry = self._queue(request)
        if request.local_response is not None:
            entry.decided, entry.response = True, request.local_response
            self._advance()
            return
        if key == ApiKey.API_VERSIONS and self.principal is None and self.auth_required:
            local = self.s.codec.local_api_versions(request)
            if local is not None:
                self.s.inputs_decoded(self._inputs(request, self.s.codec.operations(request)))
                entry.decided, entry.response = True, local
                self._advance()
                return
            self._connect_upstream()
        self._decide(entry)

    def _queue(self, request: DecodedRequest) -> Entry:
        entry = Entry(request)
        entry.received_at = self.s.clock()
        if request.expects_response:
            self._order.append(entry)
        self._undecided.append(entry)
        if len(self._order) >= self.s.config.limits.max_pending_requests and not self._held:
            # The client sends faster than it reads its answers: stop reading until it catches up,
            # so answers Gatekeeper writes itself cannot pile up without bound.
            self._held = True
            self.io.pause_client()
        return entry

    # -- decisions -------------------------------------------------------------------------------

    def _ask(self, inputs: list[dict[str, Any]], then: Any) -> None:
        self._token += 1
        self._decisions[self._token] = then
        self.io.decide(self._token, inputs)

    def decided(self, token: int, decisions: list[Decision]) -> None:
        then = self._decisions.pop(token, None)
        if then is not None and not self.closing:
            try:
                then(decisions)
            except CodecError as e:  # a walked request's body, decoded only now, did not decode
                log.error("bug: a request that was read could not be decoded: {e}", e=e)
                self._close(f"malformed request: {e}", rejected="malformed")

    def decision_failed(self, token: int, reason: str) -> None:
        self._decisions.pop(token, None)
        log.error("bug: deciding a request failed: {reason}", reason=reason)
        self._close(f"policy enforcement failed, request refused (fail closed): {reason}", rejected="engine")

    def _decide(self, entry: Entry) -> None:
        request = entry.request
        assert request is not None
        try:
            try:
                ops = self.s.codec.operations(request, state=self.state)
            except UnresolvedTopicIds as e:
                now = self.s.clock()
                unasked = {i for i in e.ids if not self.s.cluster.known_unknown(i, now)}
                if unasked:
                    self._resolve_topic_ids(lambda: self._decide(entry), unasked)
                    return
                # Ids the broker did not know either when asked are decided under an
                # ``unknown-topic-id:`` name and forwarded if allowed: the broker answers UNKNOWN_TOPIC_ID.
                ops = self.s.codec.operations(request, strict=False, state=self.state)
        except TopicListingNeeded:
            self._list_topics(lambda: self._decide(entry))
            return
        except RefusedRequest as e:
            self._answer_refused(entry, e)
            return
        except CodecError as e:
            self._close(f"malformed request: {request.api_name} {e}", rejected="malformed")
            return
        if request.header.api_key == ApiKey.SHARE_GROUP_HEARTBEAT:
            ops = self.state.share_groups.operations(request.body, ops)
        inputs = self._inputs(request, ops)
        self.s.inputs_decoded(inputs)
        unit = UNITS[request.header.api_key]
        if unit.negotiation:
            self._decided(entry, ops, inputs, [_NEGOTIATED] * len(inputs))
            return
        refusal = unit.guard(request.header.api_version, request.body, self.s.gateway) if unit.guard else None
        if refusal is not None:
            log.warn("refused {api} from {peer} (session {session}), whatever the policy says: {why}",
                     api=request.api_name, peer=self.peer, listener=self.listener.name, session=self._session_id(), principal=self._principal_name(), why=refusal)
            self.s.metrics.inc("gatekeeper_rejected_total", reason="gateway_identity")
            self._decided(entry, ops, inputs, [Decision("deny", reason=refusal)] * len(inputs))
            return
        if not inputs:  # a request naming nothing: nothing to ask the engine (plan answers it)
            self._decided(entry, ops, inputs, [])
            return
        self._ask(inputs, lambda decisions: self._decided(entry, ops, inputs, decisions))

    def _inputs(self, request: DecodedRequest, ops: list[Operation]) -> list[dict[str, Any]]:
        assert self.session is not None
        h = request.header
        session = self.session
        if self.principal is None and self.sasl is None and self.listener.tls is not None and self.listener.tls.client_ca_file:
            self.principal = self.io.peer_principal()
        principal = self.principal or self.s.principal_for_client_id(h.client_id)
        if principal is not session.principal:
            session = self.session = attrs.evolve(session, principal=principal)
        now = self.s.clock()
        grants = self.s.grants_for(principal, now) if ops else []
        return [
            build_input(op, api_key=h.api_key, api_name=request.spec.name, api_version=h.api_version,
                        client_id=h.client_id, session=session, now=now, grants=grants)
            for op in ops
        ]

    def _decided(self, entry: Entry, ops: list[Operation], inputs: list[dict[str, Any]], decisions: list[Decision]) -> None:
        request = entry.request
        assert request is not None
        counted = self.s.hot.decisions
        for decision, policy_input in zip(decisions, inputs, strict=True):
            counted[decision.action, policy_input["operation"]].inc()
        # A topic a regex subscription resolves to is never held for approval: it is left out.
        decisions = [Decision("deny", reason=f"not resolved while it asks for approval: {d.reason}", ttl=d.ttl)
                     if d.action == "approve" and op.request.get("resolving") else d for op, d in zip(ops, decisions, strict=True)]
        if any(d.action == "approve" for d in decisions):
            if entry.approvals is None:
                self._hold(entry, ops, inputs, decisions)
                return
            # Decided again after its approvals: an approve now is the outcome's denial (or a
            # policy that does not allow on the grant it asked for: never held twice).
            decisions = [approval_decision(entry.approvals.get((op.name, op.resource)) or {"status": "unheld"})
                         if d.action == "approve" else d for op, d in zip(ops, decisions, strict=True)]
        self._apply(entry, ops, inputs, decisions)

    def _hold(self, entry: Entry, ops: list[Operation], inputs: list[dict[str, Any]], decisions: list[Decision]) -> None:
        """Decisions that ask for a person's approval: the request waits (later requests on this
        connection wait behind it) until the approval requests are decided or the wait is over."""
        settings = self.s.config.approvals
        if settings is None:
            self._apply(entry, ops, inputs, [
                Decision("deny", reason=f"the policy asks for approval ({d.reason}), but approvals are not configured here; denied")
                if d.action == "approve" else d for d in decisions])
            return
        held = [i for i, d in enumerate(decisions) if d.action == "approve"]
        requests = [{
            "principal": self.session.principal if self.session else None,
            "client": dict(inputs[i]["client"]),
            "operation": ops[i].name,
            "resource": ops[i].resource,
            "summary": dict(inputs[i]["request"]),
            "reason": decisions[i].reason,
            "approval": dict(decisions[i].approval or {}),
        } for i in held]
        waits = [(decisions[i].approval or {}).get("wait") for i in held]
        wait = min([settings.max_wait] + [parse_duration(str(w)) for w in waits if w])

        def resolved(outcomes: list[dict[str, Any]]) -> None:
            for outcome in outcomes:
                self.s.metrics.inc("gatekeeper_held_requests_total", outcome=str(outcome.get("status")))
            entry.approvals = {(ops[i].name, ops[i].resource): outcome for i, outcome in zip(held, outcomes, strict=True)}
            if any(o.get("status") == "approved" for o in outcomes):
                # The grant is in place: the policy decides again with it in the inputs (it may
                # now say mask rather than allow), never a blind forward.
                self._decide(entry)
                return
            self._apply(entry, ops, inputs, [approval_decision(entry.approvals[(op.name, op.resource)])
                                             if d.action == "approve" else d for op, d in zip(ops, decisions, strict=True)])

        self._token += 1
        self._holds[self._token] = resolved
        self.io.hold(self._token, requests, wait)

    def held(self, token: int, outcomes: list[dict[str, Any]]) -> None:
        """The approval requests of a held request: decided, or still pending after the wait."""
        then = self._holds.pop(token, None)
        if then is not None and not self.closing:
            then(outcomes)

    def _apply(self, entry: Entry, ops: list[Operation], inputs: list[dict[str, Any]], decisions: list[Decision]) -> None:
        request = entry.request
        assert request is not None
        if any(d.action == "mask" for d in decisions):
            decisions, plans = self._mask_plans(ops, decisions)
            if plans and request.header.api_key == ApiKey.PRODUCE:
                self._mask_produce(entry, ops, inputs, decisions, plans)
                return
            if plans and request.header.api_key == ApiKey.FETCH:
                entry.mask = fetch_mask_keys(request, plans, self.s.cluster.topic_name)
        self._enforce(entry, ops, inputs, decisions)

    def _mask_plans(self, ops: list[Operation], decisions: list[Decision]) -> tuple[list[Decision], dict[Any, Any]]:
        """Each mask decision compiled into a plan (the operation is then allowed, its records
        masked), or turned into a deny that says why it cannot be applied (fail closed)."""
        out, plans = list(decisions), {}
        for i, (op, d) in enumerate(zip(ops, decisions, strict=True)):
            if d.action != "mask":
                continue
            direction = MASKABLE.get(op.name)
            if direction is None:
                out[i] = Decision("deny", reason=f"the policy said mask ({d.reason}), but {op.name} carries no records to mask; denied, fail closed")
                continue
            if self.s.masking is None:
                out[i] = Decision("deny", reason=f"the policy said mask ({d.reason}), but masking is not available here; denied, fail closed")
                continue
            try:
                plan = self.s.masking.plan(d.mask, direction)
            except MaskingError as e:
                self.s.metrics.inc("gatekeeper_mask_errors_total", kind="bad_decision")
                out[i] = Decision("deny", error="policy_violation", reason=f"the policy's mask cannot be applied: {e}; denied, fail closed")
                continue
            plans[op.resource] = plan
            out[i] = Decision("allow", reason=d.reason, ttl=d.ttl)
        return out, plans

    def _mask_produce(self, entry: Entry, ops: list[Operation], inputs: list[dict[str, Any]], decisions: list[Decision],
                      plans: dict[Any, Any]) -> None:
        """Mask the records of the masked topics, off the reactor when they are large, then
        enforce: a topic whose records cannot be masked is refused (POLICY_VIOLATION)."""
        request = entry.request
        assert request is not None
        body = request.body
        by_topic = produce_plans(body, plans, self.s.cluster.topic_name)
        size = sum(len(p.records or b"") for i in by_topic for p in body.topic_data[i].partition_data)
        limit = self.s.config.limits.max_decompressed_bytes

        def done(result: Any) -> None:
            if self.closing:
                return
            if isinstance(result, BaseException):
                log.error("bug: masking a Produce request failed: {e!r}", e=result)
                self._close(f"masking failed, request refused (fail closed): {type(result).__name__}", rejected="masking")
                return
            self._count_masking(result.counts, "produce")
            entry.masked = masked_by_topic(result.counts)
            for (ti, pi), data in result.records.items():
                body.topic_data[ti].partition_data[pi].records = data
            if result.records:
                entry.request = attrs.evolve(request, normalized=True)
            refused = {named_topic(body.topic_data[ti], self.s.cluster.topic_name): why for ti, why in result.refused.items()}
            out = [Decision("deny", error="policy_violation", reason=refused[op.resource])
                   if op.name == "produce" and op.resource in refused else d for op, d in zip(ops, decisions, strict=True)]
            self._enforce(entry, ops, inputs, out)

        self._offload(size, lambda: mask_produce(body, by_topic, limit), done)

    def _offload(self, size: int, work: Any, done: Any) -> None:
        """Small work runs here and now; large work (a big record set to decompress, mask and
        recompress) on a worker thread, so the reactor keeps serving other connections."""
        if size >= _OFFLOAD_BYTES:
            self.io.offload(work, done)
            return
        try:
            result = work()
        except Exception as e:  # handed to ``done`` like the worker's exceptions
            result = e
        done(result)

    def _count_masking(self, counts: MaskCounts, direction: str) -> None:
        metrics = self.s.metrics
        for topic, n in counts.records.items():
            metrics.inc("gatekeeper_masked_records_total", n, topic=topic, direction=direction)
        for (topic, masker), n in counts.fields.items():
            metrics.inc("gatekeeper_masked_fields_total", n, topic=topic, masker=masker)
        for kind, n in counts.errors.items():
            metrics.inc("gatekeeper_mask_errors_total", n, kind=kind)
        if counts.truncated:
            metrics.inc("gatekeeper_masked_truncated_batches_total", counts.truncated)
        for problem in counts.problems:
            log.error("masking {direction} on connection from {peer} (session {session}): {problem}",
                      direction=direction, peer=self.peer, listener=self.listener.name, session=self._session_id(), principal=self._principal_name(), problem=problem)

    def _enforce(self, entry: Entry, ops: list[Operation], inputs: list[dict[str, Any]], decisions: list[Decision]) -> None:
        request = entry.request
        assert request is not None
        metrics = self.s.metrics
        now = self.s.clock()
        slot = None
        trail = self.s.audit
        if trail is not None and ops:
            # A place in the trail is taken before anything is let through: an operation that
            # could not be recorded does not happen (fail closed).
            slot = trail.reserve()
            if slot is None:
                why = f"audit trail unavailable ({trail.error or 'its queue is full'}): denied until it recovers"
                metrics.inc("gatekeeper_rejected_total", reason="audit_unavailable")
                decisions = [Decision("deny", reason=why, ttl=0.0) for _ in decisions]
        refused: list[tuple[str, str, str]] = []
        for op, decision, policy_input in zip(ops, decisions, inputs, strict=True):
            if not decision.allowed and not withdrawn(op, decision.allowed):
                self._log_denial(decision, policy_input, now)
                refused.append((policy_input["operation"], policy_input["resource"]["type"], policy_input["resource"]["name"]))
        throttle_ms = 0
        if refused:
            if not self._denial_budget.take(now):
                limits = self.s.config.limits
                if slot is not None:
                    slot.release()
                self._close(
                    f"more than {limits.denied_requests_per_second:g} denied requests a second (burst "
                    f"{limits.denied_requests_burst}): the client retries refused requests without backing off",
                    rejected="denial_flood",
                )
                return
            throttle_ms = int(1000 * self._denial_backoff.delay((request.header.api_key, tuple(refused)), now))
            if throttle_ms:
                metrics.inc("gatekeeper_denials_throttled_total", api=request.api_name)
        outcome = enforce.plan(request, ops, decisions, self.s.cluster.topic_name, throttle_ms)
        if slot is not None:
            entry.audit = (slot, self._request_draft(entry, ops, inputs, decisions))
        if isinstance(outcome, enforce.Close):
            self._audit_outcome(entry, {"from": "none", "error": outcome.reason})
            self._close(outcome.reason, rejected="policy")
            return
        entry.decided = True
        if isinstance(outcome, enforce.Respond):
            response = self.s.codec.response_header(request) + outcome.body
            self._audit_outcome(entry, {"from": "gatekeeper"})
            if throttle_ms and UNITS[request.header.api_key].hold_denials:
                # Held for the throttle time (later answers wait behind it, in order).
                self.io.call_later(throttle_ms / 1000, lambda: self._release(entry, response))
            else:
                entry.response = response
        else:
            entry.forward = True
            entry.outgoing = outcome.frame
            if isinstance(outcome, enforce.Partial):
                entry.merge = outcome.merge
            entry.filter_listing = enforce.listing_of(request)
            remember = UNITS[request.header.api_key].remember
            if remember is not None:
                remember(request.header.api_version, request.body, ops, self.state)
            if not request.expects_response:
                self._audit_outcome(entry, {"from": "none"})
        self._advance()

    def _release(self, entry: Entry, response: bytes) -> None:
        """A held denial's answer, once its throttle time is over."""
        if self.closing:
            return
        entry.response = response
        self._flush()

    def _request_draft(self, entry: Entry, ops: list[Operation], inputs: list[dict[str, Any]],
                       decisions: list[Decision]) -> RequestDraft:
        """The request record as it stands when the request is decided: built once the broker
        (or Gatekeeper) has answered and the client has the answer (``_record_due``)."""
        request = entry.request
        assert request is not None and self.session is not None
        h = request.header
        approvals = None
        if entry.approvals:
            waited = max(0, int(1000 * (self.s.clock() - entry.received_at)))
            approvals = []
            for op in ops:
                held = entry.approvals.get((op.name, op.resource))
                approvals.append({"id": held["id"], "status": str(held.get("status")), "waited_ms": waited}
                                 if held is not None and held.get("id") else None)
        principal = self.session.principal
        if self._audit_principal is None or self._audit_principal[0] is not principal:
            # The same (never changed) fields in every record until the principal changes.
            self._audit_principal = (principal, principal_fields(principal))
        # The client's and the API's fields, like the principal's, shared by the records that
        # carry the same (never changed): a connection's client id and API versions rarely do.
        client = self._audit_client
        if client is None or client["id"] != h.client_id:
            client = self._audit_client = {"id": h.client_id, "address": self.session.client_address}
        api = self._audit_apis.get((h.api_key, h.api_version))
        if api is None:
            api = self._audit_apis[(h.api_key, h.api_version)] = {"key": h.api_key, "name": request.api_name,
                                                                   "version": h.api_version}
        fields = {"session": self.session.id, "principal": self._audit_principal[1], "client": client, "api": api,
                  "correlation_id": h.correlation_id}
        revision, memo = self.s.policy_revision(), self._audit_decisions
        return RequestDraft(fields, ops, inputs, decisions, [memo.fields(d, revision) for d in decisions],
                            request.expects_response, entry.masked, approvals)

    def _audit_outcome(self, entry: Entry, outcome: Outcome) -> None:
        """The broker's (or Gatekeeper's) answer to an entry is known: its request record is
        built and recorded once the answer has gone to the client (``_record_due``)."""
        if entry.audit is None:
            return
        slot, draft = entry.audit
        entry.audit = None
        latency = round(1000 * max(0.0, (entry.forwarded_at or self.s.clock()) - entry.received_at), 3)
        self._audit_due.append((slot, draft, outcome, latency))

    def _record_due(self) -> None:
        """Build the request records whose outcome is known and hand them to the trail, in the
        order their outcomes came. A record that cannot be built (a Gatekeeper bug) is recorded
        with the error in place of its outcome: the operation happened."""
        while self._audit_due:
            due, self._audit_due = self._audit_due, []
            for slot, draft, outcome, latency in due:
                if not isinstance(outcome, dict):
                    try:
                        outcome = outcome()
                    except Exception as e:
                        log.failure("bug: the audit outcome of a request in session {session} was not built",
                                    session=self._session_id())
                        outcome = {"from": "broker", "error": f"outcome not read: {type(e).__name__}"}
                slot.record("request", draft.record(outcome, latency))

    def _log_denial(self, decision: Decision, policy_input: dict[str, Any], now: float) -> None:
        """One line per (principal, operation, resource) per interval; the next one counts those
        held back. The decisions metric counts every denial."""
        principal, resource = policy_input["principal"], policy_input["resource"]
        key = (principal["sub"], principal.get("issuer"), policy_input["operation"], resource["type"], resource["name"])
        held = self.s.denial_log.admit(key, now)
        if held is None:
            return
        log.info(
            "denied {operation} on {rtype} {rname!r} for {sub} (client {client}, session {session}): {reason}{held_back}",
            operation=policy_input["operation"], rtype=resource["type"], rname=resource["name"], sub=printable(principal["sub"]),
            client=printable(policy_input["client"]["id"]), session=policy_input["session"]["id"], reason=printable(decision.reason, 1024),
            principal=printable(principal["sub"]), listener=self.listener.name,
            held_back=f" ({held} more like it since the last such line)" if held else "",
        )

    def _resolve_topic_ids(self, then: Any, topic_ids: set[Any]) -> None:
        """Ask the broker for the names of ``topic_ids`` (Metadata by id), then call ``then``
        (decide a request again, filter a response). One probe at a time per connection; ids
        asked for meanwhile go in the next."""
        self._waiting_for_ids.append(then)
        self._ids_to_probe |= topic_ids
        if self._probing:
            return
        self._probing, self._ids_to_probe = self._ids_to_probe, set()
        self._internal_cid += 1
        self._send_upstream(self.s.codec.metadata_request(self._internal_cid, self._probing),
                            Entry(None, internal=self._probe_answered))

    def _list_topics(self, then: Any) -> None:
        """Ask the broker for every topic's name (Gatekeeper's own all-topics Metadata, to
        resolve a regex subscription), then call ``then``. One listing at a time per connection."""
        self._waiting_for_listing.append(then)
        if len(self._waiting_for_listing) > 1:
            return
        self._internal_cid += 1
        self._send_upstream(self.s.codec.listing_request(self._internal_cid), Entry(None, internal=self._listing_answered))

    def _listing_answered(self, raw: bytes) -> None:
        try:
            self.s.codec.observe_listing(raw, self.s.clock())
        except CodecError as e:
            self._upstream_broken(f"topic listing failed: {e}")
            return
        waiting, self._waiting_for_listing = self._waiting_for_listing, []
        for then in waiting:
            then()

    def _answer_refused(self, entry: Entry, refusal: RefusedRequest) -> None:
        """Answer a request with an error of Gatekeeper's own, whatever the policy says (a regex
        it does not resolve), as the broker answers it: nothing is decided or forwarded."""
        request = entry.request
        assert request is not None
        h = request.header
        log.info("refused {api} from {peer} (session {session}): {why}", api=request.api_name, peer=self.peer,
                 session=self._session_id(), why=printable(refusal.message, 1024))
        self.s.metrics.inc("gatekeeper_rejected_total", reason="unresolvable")
        try:
            body = error_response(h.api_key, h.api_version, request.body, Denials.uniform(Denial(refusal.code, refusal.message)))
        except ErrorResponseUnavailable as e:
            self._close(f"{refusal.message}; {e}", rejected="malformed")
            return
        entry.decided = True
        entry.response = self.s.codec.response_header(request) + encode_body(body, h.api_version)
        self._advance()

    def _advance(self) -> None:
        """Forward decided requests in arrival order; then flush what can be answered."""
        undecided = self._undecided
        while undecided and undecided[0].decided:
            entry = undecided.popleft()
            if entry.forward:
                assert entry.outgoing is not None
                entry.forwarded_at = self.s.clock()
                self._send_upstream(entry.outgoing, entry)
        self._flush()

    def _send_upstream(self, payload: bytes, entry: Entry) -> None:
        if entry.internal or (entry.request is not None and entry.request.expects_response):
            self._sent.append(entry)
        data = [_CID.pack(len(payload)), payload]
        if self._upstream_ready:
            self.io.to_upstream(data)
        else:
            self._pending_upstream.extend(data)
