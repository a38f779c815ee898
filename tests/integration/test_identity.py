"""Clients prove who they are with short-lived JWTs; only Gatekeeper holds the broker's secret.

The broker side is the test broker's SASL_PLAINTEXT listener, which accepts Gatekeeper's own
SCRAM-SHA-512 user; clients authenticate to Gatekeeper with tokens from a test IdP."""

from __future__ import annotations

import io
import json
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from confluent_kafka import Consumer, KafkaError, Producer
from kafka import KafkaConsumer, KafkaProducer
from kafka.net.sasl.oauth import AbstractTokenProvider

from gatekeeper.kafka.codec import API_TABLE
from harness.tokens import AUDIENCE, ISSUER, TestIdp
from tests.integration.conftest import in_thread, start_gateway

pytestmark = pytest.mark.integration

POLICY_DIR = Path(__file__).parent / "policy"
IDP = TestIdp()


@pytest.fixture(scope="module")
def idp_gateway(kafka_broker, opa_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("identity")
    secret = work / "broker-secret"
    secret.write_text(kafka_broker.scram_password + "\n")
    for topic in ("orders", "payments"):
        kafka_broker.create_topic(topic, partitions=1)
    opa_server.restart()
    gw = start_gateway(work / "gk.yaml", kafka_broker.sasl_bootstrap, {
        "policy": {"engine": "opa", "url": opa_server.url, "policies": str(POLICY_DIR), "cache": {"default_ttl": "1s"}},
        "identity": {"jwt": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(IDP.write_jwks(work / "jwks.json")),
                             "leeway": "2s"}},
        "upstream": {"bootstrap_servers": [kafka_broker.sasl_bootstrap],
                     "sasl": {"mechanism": "SCRAM-SHA-512", "username": kafka_broker.scram_user, "password_file": str(secret)}},
    }, auth={"required": True, "mechanisms": ["OAUTHBEARER", "PLAIN"], "failure_delay": "100ms"})
    gw.secret_file = secret  # type: ignore[attr-defined]
    yield gw
    pytest_twisted.blockon(gw.service.stopService())


def _confluent(bootstrap: str, token_fn: Any) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER",
            "oauth_cb": token_fn}


def _confluent_roundtrip(bootstrap: str) -> dict[str, Any]:
    def token(_cfg: Any) -> tuple[str, float]:
        return IDP.token(sub="svc-orders", groups=("orders-writers",), lifetime=300), time.time() + 300

    results: dict[str, Any] = {}
    p = Producer({**_confluent(bootstrap, token), "message.timeout.ms": 20000})
    for topic in ("orders", "payments"):
        p.produce(topic, f"hello-{topic}".encode(), on_delivery=lambda e, m: results.__setitem__(m.topic(), e.code() if e else None))
    p.flush(30)
    c = Consumer({**_confluent(bootstrap, token), "group.id": "idp-readers", "auto.offset.reset": "earliest"})
    c.subscribe(["orders"])
    got = None
    deadline = time.monotonic() + 30
    while got is None and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got = m.value()
    c.close()
    results["consumed"] = got
    return results


@pytest_twisted.inlineCallbacks
def test_confluent_oauthbearer_produces_and_consumes_with_groups_reaching_the_policy(idp_gateway):
    out = yield in_thread(_confluent_roundtrip, idp_gateway.bootstrap)
    assert out["orders"] is None and out["consumed"] == b"hello-orders"
    assert out["payments"] == KafkaError.TOPIC_AUTHORIZATION_FAILED  # decided on input.principal.groups
    produce = [i for i in idp_gateway.inputs if i["operation"] == "produce"]
    assert produce and all(i["principal"]["sub"] == "svc-orders" and i["principal"]["groups"] == ["orders-writers"]
                           and i["principal"]["mechanism"] == "OAUTHBEARER" and i["principal"]["issuer"] == ISSUER for i in produce)


class _Provider(AbstractTokenProvider):
    def token(self) -> str:
        return IDP.token(sub="svc-orders", groups=("orders-writers",))


