"""The sans-I/O core of one Pulsar client connection.

The client's CONNECT is answered here: its token (``auth_method_name: token``) is validated with
Gatekeeper's identity settings, and only then is the broker connection opened, with
Gatekeeper's own credential in a CONNECT of its own (the client's version and feature flags
kept, its credentials and proxy fields never forwarded). After CONNECTED, client commands are
taken in order: pass-through commands are forwarded as their bytes; LOOKUP,
PARTITIONED_METADATA, PRODUCER, SEND and SUBSCRIBE are put to the policy and forwarded as
their bytes when allowed, answered with the command's own error when not. A command the
policy asks a person to approve is held (the commands after it wait behind it; PING and PONG
do not) until its approval request is decided or the wait is over; approved, it is decided
again with the grant. From the broker, LOOKUP_RESPONSE and TOPIC_MIGRATED have their broker
addresses rewritten to Gatekeeper's; the rest is forwarded as its bytes.

With an audit trail, the session's start and end, the login and one ``request`` record per
decided command go into it (``auditing``); a command is let through only once its record has a
place in the trail, and the record is completed by the broker's answer.
The client's token is kept to its lifetime by :class:`~gatekeeper_pulsar.client_token.ClientToken`;
the client's AUTH_RESPONSE (its answer to Gatekeeper's refresh challenge) is taken there at once,
never forwarded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from typing import Any

import attrs
from twisted.logger import Logger

from gatekeeper.api import ANONYMOUS, ConnectionIO, Decision, Principal, approval_decision
from gatekeeper.audit.shapes import principal_fields, token_fields
from gatekeeper.logsafe import printable
from gatekeeper.policy.input import SessionInfo, build_input, new_session_id
from gatekeeper.values import HostPort, parse_duration
from gatekeeper_pulsar import auditing
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
_KEEPALIVE = frozenset({T.PING, T.PONG})  # never wait behind a decision or an approval


@attrs.define
class _Decided:
    """The client command being decided (one at a time; later ones wait in the queue)."""

    token: int
    what: Classified
    frame: Frame
    cmd: wire.BaseCommand
    received_at: float
    policy_input: dict[str, Any] = attrs.field(factory=dict)
    approval: dict[str, Any] | None = None  # the outcome of its approval request, once held


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
        if self._waiting is not None or self._queue or self._answers:
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
        out: list[bytes] = []
        try:
            while True:
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
            return [frame.raw]
        if self._answers and t != T.LOOKUP_RESPONSE:  # a lookup's: as the client gets it, below
            self._audit_answer(cmd)
        if t == T.SEND_RECEIPT:
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
                self._waiting = _Decided(0, what, frame, cmd, received_at)
                self._ask(self._waiting)
            if forward:
                self.io.to_upstream(forward)
        finally:
            self._pumping = False
        self._flow_control()

    def _ask(self, pending: _Decided) -> None:
        """Put the command to the policy, with the principal's grants as they are now."""
        assert pending.what.operation is not None
        cmd = pending.cmd
        self._token += 1
        pending.token = self._token
        now = self.s.clock()
        pending.policy_input = build_input(
            pending.what.operation, api_key=int(cmd.type) if cmd.HasField("type") else 0,
            api_name=c.command_name(cmd), api_version=self.protocol_version, client_id=None,
            session=self.session, now=now, grants=self.s.grants_for(self.session.principal, now))
        self.s.inputs_decoded([pending.policy_input])
        self.io.decide(self._token, [pending.policy_input])

    def _flow_control(self) -> None:
        if not self._paused and len(self._queue) >= _QUEUE_PAUSE:
            self._paused = True
            self.io.pause_client()
        elif self._paused and len(self._queue) < _QUEUE_PAUSE // 2:
            self._paused = False
            self.io.resume_client()

    def decided(self, token: int, decisions: list[Decision]) -> None:
        pending = self._waiting
        if pending is None or pending.token != token or self.closing:
            return
        decision = decisions[0] if decisions else Decision("deny", "no decision")
        if decision.action == "approve":
            if pending.approval is None:
                self._hold(pending, decision)
                return
            # Decided again after its approval: an approve now is the outcome's denial (a
            # policy that does not allow on the grant it asked for: never held twice).
            decision = approval_decision(pending.approval)
        elif decision.action == "mask":
            decision = Decision("deny", f"mask is not supported for Pulsar yet, so it is a deny: "
                                        f"{decision.reason or 'denied by policy'}", ttl=decision.ttl)
        self._enforce(pending, decision)

    def decision_failed(self, token: int, reason: str) -> None:
        self.decided(token, [Decision("deny", f"policy engine failed, denied: {reason}")])

    # -- approvals ------------------------------------------------------------------------------

    def _hold(self, pending: _Decided, decision: Decision) -> None:
        """An approve decision: the command waits (the commands after it wait behind it) until
        its approval request is decided or the decision's wait, capped by approvals.max_wait,
        is over."""
        op = pending.what.operation
        assert op is not None
        max_wait = self.s.approvals_max_wait
        if max_wait is None:
            self._enforce(pending, Decision("deny", f"the policy asks for approval ({decision.reason}), but approvals "
                                                    "are not configured here; denied"))
            return
        approval = dict(decision.approval or {})
        wait = max_wait
        if approval.get("wait"):
            try:
                wait = min(max_wait, parse_duration(str(approval["wait"])))
            except ValueError:
                pass  # the approvals service refuses the malformed approval: said to the client
        request = {
            "principal": self.session.principal,
            "client": dict(pending.policy_input["client"]),
            "operation": op.name,
            "resource": op.resource,
            "summary": dict(pending.policy_input["request"]),
            "reason": decision.reason,
            "approval": approval,
        }
        log.info("pulsar {operation} on {resource} for {sub} ({peer}) held for approval, up to {wait:g}s",
                 operation=op.name, resource=printable(op.resource.name), sub=printable(self.session.principal.sub),
                 peer=self.peer, wait=wait)
        self._token += 1
        pending.token = self._token
        self.io.hold(self._token, [request], wait)

    def held(self, token: int, outcomes: list[dict[str, Any]]) -> None:
        """The approval request of the held command: decided, or still pending after the wait."""
        pending = self._waiting
        if pending is None or pending.token != token or self.closing:
            return
        outcome = dict(outcomes[0]) if outcomes else {"status": "unavailable", "reason": "no outcome"}
        pending.approval = outcome
        self.s.metrics.inc("gatekeeper_held_requests_total", outcome=str(outcome.get("status")))
        if outcome.get("status") == "approved":
            # The grant is in place: the policy decides again with it in the input (it may now
            # say mask rather than allow), never a blind forward.
            self._ask(pending)
            return
        self._enforce(pending, approval_decision(outcome))

    # -- enforcing ------------------------------------------------------------------------------

    def _enforce(self, pending: _Decided, decision: Decision) -> None:
        what = pending.what
        slot = None
        trail = self.s.audit
        if trail is not None:
            # A place in the trail is taken before anything is let through: a command that could
            # not be recorded does not happen (fail closed).
            slot = trail.reserve()
            if slot is None:
                self.s.metrics.inc("gatekeeper_rejected_total", reason="audit_unavailable")
                decision = Decision("deny", f"audit trail unavailable ({trail.error or 'its queue is full'}): "
                                            "denied until it recovers", ttl=0.0)
        self._waiting = None
        if decision.allowed:
            self._allow(what, pending.frame)
            if slot is not None:
                fields = self._request_fields(pending, decision)
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
            reason = decision.reason or "denied by policy"
            assert what.refuse is not None
            answer = what.refuse(reason)
            if slot is not None:
                fields = self._request_fields(pending, decision, dropped=not answer)
                self._complete(slot, fields, {"from": "gatekeeper"} if answer else {"from": "none", "error": reason},
                               pending.received_at)
            self._deny(what, reason, answer)
        if not self.closing:
            self._pump()

    def _allow(self, what: Classified, frame: Frame) -> None:
        if what.producer is not None:
            producer_id, topic = what.producer
            self.producers[producer_id] = topic
        self.io.to_upstream([frame.raw])

    def _deny(self, what: Classified, reason: str, answer: bytes) -> None:
        assert what.operation is not None
        op = what.operation
        log.info("pulsar {operation} on {resource} denied for {sub} ({peer}): {reason}", operation=op.name,
                 resource=printable(op.resource.name), sub=printable(self.session.principal.sub), peer=self.peer,
                 reason=reason)
        self.s.metrics.inc("gatekeeper_pulsar_denied_total", operation=op.name)
        if answer:
            self._write_client([answer])
        if what.closes:
            self._close(f"{op.name} on {op.resource.name} denied: {reason}")

    # -- the audit trail ----------------------------------------------------------------------------

    def _request_fields(self, pending: _Decided, decision: Decision, dropped: bool = False) -> dict[str, Any]:
        """The command's request record, but for its outcome (filled in by the broker's answer)."""
        cmd = pending.cmd
        approval = None
        if pending.approval is not None and pending.approval.get("id"):
            waited = max(0, int(1000 * (self.s.clock() - pending.received_at)))
            approval = {"id": str(pending.approval["id"]), "status": str(pending.approval.get("status")), "waited_ms": waited}
        fields: dict[str, Any] = {
            "session": self.session.id, "principal": principal_fields(self.session.principal),
            "client": {"id": None, "address": self.session.client_address},
            "api": {"key": int(cmd.type) if cmd.HasField("type") else 0, "name": c.command_name(cmd),
                    "version": max(0, self.protocol_version)},
            "operations": auditing.operation_entries(pending.policy_input, decision, self.s.policy_revision(), approval,
                                                     dropped=dropped),
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
