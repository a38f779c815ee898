"""The client side of the proxy: one ClientProtocol per client connection.

It moves bytes and Deferreds only. Decoding, operations and rewriting belong to the adapter;
ordering lives in ``_Entry`` queues: requests are forwarded in arrival order once decided, and
responses go back in request order even when some are answered by Gatekeeper itself.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from gatekeeper.api import Decision, Operation, Principal
from gatekeeper.identity.sasl_session import SaslSession
from gatekeeper.kafka import enforce
from gatekeeper.kafka.adapter import DecodedRequest
from gatekeeper.kafka.codec import CodecError, UnsupportedApi, encode_body
from gatekeeper.kafka.framing import FrameDecoder, FrameError
from gatekeeper.kafka.operations import UnresolvedTopicIds
from gatekeeper.policy.input import SessionInfo, build_input, new_session_id
from gatekeeper.proxy.tls import certificate_principal
from gatekeeper.proxy.upstream import UpstreamProtocol
from gatekeeper.ratelimit import RepeatBackoff, TokenBucket

if TYPE_CHECKING:
    from gatekeeper.config import ListenerConfig
    from gatekeeper.proxy.gateway import Gateway
    from gatekeeper.values import HostPort

__all__ = ["ClientProtocol"]

log = Logger()
_CID = struct.Struct(">i")
METADATA = 3
SASL_HANDSHAKE, API_VERSIONS, SASL_AUTHENTICATE = 17, 18, 36
# Protocol negotiation (ApiVersions, SaslHandshake, SaslAuthenticate) is decoded and logged like
# everything else but not put to the policy: Kafka authorizes none of it, and a client must be
# able to connect to be told what it may not do. Gatekeeper itself answers SASL (identity issue).
_NEGOTIATION = frozenset({17, 18, 36})
_NEGOTIATED = Decision(action="allow", reason="protocol negotiation is not subject to policy")
_INTERNAL_CORRELATION_BASE = -(2**31)  # never used by clients, which count up from 0
_WRITE_BUFFER_PAUSE = 4 * 1024 * 1024  # bytes queued for a peer before its source is paused
_DENIAL_THROTTLE_BASE = 0.05  # seconds: the first repeat of a denial asks the client to wait this long
_DENIAL_REPEAT_WINDOW = 1.0  # seconds: the same denial again within this is a repeat


def _no_delay(transport: Any) -> None:
    """Kafka is request/response with small requests: Nagle's algorithm would hold them back."""
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        set_no_delay(True)


class _Entry:
    """One request on its way through: decided, forwarded, answered."""

    __slots__ = ("decided", "filter_listing", "forward", "internal", "merge", "outgoing", "request", "response", "sent")

    def __init__(self, request: DecodedRequest | None, internal: bool = False) -> None:
        self.request = request
        self.internal = internal
        self.decided = False
        self.forward = False
        self.sent = False
        self.response: bytes | None = None
        self.outgoing: bytes | None = None  # what goes to the broker (original bytes unless split)
        self.merge: Any = None  # adds denied entities' errors to a split request's response
        self.filter_listing: enforce.Listing | None = None  # drop listed resources the principal may not see

    @property
    def processed(self) -> bool:
        """Its response must be decoded (rewritten, merged or filtered) before the client sees it."""
        return self.merge is not None or self.filter_listing is not None


