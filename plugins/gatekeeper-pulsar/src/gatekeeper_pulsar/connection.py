"""The sans-I/O core of one Pulsar client connection.

The client's CONNECT is answered here: its token (``auth_method_name: token``) is validated with
Gatekeeper's identity settings, and only then is the broker connection opened, with
Gatekeeper's own credential in a CONNECT of its own (the client's version and feature flags
kept, its credentials and proxy fields never forwarded). After CONNECTED, client commands are
taken in order: pass-through commands are forwarded as their bytes; LOOKUP,
PARTITIONED_METADATA, PRODUCER, SEND, SUBSCRIBE and the rest :mod:`operations` maps are put to
the policy (one or more operations per command, all of which must be allowed) and forwarded as
their bytes when allowed, answered with the command's own error when not. A command that may
make the broker create its topic is decided ``create_topic`` as well when Gatekeeper's own
probe finds the topic missing (a command waiting for its probe is not decided yet). A command
the policy asks a person to approve (any of its operations) is held (the commands after it wait
behind it; PING and PONG do not) until its approval requests are decided or the wait is over;
approved, it is probed and decided again with the grant. From the broker, LOOKUP_RESPONSE and
TOPIC_MIGRATED have their broker addresses rewritten to Gatekeeper's, topic listings are
filtered (:mod:`listing`); the rest is forwarded as its bytes.

With an audit trail, the session's start and end, the login and one ``request`` record per
decided command, with all its operations, go into it (``auditing``); a command is let through
only once its record has a place in the trail, and the record is completed by the broker's
answer.
The client's token is kept to its lifetime by :class:`~gatekeeper_pulsar.client_token.ClientToken`;
the client's AUTH_RESPONSE (its answer to Gatekeeper's refresh challenge) is taken there at once,
never forwarded.

A ``mask`` decision on PRODUCER or SUBSCRIBE allows it and keeps the decision's plan for that
producer or consumer: every SEND of the producer has its payload masked before it goes to the
broker (a payload that cannot be masked is refused), and every MESSAGE the broker sends the
consumer is masked before the client sees it (one that cannot be masked closes that consumer
on both sides: it is never delivered raw, nor skipped without the client knowing). The bytes
are masked by :func:`gatekeeper_pulsar.masking.mask_payload`, large payloads off the reactor,
in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from typing import Any

import attrs
from twisted.logger import Logger

from gatekeeper.api import (
    ANONYMOUS,
    ConnectionIO,
    Decision,
    Operation,
    Principal,
    approval_decision,
)
from gatekeeper.audit.shapes import enforced_fields, principal_fields, token_fields
from gatekeeper.logsafe import printable
from gatekeeper.masking import MaskingError
from gatekeeper.policy.input import SessionInfo, build_input, new_session_id
from gatekeeper.values import HostPort, parse_duration
from gatekeeper_pulsar import auditing, listing
from gatekeeper_pulsar import commands as c
from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.client_token import ClientToken
from gatekeeper_pulsar.framing import Frame, FrameDecoder, FrameError, encode_frame
from gatekeeper_pulsar.masking import MaskedPayload, PayloadRefused, mask_payload
from gatekeeper_pulsar.operations import Classified, classify, first_refusal
from gatekeeper_pulsar.settings import ListenerSettings, PulsarSettings

__all__ = ["PulsarConnection"]

log = Logger()
T = wire.BaseCommand
_QUEUE_PAUSE = 256  # client commands waiting behind a decision before reading pauses
_KEEPALIVE = frozenset({T.PING, T.PONG})  # never wait behind a decision or an approval
_PROBE_IDS = 1 << 63  # request ids of Gatekeeper's own probes (clients count up from 0)
_OFFLOAD_BYTES = 64 * 1024  # payload bytes to mask from which the work goes to a worker thread
_DIRECTION = {"produce": "produce", "consume": "consume"}  # the operations that carry messages


def _client_family(version: str) -> str | None:
    """Which client library a CONNECT's ``client_version`` names, where Gatekeeper knows how it
    takes a SEND_ERROR: ``java`` or ``cpp``; None for any other."""
    v = version.lower()
    if v.startswith("pulsar-java"):
        return "java"
    if v.startswith("pulsar-cpp"):  # the Python client announces itself as this too
        return "cpp"
    return None


@attrs.define
class _Decided:
    """The client command being decided (one at a time; later ones wait in the queue).

    ``classified`` is what :func:`classify` made of it; ``what`` is that as decided (with
    ``create_topic`` when the probe found the topic missing). ``probing``: the request id of
    Gatekeeper's probe it waits for (not decided yet)."""

    token: int
    classified: Classified
    frame: Frame
    cmd: wire.BaseCommand
    received_at: float
    what: Classified = attrs.field()
    policy_inputs: list[dict[str, Any]] = attrs.field(factory=list)
    probing: int | None = None
    held: list[int] = attrs.field(factory=list)  # the operations held for approval (indices)
    decisions: list[Decision] = attrs.field(factory=list)  # as decided when it was held
    # The outcomes of its approval requests once held, by (operation, resource).
    approvals: dict[tuple[str, Any], dict[str, Any]] | None = None
    plan: Any = None  # the mask plan of a PRODUCER, SUBSCRIBE or SEND decided mask
    masked: tuple[int, int] | None = None  # a masked SEND: (messages, fields) masked, for the audit trail

    @what.default
    def _what(self) -> Classified:
        return self.classified


