"""Session-wide fixtures: one real Kafka broker, one real Pulsar broker and one real OPA server
per test run.

Both start on first use only, so unit-test runs never pay for them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.broker import KafkaBroker
from harness.opa import OpaServer
from harness.pulsar import PulsarBroker


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A started single-node KRaft broker (PLAINTEXT and SASL_PLAINTEXT listeners)."""
    with KafkaBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def pulsar_broker() -> Iterator[PulsarBroker]:
    """A started Pulsar standalone broker (loopback, no authentication, RocksDB metadata)."""
    with PulsarBroker() as broker:
        yield broker


AUTHZ_OUTSIDER = ("outsider", "outsider-secret")
AUTHZ_ALICE = ("alice", "alice-secret")  # given ACLs by the differential test


@pytest.fixture(scope="session")
def authz_broker() -> Iterator[KafkaBroker]:
    """A second broker that runs Kafka's own StandardAuthorizer: ``AUTHZ_OUTSIDER`` (a SASL user
    with no ACLs) is refused everything, so the broker's own error responses can be compared
    with Gatekeeper's. The PLAINTEXT listener (ANONYMOUS) and ``gatekeeper`` are super users."""
    user, password = AUTHZ_OUTSIDER
    config = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS;User:gatekeeper",
    }
    with KafkaBroker(heap="512m", extra_users={user: password, AUTHZ_ALICE[0]: AUTHZ_ALICE[1]}, extra_config=config) as broker:
        yield broker


@pytest.fixture(scope="session")
def opa_server() -> Iterator[OpaServer]:
    """A started ``opa run --server`` with no policies loaded."""
    with OpaServer() as server:
        yield server