def _kafka_python(bootstrap: str, **auth: Any) -> bytes:
    p = KafkaProducer(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT", **auth)
    p.send("orders", b"kp").get(30)
    p.close()
    c = KafkaConsumer("orders", bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                      auto_offset_reset="earliest", consumer_timeout_ms=10000, **auth)
    values = [m.value for m in c]
    c.close()
    return b"kp" if b"kp" in values else b""


@pytest_twisted.inlineCallbacks
def test_kafka_python_oauthbearer_and_plain_with_jwt(idp_gateway):
    got = yield in_thread(_kafka_python, idp_gateway.bootstrap, sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=_Provider())
    assert got == b"kp"
    token = IDP.token(sub="svc-orders", groups=("orders-writers",))
    got = yield in_thread(_kafka_python, idp_gateway.bootstrap, sasl_mechanism="PLAIN",
                          sasl_plain_username="ignored", sasl_plain_password=token)
    assert got == b"kp"
    assert any(i["principal"]["mechanism"] == "PLAIN" for i in idp_gateway.inputs)


def _raw_auth(bootstrap: str, token: str, idle: float = 0.0) -> tuple[int, str, str]:
    """SaslHandshake v1 + SaslAuthenticate v2 by hand: (error code, message, what happened next)."""
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=20) as s:
        def call(api: int, version: int, cid: int, **fields: Any) -> Any:
            m = API_TABLE[api].request[version](**fields)
            m.with_header(correlation_id=cid, client_id="raw")
            b = bytes(m.encode(header=True))
            s.sendall(struct.pack(">i", len(b)) + b)
            (n,) = struct.unpack(">i", _recv(s, 4))
            data = _recv(s, n)
            head = 4 + (1 if API_TABLE[api].response_header_version(version) else 0)
            return API_TABLE[api].response.decode(data[head:], version=version)

        call(17, 1, 1, mechanism="OAUTHBEARER")
        r = call(36, 2, 2, auth_bytes=f"n,,\x01auth=Bearer {token}\x01\x01".encode())
        after = ""
        if idle:
            s.settimeout(idle)
            try:
                after = "closed" if s.recv(1) == b"" else "data"
            except TimeoutError:
                after = "open"
        else:
            try:
                s.settimeout(5)
                after = "closed" if s.recv(1) == b"" else "data"
            except TimeoutError:
                after = "open"
            except ConnectionResetError:
                after = "closed"
        return r.error_code, r.error_message or "", after


