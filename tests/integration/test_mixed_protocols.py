"""A Kafka and a Pulsar listener in one ``twistd gatekeeper`` process under one policy: a real
Kafka broker (harness/broker.py) and a real Pulsar standalone (harness/pulsar.py) behind it.

The principal ``svc-mixed`` authenticates to both listeners with a token from the same IdP (SASL
OAUTHBEARER for Kafka, the ``token`` method for Pulsar); the one policy allows it topics whose
name has ``shared-`` in it, whatever the protocol, and nothing else on topics.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.gateway import TwistdGateway
from harness.ports import LOOPBACK, free_port, free_port_range
from harness.tokens import AUDIENCE, ISSUER, TestIdp

pulsar = pytest.importorskip("pulsar")
confluent_kafka = pytest.importorskip("confluent_kafka")
pytest.importorskip("gatekeeper_pulsar.adapter", reason="the gatekeeper-pulsar plugin distribution is not installed")

pytestmark = pytest.mark.integration

IDP = TestIdp()

POLICY = """
package gatekeeper

default decision := {"action": "deny", "reason": "not a shared topic"}

decision := {"action": "allow", "reason": "not a topic"} if {
    input.principal.sub == "svc-mixed"
    input.resource.type != "topic"
}

decision := {"action": "allow", "reason": "shared topics, on either protocol"} if {
    input.principal.sub == "svc-mixed"
    input.resource.type == "topic"
    contains(input.resource.name, "shared-")
}
"""


class MixedGateway(TwistdGateway):
    """``twistd -n gatekeeper`` with a ``kafka`` and a ``pulsar`` listener and one policy."""

    def __init__(self, workdir: Path, kafka: Any, pulsar_broker: Any) -> None:
        self.workdir = Path(workdir)
        self.config_path = self.workdir / "gatekeeper.yaml"
        self.log_path = self.workdir / "gatekeeper.log"
        self.proc = None
        self.kafka_port, self.pulsar_port, self.admin_port = free_port(), free_port(), free_port()
        self.kafka_broker_ports, self.pulsar_broker_ports = free_port_range(3), free_port_range(1)
        policies = self.workdir / "policies"
        policies.mkdir(exist_ok=True)
        (policies / "mixed.rego").write_text(POLICY)
        raw = {
            "listeners": [{
                "name": "kafka",
                "bind": f"{LOOPBACK}:{self.kafka_port}",
                "advertised_host": LOOPBACK,
                "broker_ports": f"{self.kafka_broker_ports[0]}-{self.kafka_broker_ports[-1]}",
                "authentication": {"required": True, "mechanisms": ["OAUTHBEARER"]},
            }, {
                "name": "pulsar",
                "protocol": "pulsar",
                "bind": f"{LOOPBACK}:{self.pulsar_port}",
                "advertised_host": LOOPBACK,
                "broker_ports": f"{self.pulsar_broker_ports[0]}-{self.pulsar_broker_ports[-1]}",
                "authentication": {"required": True},
                "upstream": {"bootstrap_servers": [pulsar_broker.address]},
            }],
            "upstream": {"bootstrap_servers": [kafka.bootstrap]},
            "policy": {"engine": "embedded", "policies": str(policies)},
            "identity": {"jwt": {"issuer": ISSUER, "audience": AUDIENCE,
                                 "jwks_file": str(IDP.write_jwks(self.workdir / "jwks.json"))}},
            "admin": {"bind": f"{LOOPBACK}:{self.admin_port}"},
            "logging": {"level": "info"},
        }
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.listening = [self.kafka_port, self.pulsar_port, self.admin_port]


@pytest.fixture(scope="module")
def mixed_gateway(kafka_broker: Any, pulsar_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MixedGateway]:
    gw = MixedGateway(tmp_path_factory.mktemp("mixed-gw"), kafka_broker, pulsar_broker)
    with gw:
        yield gw


def _kafka_config(gw: MixedGateway) -> dict[str, Any]:
    def token(_cfg: Any) -> tuple[str, float]:
        return IDP.token(**IDP.claims(sub="svc-mixed")), time.time() + 300

    return {"bootstrap.servers": f"{LOOPBACK}:{gw.kafka_port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "OAUTHBEARER", "oauth_cb": token}


def _kafka_roundtrip(gw: MixedGateway, topic: str) -> tuple[Any, bytes | None]:
    delivered: list[Any] = []
    producer = confluent_kafka.Producer({**_kafka_config(gw), "message.timeout.ms": 20000})
    producer.produce(topic, b"through the kafka listener", on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(30)
    consumer = confluent_kafka.Consumer({**_kafka_config(gw), "group.id": f"mixed-{uuid.uuid4().hex[:6]}",
                                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = None
    deadline = time.monotonic() + 30
    try:
        while got is None and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                got = msg.value()
    finally:
        consumer.close()
    return (delivered or ["no delivery report"])[0], got


def test_one_policy_governs_a_kafka_and_a_pulsar_listener_in_one_process(mixed_gateway, kafka_broker):
    kafka_topic = f"shared-orders-{uuid.uuid4().hex[:6]}"
    kafka_broker.create_topic(kafka_topic, partitions=1)
    error, got = _kafka_roundtrip(mixed_gateway, kafka_topic)
    assert error is None and got == b"through the kafka listener"

    token = IDP.token(**IDP.claims(sub="svc-mixed"))
    client = pulsar.Client(f"pulsar://{LOOPBACK}:{mixed_gateway.pulsar_port}", authentication=pulsar.AuthenticationToken(token),
                           operation_timeout_seconds=10, connection_timeout_ms=5000)
    try:
        shared = f"persistent://public/default/shared-{uuid.uuid4().hex[:6]}"
        consumer = client.subscribe(shared, "mixed", initial_position=pulsar.InitialPosition.Earliest)
        client.create_producer(shared).send(b"through the pulsar listener")
        assert consumer.receive(timeout_millis=10000).data() == b"through the pulsar listener"
        secret = f"persistent://public/default/secret-{uuid.uuid4().hex[:6]}"
        with pytest.raises(pulsar.AuthorizationError):
            client.create_producer(secret)
    finally:
        client.close()
    log = mixed_gateway.log_path.read_text()
    assert f"on {secret} denied for svc-mixed" in log, "the Pulsar denial came from the policy"
    assert "denied" not in "\n".join(line for line in log.splitlines() if kafka_topic in line)


def test_the_kafka_listener_refuses_what_the_same_policy_refuses(mixed_gateway, kafka_broker):
    """The same principal on a Kafka topic without ``shared-``: the produce is refused with
    TOPIC_AUTHORIZATION_FAILED, as a Pulsar topic without it is."""
    topic = f"secret-orders-{uuid.uuid4().hex[:6]}"
    kafka_broker.create_topic(topic, partitions=1)
    delivered: list[Any] = []
    producer = confluent_kafka.Producer({**_kafka_config(mixed_gateway), "message.timeout.ms": 10000})
    producer.produce(topic, b"refused", on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(20)
    assert delivered and delivered[0] is not None
    assert delivered[0].code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED
