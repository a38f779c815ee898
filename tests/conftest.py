"""Session-wide fixtures: one real Kafka broker and one real OPA server per test run.

Both start on first use only, so unit-test runs never pay for them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gatekeeper.testing.broker import KafkaBroker
from gatekeeper.testing.opa import OpaServer


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A started single-node KRaft broker (PLAINTEXT and SASL_PLAINTEXT listeners)."""
    with KafkaBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def opa_server() -> Iterator[OpaServer]:
    """A started ``opa run --server`` with no policies loaded."""
    with OpaServer() as server:
        yield server
