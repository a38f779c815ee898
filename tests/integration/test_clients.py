"""Stock Kafka clients through Gatekeeper (in-process, real reactor) against the real broker."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.integration.clients import confluent_roundtrip, kafka_python_roundtrip, make_records
from tests.integration.conftest import in_thread

pytestmark = pytest.mark.integration

N = 10_000


def _assert_exact(sent, got) -> None:
    assert sum(map(len, sent.values())) == N
    assert sorted(sent) == sorted(got) == [0, 1, 2], "all three partitions used"
    for p in sent:
        assert len(got[p]) == len(sent[p]), f"partition {p}: {len(got[p])} of {len(sent[p])} arrived"
        assert got[p] == sent[p], f"partition {p}: records differ or are out of order"


@pytest.mark.parametrize("compression", ["gzip", "lz4"])
@pytest_twisted.inlineCallbacks
def test_kafka_python_produces_and_consumes_byte_exact(gateway, kafka_broker, compression) -> None:
    topic = f"kp-{compression}"
    kafka_broker.create_topic(topic, partitions=3)
    sent, got = yield in_thread(kafka_python_roundtrip, gateway.bootstrap, topic, make_records(N, seed=1), compression)
    _assert_exact(sent, got)


@pytest.mark.parametrize("compression", ["snappy", "zstd"])
@pytest_twisted.inlineCallbacks
def test_confluent_kafka_produces_and_consumes_byte_exact(gateway, kafka_broker, compression) -> None:
    topic = f"ck-{compression}"
    kafka_broker.create_topic(topic, partitions=3)
    sent, got = yield in_thread(confluent_roundtrip, gateway.bootstrap, topic, make_records(N, seed=2), compression)
    _assert_exact(sent, got)