class PulsarConnection:
    def __init__(self, settings: PulsarSettings, listener: ListenerSettings, slot: int | None, io: ConnectionIO) -> None:
        self.s = settings
        self.listener = listener
        self.slot = slot
        self.io = io
        self.closing = False
        self.peer = "?"
        self.session = SessionInfo(new_session_id(settings.clock()), settings.clock(), "?", protocol="pulsar")
        self.client_frames = FrameDecoder(listener.max_frame)
        self.broker_frames = FrameDecoder(listener.max_frame)
        self.state = "connect"  # connect -> connecting -> ready
        self.client_connect: wire.CommandConnect | None = None
        self.protocol_version = 0
        self.producers: dict[int, str] = {}
        self.consumers: dict[int, tuple[str, str]] = {}  # allowed SUBSCRIBEs: consumer_id -> (topic, subscription)
        self.watchers: dict[int, set[str]] = {}  # topic watchers: the (filtered) list the client holds
        self.probe_supported = False  # the broker answers PARTITIONED_METADATA without creating the topic
        self._probes = 0  # Gatekeeper's own request ids: probes and consumer closes
        self.producer_plans: dict[int, Any] = {}  # producer_id -> mask plan
        # consumer_id -> (mask plan, topic). Never removed while the connection lives: a MESSAGE
        # the broker sent before a consumer closed may still be on its way.
        self.consumer_plans: dict[int, tuple[Any, str]] = {}
        # producer_id -> its SENDs in order: None for one forwarded to the broker (its receipt
        # pending), bytes for Gatekeeper's own SEND_ERROR, written once every earlier SEND has
        # its answer from the broker.
        self._sends: dict[int, deque[bytes | None]] = {}
        # Consumers Gatekeeper closed at the broker (a MESSAGE could not be masked): request id ->
        # consumer id; their MESSAGEs are dropped until the broker has answered the close.
        self._closing_consumers: dict[int, int] = {}
        self._masking_message = False  # a MESSAGE is being masked off the reactor
        self._listings: deque[listing.HeldListing] = deque()
        self._queue: deque[tuple[Frame, wire.BaseCommand, float]] = deque()
        self._waiting: _Decided | None = None
        self._token = 0
        self._pumping = False
        self._paused = False
        self._timers: list[Any] = []
        # For the audit trail: records waiting for the broker's answer, by what answers them.
        self._answers: dict[Hashable, tuple[Any, dict[str, Any]]] = {}
        self._commands_seen = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self._close_reason: str | None = None
        self._ended_by = "client"
        self._ended = False
        self.client_token = ClientToken(settings.identity, settings.clock, io, self._timers, self._refuse_refresh,
                                        self._close, listener.refresh_before, lambda: self.state == "ready")

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, peer_host: str, peer_port: int) -> None:
        self.peer = f"{peer_host}:{peer_port}"
        self.session = SessionInfo(new_session_id(self.s.clock()), self.s.clock(), peer_host, protocol="pulsar")
        if self.s.audit is not None:
            self.s.audit.record("session_start", {
                "session": self.session.id, "listener": self.listener.name,
                "client": {"address": peer_host, "port": int(peer_port)}, "tls": None})
        self._timers.append(self.io.call_later(self.s.authentication_timeout, self._connect_timed_out))

    def _connect_timed_out(self) -> None:
        if self.state == "connect":
            self._close("no CONNECT within limits.authentication_timeout")

    def _close(self, why: str, abort_upstream: bool = False) -> None:
        if self.closing:
            return
        self.closing = True
        self._close_reason = why
        if self._ended_by == "client":
            self._ended_by = "gatekeeper"
        log.info("pulsar connection from {peer} on {listener} closed: {why}", peer=self.peer,
                 listener=self.listener.name, why=why)
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self.io.close(abort_upstream=abort_upstream)

    def client_lost(self) -> None:
        self.closing = True
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._audit_session_end()

    def _audit_session_end(self) -> None:
        trail = self.s.audit
        if trail is None or self._ended:
            return
        self._ended = True
        answers, self._answers = self._answers, {}
        for slot, fields in answers.values():
            self._complete(slot, fields, {"from": "none", "error": "the connection ended before the broker answered"})
        trail.record("session_end", {
            "session": self.session.id, "duration_ms": max(0, int(1000 * (self.s.clock() - self.session.started_at))),
            "requests": self._commands_seen, "bytes": {"from_client": self._bytes_in, "to_client": self._bytes_out},
            "reason": self._close_reason or "the client closed the connection", "ended_by": self._ended_by,
            "principal": principal_fields(self.session.principal) if self.state != "connect" else None})

    def drain(self) -> bool:
        if self.closing:
            return True
        if self._waiting is not None or self._queue or self._answers or self._listings:
            return False
        self._ended_by = "gatekeeper"
        self._close("Gatekeeper shut down")
        return True

    def _write_client(self, data: Sequence[bytes]) -> None:
        self._bytes_out += sum(len(d) for d in data)
        self.io.to_client(data)

    # -- client bytes -----------------------------------------------------------------------------

    def client_data(self, data: bytes) -> None:
        if self.closing:
            return
        self._bytes_in += len(data)
        self.client_frames.receive_data(data)
        try:
            while not self.closing:
                frame = self.client_frames.next_frame()
                if frame is None:
                    break
                cmd = c.parse_command(frame.command)
                self._commands_seen += 1
                rid = c.request_id_of(cmd)
                if rid is not None and rid >= _PROBE_IDS:
                    # Gatekeeper's own requests (the topic probe) use these ids: a client's
                    # answer could otherwise be taken for the probe's (and a missing topic for
                    # an existing one, skipping the create_topic decision).
                    raise FrameError(f"request id {rid} of {c.command_name(cmd)} is in the range Gatekeeper keeps for "
                                     f"its own requests (2^63 and above)")
                if self.state == "connect":
                    self._client_connect(cmd)
                elif self.state == "ready" and cmd.HasField("type") and cmd.type in _KEEPALIVE:
                    # Keep-alive is the connection's, not a producer's or consumer's: it never
                    # waits behind a command held for approval (the broker would drop the link).
                    self.io.to_upstream([frame.raw])
                elif cmd.type == T.AUTH_RESPONSE:  # the answer to Gatekeeper's refresh challenge
                    self._client_refreshed(cmd)
                else:
                    self._queue.append((frame, cmd, self.s.clock()))
        except FrameError as e:
            self._close(f"the client's bytes are not the Pulsar protocol: {e}")
            return
        self._pump()

    def _client_connect(self, cmd: wire.BaseCommand) -> None:
        if not cmd.HasField("type") or cmd.type != T.CONNECT:
            raise FrameError(f"expected CONNECT first, got {c.command_name(cmd)}")
        connect = cmd.connect
        self.client_connect = connect
        self.protocol_version = connect.protocol_version
        principal = self._authenticate(connect)
        if principal is None:
            return
        target = self._target(connect)
        if target is None:
            return
        self.session = SessionInfo(self.session.id, self.session.started_at, self.session.client_address,
                                   principal=principal, protocol="pulsar")
        self.state = "connecting"
        self.io.connect_upstream(self.listener.upstream_target(target))

    def _authenticate(self, connect: wire.CommandConnect) -> Principal | None:
        method = connect.auth_method_name
        if method == "token" and connect.auth_data:
            if self.s.identity is None:
                self._refuse_connect("token authentication is not configured on this listener (identity.jwt)")
                return None
            try:
                token = self.s.identity.validate(connect.auth_data.decode("utf-8", "replace"), "token")
            except Exception as e:  # the validator's errors say what is wrong with the token
                self._refuse_connect(f"token refused: {e}")
                return None
            self.client_token.start(token.principal, token.expires_at, connect)
            log.info("pulsar client {peer} authenticated as {sub}", peer=self.peer, sub=printable(token.principal.sub))
            if self.s.audit is not None:
                self.s.audit.record("authentication", {
                    "session": self.session.id, "result": "success", "mechanism": token.principal.mechanism,
                    "principal": principal_fields(token.principal), "token": token_fields(token.principal.claims)})
            return token.principal  # type: ignore[no-any-return]
        if method and method != "none":
            self._refuse_connect(f"authentication method {printable(method)!r} is not accepted here; use token")
            return None
        if self.listener.auth_required:
            self._refuse_connect("authentication is required on this listener: connect with a token")
            return None
        return ANONYMOUS

    def _target(self, connect: wire.CommandConnect) -> HostPort | None:
        brokers = self.listener.brokers
        if connect.proxy_to_broker_url:
            slot = brokers.target_of_proxy_url(connect.proxy_to_broker_url)
            if slot is None:
                self._refuse_connect(f"proxy_to_broker_url {printable(connect.proxy_to_broker_url)!r} is not a broker "
                                     "this listener fronts", error=c.SERVICE_NOT_READY)
                return None
            return brokers.brokers[slot]
        if self.slot is None:
            return self.listener.next_service_address()
        if self.slot >= len(brokers.brokers):
            self._refuse_connect(f"no broker is configured for port slot {self.slot}", error=c.SERVICE_NOT_READY)
            return None
        return brokers.brokers[self.slot]

    def _refuse_connect(self, message: str, error: int = c.AUTHENTICATION_ERROR) -> None:
        if error == c.AUTHENTICATION_ERROR and self.s.audit is not None:
            method = self.client_connect.auth_method_name if self.client_connect is not None else ""
            self.s.audit.record("authentication", {
                "session": self.session.id, "result": "failure", "mechanism": printable(method or "none", 64),
                "principal": None, "token": None, "reason": printable(message, 1024)})
        self._write_client([c.error_frame(c.NO_REQUEST_ID, error, message)])
        self._close(f"CONNECT refused: {message}")

    def _client_refreshed(self, cmd: wire.BaseCommand) -> None:
        principal = self.client_token.answer(cmd)
        if principal is not None:
            self.session = SessionInfo(self.session.id, self.session.started_at, self.session.client_address,
                                       principal=principal, protocol="pulsar")

    def _refuse_refresh(self, message: str) -> None:
        self.io.to_client([c.auth_error_frame(message)])
        self._close(f"token refresh refused: {message}")

    # -- the broker ----------------------------------------------------------------------------------

    def upstream_connected(self) -> None:
        assert self.client_connect is not None
        ours = wire.BaseCommand(type=T.CONNECT)
        ours.connect.CopyFrom(self.client_connect)
        for name in ("auth_data", "auth_method_name", "proxy_to_broker_url", "original_principal",
                     "original_auth_data", "original_auth_method"):
            ours.connect.ClearField(name)
        token = self.s.upstream_token()
        if token is not None:
            ours.connect.auth_method_name = "token"
            ours.connect.auth_data = token.encode()
        if self.listener.original_principal:
            # Gatekeeper's role is one of the broker's proxyRoles: the broker authorizes the
            # client's principal as well as Gatekeeper's role (docs/pulsar.md).
            ours.connect.original_principal = self.session.principal.sub
        self.io.to_upstream([encode_frame(c.serialize(ours))])

    def upstream_failed(self, reason: str) -> None:
        self._write_client([c.error_frame(c.NO_REQUEST_ID, c.SERVICE_NOT_READY, f"Gatekeeper cannot reach the broker: {reason}")])
        self._close(f"broker unreachable: {reason}")

    def upstream_lost(self, reason: str) -> None:
        if not self.closing:
            self._ended_by = "broker"
        self._close(f"the broker closed the connection: {reason}")

    def upstream_data(self, data: bytes) -> None:
        if self.closing:
            return
        self.broker_frames.receive_data(data)
        self._broker_frames()

    def _broker_frames(self) -> None:
        """Take the broker's frames in order; while a large MESSAGE is masked off the reactor,
        the frames after it wait in the decoder's buffer (the broker sends MESSAGEs only as far
        as the client's flow-control permits go)."""
        out: list[bytes] = []
        try:
            while not self._masking_message and not self.closing:
                frame = self.broker_frames.next_frame()
                if frame is None:
                    break
                out.extend(self._broker_frame(frame))
        except FrameError as e:
            if out:
                self._write_client(out)
            self._close(f"the broker's bytes are not the Pulsar protocol: {e}", abort_upstream=True)
            return
        if out:
            self._write_client(out)
        if self.state == "ready":
            self._pump()

    def _broker_frame(self, frame: Frame) -> list[bytes]:
        cmd = c.parse_command(frame.command)
        t = cmd.type if cmd.HasField("type") else None
        if t == T.MESSAGE:
            return self._mask_message(cmd, frame)
        if t == T.SUCCESS and cmd.success.request_id in self._closing_consumers:
            self._closing_consumers.pop(cmd.success.request_id)
            return []  # the answer to Gatekeeper's own CLOSE_CONSUMER
        if t == T.ERROR and cmd.error.request_id in self._closing_consumers:
            self._closing_consumers.pop(cmd.error.request_id)
            return []
        pending = self._waiting
        if t == T.PARTITIONED_METADATA_RESPONSE and pending is not None and pending.probing is not None \
                and cmd.partitionMetadataResponse.request_id == pending.probing:
            # Gatekeeper's own probe: never the client's, never the answer of a recorded command.
            self._probed(pending, cmd.partitionMetadataResponse)
            return []
        if self._answers and t != T.LOOKUP_RESPONSE:  # a lookup's: as the client gets it, below
            self._audit_answer(cmd)
        if t == T.SEND_RECEIPT:
            return self._after_send(cmd.send_receipt.producer_id, frame)
        if t == T.SEND_ERROR:
            return self._after_send(cmd.send_error.producer_id, frame)
        if t == T.CONNECTED and self.state == "connecting":
            self.state = "ready"
            self.probe_supported = cmd.connected.feature_flags.supports_get_partitioned_metadata_without_auto_creation
            return [frame.raw]
        if t in listing.RESPONSES:
            return self._hold_listing(cmd, frame)
        if t == T.AUTH_CHALLENGE:
            self._answer_challenge(cmd)
            return []
        if t == T.LOOKUP_RESPONSE:
            return [self._rewrite_lookup(cmd, frame)]
        if t == T.TOPIC_MIGRATED:
            return self._rewrite_migrated(cmd, frame)
        return [frame.raw]

    def _mask_message(self, cmd: wire.BaseCommand, frame: Frame) -> list[bytes]:
        """A MESSAGE for a masked consumer, masked; others as their bytes. One that cannot be
        masked closes its consumer: Gatekeeper's CLOSE_CONSUMER goes to the broker (which keeps
        the message unacknowledged and delivers it again to the next subscription), the
        broker's notice of a closed consumer to the client (which subscribes again); the
        MESSAGEs the broker sent the closed consumer meanwhile are dropped."""
        consumer_id = cmd.message.consumer_id
        found = self.consumer_plans.get(consumer_id)
        if found is None:
            return [frame.raw]
        if consumer_id in self._closing_consumers.values():
            return []  # sent before the broker closed it: it delivers them again
        plan, topic = found
        payload, limit = frame.payload, self.s.max_decompressed

        def work() -> Any:
            try:
                return mask_payload(payload, plan, limit)
            except PayloadRefused as e:
                return e

        if len(payload) < _OFFLOAD_BYTES:
            return self._message_masked(cmd, frame, topic, work())

        def done(result: Any) -> None:
            self._masking_message = False
            if self.closing:
                return
            if isinstance(result, BaseException) and not isinstance(result, PayloadRefused):
                log.error("bug: masking a Pulsar MESSAGE failed: {e!r}", e=result)
                self._close(f"masking failed, MESSAGE not delivered (fail closed): {type(result).__name__}")
                return
            self._write_client(self._message_masked(cmd, frame, topic, result))
            self._broker_frames()

        self._masking_message = True
        self.io.offload(work, done)
        return []

    def _message_masked(self, cmd: wire.BaseCommand, frame: Frame, topic: str,
                        result: MaskedPayload | PayloadRefused) -> list[bytes]:
        consumer_id = cmd.message.consumer_id
        if isinstance(result, PayloadRefused):
            self.s.metrics.inc("gatekeeper_mask_errors_total", kind=result.kind)
            m = cmd.message.message_id
            log.error("pulsar message {ledger}:{entry} of {topic} for masked consumer {consumer} ({peer}) cannot be "
                      "masked: {reason}; it is never delivered raw: the consumer is closed, the broker keeps the "
                      "message unacknowledged", ledger=m.ledgerId, entry=m.entryId, topic=printable(topic),
                      consumer=consumer_id, peer=self.peer, reason=result.reason)
            self._probes += 1
            request_id = _PROBE_IDS + self._probes
            self._closing_consumers[request_id] = consumer_id
            self.io.to_upstream([c.close_consumer_frame(consumer_id, request_id)])
            return [c.close_consumer_frame(consumer_id, c.NO_REQUEST_ID)]
        self._count(result, topic, "consume")
        return [encode_frame(frame.command, result.payload) if result.changed else frame.raw]

    def _after_send(self, producer_id: int, frame: Frame) -> list[bytes]:
        """The broker's answer to a SEND, then Gatekeeper's own refusals of the SENDs after it:
        a client takes SEND answers in the order of its SENDs."""
        out = [frame.raw]
        q = self._sends.get(producer_id)
        if q:
            q.popleft()
            while q and q[0] is not None:
                out.append(q.popleft())  # type: ignore[arg-type]
        return out

    def _count(self, done: MaskedPayload, topic: str, direction: str) -> None:
        if done.messages:
            self.s.metrics.inc("gatekeeper_masked_records_total", done.messages, topic=topic, direction=direction)
        for masker, n in done.fields.items():
            self.s.metrics.inc("gatekeeper_masked_fields_total", n, topic=topic, masker=masker)

    def _answer_challenge(self, cmd: wire.BaseCommand) -> None:
        """The broker asks Gatekeeper to authenticate again (its token is refreshed): answered
        with the credential in force now; the client never sees it."""
        token = self.s.upstream_token() or ""
        answer = wire.BaseCommand(type=T.AUTH_RESPONSE)
        answer.authResponse.client_version = self.client_connect.client_version if self.client_connect else "gatekeeper"
        answer.authResponse.protocol_version = self.protocol_version
        answer.authResponse.response.auth_method_name = "token"
        answer.authResponse.response.auth_data = token.encode()
        self.io.to_upstream([encode_frame(c.serialize(answer))])

    def _rewrite_lookup(self, cmd: wire.BaseCommand, frame: Frame) -> bytes:
        r = cmd.lookupTopicResponse
        url = self.listener.broker_url(r.brokerServiceUrl, r.brokerServiceUrlTls)
        if not url:
            if self._answers:
                self._audit_answer(cmd)
            return frame.raw  # a failed lookup: no address to rewrite
        slot = self.listener.brokers.slot_of_url(url)
        if slot is None:
            message = (f"the broker answered the lookup with {url}, which is not among the brokers listener "
                       f"{self.listener.name} fronts (listeners[].options.brokers); Gatekeeper refuses to hand it out")
            log.warn("{message}", message=message)
            waiting = self._answers.pop(("request", r.request_id), None)
            if waiting is not None:
                self._complete(waiting[0], waiting[1], {"from": "gatekeeper", "error_code": int(c.SERVICE_NOT_READY),
                                                        "error": f"ServiceNotReady: {message}"})
            return c.lookup_failed_frame(r.request_id, c.SERVICE_NOT_READY, message)
        if self._answers:
            self._audit_answer(cmd)
        self.listener.set_gateway_urls(r, slot)
        # The client comes to the rewritten address itself: Gatekeeper's port for that broker.
        r.proxy_through_service_url = False
        return encode_frame(c.serialize(cmd))

    def _rewrite_migrated(self, cmd: wire.BaseCommand, frame: Frame) -> list[bytes]:
        m = cmd.topicMigrated
        url = self.listener.broker_url(m.brokerServiceUrl, m.brokerServiceUrlTls)
        slot = self.listener.brokers.slot_of_url(url)
        if slot is None:
            self._close(f"the broker migrated a topic to {url!r}, a broker this listener does not front")
            return []
        self.listener.set_gateway_urls(m, slot)
        return [encode_frame(c.serialize(cmd))]

    # -- client commands, in order ----------------------------------------------------------------

    def _pump(self) -> None:
        if self._pumping or self.state != "ready":
            return
        self._pumping = True
        try:
            forward: list[bytes] = []
            while self._queue and self._waiting is None and not self.closing:
                frame, cmd, received_at = self._queue.popleft()
                try:
                    what = classify(cmd, frame, self.producers, self.consumers)
                except FrameError as e:
                    self._close(f"the client's bytes are not the Pulsar protocol: {e}")
                    return
                if what.refused is not None:
                    if forward:
                        self.io.to_upstream(forward)
                        forward = []
                    self._refuse_outright(what, cmd)
                    continue
                if what.operation is None:
                    forward.append(frame.raw)
                    continue
                if forward:
                    self.io.to_upstream(forward)
                    forward = []
                self._waiting = _Decided(0, what, frame, cmd, received_at)
                self._probe_or_ask(self._waiting)
            if forward:
                self.io.to_upstream(forward)
        finally:
            self._pumping = False
        self._flow_control()

    def _probe_or_ask(self, pending: _Decided) -> None:
        """Decide the command as classified; one that may make the broker create its topic first
        asks the broker whether the topic exists (without letting it create it): the answer, in
        :meth:`_probed`, says whether ``create_topic`` is decided too. A broker that cannot say
        without creating it: ``create_topic`` is decided."""
        what = pending.classified
        topic = what.may_create
        if topic is not None and self.probe_supported:
            self._probes += 1
            pending.probing = _PROBE_IDS + self._probes
            pending.token = 0  # no decision is asked for until the probe is answered
            self.io.to_upstream([c.probe_frame(pending.probing, topic)])
            return
        pending.what = what.creating(c.command_name(pending.cmd)) if topic is not None else what
        self._ask(pending)

    def _probed(self, pending: _Decided, answer: wire.CommandPartitionedTopicMetadataResponse) -> None:
        pending.probing = None
        exists = answer.response == wire.CommandPartitionedTopicMetadataResponse.Success
        if exists:
            pending.what = attrs.evolve(pending.classified, may_create=None)
        else:  # TopicNotFound, or any failure: it may be created, so create_topic is decided
            pending.what = pending.classified.creating(c.command_name(pending.cmd))
        self._ask(pending)

    def _ask(self, pending: _Decided) -> None:
        """Put the command's operations to the policy, with the principal's grants as they are now."""
        cmd = pending.cmd
        self._token += 1
        pending.token = self._token
        now = self.s.clock()
        grants = self.s.grants_for(self.session.principal, now)
        pending.policy_inputs = [
            build_input(op, api_key=int(cmd.type) if cmd.HasField("type") else 0, api_name=c.command_name(cmd),
                        api_version=self.protocol_version, client_id=None, session=self.session, now=now,
                        grants=grants)
            for op in pending.what.operations]
        self.s.inputs_decoded(pending.policy_inputs)
        self.io.decide(self._token, pending.policy_inputs)

    def _refuse_outright(self, what: Classified, cmd: wire.BaseCommand) -> None:
        assert what.refused is not None and what.refuse is not None
        log.warn("pulsar {command} from {peer} refused: {why}", command=c.command_name(cmd), peer=self.peer,
                 why=what.refused)
        answer = what.refuse(what.refused)
        if answer:
            self._write_client([answer])
        if what.closes:
            self._close(what.refused)

    # -- topic listings from the broker -------------------------------------------------------------

    def _hold_listing(self, cmd: wire.BaseCommand, frame: Frame) -> list[bytes]:
        """A topic listing from the broker: held until each topic it names is decided."""
        self._token += 1
        held = listing.HeldListing(self._token, cmd, frame.raw, listing.listed(cmd))
        self._listings.append(held)
        if not held.topics:
            held.allowed = set()
            return self._listings_ready()
        now = self.s.clock()
        grants = self.s.grants_for(self.session.principal, now)
        inputs = [build_input(op, api_key=int(cmd.type), api_name=c.command_name(cmd), api_version=self.protocol_version,
                              client_id=None, session=self.session, now=now, grants=grants)
                  for op in listing.operations(held.topics)]
        self.s.inputs_decoded(inputs)
        self.io.decide(held.token, inputs)
        return []

    def _listing_decided(self, token: int, decisions: list[Decision]) -> None:
        for held in self._listings:
            if held.token == token:
                # Only an allow lists a topic: a deny, a mask or an approve (a listing is never
                # held for approval) leaves it out.
                held.allowed = {t for t, d in zip(held.topics, decisions, strict=False) if d.action == "allow"}
        out = self._listings_ready()
        if out:
            self._write_client(out)

    def _listings_ready(self) -> list[bytes]:
        """The decided listings at the head of the queue, filtered, in the broker's order."""
        out = []
        while self._listings and self._listings[0].allowed is not None:
            rebuilt = listing.rebuild(self._listings.popleft(), self.watchers)
            if rebuilt is not None:
                out.append(rebuilt)
        return out

    def _flow_control(self) -> None:
        if not self._paused and len(self._queue) >= _QUEUE_PAUSE:
            self._paused = True
            self.io.pause_client()
        elif self._paused and len(self._queue) < _QUEUE_PAUSE // 2:
            self._paused = False
            self.io.resume_client()

    def decided(self, token: int, decisions: list[Decision]) -> None:
        if self.closing:
            return
        if any(held.token == token for held in self._listings):
            self._listing_decided(token, decisions)
            return
        pending = self._waiting
        if pending is None or pending.probing is not None or pending.token != token:
            return
        ops = pending.what.operations
        # One decision per operation; a missing one is a deny.
        decided = [decisions[i] if i < len(decisions) else Decision("deny", "no decision") for i in range(len(ops))]
        pending.plan = None
        for i, (op, d) in enumerate(zip(ops, decided, strict=True)):
            if d.action == "mask":
                plan, refused = self._mask_plan(pending.what, op, d)
                if plan is None:
                    decided[i] = Decision("deny", refused, ttl=d.ttl)
                else:
                    pending.plan = plan
                    decided[i] = Decision("allow", d.reason, ttl=d.ttl)
        if any(d.action == "approve" for d in decided):
            if pending.approvals is None:
                self._hold(pending, decided)
                return
            # Decided again after its approvals: an approve now is the outcome's denial (a policy
            # that does not allow on the grant it asked for, or an approve for an operation that
            # was not held: never held twice).
            decided = [approval_decision(pending.approvals.get((op.name, op.resource)) or {"status": "unheld"})
                       if d.action == "approve" else d for op, d in zip(ops, decided, strict=True)]
        send = pending.what.send
        if send is not None and first_refusal(ops, decided) is None:
            plan = pending.plan or self.producer_plans.get(send)
            if plan is not None:
                self._mask_send(pending, decided, plan)  # enforced when masked
                return
        self._enforce(pending, decided)

    def _mask_plan(self, what: Classified, op: Operation, decision: Decision) -> tuple[Any, str]:
        """The decision's compiled plan, or None and why the mask is a deny (fail closed)."""
        said = f"the policy said mask ({decision.reason})"
        direction = _DIRECTION.get(op.name)
        if direction is None:
            return None, f"{said}, but {op.name} carries no messages to mask; denied, fail closed"
        if self.s.masking is None:
            return None, f"{said}, but masking is not available here; denied, fail closed"
        if op.request.get("encrypted") and what.producer is not None:
            return None, (f"{said}, but the producer encrypts its messages end to end, so they cannot be masked; "
                          "denied, fail closed")
        try:
            return self.s.masking.plan(decision.mask, direction), ""
        except MaskingError as e:
            self.s.metrics.inc("gatekeeper_mask_errors_total", kind="bad_decision")
            return None, f"the policy's mask cannot be applied: {e}; denied, fail closed"

    def _mask_send(self, pending: _Decided, decisions: list[Decision], plan: Any) -> None:
        """Mask a SEND's payload (off the reactor when it is large), then enforce: forwarded
        masked, or refused when it cannot be masked. Later commands wait for it."""
        what, frame = pending.what, pending.frame
        assert what.operation is not None and what.send is not None
        topic = what.operation.resource.name
        payload, limit = frame.payload, self.s.max_decompressed

        def done(result: Any) -> None:
            if self.closing:
                return
            if isinstance(result, PayloadRefused):
                self.s.metrics.inc("gatekeeper_mask_errors_total", kind=result.kind)
                reason = f"{result.reason}; refused, never stored raw"
                pending.what = self._send_refusal(pending)
                self._enforce(pending, [Decision("deny", reason, error="policy_violation")] * len(decisions))
            elif isinstance(result, BaseException):
                log.error("bug: masking a Pulsar SEND failed: {e!r}", e=result)
                self._close(f"masking failed, SEND refused (fail closed): {type(result).__name__}")
            else:
                self._count(result, topic, "produce")
                pending.masked = (result.messages, sum(result.fields.values()))
                if result.changed:
                    pending.frame = Frame(frame.command, result.payload, encode_frame(frame.command, result.payload))
                self._enforce(pending, decisions)

        def work() -> Any:
            try:
                return mask_payload(payload, plan, limit)
            except PayloadRefused as e:
                return e

        if len(payload) >= _OFFLOAD_BYTES:
            self.io.offload(work, done)
            return
        try:
            result = work()
        except Exception as e:  # handed to ``done`` like the worker's exceptions
            result = e
        done(result)

    def _send_refusal(self, pending: _Decided) -> Classified:
        """How a SEND that cannot be masked is refused. So that the client fails that SEND
        (every message of its batch) and goes on, where Gatekeeper knows how the client family
        takes a SEND_ERROR: the Java client fails the message on NotAllowedError (matched to its
        highest sequence id), the C++ client (and the Python client built on it) on
        ChecksumError; either closes the connection and resends on any other error, which would
        refuse it again. Other clients get the deny (SEND_ERROR, then the connection closes).
        The answer waits for the broker's answers to the producer's earlier SENDs (``_deny``)."""
        what, send = pending.what, pending.cmd.send
        family = _client_family(self.client_connect.client_version if self.client_connect else "")
        if family is None:
            return what
        if family == "java":
            sequence_id, error = max(send.sequence_id, send.highest_sequence_id), wire.NotAllowedError
        else:
            sequence_id, error = send.sequence_id, wire.ChecksumError

        def refuse(reason: str) -> bytes:
            return c.send_error_frame(send.producer_id, sequence_id, error, f"Gatekeeper: {reason}")

        return attrs.evolve(what, refuse=refuse, closes=False)

    def decision_failed(self, token: int, reason: str) -> None:
        self.decided(token, [Decision("deny", f"policy engine failed, denied: {reason}")])

    # -- approvals ------------------------------------------------------------------------------

    def _hold(self, pending: _Decided, decisions: list[Decision]) -> None:
        """Approve decisions: the command waits (the commands after it wait behind it) until the
        approval requests of its operations that ask for one are decided or the shortest of their
        waits, capped by approvals.max_wait, is over."""
        ops = pending.what.operations
        max_wait = self.s.approvals_max_wait
        if max_wait is None:
            self._enforce(pending, [
                Decision("deny", f"the policy asks for approval ({d.reason}), but approvals are not configured here; "
                                 "denied") if d.action == "approve" else d for d in decisions])
            return
        held = [i for i, d in enumerate(decisions) if d.action == "approve"]
        wait = max_wait
        requests = []
        for i in held:
            op, decision = ops[i], decisions[i]
            approval = dict(decision.approval or {})
            if approval.get("wait"):
                try:
                    wait = min(wait, parse_duration(str(approval["wait"])))
                except ValueError:
                    pass  # the approvals service refuses the malformed approval: said to the client
            requests.append({
                "principal": self.session.principal,
                "client": dict(pending.policy_inputs[i]["client"]),
                "operation": op.name,
                "resource": op.resource,
                "summary": dict(pending.policy_inputs[i]["request"]),
                "reason": decision.reason,
                "approval": approval,
            })
        log.info("pulsar {operations} for {sub} ({peer}) held for approval, up to {wait:g}s",
                 operations=", ".join(f"{ops[i].name} on {printable(ops[i].resource.name)}" for i in held),
                 sub=printable(self.session.principal.sub), peer=self.peer, wait=wait)
        pending.held, pending.decisions = held, list(decisions)
        self._token += 1
        pending.token = self._token
        self.io.hold(self._token, requests, wait)

    def held(self, token: int, outcomes: list[dict[str, Any]]) -> None:
        """The approval requests of the held command: decided, or still pending after the wait."""
        pending = self._waiting
        if pending is None or pending.token != token or self.closing:
            return
        ops = pending.what.operations
        approvals: dict[tuple[str, Any], dict[str, Any]] = {}
        for n, i in enumerate(pending.held):
            outcome = dict(outcomes[n]) if n < len(outcomes) else {"status": "unavailable", "reason": "no outcome"}
            approvals[(ops[i].name, ops[i].resource)] = outcome
            self.s.metrics.inc("gatekeeper_held_requests_total", outcome=str(outcome.get("status")))
        pending.approvals = approvals
        if any(o.get("status") == "approved" for o in approvals.values()):
            # The grant is in place: the policy decides again with it in the input (it may now
            # say mask rather than allow), never a blind forward. The topic may have come or gone
            # while the command was held: it is probed again.
            self._probe_or_ask(pending)
            return
        self._enforce(pending, [approval_decision(approvals.get((op.name, op.resource)) or {"status": "unheld"})
                                if i in pending.held else d for i, (op, d) in enumerate(zip(ops, pending.decisions, strict=True))])

    # -- enforcing ------------------------------------------------------------------------------

    def _enforce(self, pending: _Decided, decisions: list[Decision]) -> None:
        what = pending.what
        slot = None
        trail = self.s.audit
        if trail is not None:
            # A place in the trail is taken before anything is let through: a command that could
            # not be recorded does not happen (fail closed).
            slot = trail.reserve()
            if slot is None:
                self.s.metrics.inc("gatekeeper_rejected_total", reason="audit_unavailable")
                unavailable = Decision("deny", f"audit trail unavailable ({trail.error or 'its queue is full'}): "
                                               "denied until it recovers", ttl=0.0)
                decisions = [unavailable] * len(decisions)
        self._waiting = None
        refusal = first_refusal(what.operations, decisions)
        if refusal is None:
            self._allow(what, pending.frame, pending.plan)
            if slot is not None:
                fields = self._request_fields(pending, decisions, forwarded=True)
                if pending.plan is not None or pending.masked is not None:
                    records, masked = pending.masked or (0, 0)
                    for item in fields["operations"]:
                        if item["input"]["operation"] in _DIRECTION:
                            item["enforced"] = enforced_fields("masked", masked_records=records, masked_fields=masked,
                                                               approval=item["enforced"].get("approval"))
                key = auditing.answer_key(pending.cmd)
                now = self.s.clock()
                if key is None:
                    self._complete(slot, fields, {"from": "none"}, pending.received_at, now)
                else:
                    previous = self._answers.pop(key, None)
                    if previous is not None:  # the client reused the id: the earlier one is not answered by it
                        self._complete(previous[0], previous[1], {"from": "none", "error": "its id was reused"})
                    self._answers[key] = (slot, fields)
                    fields["latency_ms"] = round(1000 * max(0.0, now - pending.received_at), 3)
        else:
            op, decision = refusal
            reason = decision.reason or "denied by policy"
            if op.name == "create_topic" and op.request.get("auto"):
                reason = f"{op.resource.name} does not exist and creating it is not allowed: {reason}"
            assert what.refuse is not None
            answer = what.refuse(reason)
            if slot is not None:
                fields = self._request_fields(pending, decisions, forwarded=False, dropped=not answer)
                self._complete(slot, fields, {"from": "gatekeeper"} if answer else {"from": "none", "error": reason},
                               pending.received_at)
            self._deny(what, reason, answer, op)
        if not self.closing:
            self._pump()

    def _allow(self, what: Classified, frame: Frame, plan: Any = None) -> None:
        if what.send is not None:
            self._sends.setdefault(what.send, deque()).append(None)
        if what.producer is not None:
            producer_id, topic = what.producer
            self.producers[producer_id] = topic
            self._sends.pop(producer_id, None)
            if plan is not None:
                self.producer_plans[producer_id] = plan
            else:
                self.producer_plans.pop(producer_id, None)
        if what.consumer is not None:
            consumer_id, topic, subscription = what.consumer
            self.consumers[consumer_id] = (topic, subscription)
            if plan is not None:
                self.consumer_plans[consumer_id] = (plan, topic)
        self.io.to_upstream([frame.raw])

    def _deny(self, what: Classified, reason: str, answer: bytes, op: Operation | None = None) -> None:
        assert what.operation is not None
        op = op or what.operation
        log.info("pulsar {operation} on {resource} denied for {sub} ({peer}): {reason}", operation=op.name,
                 resource=printable(op.resource.name), sub=printable(self.session.principal.sub), peer=self.peer,
                 reason=reason)
        self.s.metrics.inc("gatekeeper_pulsar_denied_total", operation=op.name)
        q = self._sends.setdefault(what.send, deque()) if what.send is not None else None
        if answer and q and not what.closes:
            q.append(answer)  # after the broker's answers to the producer's earlier SENDs
        elif answer:
            self._write_client([answer])
        if what.closes:
            self._close(f"{op.name} on {op.resource.name} denied: {reason}")

    # -- the audit trail ----------------------------------------------------------------------------

    def _request_fields(self, pending: _Decided, decisions: list[Decision], *, forwarded: bool,
                        dropped: bool = False) -> dict[str, Any]:
        """The command's request record, one entry per decided operation, but for its outcome
        (filled in by the broker's answer)."""
        cmd = pending.cmd
        approvals: list[dict[str, Any] | None] = []
        waited = max(0, int(1000 * (self.s.clock() - pending.received_at)))
        for op in pending.what.operations:
            outcome = (pending.approvals or {}).get((op.name, op.resource))
            approvals.append({"id": str(outcome["id"]), "status": str(outcome.get("status")), "waited_ms": waited}
                             if outcome is not None and outcome.get("id") else None)
        fields: dict[str, Any] = {
            "session": self.session.id, "principal": principal_fields(self.session.principal),
            "client": {"id": None, "address": self.session.client_address},
            "api": {"key": int(cmd.type) if cmd.HasField("type") else 0, "name": c.command_name(cmd),
                    "version": max(0, self.protocol_version)},
            "operations": auditing.operation_entries(pending.policy_inputs, decisions, self.s.policy_revision(),
                                                     approvals, forwarded=forwarded, dropped=dropped),
        }
        correlation = auditing.correlation_of(cmd)
        if correlation is not None:
            fields["correlation_id"] = correlation
        return fields

    def _complete(self, slot: Any, fields: dict[str, Any], outcome: dict[str, Any], received_at: float | None = None,
                  forwarded_at: float | None = None) -> None:
        fields["outcome"] = outcome
        if received_at is not None:
            fields["latency_ms"] = round(1000 * max(0.0, (forwarded_at or self.s.clock()) - received_at), 3)
        fields.setdefault("latency_ms", 0.0)
        slot.record("request", fields)

    def _audit_answer(self, cmd: wire.BaseCommand) -> None:
        """A broker command that answers a recorded client command completes its record."""
        answer = auditing.broker_answer(cmd)
        if answer is None:
            return
        key, outcome = answer
        waiting = self._answers.pop(key, None)
        if waiting is not None:
            self._complete(waiting[0], waiting[1], outcome)
