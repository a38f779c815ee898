"""SASL at the listener, for the Kafka connection core: SaslHandshake and SaslAuthenticate
answered by Gatekeeper (never forwarded), the principal they establish, the failure delay, the
login deadline and KIP-368 expiry. Mixed into ``KafkaConnection``."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.logger import Logger

from gatekeeper.api import ConnectionIO
from gatekeeper.audit.shapes import principal_fields, token_fields
from gatekeeper.kafka.codec import encode_body
from gatekeeper.kafka.entry import Entry
from gatekeeper.kafka.framing import FrameDecoder
from gatekeeper.kafka.sasl_server import SaslSession
from gatekeeper.kafka.settings import KafkaSettings
from gatekeeper.logsafe import printable

__all__ = ["LoginSide"]

log = Logger(namespace="gatekeeper.proxy.client")


class LoginSide:
    # State shared with the rest of the core (set by KafkaConnection.__init__).
    s: KafkaSettings
    io: ConnectionIO
    listener: Any
    peer: str
    session: Any
    principal: Any
    closing: bool
    decoder: FrameDecoder
    sasl: SaslSession | None
    _expiry: Any
    _login_deadline: Any
    _order: Any  # deque[Entry]: answers owed to the client, in arrival order
    _flush: Any  # ResponseSide._flush: writes the answers now due, in order (an annotation, not a stub:
    # a method here would come before ResponseSide's in KafkaConnection's method order)

    def _close(self, why: str, *, rejected: str | None = None, abort_upstream: bool = False) -> None:
        raise NotImplementedError

    def _write_client(self, data: Any) -> None:
        raise NotImplementedError

    def _advance(self) -> None:
        raise NotImplementedError

    def _connect_upstream(self) -> None:
        raise NotImplementedError

    def _login_timed_out(self) -> None:
        if self.principal is None:
            self._close(f"did not authenticate within {self.s.config.limits.authentication_timeout:g}s "
                        "(limits.authentication_timeout)", rejected="authentication_timeout")

    def _authenticate(self, entry: Entry | None, auth_bytes: bytes, version: int) -> None:
        assert self.sasl is not None and self.session is not None
        now = self.s.clock()
        outcome = self.sasl.authenticate(bytes(auth_bytes), version, now)
        token = outcome.token
        metrics = self.s.metrics
        if token is None:
            metrics.inc("gatekeeper_authentications_total", result="refused")
            if self.s.audit is not None:
                self.s.audit.record("authentication", {
                    "session": self.session.id, "result": "failure", "mechanism": self.sasl.mechanism or "?",
                    "principal": None, "token": None, "reason": printable(outcome.reason, 1024)})
            log.warn("authentication refused for {peer} (listener {listener}, session {session}): {reason}",
                     peer=self.peer, listener=self.listener.name, session=self.session.id, reason=printable(outcome.reason))
            delay = self.listener.authentication.failure_delay if self.listener.authentication else 0.2
            self.io.pause_client()
            self.io.call_later(delay, lambda: self._refuse(entry, outcome.response, version))
            return
        if self.principal is not None and token.principal.sub != self.principal.sub:
            self._close(f"re-authenticated as {token.principal.sub!r}, not {self.principal.sub!r}: refused", rejected="reauth_subject")
            return
        first = self.principal is None
        self.principal = token.principal
        if first:
            self.decoder.max_frame_bytes = self.s.config.limits.max_frame_bytes
            if self._login_deadline is not None and self._login_deadline.active():
                self._login_deadline.cancel()
            self._connect_upstream()
        self.session = attrs.evolve(self.session, principal=token.principal)
        metrics.inc("gatekeeper_authentications_total", result="ok" if first else "reauthenticated")
        if self.s.audit is not None:
            self.s.audit.record("authentication", {
                "session": self.session.id, "result": "success", "mechanism": token.principal.mechanism,
                "principal": principal_fields(token.principal), "token": token_fields(token.principal.claims)})
        log.info("{what} {sub} ({mech}) from {peer}, session {session}, token valid for {secs:.0f}s",
                 what="authenticated" if first else "re-authenticated", sub=printable(token.principal.sub),
                 mech=token.principal.mechanism, peer=self.peer, session=self.session.id, secs=token.expires_at - now)
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = self.io.call_later(max(0.0, token.expires_at - now), self._expired)
        if entry is None:  # SaslHandshake v0: the answer is a bare (empty) frame, in its turn
            bare = Entry(None)
            bare.decided, bare.response = True, b""
            self._order.append(bare)  # behind the answers still owed, as every answer waits
            self._flush()
            return
        assert entry.request is not None
        entry.response = self.s.codec.response_header(entry.request) + encode_body(outcome.response, version)
        self._advance()

    def _refuse(self, entry: Entry | None, response: Any, version: int) -> None:
        if self.closing:
            return
        if entry is not None and entry.request is not None:
            entry.response = self.s.codec.response_header(entry.request) + encode_body(response, version)
            self._advance()
        self._close("authentication failed", rejected="authentication")

    def _expired(self) -> None:
        self._close("token expired and the client did not re-authenticate (KIP-368)", rejected="expired")
