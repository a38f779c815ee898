"""The sans-I/O core of one Pulsar client connection.

The client's CONNECT is answered here: its token (``auth_method_name: token``) is validated with
Gatekeeper's identity settings, and only then is the broker connection opened, with
Gatekeeper's own credential in a CONNECT of its own (the client's version and feature flags
kept, its credentials and proxy fields never forwarded). After CONNECTED, client commands are
taken in order: pass-through commands are forwarded as their bytes; LOOKUP,
PARTITIONED_METADATA, PRODUCER, SEND and SUBSCRIBE are put to the policy and forwarded as
their bytes when allowed, answered with the command's own error when not. From the broker,
LOOKUP_RESPONSE and TOPIC_MIGRATED have their broker addresses rewritten to Gatekeeper's; the
rest is forwarded as its bytes. The client's token is kept to its lifetime by
:class:`~gatekeeper_pulsar.client_token.ClientToken`; the client's AUTH_RESPONSE (its answer to
Gatekeeper's refresh challenge) is taken there at once, never forwarded.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.logger import Logger

from gatekeeper.api import ANONYMOUS, ConnectionIO, Decision, Principal
from gatekeeper.logsafe import printable
from gatekeeper.policy.input import SessionInfo, build_input, new_session_id
from gatekeeper.values import HostPort
from gatekeeper_pulsar import commands as c
from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.client_token import ClientToken
from gatekeeper_pulsar.framing import Frame, FrameDecoder, FrameError, encode_frame
from gatekeeper_pulsar.operations import Classified, classify
from gatekeeper_pulsar.settings import ListenerSettings, PulsarSettings

__all__ = ["PulsarConnection"]

log = Logger()
T = wire.BaseCommand
_QUEUE_PAUSE = 256  # client commands waiting behind a decision before reading pauses


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
        self._queue: deque[tuple[Frame, wire.BaseCommand]] = deque()
        self._waiting: tuple[int, Classified, Frame] | None = None
        self._token = 0
        self._pumping = False
        self._paused = False
        self._timers: list[Any] = []
        self.client_token = ClientToken(settings.identity, settings.clock, io, self._timers, self._refuse_refresh,
                                        self._close, listener.refresh_before, lambda: self.state == "ready")

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
                elif cmd.type == T.AUTH_RESPONSE:  # the answer to Gatekeeper's refresh challenge
                    self._client_refreshed(cmd)
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
        self.io.to_client([c.error_frame(c.NO_REQUEST_ID, c.SERVICE_NOT_READY, f"Gatekeeper cannot reach the broker: {reason}")])
        self._close(f"broker unreachable: {reason}")

    def upstream_lost(self, reason: str) -> None:
        self._close(f"the broker closed the connection: {reason}")

    def upstream_data(self, data: bytes) -> None:
        if self.closing:
            return
        self.broker_frames.receive_data(data)
        out: list[bytes] = []
        try:
            while True:
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
        if t == T.MESSAGE or t == T.SEND_RECEIPT:
            return [frame.raw]
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
            return frame.raw  # a failed lookup: no address to rewrite
        slot = self.listener.brokers.slot_of_url(url)
        if slot is None:
            message = (f"the broker answered the lookup with {url}, which is not among the brokers listener "
                       f"{self.listener.name} fronts (listeners[].options.brokers); Gatekeeper refuses to hand it out")
            log.warn("{message}", message=message)
            return c.lookup_failed_frame(r.request_id, c.SERVICE_NOT_READY, message)
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
        if decision.action == "allow":
            self._allow(what, frame)
        else:
            reason = decision.reason or "denied by policy"
            if decision.action in ("mask", "approve"):
                reason = f"{decision.action} is not supported for Pulsar yet, so it is a deny: {reason}"
            self._deny(what, reason)
        self._waiting = None
        if not self.closing:
            self._pump()

    def decision_failed(self, token: int, reason: str) -> None:
        self.decided(token, [Decision("deny", f"policy engine failed, denied: {reason}")])

    def held(self, token: int, outcomes: list[dict[str, Any]]) -> None:  # approvals: not yet for Pulsar
        pass

    def _allow(self, what: Classified, frame: Frame) -> None:
        if what.producer is not None:
            producer_id, topic = what.producer
            self.producers[producer_id] = topic
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
