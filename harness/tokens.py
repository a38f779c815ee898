"""A test identity provider: keys, a JWKS and signed tokens (for tests and examples only)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["TestIdp"]

ISSUER = "https://idp.gatekeeper.test"
AUDIENCE = "kafka-gatekeeper"


class TestIdp:
    __test__ = False  # not a pytest class

    def __init__(self, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.issuer, self.audience = issuer, audience
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        rsa_jwk.update(kid="rsa-1", use="sig", alg="RS256")
        ec_jwk.update(kid="ec-1", use="sig", alg="ES256")
        return {"keys": [rsa_jwk, ec_jwk]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def rsa_public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def claims(self, sub: str | None = "svc-orders", groups: tuple[str, ...] = ("orders-writers",), lifetime: float = 300,
               now: float | None = None, **extra: Any) -> dict[str, Any]:
        now = time.time() if now is None else now
        c: dict[str, Any] = {"iss": self.issuer, "aud": self.audience, "iat": int(now), "nbf": int(now),
                             "exp": int(now + lifetime), "groups": list(groups)}
        if sub is not None:
            c["sub"] = sub
        c.update(extra)
        c = {k: v for k, v in c.items() if v is not None}
        return c

    def token(self, alg: str = "RS256", kid: str | None = None, **claims: Any) -> str:
        key = self.rsa if alg.startswith(("RS", "PS")) else self.ec
        kid = kid or ("rsa-1" if key is self.rsa else "ec-1")
        return jwt.encode(self.claims(**claims), key, algorithm=alg, headers={"kid": kid})

    def unsigned_token(self, **claims: Any) -> str:
        def b64(d: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

        return f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64(self.claims(**claims))}."

    def hs256_with_public_key(self, **claims: Any) -> str:
        """The algorithm-confusion attack: HS256 keyed with the RSA public key PEM."""
        header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
        import hashlib
        import hmac

        def b64(b: bytes) -> str:
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

        signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(self.claims(**claims)).encode())}"
        sig = hmac.new(self.rsa_public_pem(), signing.encode(), hashlib.sha256).digest()
        return f"{signing}.{b64(sig)}"
