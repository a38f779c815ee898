"""Fault scenarios with loss accounting, through ``twistd gatekeeper`` against the real broker.

    python -m harness.faults            # the short versions (what the integration tests run)
    python -m harness.faults --long     # longer faults, more records; prints the table
    python -m harness.faults --long --only broker-kill network-stall

Each scenario starts its own Gatekeeper (and OPA where it needs one) in front of a broker this
run owns (it is killed), runs an idempotent producer (acks=all) and a consumer through
Gatekeeper, injects one fault mid-stream, ends it, waits for the producer's every delivery
report and the consumer to have read everything acknowledged, then reads the topic straight
from the broker and accounts (``harness.accounting``). The figures are a :class:`Result`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from harness.accounting import Accounting, account, longest_gap, recovery_seconds
from harness.broker import KafkaBroker
from harness.gateway import TwistdGateway
from harness.ledger import FollowingConsumer, LedgerProducer, read_back
from harness.opa import OpaServer
from harness.ports import free_port
from harness.relay import Relay
from harness.waiting import wait_for

__all__ = ["SCENARIOS", "Profile", "Result", "Scenario", "Stack", "format_table", "run_scenario", "start_broker"]

PARTITIONS = 3
PRINCIPALS = {"faults-producer": {"sub": "svc-faults-producer", "groups": ["faults"]},
              "faults-consumer": {"sub": "svc-faults-consumer", "groups": ["faults"]}}
POLICY = """\
# The fault tests' policy: the "faults" group may do anything; decisions live 1 s, so an OPA
# outage is felt at once.
package gatekeeper

default decision := {"action": "deny", "reason": "not in the faults group"}

decision := {"action": "allow", "reason": "faults group", "ttl": "1s"} if {
	"faults" in input.principal.groups
}
"""


@attrs.frozen
class Profile:
    """How long and how hard: the short profile is the test's, the long one the command's."""

    rate: float  # records a second
    warmup: int  # acknowledged records before the fault
    down: float  # seconds a killed process stays down
    slow: float  # seconds the broker answers slowly
    stall: float = 30.0  # seconds the network stalls
    after: float = 5.0  # seconds of producing after recovery
    recovery_timeout: float = 180.0


SHORT = Profile(rate=200, warmup=400, down=3, slow=12)
LONG = Profile(rate=500, warmup=5000, down=15, slow=60, after=30)


@attrs.define
class Stack:
    broker: KafkaBroker
    gateway: TwistdGateway
    relay: Relay | None = None
    opa: OpaServer | None = None


@attrs.frozen
class Scenario:
    name: str
    fault: str  # what happens, for the table
    act: Callable[[Stack, Profile], None]  # injects the fault and ends it (returns at its end)
    via_relay: bool = False
    engine: str = "allow-all"
    producer_config: dict[str, Any] = attrs.field(factory=dict)  # librdkafka settings of the producer


@attrs.frozen
class Result:
    scenario: str
    fault: str
    accounting: Accounting
    sent: int
    delivery_errors: dict[str, int]
    client_errors: dict[str, int]
    produce_errors: dict[str, int]
    fatal: tuple[str, ...]
    consumer_read_all: bool
    consumer_errors: dict[str, int]
    consumer_records: int
    fault_seconds: float
    recovery: float | None
    longest_gap: float
    unreported: int
    gatekeeper_closes: int  # "closing connection" lines in Gatekeeper's logs (clients it closed)
    relay_connections: int | None  # connections the relay carried (Gatekeeper's upstream ones)

    @property
    def ok(self) -> bool:
        return self.accounting.ok and self.consumer_read_all and self.recovery is not None and not self.unreported


def _broker_kill(stack: Stack, profile: Profile) -> None:
    stack.broker.kill()
    time.sleep(profile.down)
    stack.broker.restart(timeout=180)


def _opa_kill(stack: Stack, profile: Profile) -> None:
    assert stack.opa is not None
    stack.opa.kill()
    time.sleep(profile.down)
    stack.opa.start()


def _gatekeeper_crash(stack: Stack, profile: Profile) -> None:
    stack.gateway.kill()
    time.sleep(profile.down)
    stack.gateway.start(timeout=60)


def _gatekeeper_restart(stack: Stack, profile: Profile) -> None:
    stack.gateway.stop()
    time.sleep(profile.down)
    stack.gateway.start(timeout=60)


def _network_stall(stack: Stack, profile: Profile) -> None:
    assert stack.relay is not None
    with stack.relay.stalled():
        time.sleep(profile.stall)


def _slow_broker(stack: Stack, profile: Profile) -> None:
    assert stack.relay is not None
    stack.relay.delay("response", 2.0)
    try:
        time.sleep(profile.slow)
    finally:
        stack.relay.delay("response", 0.0)


SCENARIOS = {s.name: s for s in (
    Scenario("broker-kill", "broker SIGKILL, down {down:g} s, restarted (same data dir and ports)", _broker_kill),
    Scenario("opa-kill", "OPA SIGKILL, down {down:g} s, restarted (policy.engine: opa)", _opa_kill, engine="opa"),
    Scenario("gatekeeper-crash", "Gatekeeper SIGKILL, down {down:g} s, restarted on the same ports", _gatekeeper_crash),
    Scenario("gatekeeper-restart", "Gatekeeper SIGTERM, down {down:g} s, restarted on the same ports", _gatekeeper_restart),
    Scenario("network-stall", "relay to the broker forwards nothing for {stall:g} s", _network_stall, via_relay=True),
    Scenario("network-stall-timeouts", "as network-stall, producer socket.timeout.ms 10 s: it gives up on "
             "requests held in the relay, reconnects and retries them mid-stall", _network_stall, via_relay=True,
             producer_config={"socket.timeout.ms": 10_000}),
    Scenario("slow-broker", "relay delays every broker response by 2 s for {slow:g} s", _slow_broker, via_relay=True),
)}


def start_broker() -> KafkaBroker:
    """A broker of this run's own (the fault tests kill it), with a RELAY listener."""
    broker = KafkaBroker(heap="512m", relay_port=free_port(), startup_timeout=180)
    broker.start()
    return broker


