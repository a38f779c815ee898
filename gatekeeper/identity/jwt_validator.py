"""JWT validation with PyJWT: a token from a client → the principal policies see.

Signatures are checked against a JWKS (by ``kid``), with the algorithms the operator allows;
``alg: none`` and HMAC algorithms are never accepted (no shared secrets: an HS256 token signed
with the RSA public key as the secret is the classic algorithm-confusion attack). ``exp``,
``nbf``, ``iat``, ``iss`` and ``aud`` are required and checked with a leeway. Pure and
synchronous; the JWKS is swapped in from outside (file re-read / URL fetch, never on the
reactor).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import jwt
from jwt import PyJWK, PyJWKSet

from gatekeeper.api import Principal

__all__ = ["AuthError", "JwtConfig", "JwtValidator", "ValidatedToken", "keys_from_jwks", "load_jwks_file", "parse_jwks"]

_ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})


class AuthError(Exception):
    """A token was refused. ``reason`` is for the operator's log, never sent to the client."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@attrs.frozen
class JwtConfig:
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    principal_claim: str = "sub"
    groups_claim: str = "groups"
    leeway: float = 30.0
    max_token_bytes: int = 16384


@attrs.frozen
class ValidatedToken:
    principal: Principal
    expires_at: float  # seconds since the epoch


class JwtValidator:
    def __init__(self, config: JwtConfig, jwks: Mapping[str, Any], on_unknown_kid: Callable[[], None] = lambda: None) -> None:
        bad = [a for a in config.algorithms if a not in _ASYMMETRIC]
        if bad:
            raise ValueError(f"identity.jwt.algorithms: {', '.join(bad)} not allowed (asymmetric algorithms only)")
        self.config = config
        self.on_unknown_kid = on_unknown_kid
        self.set_jwks(jwks)

    def set_jwks(self, jwks: Mapping[str, Any]) -> None:
        self.set_keys(keys_from_jwks(jwks))

    def set_keys(self, keys: Mapping[str, PyJWK]) -> None:
        """Swap in keys built by :func:`keys_from_jwks` (which can be called off the reactor)."""
        self._keys = dict(keys)

    @property
    def key_count(self) -> int:
        return len(self._keys)

    def validate(self, token: str, now: float, mechanism: str) -> ValidatedToken:
        cfg = self.config
        if len(token) > cfg.max_token_bytes:
            raise AuthError(f"token of {len(token)} bytes exceeds max_token_bytes {cfg.max_token_bytes}")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise AuthError(f"malformed token: {e}") from e
        alg = header.get("alg")
        if alg not in cfg.algorithms:
            raise AuthError(f"token algorithm {alg!r} is not allowed (allowed: {', '.join(cfg.algorithms)})")
        kid = header.get("kid")
        key = self._keys.get(kid) if kid else None
        if key is None:
            self.on_unknown_kid()
            raise AuthError(f"unknown key id {kid!r}")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=cfg.audience,
                issuer=cfg.issuer,
                leeway=cfg.leeway,
                options={"require": ["exp", "nbf", "iat", "iss", "aud"], "verify_iat": True},
            )
        except jwt.PyJWTError as e:
            raise AuthError(f"token refused: {type(e).__name__}: {e}") from e
        if "iat" in claims and claims["iat"] > now + cfg.leeway:
            raise AuthError("token issued in the future")
        sub = claims.get(cfg.principal_claim)
        if not isinstance(sub, str) or not sub:
            raise AuthError(f"token has no {cfg.principal_claim!r} claim to name the principal")
        groups = claims.get(cfg.groups_claim, [])
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise AuthError(f"token claim {cfg.groups_claim!r} is not a list of strings")
        rest = {k: v for k, v in claims.items() if k not in (cfg.principal_claim, cfg.groups_claim)}
        principal = Principal(sub=sub, issuer=claims.get("iss"), groups=tuple(groups), claims=rest, mechanism=mechanism)
        return ValidatedToken(principal, float(claims["exp"]))


def keys_from_jwks(jwks: Mapping[str, Any]) -> dict[str, PyJWK]:
    """The signing keys of a JWKS document by ``kid``. CPU-bound (a few thousand keys take a
    tenth of a second and more): the gateway calls it off the reactor thread. An empty set is
    no keys (PyJWT refuses it; a JWKS URL not fetched yet starts so)."""
    if not jwks.get("keys"):
        return {}
    return {k.key_id: k for k in PyJWKSet.from_dict(dict(jwks)).keys if k.key_id}


def parse_jwks(text: str | bytes, where: str) -> dict[str, Any]:
    """A JWKS document from its JSON text; ValueError naming ``where`` if it is not one."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError(f"{where}: not a JWKS document (expected an object with 'keys')")
    return data


def load_jwks_file(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        return parse_jwks(f.read(), path)
