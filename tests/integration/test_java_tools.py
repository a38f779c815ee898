"""Kafka's own Java console producer and consumer through a real ``twistd gatekeeper`` process."""

from __future__ import annotations

from collections import defaultdict

import pytest

from harness.javatools import CONSOLE_CONSUMER, CONSOLE_PRODUCER, run_tool

pytestmark = pytest.mark.integration

N = 10_000


def _lines(n: int) -> list[tuple[str, str, str]]:
    """(headers, key, value) per record; 60 keys so every partition gets some."""
    return [(f"seq:{i},src:java", f"k{i % 60}", f"value-{i}-" + "x" * (i % 97)) for i in range(n)]


@pytest.mark.parametrize("compression", ["zstd", "snappy"])
def test_console_producer_and_consumer_through_twistd_gatekeeper(twistd_gateway, kafka_broker, compression) -> None:
    topic = f"java-{compression}"
    kafka_broker.create_topic(topic, partitions=3)
    records = _lines(N)
    stdin = "".join(f"{h}\t{k}\t{v}\n" for h, k, v in records).encode()
    out = run_tool(CONSOLE_PRODUCER, [
        "--bootstrap-server", twistd_gateway.bootstrap, "--topic", topic,
        "--request-required-acks", "all",
        "--command-property", f"compression.type={compression}",
        "--reader-property", "parse.key=true", "--reader-property", "parse.headers=true",
    ], stdin=stdin, timeout=180)
    assert "ERROR" not in out.stderr, out.stderr[-2000:]
    got = run_tool(CONSOLE_CONSUMER, [
        "--bootstrap-server", twistd_gateway.bootstrap, "--topic", topic, "--from-beginning",
        "--max-messages", str(N), "--timeout-ms", "30000",
        "--formatter-property", "print.key=true", "--formatter-property", "print.headers=true",
        "--formatter-property", "print.partition=true",
    ], timeout=180)
    rows = [line.split("\t") for line in got.stdout.splitlines() if line.startswith("Partition:")]
    assert len(rows) == N, f"{len(rows)} of {N} consumed\n{got.stderr[-2000:]}"
    sent_by_key: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for h, k, v in records:
        sent_by_key[k].append((h, v))
    got_by_key: dict[str, list[tuple[str, str]]] = defaultdict(list)
    partitions_of_key: dict[str, set[str]] = defaultdict(set)
    for part, headers, key, value in rows:
        got_by_key[key].append((headers, value))
        partitions_of_key[key].add(part)
    # Same key, same partition: the per-key sequence is the per-partition order.
    assert got_by_key == sent_by_key
    assert all(len(p) == 1 for p in partitions_of_key.values())
    assert {p for ps in partitions_of_key.values() for p in ps} == {"Partition:0", "Partition:1", "Partition:2"}
