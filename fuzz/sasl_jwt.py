"""SASL messages of both mechanisms and JWT handling, up to and past the signature check.

Input: the first byte picks what the rest is:
  0: an OAUTHBEARER client message through the SASL session (parse, then token validation);
  1: a PLAIN message through the SASL session (the password is the token);
  2: a token, straight to the validator (header, algorithm, key id, signature);
  3: the claims of a token: the rest is its payload's bytes, signed with the harness's own key
     (which the validator trusts), so the claim checks after the signature are reached too.
The SASL session must answer every message (an AuthOutcome, never an exception); the
validator may raise AuthError only.
"""

from __future__ import annotations

import base64
import json
import time

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gatekeeper.identity.jwt_validator import AuthError, JwtConfig, JwtValidator
from gatekeeper.identity.sasl import SaslError, parse_oauthbearer, parse_plain

EXPECTED = (AuthError, SaslError)
ISSUER, AUDIENCE = "https://idp.fuzz.test", "kafka-gatekeeper"
_KEY = ec.derive_private_key(0x6A7E6E6E9E6B5A4C3B2A19080706050403020100FEEDFACECAFEBEEF12345678, ec.SECP256R1())
_JWK = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(_KEY.public_key()))
_JWK.update(kid="ec-1", use="sig", alg="ES256")
_NOW = time.time()  # PyJWT checks exp/nbf/iat against the real clock: so does the harness
_HEADER = base64.urlsafe_b64encode(b'{"alg":"ES256","typ":"JWT","kid":"ec-1"}').rstrip(b"=")


class _Identity:
    """The IdentityService's validate, without its JWKS refreshes."""

    def __init__(self) -> None:
        self.validator = JwtValidator(JwtConfig(ISSUER, AUDIENCE, ("RS256", "ES256")), {"keys": [_JWK]})

    def validate(self, token: str, mechanism: str) -> object:
        return self.validator.validate(token, _NOW, mechanism)


_IDENTITY = _Identity()


def signed(payload: bytes) -> str:
    """A compact JWS of ``payload`` (any bytes) signed ES256 with the harness's key."""
    body = base64.urlsafe_b64encode(payload).rstrip(b"=")
    signing_input = _HEADER + b"." + body
    r, s = decode_dss_signature(_KEY.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    sig = base64.urlsafe_b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).rstrip(b"=")
    return (signing_input + b"." + sig).decode()


def claims_for(sub: str = "svc-fuzz", **extra: object) -> bytes:
    """Claims valid from 2023 to 2100 (for seeds, which must stay valid)."""
    c = {"iss": ISSUER, "aud": AUDIENCE, "iat": 1_700_000_000, "nbf": 1_700_000_000, "exp": 4_102_444_800,
         "sub": sub, "groups": ["g"], **extra}
    return json.dumps(c).encode()


def _session(mechanism: str, message: bytes) -> None:
    from gatekeeper.kafka.sasl_server import SaslSession

    session = SaslSession(("OAUTHBEARER", "PLAIN"), _IDENTITY)  # type: ignore[arg-type]
    session.mechanism = mechanism
    for version in (0, 1, 2):
        outcome = session.authenticate(message, version, time.time())
        if (outcome.token is None) == (outcome.reason is None):
            raise AssertionError("an outcome has either a token or a reason")


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 4, data[1:]
    if mode == 0:
        try:
            parse_oauthbearer(rest)
        except SaslError:
            pass
        _session("OAUTHBEARER", rest)
    elif mode == 1:
        try:
            parse_plain(rest)
        except SaslError:
            pass
        _session("PLAIN", rest)
    elif mode == 2:
        token = rest.decode("utf-8", "replace")  # text, as the SASL parsers hand it over
        _IDENTITY.validator.validate(token, _NOW, "OAUTHBEARER")
    else:
        _IDENTITY.validator.validate(signed(rest), _NOW, "OAUTHBEARER")