def run_scenario(scenario: Scenario, broker: KafkaBroker, workdir: Path, profile: Profile = SHORT) -> Result:
    """Run one scenario end to end against ``broker`` (started, with a relay port)."""
    workdir.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:8]
    topic = f"faults-{scenario.name}-{run}"
    broker.create_topic(topic, partitions=PARTITIONS)
    relay = opa = None
    gateway: TwistdGateway | None = None
    producer = consumer = None
    try:
        upstream = broker.bootstrap
        if scenario.via_relay:
            relay = Relay(broker.relay_port or 0, broker.relay_target).start()
            upstream = relay.address
        extra: dict[str, Any] = {}
        if scenario.engine == "opa":
            policies = workdir / "policies"
            policies.mkdir(exist_ok=True)
            (policies / "faults.rego").write_text(POLICY)
            opa = OpaServer()
            opa.start()
            extra = {"policy": {"engine": "opa", "url": opa.url, "policies": str(policies), "timeout": "500ms",
                                "cache": {"max_entries": 1000, "default_ttl": "1s"}},
                     "identity": {"client_id_principals": PRINCIPALS}}
        gateway = TwistdGateway(workdir / "gatekeeper", upstream, extra=extra).start(60)
        stack = Stack(broker, gateway, relay, opa)
        consumer = FollowingConsumer(gateway.bootstrap, topic, PARTITIONS)
        producer = LedgerProducer(gateway.bootstrap, topic, run=run, rate=profile.rate, config=scenario.producer_config)
        consumer.start()
        producer.start()
        started = time.monotonic()

        def detail() -> str:
            return (f"producer: failure {producer.failure!r}, connection errors {dict(producer.client_errors)}, "
                    f"delivery errors {dict(producer.delivery_errors)}\n{gateway.log_tail()}")

        wait_for(lambda: producer.failure or producer.acked_count() >= profile.warmup, 120,
                 f"{profile.warmup} acknowledged records before the fault", detail=detail)
        fault_start = time.monotonic()
        scenario.act(stack, profile)
        fault_end = time.monotonic()
        wait_for(lambda: producer.failure or producer.acks_since(fault_end), profile.recovery_timeout,
                 "an acknowledged record after the fault", interval=0.05, detail=detail)
        if producer.failure is not None:
            raise producer.failure
        time.sleep(profile.after)
        producer.finish()
        if producer.failure is not None:
            raise producer.failure
        ended = time.monotonic()
        acked = set(producer.acked)
        read_all = True
        try:
            wait_for(lambda: consumer.has_all(acked), 120, "the consumer through Gatekeeper to read every acknowledged record",
                     detail=lambda: f"{consumer.missing(acked)} missing; consumer errors {consumer.errors}")
        except AssertionError:
            read_all = False
        stored = read_back(broker.bootstrap, topic, PARTITIONS)
        closes = sum(path.read_text(errors="replace").count("closing connection from")
                     for path in gateway.workdir.glob("gatekeeper.log*"))
        return Result(
            scenario=scenario.name, fault=scenario.fault.format(**attrs.asdict(profile)),
            accounting=account(producer.acked, stored, producer.failed, producer.sent),
            sent=len(producer.sent), delivery_errors=dict(producer.delivery_errors),
            client_errors=dict(producer.client_errors), produce_errors=dict(producer.produce_errors), fatal=tuple(producer.fatal),
            consumer_read_all=read_all, consumer_errors=dict(consumer.errors), consumer_records=consumer.records,
            fault_seconds=fault_end - fault_start, recovery=recovery_seconds(producer.ack_times, fault_end),
            longest_gap=longest_gap(producer.ack_times, started, ended), unreported=producer.unreported,
            gatekeeper_closes=closes, relay_connections=None if relay is None else relay.connections,
        )
    finally:
        # Every process this scenario started is stopped, even if stopping another one fails.
        cleanups: list[Callable[[], None]] = [c.finish for c in (producer, consumer) if c is not None and c.is_alive()]
        cleanups += [x for x in (gateway and gateway.stop, relay and relay.stop, opa and opa.close) if x]
        errors = []
        for cleanup in cleanups:
            try:
                cleanup()
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]


