"""The client's token over its session: when it expires, and its refresh through AUTH_CHALLENGE.

The token of the client's CONNECT is validated by the connection; from then on this object
keeps the session to the token's lifetime. The session ends when the token expires, unless the
client refreshes it: ``refresh_before`` seconds ahead of the expiry (at most half the time left)
Gatekeeper sends the client an AUTH_CHALLENGE, as a broker does, when the client's CONNECT said
it can answer one (``feature_flags.supports_auth_refresh``). The AUTH_RESPONSE's token is
validated with the same identity settings and must name the same principal (``sub`` and
issuer); then the session lives until the new token's expiry, and later policy inputs carry the
new token's claims. An answer that is refused (invalid token, another principal, another
method, or no challenge outstanding) gets AuthenticationError and the connection closes; no
answer, and the session ends at expiry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from gatekeeper.api import ConnectionIO, Principal
from gatekeeper.logsafe import printable
from gatekeeper_pulsar import commands as c
from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.framing import encode_frame

__all__ = ["REFRESH_CHALLENGE", "ClientToken"]

log = Logger()
T = wire.BaseCommand
REFRESH_CHALLENGE = b"PulsarAuthRefresh"  # what a broker's refresh challenge carries


class ClientToken:
    """One client's token: expiry, the refresh challenge ahead of it, and the client's answer.

    ``timers`` is the connection's list of pending calls (cancelled when it closes); ``refuse``
    answers AuthenticationError and closes the connection; ``expired`` closes it; ``ready`` says
    whether the client has had its CONNECTED (no challenge comes before it)."""

    def __init__(self, identity: Any, clock: Callable[[], float], io: ConnectionIO, timers: list[Any],
                 refuse: Callable[[str], None], expired: Callable[[str], None], refresh_before: float,
                 ready: Callable[[], bool] = lambda: True) -> None:
        self.identity = identity
        self.clock = clock
        self.io = io
        self.timers = timers
        self.refuse = refuse
        self.expired = expired
        self.refresh_before = refresh_before
        self.ready = ready
        self.principal: Principal | None = None
        self.expires_at = 0.0
        self.can_refresh = False
        self.challenged = False
        self.refreshes = 0
        self._generation = 0  # timers of an earlier token do nothing
        self._protocol_version = 0
        self._client_version = ""

    def start(self, principal: Principal, expires_at: float, connect: wire.CommandConnect) -> None:
        """The CONNECT's token was accepted: keep the session to its lifetime."""
        self.principal = principal
        self.can_refresh = connect.feature_flags.supports_auth_refresh
        self._protocol_version = connect.protocol_version
        self._client_version = connect.client_version
        self._schedule(expires_at)

    def _schedule(self, expires_at: float) -> None:
        self._generation += 1
        generation = self._generation
        self.expires_at = expires_at
        self.challenged = False
        left = max(expires_at - self.clock(), 0.0)
        self.timers[:] = [t for t in self.timers if t.active()]
        self.timers.append(self.io.call_later(left, lambda: self._expire(generation)))
        if self.can_refresh and self.refresh_before > 0 and left > 0:
            lead = min(self.refresh_before, left / 2)
            self.timers.append(self.io.call_later(left - lead, lambda: self._challenge(generation)))

    def _expire(self, generation: int) -> None:
        if generation == self._generation:
            self.expired("the client's token expired" + (" (the refresh challenge was not answered)"
                                                         if self.challenged else ""))

    def _challenge(self, generation: int) -> None:
        if generation != self._generation:
            return
        if not self.ready():  # the broker has not answered Gatekeeper's CONNECT yet: ask again shortly
            if self.expires_at - self.clock() > 1.0:
                self.timers.append(self.io.call_later(0.5, lambda: self._challenge(generation)))
            return
        self.challenged = True
        cmd = wire.BaseCommand(type=T.AUTH_CHALLENGE)
        cmd.authChallenge.server_version = "Gatekeeper"
        cmd.authChallenge.protocol_version = self._protocol_version
        cmd.authChallenge.challenge.auth_method_name = "token"
        cmd.authChallenge.challenge.auth_data = REFRESH_CHALLENGE
        self.io.to_client([encode_frame(c.serialize(cmd))])

    def answer(self, cmd: wire.BaseCommand) -> Principal | None:
        """The client's AUTH_RESPONSE: the (same) principal with the new token's claims, or None
        when it was refused (the connection is then closing)."""
        if not self.challenged or self.principal is None:
            self.refuse("AUTH_RESPONSE without an outstanding AUTH_CHALLENGE")
            return None
        response = cmd.authResponse.response
        if response.auth_method_name != "token" or not response.auth_data:
            self.refuse(f"the refresh answer must be a token, got method {printable(response.auth_method_name)!r}")
            return None
        try:
            token = self.identity.validate(response.auth_data.decode("utf-8", "replace"), "token")
        except Exception as e:  # the validator's errors say what is wrong with the token
            self.refuse(f"refreshed token refused: {e}")
            return None
        new = token.principal
        if (new.sub, new.issuer) != (self.principal.sub, self.principal.issuer):
            self.refuse(f"the refreshed token names {printable(new.sub)!r}, not the session's principal "
                        f"{printable(self.principal.sub)!r}; a connection keeps one principal")
            return None
        self.principal = new
        self.refreshes += 1
        log.info("pulsar client {sub} refreshed its token; the session now ends at the new expiry",
                 sub=printable(new.sub))
        self._schedule(token.expires_at)
        return new  # type: ignore[no-any-return]