def _recv(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


@pytest.mark.parametrize("case", ["expired", "not yet valid", "wrong issuer", "wrong audience", "bad signature", "alg none",
                                  "hs256 with the rsa public key", "unknown kid", "malformed base64", "20 KB token", "missing sub"])
@pytest_twisted.inlineCallbacks
def test_bad_tokens_get_sasl_authentication_failed_and_no_crash(idp_gateway, case):
    from tests.unit.test_identity import BAD

    # Over identity.jwt.max_token_bytes (16 KiB) but under the frame cap before login (64 KiB).
    token = BAD[case]() if case != "20 KB token" else IDP.token(padding="x" * 20_000)
    code, message, after = yield in_thread(_raw_auth, idp_gateway.bootstrap, token)
    assert code == 58 and "not accepted" in message and after == "closed"
    assert "eyJ" not in message  # the token is never echoed


@pytest_twisted.inlineCallbacks
def test_a_1_mb_token_is_refused_before_it_is_read(idp_gateway):
    """Before login a frame may be 64 KiB at most (limits.max_unauthenticated_frame_bytes):
    a 1 MB SASL frame closes the connection without being buffered or parsed."""
    token = IDP.token(padding="x" * (1 << 20))
    with pytest.raises(ConnectionError):
        yield in_thread(_raw_auth, idp_gateway.bootstrap, token)


@pytest_twisted.inlineCallbacks
def test_a_client_that_does_not_reauthenticate_is_disconnected_at_expiry(idp_gateway):
    token = IDP.token(sub="svc-orders", lifetime=3)
    code, _, after = yield in_thread(_raw_auth, idp_gateway.bootstrap, token, 8.0)
    assert code == 0 and after == "closed"


def _confluent_keeps_producing(bootstrap: str, seconds: float) -> tuple[int, int, int]:
    issued = []

    def token(_cfg: Any) -> tuple[str, float]:
        issued.append(time.time())
        return IDP.token(sub="svc-orders", groups=("orders-writers",), lifetime=5), time.time() + 5

    errors, ok = [], []
    p = Producer({**_confluent(bootstrap, token), "message.timeout.ms": 10000})
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        p.produce("orders", b"reauth", on_delivery=lambda e, m: (errors if e else ok).append(e))
        p.poll(0.2)
    p.flush(15)
    return len(ok), len(errors), len(issued)


@pytest_twisted.inlineCallbacks
def test_kip368_confluent_keeps_producing_across_reauthentications(idp_gateway):
    ok, errors, tokens = yield in_thread(_confluent_keeps_producing, idp_gateway.bootstrap, 14.0)
    assert errors == 0 and ok > 30
    assert tokens >= 3, "the client fetched fresh tokens and re-authenticated several times"
    log = [e for e in idp_gateway.gateway.metrics.render().splitlines() if "reauthenticated" in e and not e.startswith("#")]
    assert log and float(log[0].split()[-1]) >= 2


def _produce_with_token(bootstrap: str) -> Any:
    def token(_cfg: Any) -> tuple[str, float]:
        return IDP.token(sub="svc-orders", groups=("orders-writers",)), time.time() + 300

    out: list[Any] = []
    p = Producer({**_confluent(bootstrap, token), "message.timeout.ms": 15000})
    p.produce("orders", b"rotated", on_delivery=lambda e, m: out.append(e.code() if e else None))
    p.flush(20)
    return out[0] if out else "no delivery report"


@pytest_twisted.inlineCallbacks
def test_zz_secret_rotation_and_no_secret_anywhere(idp_gateway, kafka_broker):
    from twisted.logger import formatEvent, globalLogPublisher

    from gatekeeper.logs import JsonLinesObserver

    seen: list[str] = []
    json_lines = io.StringIO()  # the same events as logging.format: json writes them
    as_json = JsonLinesObserver(json_lines)

    def observe(event: dict[str, Any]) -> None:
        seen.append(formatEvent(event) + repr(event.get("log_failure", "")))

    globalLogPublisher.addObserver(observe)
    globalLogPublisher.addObserver(as_json)
    old = kafka_broker.scram_password
    try:
        new = "rotated-" + old[::-1]
        yield in_thread(kafka_broker.set_scram_password, kafka_broker.scram_user, new)
        idp_gateway.secret_file.write_text(new + "\n")
        idp_gateway.service.reload()  # what SIGHUP does
        assert (yield in_thread(_produce_with_token, idp_gateway.bootstrap)) is None, "new sessions use the new secret"
        text = "\n".join(seen) + idp_gateway.gateway.metrics.render() + repr(idp_gateway.inputs)
        records = [json.loads(line) for line in json_lines.getvalue().splitlines()]
        assert records and any(r["namespace"].startswith("gatekeeper") for r in records)
        for secret in (old, new):
            assert secret not in text
            assert secret not in json_lines.getvalue()
    finally:
        globalLogPublisher.removeObserver(observe)
        globalLogPublisher.removeObserver(as_json)


def test_direct_to_the_broker_without_credentials_fails(kafka_broker) -> None:
    from kafka.errors import KafkaError as KafkaPythonError

    with pytest.raises(KafkaPythonError):
        KafkaProducer(bootstrap_servers=kafka_broker.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="PLAIN", sasl_plain_username="svc-orders", sasl_plain_password=IDP.token(),
                      max_block_ms=5000).send("orders", b"x").get(10)