def _errors(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in Counter(counts).most_common()) or "none"


def format_table(results: Sequence[Result]) -> str:
    """The fault table (Markdown)."""
    head = ("| scenario | fault | sent | acknowledged | stored | duplicates | lost | in doubt (stored, not acknowledged) "
            "| delivery errors | other producer errors | consumer through Gatekeeper | time to recover | longest ack gap "
            "| connections Gatekeeper closed |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        a = r.accounting
        consumer = "read all" if r.consumer_read_all else "MISSED records"
        if r.consumer_errors:
            consumer += f" (errors: {_errors(r.consumer_errors)})"
        other = [f"connection: {_errors(r.client_errors)}"] if r.client_errors else []
        if r.produce_errors:
            other.append(f"produce() refused: {_errors(r.produce_errors)}")
        if r.fatal:
            other.append(f"fatal (producer replaced): {len(r.fatal)}")
        recovery = "never" if r.recovery is None else f"{r.recovery:.2f} s"
        lines.append(
            f"| {r.scenario} | {r.fault} | {r.sent} | {a.acknowledged} | {a.stored} | {a.duplicates} | {len(a.lost)} "
            f"| {a.in_doubt} | {_errors(r.delivery_errors)} | {'; '.join(other) or 'none'} | {consumer} | {recovery} "
            f"| {r.longest_gap:.1f} s | {r.gatekeeper_closes} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="longer faults and more records (the documented figures)")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="run only these scenarios")
    args = parser.parse_args(argv)
    profile = LONG if args.long else SHORT
    names = args.only or list(SCENARIOS)
    results = []
    broker = start_broker()
    try:
        with tempfile.TemporaryDirectory(prefix="gatekeeper-faults-") as tmp:
            for name in names:
                print(f"-- {name} ...", file=sys.stderr, flush=True)
                result = run_scenario(SCENARIOS[name], broker, Path(tmp) / name, profile)
                print(f"   {'ok' if result.ok else 'FAILED: ' + '; '.join(result.accounting.problems())}", file=sys.stderr, flush=True)
                results.append(result)
    finally:
        broker.stop()
    print(format_table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
