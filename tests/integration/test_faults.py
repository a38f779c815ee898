"""Faults with loss accounting, through ``twistd gatekeeper`` against a real broker of this
module's own (it is killed): the broker killed and restarted, OPA killed and restarted, Gatekeeper
crashed or restarted, the network to the broker stalled for 30 s and the broker answering 2 s
late. An idempotent producer (acks=all) and a consumer run through Gatekeeper the whole time;
afterwards the topic is read straight from the broker: every acknowledged record is stored,
once, with its checksum, and the consumer through Gatekeeper read every one of them.

The short versions of ``python -m harness.faults`` (``--long`` gives the documented table)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.broker import KafkaBroker
from harness.faults import SCENARIOS, SHORT, Result, format_table, run_scenario, start_broker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fault_broker() -> Iterator[KafkaBroker]:
    broker = start_broker()
    try:
        yield broker
    finally:
        broker.stop()


def _check(result: Result) -> None:
    table = format_table([result])
    print("\n" + table)
    a = result.accounting
    assert a.ok, f"{'; '.join(a.problems())}\n{table}"
    assert a.acknowledged > SHORT.warmup and a.stored >= a.acknowledged, table
    assert result.unreported == 0, f"{result.unreported} records never reported to the producer\n{table}"
    assert result.consumer_read_all, f"the consumer through Gatekeeper missed acknowledged records\n{table}"
    assert result.recovery is not None, table


@pytest.mark.parametrize("name", ["broker-kill", "gatekeeper-crash", "gatekeeper-restart", "network-stall",
                                  "network-stall-timeouts", "slow-broker"])
def test_fault_loses_and_duplicates_nothing(name: str, fault_broker: KafkaBroker, tmp_path: Path) -> None:
    _check(run_scenario(SCENARIOS[name], fault_broker, tmp_path, SHORT))


def test_opa_outage_fails_closed_and_loses_nothing(fault_broker: KafkaBroker, tmp_path: Path) -> None:
    result = run_scenario(SCENARIOS["opa-kill"], fault_broker, tmp_path, SHORT)
    _check(result)
    refused = result.delivery_errors.get("TOPIC_AUTHORIZATION_FAILED", 0) + result.produce_errors.get("TOPIC_AUTHORIZATION_FAILED", 0)
    assert refused > 0, "with OPA down the producer is refused (fail closed)\n" + format_table([result])
    assert set(result.delivery_errors) <= {"TOPIC_AUTHORIZATION_FAILED"}, format_table([result])
