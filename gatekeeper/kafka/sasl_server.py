"""SASL termination for one client connection (sans-I/O): SaslHandshake and SaslAuthenticate
answered by Gatekeeper itself, never forwarded. Tokens are JWTs, over OAUTHBEARER or as the
PLAIN password (the PLAIN username is ignored: the token's subject is the principal)."""

from __future__ import annotations

from typing import Any

import attrs

from gatekeeper.identity.jwt_validator import AuthError, ValidatedToken
from gatekeeper.identity.sasl import SaslError, parse_oauthbearer, parse_plain
from gatekeeper.identity.service import IdentityService
from gatekeeper.kafka.codec import API_TABLE

__all__ = ["AuthOutcome", "SaslSession"]

UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
SASL_AUTHENTICATION_FAILED = 58
PUBLIC_FAILURE = "Authentication failed: the token was not accepted (see the gateway's log for why)"


@attrs.frozen
class AuthOutcome:
    response: Any  # SaslAuthenticate response body
    token: ValidatedToken | None
    reason: str | None  # for the operator's log when refused


class SaslSession:
    def __init__(self, mechanisms: tuple[str, ...], identity: IdentityService) -> None:
        self.mechanisms = mechanisms
        self.identity = identity
        self.mechanism: str | None = None

    def handshake(self, body: Any, version: int) -> Any:
        R = API_TABLE[17].response
        if body.mechanism not in self.mechanisms:
            self.mechanism = None
            return R[version](error_code=UNSUPPORTED_SASL_MECHANISM, mechanisms=list(self.mechanisms))
        self.mechanism = body.mechanism
        return R[version](error_code=0, mechanisms=list(self.mechanisms))

    def authenticate(self, auth_bytes: bytes, version: int, now: float) -> AuthOutcome:
        R = API_TABLE[36].response
        if self.mechanism is None:
            resp = R[version](error_code=ILLEGAL_SASL_STATE, error_message="SaslHandshake first", auth_bytes=b"")
            return AuthOutcome(resp, None, "SaslAuthenticate before a successful SaslHandshake")
        try:
            if self.mechanism == "OAUTHBEARER":
                token = parse_oauthbearer(auth_bytes)
            else:
                _user, token = parse_plain(auth_bytes)
            validated = self.identity.validate(token, self.mechanism)
        except (SaslError, AuthError) as e:
            reason = e.reason if isinstance(e, AuthError) else str(e)
            resp = R[version](error_code=SASL_AUTHENTICATION_FAILED, error_message=PUBLIC_FAILURE, auth_bytes=b"", session_lifetime_ms=0)
            return AuthOutcome(resp, None, reason)
        lifetime_ms = max(0, int((validated.expires_at - now) * 1000))
        resp = R[version](error_code=0, error_message=None, auth_bytes=b"", session_lifetime_ms=lifetime_ms)
        return AuthOutcome(resp, validated, None)
