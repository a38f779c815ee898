"""The sans-I/O core of one Pulsar client connection.

The client's CONNECT is answered here: its token (``auth_method_name: token``) is validated with
Gatekeeper's identity settings, and only then is the broker connection opened, with
Gatekeeper's own credential in a CONNECT of its own (the client's version and feature flags
kept, its credentials and proxy fields never forwarded). After CONNECTED, client commands are
taken in order: pass-through commands are forwarded as their bytes; LOOKUP,
PARTITIONED_METADATA, PRODUCER, SEND and SUBSCRIBE are put to the policy and forwarded as
their bytes when allowed, answered with the command's own error when not. From the broker,
LOOKUP_RESPONSE and TOPIC_MIGRATED have their broker addresses rewritten to Gatekeeper's; the
rest is forwarded as its bytes.

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
from typing import Any

from twisted.logger import Logger

from gatekeeper.api import ANONYMOUS, ConnectionIO, Decision, Principal
from gatekeeper.logsafe import printable
from gatekeeper.masking import MaskingError
from gatekeeper.policy.input import SessionInfo, build_input, new_session_id
from gatekeeper.values import HostPort
from gatekeeper_pulsar import commands as c
from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.framing import Frame, FrameDecoder, FrameError, encode_frame
from gatekeeper_pulsar.masking import MaskedPayload, PayloadRefused, mask_payload
from gatekeeper_pulsar.operations import Classified, classify
from gatekeeper_pulsar.settings import ListenerSettings, PulsarSettings

__all__ = ["PulsarConnection"]

log = Logger()
T = wire.BaseCommand
_QUEUE_PAUSE = 256  # client commands waiting behind a decision before reading pauses
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


_OWN_REQUEST_IDS = 1 << 63  # request ids of Gatekeeper's own requests (clients count up from 0)


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
        self._next_request = _OWN_REQUEST_IDS
        self._masking_message = False  # a MESSAGE is being masked off the reactor
        self._queue: deque[tuple[Frame, wire.BaseCommand]] = deque()
        self._waiting: tuple[int, Classified, Frame] | None = None
        self._token = 0
        self._pumping = False
        self._paused = False
        self._timers: list[Any] = []

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, peer_host: str, peer_port: int) -> None:
        self.peer = f"{peer_host}:{peer_port}"
        self.session = SessionInfo(new_session_id(self.s.clock()), self.s.clock(), peer_host, protocol="pulsar")
        self._timers.append(self.io.call_later(self.s.authentication_timeout, self._connect_timed_out))

    def _connect_timed_out(self) -> None:
        if self.state == "connect":
            self._close("no CONNECT within limits.authentication_timeout")

    def _close(self, why: str, abort_upstream: bool = False) -> None:
        if self.closing:
            return
        self.closing = True
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

    # -- client bytes -----------------------------------------------------------------------------

    def client_data(self, data: bytes) -> None:
        if self.closing:
            return
        self.client_frames.receive_data(data)
        try:
            while not self.closing:
                frame = self.client_frames.next_frame()
                if frame is None:
                    break
                cmd = c.parse_command(frame.command)
                if self.state == "connect":
                    self._client_connect(cmd)
                else:
                    self._queue.append((frame, cmd))
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
        self.io.connect_upstream(target)

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
            delay = token.expires_at - self.s.clock()
            self._timers.append(self.io.call_later(max(delay, 0.0), lambda: self._close("the client's token expired")))
            log.info("pulsar client {peer} authenticated as {sub}", peer=self.peer, sub=printable(token.principal.sub))
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
        self.io.to_client([c.error_frame(c.NO_REQUEST_ID, error, message)])
        self._close(f"CONNECT refused: {message}")

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
        self.io.to_upstream([encode_frame(c.serialize(ours))])

    def upstream_failed(self, reason: str) -> None:
        self.io.to_client([c.error_frame(c.NO_REQUEST_ID, c.SERVICE_NOT_READY, f"Gatekeeper cannot reach the broker: {reason}")])
        self._close(f"broker unreachable: {reason}")

    def upstream_lost(self, reason: str) -> None:
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
                self.io.to_client(out)
            self._close(f"the broker's bytes are not the Pulsar protocol: {e}", abort_upstream=True)
            return
        if out:
            self.io.to_client(out)
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
        if t == T.SEND_RECEIPT:
            return self._after_send(cmd.send_receipt.producer_id, frame)
        if t == T.SEND_ERROR:
            return self._after_send(cmd.send_error.producer_id, frame)
        if t == T.CONNECTED and self.state == "connecting":
            self.state = "ready"
            return [frame.raw]
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
            self.io.to_client(self._message_masked(cmd, frame, topic, result))
            self._broker_frames()

        self._masking_message = True
        self.io.offload(work, done)
        return []

    def _message_masked(self, cmd: wire.BaseCommand, frame: Frame, topic: str,
                        result: MaskedPayload | PayloadRefused) -> list[bytes]:
        consumer_id = cmd.message.consumer_id
        if isinstance(result, PayloadRefused):
            e = result
            self.s.metrics.inc("gatekeeper_mask_errors_total", kind=e.kind)
            m = cmd.message.message_id
            log.error("pulsar message {ledger}:{entry} of {topic} for masked consumer {consumer} ({peer}) cannot be "
                      "masked: {reason}; it is never delivered raw: the consumer is closed, the broker keeps the "
                      "message unacknowledged", ledger=m.ledgerId, entry=m.entryId, topic=printable(topic),
                      consumer=consumer_id, peer=self.peer, reason=e.reason)
            request_id = self._next_request
            self._next_request += 1
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
        urls = [u for u in (r.brokerServiceUrl, r.brokerServiceUrlTls) if u]
        if not urls:
            return frame.raw  # a failed lookup: no address to rewrite
        rewritten = self.listener.brokers.rewrite(urls[0])
        if rewritten is None:
            message = (f"the broker answered the lookup with {urls[0]}, which is not among the brokers listener "
                       f"{self.listener.name} fronts (listeners[].options.brokers); Gatekeeper refuses to hand it out")
            log.warn("{message}", message=message)
            return c.lookup_failed_frame(r.request_id, c.SERVICE_NOT_READY, message)
        r.brokerServiceUrl = rewritten
        r.ClearField("brokerServiceUrlTls")
        # The client comes to the rewritten address itself: Gatekeeper's port for that broker.
        r.proxy_through_service_url = False
        return encode_frame(c.serialize(cmd))

    def _rewrite_migrated(self, cmd: wire.BaseCommand, frame: Frame) -> list[bytes]:
        m = cmd.topicMigrated
        rewritten = self.listener.brokers.rewrite(m.brokerServiceUrl or m.brokerServiceUrlTls)
        if rewritten is None:
            self._close(f"the broker migrated a topic to {m.brokerServiceUrl!r}, a broker this listener does not front")
            return []
        m.brokerServiceUrl = rewritten
        m.ClearField("brokerServiceUrlTls")
        return [encode_frame(c.serialize(cmd))]

    # -- client commands, in order ----------------------------------------------------------------

    def _pump(self) -> None:
        if self._pumping or self.state != "ready":
            return
        self._pumping = True
        try:
            forward: list[bytes] = []
            while self._queue and self._waiting is None and not self.closing:
                frame, cmd = self._queue.popleft()
                try:
                    what = classify(cmd, frame, self.producers)
                except FrameError as e:
                    self._close(f"the client's bytes are not the Pulsar protocol: {e}")
                    return
                if what.operation is None:
                    forward.append(frame.raw)
                    continue
                if forward:
                    self.io.to_upstream(forward)
                    forward = []
                self._token += 1
                self._waiting = (self._token, what, frame)
                now = self.s.clock()
                policy_input = build_input(what.operation, api_key=int(cmd.type) if cmd.HasField("type") else 0,
                                           api_name=c.command_name(cmd), api_version=self.protocol_version,
                                           client_id=None, session=self.session, now=now,
                                           grants=self.s.grants_for(self.session.principal, now))
                self.s.inputs_decoded([policy_input])
                self.io.decide(self._token, [policy_input])
            if forward:
                self.io.to_upstream(forward)
        finally:
            self._pumping = False
        self._flow_control()

    def _flow_control(self) -> None:
        if not self._paused and len(self._queue) >= _QUEUE_PAUSE:
            self._paused = True
            self.io.pause_client()
        elif self._paused and len(self._queue) < _QUEUE_PAUSE // 2:
            self._paused = False
            self.io.resume_client()

    def decided(self, token: int, decisions: list[Decision]) -> None:
        if self._waiting is None or self._waiting[0] != token or self.closing:
            return
        _, what, frame = self._waiting
        decision = decisions[0] if decisions else Decision("deny", "no decision")
        plan = None
        if decision.action == "mask":
            plan, refused = self._mask_plan(what, decision)
            if plan is None:
                decision = Decision("deny", refused)
        if decision.action in ("allow", "mask"):
            if what.send is not None:
                plan = plan or self.producer_plans.get(what.send)
                if plan is not None:
                    self._mask_send(what, frame, plan)  # resumes the queue when done
                    return
            self._allow(what, frame, plan)
        else:
            reason = decision.reason or "denied by policy"
            if decision.action == "approve":
                reason = f"{decision.action} is not supported for Pulsar yet, so it is a deny: {reason}"
            self._deny(what, reason)
        self._resume()

    def _resume(self) -> None:
        self._waiting = None
        if not self.closing:
            self._pump()

    def _mask_plan(self, what: Classified, decision: Decision) -> tuple[Any, str]:
        """The decision's compiled plan, or None and why the mask is a deny (fail closed)."""
        assert what.operation is not None
        op = what.operation
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

    def _mask_send(self, what: Classified, frame: Frame, plan: Any) -> None:
        """Mask a SEND's payload (off the reactor when it is large), then forward it, or refuse
        it (:meth:`_refuse_send`) when it cannot be masked; later commands wait for it."""
        assert what.operation is not None
        topic = what.operation.resource.name
        payload, limit = frame.payload, self.s.max_decompressed
        producer_id = what.send
        assert producer_id is not None

        def done(result: Any) -> None:
            if self.closing:
                return
            if isinstance(result, PayloadRefused):
                self.s.metrics.inc("gatekeeper_mask_errors_total", kind=result.kind)
                self._refuse_send(what, frame, f"{result.reason}; refused, never stored raw")
            elif isinstance(result, BaseException):
                log.error("bug: masking a Pulsar SEND failed: {e!r}", e=result)
                self._close(f"masking failed, SEND refused (fail closed): {type(result).__name__}")
                return
            else:
                self._count(result, topic, "produce")
                self._sends.setdefault(producer_id, deque()).append(None)
                self.io.to_upstream([encode_frame(frame.command, result.payload) if result.changed else frame.raw])
            self._resume()

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

    def decision_failed(self, token: int, reason: str) -> None:
        self.decided(token, [Decision("deny", f"policy engine failed, denied: {reason}")])

    def held(self, token: int, outcomes: list[dict[str, Any]]) -> None:  # approvals: not yet for Pulsar
        pass

    def _refuse_send(self, what: Classified, frame: Frame, reason: str) -> None:
        """A SEND of a masked producer that cannot be masked. Answered so that the client fails
        that SEND (every message of its batch) and goes on, where Gatekeeper knows how the
        client family takes a SEND_ERROR: the Java client fails the message on NotAllowedError
        (matched to its highest sequence id), the C++ client (and the Python client built on
        it) on ChecksumError; either closes the connection and resends on any
        other error, which would refuse it again. Other clients get the deny (SEND_ERROR, then
        the connection closes). The answer waits for the broker's answers to the producer's
        earlier SENDs: a client takes them in order."""
        assert what.operation is not None and what.send is not None
        op = what.operation
        cmd = c.parse_command(frame.command)
        family = _client_family(self.client_connect.client_version if self.client_connect else "")
        if family is None:
            self._deny(what, reason)
            return
        if family == "java":
            sequence_id = max(cmd.send.sequence_id, cmd.send.highest_sequence_id)
            error = wire.NotAllowedError
        else:
            sequence_id, error = cmd.send.sequence_id, wire.ChecksumError
        log.info("pulsar {operation} on {resource} refused for {sub} ({peer}): {reason}", operation=op.name,
                 resource=printable(op.resource.name), sub=printable(self.session.principal.sub), peer=self.peer,
                 reason=reason)
        self.s.metrics.inc("gatekeeper_pulsar_denied_total", operation=op.name)
        answer = c.send_error_frame(what.send, sequence_id, error, f"Gatekeeper: {reason}")
        q = self._sends.setdefault(what.send, deque())
        if q:
            q.append(answer)
        else:
            self.io.to_client([answer])

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
        if what.consumer is not None and plan is not None:
            consumer_id, topic = what.consumer
            self.consumer_plans[consumer_id] = (plan, topic)
        self.io.to_upstream([frame.raw])

    def _deny(self, what: Classified, reason: str) -> None:
        assert what.operation is not None and what.refuse is not None
        op = what.operation
        log.info("pulsar {operation} on {resource} denied for {sub} ({peer}): {reason}", operation=op.name,
                 resource=printable(op.resource.name), sub=printable(self.session.principal.sub), peer=self.peer,
                 reason=reason)
        self.s.metrics.inc("gatekeeper_pulsar_denied_total", operation=op.name)
        answer = what.refuse(reason)
        if answer:
            self.io.to_client([answer])
        if what.closes:
            self._close(f"{op.name} on {op.resource.name} denied: {reason}")
