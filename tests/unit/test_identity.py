from __future__ import annotations

import time

import pytest

from gatekeeper.identity.jwt_validator import AuthError, JwtConfig, JwtValidator
from gatekeeper.identity.sasl import SaslError, parse_oauthbearer, parse_plain
from harness.tokens import AUDIENCE, ISSUER, TestIdp

IDP = TestIdp()
OTHER = TestIdp()


def validator(**kw) -> JwtValidator:
    return JwtValidator(JwtConfig(issuer=ISSUER, audience=AUDIENCE, leeway=5, **kw), IDP.jwks())


def test_good_tokens_give_the_principal() -> None:
    now = time.time()
    for alg in ("RS256", "ES256"):
        v = validator().validate(IDP.token(alg=alg, sub="svc-a", groups=("g1", "g2"), team="orders"), now, "OAUTHBEARER")
        p = v.principal
        assert (p.sub, p.issuer, p.groups, p.mechanism) == ("svc-a", ISSUER, ("g1", "g2"), "OAUTHBEARER")
        assert p.claims["team"] == "orders" and "sub" not in p.claims
        assert abs(v.expires_at - (now + 300)) < 2


BAD = {
    "expired": lambda: IDP.token(now=time.time() - 1000, lifetime=60),
    "not yet valid": lambda: IDP.token(nbf=int(time.time()) + 600),
    "wrong issuer": lambda: IDP.token(iss="https://evil.example"),
    "wrong audience": lambda: IDP.token(aud="someone-else"),
    "bad signature": lambda: OTHER.token(),
    "alg none": lambda: IDP.unsigned_token(),
    "hs256 with the rsa public key": lambda: IDP.hs256_with_public_key(),
    "unknown kid": lambda: IDP.token(kid="rotated-away"),
    "malformed base64": lambda: "eyJhbGciOi!!!.%%%.***",
    "1 MB token": lambda: IDP.token(padding="x" * (1 << 20)),
    "missing sub": lambda: IDP.token(sub=None),
    "missing exp": lambda: IDP.token(exp=None),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_token_matrix_is_refused(case: str) -> None:
    token = BAD[case]()
    if case == "missing exp":
        import jwt

        claims = IDP.claims()
        del claims["exp"]
        token = jwt.encode(claims, IDP.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    with pytest.raises(AuthError) as err:
        validator().validate(token, time.time(), "OAUTHBEARER")
    assert err.value.reason


def test_unknown_kid_asks_for_a_jwks_refresh() -> None:
    asked = []
    v = JwtValidator(JwtConfig(issuer=ISSUER, audience=AUDIENCE), IDP.jwks(), on_unknown_kid=lambda: asked.append(1))
    with pytest.raises(AuthError, match="unknown key id"):
        v.validate(IDP.token(kid="new-key"), time.time(), "OAUTHBEARER")
    assert asked == [1]


def test_symmetric_algorithms_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="HS256"):
        JwtValidator(JwtConfig(issuer=ISSUER, audience=AUDIENCE, algorithms=("RS256", "HS256")), IDP.jwks())


def test_sasl_messages() -> None:
    assert parse_oauthbearer(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01") == "abc.def.ghi"
    assert parse_oauthbearer(b"n,a=svc,\x01host=x\x01auth=Bearer t\x01\x01") == "t"
    assert parse_plain(b"\x00svc\x00secret") == ("svc", "secret")
    for bad in (b"", b"garbage", b"n,,\x01auth=Basic x\x01\x01", b"\xff\xfe"):
        with pytest.raises(SaslError):
            parse_oauthbearer(bad)
    with pytest.raises(SaslError):
        parse_plain(b"only-one-part")


def test_jwks_keys_are_built_apart_and_swapped_in() -> None:
    from gatekeeper.identity.jwt_validator import keys_from_jwks, parse_jwks

    idp = TestIdp()
    validator = JwtValidator(JwtConfig(ISSUER, AUDIENCE), {"keys": []})
    keys = keys_from_jwks(parse_jwks(__import__("json").dumps(idp.jwks()), "test"))  # what the worker thread does
    assert set(keys) == {"rsa-1", "ec-1"}
    validator.set_keys(keys)  # what the reactor does
    assert validator.key_count == 2
    assert validator.validate(idp.token(), time.time(), "OAUTHBEARER").principal.sub == "svc-orders"
    with pytest.raises(ValueError, match="not a JWKS document"):
        parse_jwks("[]", "https://idp/jwks")
