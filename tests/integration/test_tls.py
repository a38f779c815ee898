"""TLS on the client listener, and mTLS where the certificate subject becomes the principal."""

from __future__ import annotations

import pytest
import pytest_twisted
from confluent_kafka import KafkaError, Producer

from gatekeeper.testing.certs import TestCa
from tests.integration.conftest import in_thread, start_gateway
from tests.integration.test_policy_opa import POLICY_DIR

pytestmark = pytest.mark.integration


def _produce_tls(bootstrap: str, ca: str, cert: str | None = None, key: str | None = None) -> dict[str, int | None]:
    conf = {"bootstrap.servers": bootstrap, "security.protocol": "SSL", "ssl.ca.location": ca,
            "message.timeout.ms": 15000}
    if cert:
        conf.update({"ssl.certificate.location": cert, "ssl.key.location": key})
    out: dict[str, int | None] = {}
    p = Producer(conf)
    for topic in ("orders", "payments"):
        p.produce(topic, b"tls", on_delivery=lambda e, m: out.__setitem__(m.topic(), e.code() if e else None))
    p.flush(20)
    return out


@pytest.fixture(scope="module")
def mtls(kafka_broker, tmp_path_factory):
    for topic in ("orders", "payments"):
        kafka_broker.create_topic(topic)
    work = tmp_path_factory.mktemp("mtls")
    ca = TestCa(work / "pki")
    server_cert, server_key = ca.issue("server", "127.0.0.1", server=True)
    client = ca.issue("client", "svc-orders", ou="orders-writers")
    gw = start_gateway(work / "gk.yaml", kafka_broker.bootstrap,
                       {"policy": {"engine": "embedded", "policies": str(POLICY_DIR)}},
                       tls={"cert_file": str(server_cert), "key_file": str(server_key), "client_ca_file": str(ca.ca_file)})
    yield gw, ca, client
    pytest_twisted.blockon(gw.service.stopService())


@pytest_twisted.inlineCallbacks
def test_mtls_certificate_subject_is_the_principal(mtls):
    gw, ca, (client_cert, client_key) = mtls
    if gw is not None:
        out = yield in_thread(_produce_tls, gw.bootstrap, str(ca.ca_file), str(client_cert), str(client_key))
        assert out == {"orders": None, "payments": KafkaError.TOPIC_AUTHORIZATION_FAILED}
        produce = [i for i in gw.inputs if i["operation"] == "produce"]
        assert produce and all(i["principal"]["sub"] == "svc-orders" and i["principal"]["mechanism"] == "MTLS"
                               and i["principal"]["groups"] == ["orders-writers"] for i in produce)
        # Without a client certificate the TLS handshake is refused: nothing gets through.
        out = yield in_thread(_produce_tls, gw.bootstrap, str(ca.ca_file))
        assert out["orders"] is not None