class ClientProtocol(Protocol):
    def __init__(self, gateway: Gateway, listener: ListenerConfig, slot: int | None) -> None:
        self.gateway = gateway
        self.listener = listener
        self.slot = slot
        self.decoder = FrameDecoder(gateway.config.limits.max_frame_bytes)
        self.responses = FrameDecoder(gateway.config.limits.max_response_frame_bytes)
        self._stream_left = 0  # bytes of a response being passed through as it arrives
        self.upstream: UpstreamProtocol | None = None
        self.closing = False
        self._order: deque[_Entry] = deque()  # arrival order, for responses
        self._undecided: deque[_Entry] = deque()  # arrival order, not yet forwarded
        self._sent: deque[_Entry] = deque()  # send order, awaiting the broker's response
        self._waiting_for_ids: list[_Entry] = []
        self._pending_upstream: list[bytes] = []
        self._internal_cid = _INTERNAL_CORRELATION_BASE
        self.session: SessionInfo | None = None
        self.peer = "?"
        auth = listener.authentication
        identity = gateway.identity
        self.sasl = SaslSession(auth.mechanisms, identity) if auth is not None and identity is not None else None
        self.auth_required = auth is not None and auth.required
        self.principal: Principal | None = None  # set by SASL
        self._expiry: Any = None
        self._raw_sasl_next = False
        limits = gateway.config.limits
        # A client that repeats a refused request without backing off: asked to wait (throttle
        # time) on each repeat, and disconnected past a rate of denied requests.
        self._denial_budget = TokenBucket(limits.denied_requests_per_second, limits.denied_requests_burst)
        self._denial_backoff = RepeatBackoff(_DENIAL_THROTTLE_BASE, limits.denial_throttle_max, _DENIAL_REPEAT_WINDOW)

    # -- connection lifecycle -------------------------------------------------------------

    def connectionMade(self) -> None:
        _no_delay(self.transport)
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        self.peer = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"
        now = self.gateway.clock.seconds()
        self.session = SessionInfo(new_session_id(now), now, getattr(peer, "host", "?"))
        self.gateway.connection_opened(self)
        target = self._upstream_address()
        if target is None:
            return
        self.transport.pauseProducing()  # type: ignore[union-attr]
        d = self.gateway.connect_upstream(target, self)
        d.addCallbacks(self._upstream_connected, self._upstream_connect_failed, errbackArgs=(target,))

    def _upstream_address(self) -> HostPort | None:
        cluster = self.gateway.cluster
        if self.slot is None:
            return self.gateway.next_bootstrap()
        node = cluster.node_at_slot(self.slot)
        address = None if node is None else cluster.address_of(node)
        if address is None:
            self._close(f"no broker is known for port slot {self.slot} yet; bootstrap again")
        return address

    def _upstream_connected(self, upstream: UpstreamProtocol) -> None:
        if self.closing:
            upstream.transport.loseConnection()  # type: ignore[union-attr]
            return
        self.upstream = upstream
        # Backpressure both ways: a slow reader pauses the other side's reads. The pause
        # threshold is raised from Twisted's 64 KiB so a large Fetch response keeps flowing
        # while the client drains it, instead of stop-and-go at every 64 KiB.
        for t in (self.transport, upstream.transport):
            if hasattr(t, "bufferSize"):
                t.bufferSize = _WRITE_BUFFER_PAUSE  # type: ignore[union-attr]
        self.transport.registerProducer(upstream.transport, True)  # type: ignore[union-attr]
        upstream.transport.registerProducer(self.transport, True)  # type: ignore[union-attr]
        pending, self._pending_upstream = self._pending_upstream, []
        if pending:
            upstream.transport.writeSequence(pending)  # type: ignore[union-attr]
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def _upstream_connect_failed(self, failure: Failure, target: HostPort) -> None:
        self.gateway.metrics.inc("gatekeeper_upstream_errors_total", kind="connect")
        self._close(f"cannot reach broker {target}: {failure.getErrorMessage()}")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self.closing and self.decoder.buffered:
            self.gateway.metrics.inc("gatekeeper_rejected_total", reason="truncated")
            log.warn(
                "connection from {peer} (listener {listener}, session {session}) ended inside a "
                "frame: {n} bytes of an incomplete request dropped",
                peer=self.peer,
                listener=self.listener.name,
                session=self.session.id if self.session else "-",
                n=self.decoder.buffered,
            )
        self.closing = True
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self.gateway.connection_closed(self)
        if self.upstream is not None and not self.upstream.closed:
            self.upstream.transport.loseConnection()  # type: ignore[union-attr]

    def upstream_lost(self, reason: Failure | None) -> None:
        if not self.closing:
            self.gateway.metrics.inc("gatekeeper_upstream_errors_total", kind="lost")
            why = reason.getErrorMessage() if reason is not None else "closed"
            self._close(f"broker connection closed ({why})")

    def upstream_failed(self, why: str) -> None:
        self.gateway.metrics.inc("gatekeeper_upstream_errors_total", kind="protocol")
        self._close(why)
        if self.upstream is not None:
            self.upstream.transport.abortConnection()  # type: ignore[union-attr]

    def _close(self, why: str, *, rejected: str | None = None) -> None:
        """Close this client's connection (only this one) with a log line naming the client."""
        if self.closing:
            return
        self.closing = True
        if rejected:
            self.gateway.metrics.inc("gatekeeper_rejected_total", reason=rejected)
        log.warn(
            "closing connection from {peer} (listener {listener}, session {session}): {why}",
            peer=self.peer,
            listener=self.listener.name,
            session=self.session.id if self.session else "-",
            why=why,
        )
        self.transport.loseConnection()  # type: ignore[union-attr]

    # -- requests -------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        self.gateway.metrics.inc("gatekeeper_bytes_total", len(data), direction="from_client")
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
        adapter = self.gateway.adapter
        try:
            request = adapter.decode(raw)
        except UnsupportedApi as e:
            self._close(f"refused request: {e}", rejected="unsupported_api")
            return
        except CodecError as e:
            self._close(f"malformed request: {e}", rejected="malformed")
            return
        self.gateway.metrics.inc("gatekeeper_requests_total", api=request.api_name)
        if request.trailing:
            self.gateway.metrics.inc("gatekeeper_trailing_bytes_total", request.trailing, api=request.api_name)
        key = request.header.api_key
        if self.sasl is not None and key in (SASL_HANDSHAKE, SASL_AUTHENTICATE):
            self.gateway.inputs_decoded(self._inputs(request, self.gateway.adapter.operations(request)))
            entry = _Entry(request)
            self._order.append(entry)
            entry.decided = True
            self._undecided.append(entry)
            if key == SASL_HANDSHAKE:
                body = self.sasl.handshake(request.body, request.header.api_version)
                entry.response = self.gateway.adapter.response_header(request) + encode_body(body, request.header.api_version)
                self._raw_sasl_next = request.header.api_version == 0 and body.error_code == 0
                self._advance()
            else:
                self._authenticate(entry, request.body.auth_bytes, request.header.api_version)
            return
        if self.auth_required and self.principal is None and key != API_VERSIONS:
            self._close(f"{request.api_name} before authentication: refused", rejected="unauthenticated")
            return
        entry = _Entry(request)
        if request.expects_response:
            self._order.append(entry)
        self._undecided.append(entry)
        if request.local_response is not None:
            entry.decided, entry.response = True, request.local_response
            self._advance()
            return
        self._decide(entry)

    def _authenticate(self, entry: _Entry | None, auth_bytes: bytes, version: int) -> None:
        assert self.sasl is not None and self.session is not None
        now = self.gateway.clock.seconds()
        outcome = self.sasl.authenticate(bytes(auth_bytes), version, now)
        token = outcome.token
        if token is None:
            self.gateway.metrics.inc("gatekeeper_authentications_total", result="refused")
            log.warn("authentication refused for {peer} (listener {listener}, session {session}): {reason}",
                     peer=self.peer, listener=self.listener.name, session=self.session.id, reason=outcome.reason)
            delay = self.listener.authentication.failure_delay if self.listener.authentication else 0.2
            self.transport.pauseProducing()  # type: ignore[union-attr]
            self.gateway.reactor.callLater(delay, self._refuse, entry, outcome.response, version)
            return
        if self.principal is not None and token.principal.sub != self.principal.sub:
            self._close(f"re-authenticated as {token.principal.sub!r}, not {self.principal.sub!r}: refused", rejected="reauth_subject")
            return
        first = self.principal is None
        self.principal = token.principal
        self.session = attrs.evolve(self.session, principal=token.principal)
        self.gateway.metrics.inc("gatekeeper_authentications_total", result="ok" if first else "reauthenticated")
        log.info("{what} {sub} ({mech}) from {peer}, session {session}, token valid for {secs:.0f}s",
                 what="authenticated" if first else "re-authenticated", sub=token.principal.sub,
                 mech=token.principal.mechanism, peer=self.peer, session=self.session.id, secs=token.expires_at - now)
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = self.gateway.reactor.callLater(max(0.0, token.expires_at - now), self._expired)
        if entry is None:  # SaslHandshake v0: the answer is a bare frame
            self.transport.write(struct.pack(">i", 0))  # type: ignore[union-attr]
            return
        assert entry.request is not None
        entry.response = self.gateway.adapter.response_header(entry.request) + encode_body(outcome.response, version)
        self._advance()

    def _refuse(self, entry: _Entry | None, response: Any, version: int) -> None:
        if self.closing:
            return
        if entry is not None and entry.request is not None:
            entry.response = self.gateway.adapter.response_header(entry.request) + encode_body(response, version)
            self._advance()
        self._close("authentication failed", rejected="authentication")

    def _expired(self) -> None:
        self._close("token expired and the client did not re-authenticate (KIP-368)", rejected="expired")

    def _decide(self, entry: _Entry, *, probed: bool = False) -> None:
        request = entry.request
        assert request is not None and self.session is not None
        try:
            # After a metadata probe, ids the broker does not know either are decided under an
            # ``unknown-topic-id:`` name and forwarded if allowed: the broker answers UNKNOWN_TOPIC_ID.
            ops = self.gateway.adapter.operations(request, strict=not probed)
        except UnresolvedTopicIds as e:
            self._resolve_topic_ids(entry, e)
            return
        inputs = self._inputs(request, ops)
        self.gateway.inputs_decoded(inputs)
        if request.header.api_key in _NEGOTIATION:
            d = defer.succeed([_NEGOTIATED] * len(inputs))
        else:
            d = self.gateway.engine.decide_many(inputs)
        d.addCallback(self._decided, entry, ops, inputs)
        d.addErrback(self._decision_failed, entry)

    def _inputs(self, request: DecodedRequest, ops: list[Operation]) -> list[dict[str, Any]]:
        assert self.session is not None
        h = request.header
        session = self.session
        if self.principal is None and self.sasl is None and self.listener.tls is not None and self.listener.tls.client_ca_file:
            self.principal = certificate_principal(self.transport)
        principal = self.principal or self.gateway.principal_for(h.client_id)
        if principal is not session.principal:
            session = self.session = attrs.evolve(session, principal=principal)
        now = self.gateway.clock.seconds()
        return [
            build_input(op, api_key=h.api_key, api_name=request.spec.name, api_version=h.api_version,
                        client_id=h.client_id, session=session, now=now)
            for op in ops
        ]

    def _decided(self, decisions: list[Decision], entry: _Entry, ops: list[Operation], inputs: list[dict[str, Any]]) -> None:
        if self.closing:
            return
        request = entry.request
        assert request is not None
        metrics = self.gateway.metrics
        now = self.gateway.clock.seconds()
        refused: list[tuple[str, str, str]] = []
        for decision, policy_input in zip(decisions, inputs, strict=True):
            metrics.inc("gatekeeper_decisions_total", action=decision.action, operation=policy_input["operation"])
            if not decision.allowed:
                self._log_denial(decision, policy_input, now)
                refused.append((policy_input["operation"], policy_input["resource"]["type"], policy_input["resource"]["name"]))
        throttle_ms = 0
        if refused:
            if not self._denial_budget.take(now):
                limits = self.gateway.config.limits
                self._close(
                    f"more than {limits.denied_requests_per_second:g} denied requests a second (burst "
                    f"{limits.denied_requests_burst}): the client retries refused requests without backing off",
                    rejected="denial_flood",
                )
                return
            throttle_ms = int(1000 * self._denial_backoff.delay((request.header.api_key, tuple(refused)), now))
            if throttle_ms:
                metrics.inc("gatekeeper_denials_throttled_total", api=request.api_name)
        outcome = enforce.plan(request, ops, decisions, self.gateway.cluster.topic_name, throttle_ms)
        if isinstance(outcome, enforce.Close):
            self._close(outcome.reason, rejected="policy")
            return
        entry.decided = True
        if isinstance(outcome, enforce.Respond):
            entry.response = self.gateway.adapter.response_header(request) + outcome.body
        else:
            entry.forward = True
            entry.outgoing = outcome.frame
            if isinstance(outcome, enforce.Partial):
                entry.merge = outcome.merge
            entry.filter_listing = enforce.listing_of(request)
        self._advance()

    def _log_denial(self, decision: Decision, policy_input: dict[str, Any], now: float) -> None:
        """One line per (principal, operation, resource) per interval; the next one counts those
        held back. The decisions metric counts every denial."""
        principal, resource = policy_input["principal"], policy_input["resource"]
        key = (principal["sub"], principal.get("issuer"), policy_input["operation"], resource["type"], resource["name"])
        held = self.gateway.denial_log.admit(key, now)
        if held is None:
            return
        log.info(
            "denied {operation} on {rtype} {rname!r} for {sub} (client {client}, session {session}): {reason}{held_back}",
            operation=policy_input["operation"], rtype=resource["type"], rname=resource["name"], sub=principal["sub"],
            client=policy_input["client"]["id"], session=policy_input["session"]["id"], reason=decision.reason,
            held_back=f" ({held} more like it since the last such line)" if held else "",
        )

    def _decision_failed(self, failure: Failure, entry: _Entry) -> None:
        log.failure("bug: deciding a request failed", failure)
        self._close(f"policy enforcement failed, request refused (fail closed): {failure.getErrorMessage()}", rejected="engine")

    def _resolve_topic_ids(self, entry: _Entry, err: UnresolvedTopicIds) -> None:
        """Ask the broker for all topics' metadata, then decide ``entry`` again."""
        self._waiting_for_ids.append(entry)
        if len(self._waiting_for_ids) > 1:
            return  # a probe is already on its way
        self._internal_cid += 1
        probe = _Entry(None, internal=True)
        self._send_upstream(self.gateway.adapter.metadata_request(self._internal_cid), probe)

    def _advance(self) -> None:
        """Forward decided requests in arrival order; then flush what can be answered."""
        undecided = self._undecided
        while undecided and undecided[0].decided:
            entry = undecided.popleft()
            if entry.forward:
                assert entry.outgoing is not None
                self._send_upstream(entry.outgoing, entry)
        self._flush()

    def _send_upstream(self, payload: bytes, entry: _Entry) -> None:
        entry.sent = True
        if entry.internal or (entry.request is not None and entry.request.expects_response):
            self._sent.append(entry)
        data = [_CID.pack(len(payload)), payload]
        if self.upstream is None:
            self._pending_upstream.extend(data)
        else:
            self.upstream.transport.writeSequence(data)  # type: ignore[union-attr]

    # -- responses ------------------------------------------------------------------------

    def upstream_data(self, data: bytes) -> None:
        """Bytes from the broker. A response that needs no rewriting and is next in line for
        the client is passed through as it arrives (cut-through): no reassembly, no copy of
        large Fetch responses; anything else is reassembled and processed as a whole frame."""
        if self.closing:
            return
        self.gateway.metrics.inc("gatekeeper_bytes_total", len(data), direction="from_broker")
        left = self._stream_left
        if left:
            if len(data) <= left:
                self._stream_left = left - len(data)
                self.transport.write(data)  # type: ignore[union-attr]
                if not self._stream_left:
                    self._flush()
                return
            self.transport.write(data[:left])  # type: ignore[union-attr]
            self._stream_left = 0
            data = data[left:]
            self._flush()
        responses = self.responses
        responses.receive_data(data)
        try:
            while not self.closing and not self._stream_left:
                ids = responses.peek_ids()
                if ids is None:
                    break
                size, cid = ids
                if not self._sent:
                    self.upstream_failed("broker sent a response to no request")
                    return
                entry = self._sent[0]
                if not entry.internal and not entry.processed and self._order and self._order[0] is entry and (
                    not self.gateway.adapter.needs_response_processing(entry.request)  # type: ignore[arg-type]
                ):
                    if size > responses.max_frame_bytes or size < 4:
                        raise FrameError(f"response frame length {size} is out of bounds")
                    if not self._matches(entry, cid):
                        return
                    self._sent.popleft()
                    self._order.popleft()
                    chunk = responses.take(4 + size)
                    self._stream_left = 4 + size - len(chunk)
                    self.transport.write(chunk)  # type: ignore[union-attr]
                    continue
                raw = responses.next_frame()
                if raw is None:
                    break
                self.upstream_frame(raw)
        except FrameError as e:
            self.upstream_failed(f"broker sent an unframeable response: {e}")
            return
        if not self._stream_left:
            self._flush()

    def _matches(self, entry: _Entry, cid: int) -> bool:
        assert entry.request is not None
        if cid != entry.request.header.correlation_id:
            self.upstream_failed(
                f"broker answered correlation id {cid}, expected {entry.request.header.correlation_id}"
            )
            return False
        return True

    def upstream_frame(self, raw: bytes) -> None:
        """One whole response frame that has to be processed before the client sees it."""
        entry = self._sent.popleft()
        (cid,) = _CID.unpack_from(raw, 0)
        if entry.internal:
            self._internal_response(raw)
            return
        request = entry.request
        assert request is not None
        if not self._matches(entry, cid):
            return
        adapter = self.gateway.adapter
        try:
            if not entry.processed:
                entry.response = adapter.process_response(request, raw, self._address_mapper)
                return
            head, body = adapter.decode_response(request, raw)
        except CodecError as e:
            self.upstream_failed(str(e))
            return
        if entry.merge is not None:
            body = entry.merge(body)
        if entry.filter_listing is None:
            entry.response = adapter.finish_response(request, head, body, self._address_mapper)
            return
        self._filter_listing(entry, entry.filter_listing, head, body)

    def _filter_listing(self, entry: _Entry, listing: enforce.Listing, head: bytes, body: Any) -> None:
        """A listing (all topics, groups, transactions) keeps only what the principal may
        describe, as Kafka's own authorizer does, so existence is not leaked."""
        request = entry.request
        assert request is not None
        ops = listing.operations(body)
        if not ops:
            entry.response = self.gateway.adapter.finish_response(request, head, body, self._address_mapper)
            return
        inputs = self._inputs(request, ops)
        self.gateway.inputs_decoded(inputs)

        def filtered(decisions: list[Decision]) -> None:
            listing.keep(body, [d.allowed for d in decisions])
            entry.response = self.gateway.adapter.finish_response(request, head, body, self._address_mapper)
            self._flush()

        d = self.gateway.engine.decide_many(inputs)
        d.addCallback(filtered)
        d.addErrback(self._decision_failed, entry)

    def _internal_response(self, raw: bytes) -> None:
        try:
            self.gateway.adapter.observe_metadata(raw, 12)
        except CodecError as e:
            self.upstream_failed(f"metadata probe failed: {e}")
            return
        waiting, self._waiting_for_ids = self._waiting_for_ids, []
        for entry in waiting:
            self._decide(entry, probed=True)

    def _address_mapper(self, node_id: int, host: str, port: int) -> tuple[str, int] | None:
        slot = self.gateway.cluster.slot_of(node_id)
        if slot is None:
            log.error(
                "broker node {node} has no port in listener {listener}'s broker_ports; widen the range",
                node=node_id,
                listener=self.listener.name,
            )
            return None
        return self.listener.advertised_host, self.listener.broker_ports[slot]

    def _flush(self) -> None:
        order = self._order
        if self._stream_left:
            return
        out: list[bytes] = []
        # Only requests that expect a response are queued, so each waits for its response.
        while order and (response := order[0].response) is not None:
            order.popleft()
            out += (_CID.pack(len(response)), response)
        if out and not self.closing:
            self.transport.writeSequence(out)  # type: ignore[union-attr]
