"""AuditTrail on a ThreadedClock with a real writer thread and the file sink: records accepted
and written in order, the bound, a failing sink (deny and block), recovery without a restart,
reserved slots, checkpoints, stop, metrics. Nothing accepted is ever lost."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.api import AuditLine, AuditOpened, AuditSinkContext, AuditSinkError
from gatekeeper.audit import AuditTrail, iter_records, key_id, verify
from gatekeeper.audit.file_sink import FileSink
from gatekeeper.metrics import Metrics
from gatekeeper.testing.audit import ThreadedClock, sample_fields

KEY = b"audit-key-0123456789abcdef"
KEYS = {key_id(KEY): KEY}


class Flaky:
    """The file sink, with faults on demand and a gate that holds writes."""

    def __init__(self, directory: Path, **options: Any) -> None:
        self.inner = FileSink({"directory": str(directory), **options}, AuditSinkContext("file", "gk1"))
        self.segments = self.inner.segments
        self.fail_open = False
        self.fail = False
        self.gate = threading.Event()
        self.gate.set()
        self.attempts = 0
        self.failures = 0

    def open(self) -> AuditOpened:
        if self.fail_open:
            raise AuditSinkError("audit directory: Permission denied")
        return self.inner.open()

    def write(self, lines: Sequence[AuditLine]) -> None:
        self.gate.wait(10)
        self.attempts += 1
        if self.fail:
            self.failures += 1
            raise AuditSinkError("audit-gk1.jsonl: No space left on device")
        self.inner.write(lines)

    def idle(self) -> None:
        self.inner.idle()

    def close(self) -> None:
        self.inner.close()


class Harness:
    def __init__(self, tmp_path: Path, **kw: Any) -> None:
        self.dir = tmp_path / "audit"
        self.clock = ThreadedClock()
        self.sink = Flaky(self.dir, **kw.pop("sink_options", {}))
        self.metrics = Metrics()
        self.changes: list[bool] = []
        self.trail = AuditTrail(self.sink, key=KEY, instance="gk1", reactor=self.clock, metrics=self.metrics,
                                retry_min=0.01, retry_max=0.05, **kw)
        self.trail.on_change(self.changes.append)

    def start(self) -> None:
        d = self.trail.start()
        self.clock.run_until(lambda: d.called)

    def flush(self) -> None:
        d = self.trail.flushed()
        self.clock.run_until(lambda: d.called)

    def stop(self, timeout: float = 30.0) -> None:
        d = self.trail.stop(timeout)
        self.clock.run_until(lambda: d.called)

    def until(self, predicate: Any) -> None:
        self.clock.run_until(predicate)

    def records(self) -> list[dict[str, Any]]:
        return list(iter_records(self.dir))

    def sessions(self) -> list[str]:
        return [r["session"] for r in self.records() if r["kind"] == "session_start"]


def start_fields(i: int) -> dict[str, Any]:
    fields = sample_fields("session_start")
    fields["session"] = f"s{i}"
    return fields


@pytest.fixture
def h(tmp_path: Path) -> Any:
    harness = Harness(tmp_path)
    yield harness
    if harness.trail._thread is not None and harness.trail._stopped_d is None:
        harness.sink.fail = False
        harness.sink.gate.set()
        harness.stop()


def test_records_are_written_in_order_and_stop_signs_the_end(h: Harness) -> None:
    assert not h.trail.available and not h.trail.record("session_start", start_fields(0))  # not started
    h.start()
    assert h.trail.available and h.changes == [True]
    for i in range(50):
        assert h.trail.record("session_start", start_fields(i))
        h.clock.advance(0.1)
    h.flush()
    assert h.sessions() == [f"s{i}" for i in range(50)]
    h.stop()
    assert not h.trail.record("session_start", start_fields(99))  # stopped
    records = h.records()
    assert [r["kind"] for r in (records[0], records[-1])] == ["checkpoint", "checkpoint"]
    assert (records[0]["reason"], records[-1]["reason"]) == ("start", "stop")
    assert [r["seq"] for r in records] == list(range(52))
    report = verify(h.dir, KEYS, closed=True)
    assert report.ok, report.problems
    assert h.metrics.get("gatekeeper_audit_records_total", kind="session_start") == 50
    # refused before start and after stop
    assert h.metrics.get("gatekeeper_audit_refused_total", kind="session_start", reason="stopped") == 2


def test_a_second_run_continues_the_chain(h: Harness, tmp_path: Path) -> None:
    h.start()
    h.trail.record("session_start", start_fields(0))
    h.stop()
    again = Harness(tmp_path)
    again.start()
    again.trail.record("session_start", start_fields(1))
    again.stop()
    records = again.records()
    start = [r for r in records if r["kind"] == "checkpoint" and r["reason"] == "start"][1]
    assert start["resumed"] == {"seq": start["seq"] - 1, "hash": start["prev"]}
    assert verify(h.dir, KEYS, closed=True).ok
    assert again.sessions() == ["s0", "s1"]


def test_interval_checkpoints_sign_new_records_only(h: Harness) -> None:
    h.start()
    h.trail.record("session_start", start_fields(0))
    h.clock.advance(60)
    h.flush()
    h.clock.advance(60)  # nothing new: no checkpoint
    h.flush()
    cps = [r for r in h.records() if r["kind"] == "checkpoint"]
    assert [(c["reason"], c["records"]) for c in cps] == [("start", 0), ("interval", 1)]


def test_a_full_queue_refuses_and_makes_the_trail_unavailable(tmp_path: Path) -> None:
    h = Harness(tmp_path, queue_records=10)
    h.start()
    h.flush()
    h.sink.gate.clear()  # the disk hangs: nothing gets written
    accepted = [h.trail.record("session_start", start_fields(i)) for i in range(12)]
    assert accepted == [True] * 10 + [False] * 2
    assert not h.trail.available  # unavailable from 9 (90%)
    assert h.changes == [True, False]
    assert h.metrics.get("gatekeeper_audit_refused_total", kind="session_start", reason="queue_full") == 2
    waiting = h.trail.when_available()
    assert not waiting.called
    h.sink.gate.set()
    h.until(lambda: h.trail.available)
    assert waiting.called and h.changes == [True, False, True]
    h.flush()
    assert h.sessions() == [f"s{i}" for i in range(10)]
    [gap] = [r for r in h.records() if r["kind"] == "unavailable"]
    assert gap["refused"] == {"session_start": 2} and "queue" in gap["reason"]
    h.stop()
    assert verify(h.dir, KEYS).ok


def test_a_failing_sink_under_deny_refuses_then_recovers_without_losing_anything(h: Harness) -> None:
    h.start()
    assert h.trail.record("session_start", start_fields(0))
    h.flush()
    h.sink.fail = True
    assert h.trail.record("session_start", start_fields(1))  # accepted: the failure is not known yet
    h.until(lambda: not h.trail.available)
    assert "No space left on device" in str(h.trail.error)
    assert not h.trail.record("session_start", start_fields(2))  # deny: refused while the sink fails
    assert h.trail.reserve() is None
    assert h.metrics.get("gatekeeper_audit_refused_total", kind="session_start", reason="sink_failing") == 1
    h.until(lambda: h.sink.failures >= 5)  # the writer keeps retrying
    h.sink.fail = False
    h.until(lambda: h.trail.available)
    assert h.trail.error is None
    assert h.trail.record("session_start", start_fields(3))
    h.flush()
    assert h.sessions() == ["s0", "s1", "s3"]  # s1 written once, after the sink healed
    [gap] = [r for r in h.records() if r["kind"] == "unavailable"]
    assert gap["refused"] == {"session_start": 1, "reserved": 1}
    assert "No space left on device" in gap["reason"]
    assert h.metrics.get("gatekeeper_audit_write_failures_total") == h.sink.failures >= 5
    h.stop()
    assert verify(h.dir, KEYS, closed=True).ok


def test_block_keeps_accepting_up_to_the_bound_while_the_sink_fails(tmp_path: Path) -> None:
    h = Harness(tmp_path, on_failure="block", queue_records=20)
    h.start()
    h.sink.fail = True
    h.trail.record("session_start", start_fields(0))
    h.until(lambda: not h.trail.available)
    accepted = [h.trail.record("session_start", start_fields(i)) for i in range(1, 25)]
    assert accepted == [True] * 19 + [False] * 5
    h.sink.fail = False
    h.until(lambda: h.trail.available)
    h.flush()
    assert h.sessions() == [f"s{i}" for i in range(20)]
    h.stop()
    assert verify(h.dir, KEYS, closed=True).ok


def test_a_reserved_slot_is_always_filled(h: Harness) -> None:
    h.start()
    slot = h.trail.reserve()
    assert slot is not None
    unused = h.trail.reserve()
    assert unused is not None
    unused.release()
    unused.release()  # twice: nothing more
    h.sink.fail = True
    h.trail.record("session_start", start_fields(0))
    h.until(lambda: not h.trail.available)
    slot.record("request", sample_fields("request"))  # the operation went through: its record must follow
    slot.record("request", sample_fields("request"))  # once only
    h.sink.fail = False
    h.until(lambda: h.trail.available)
    h.flush()
    assert [r["kind"] for r in h.records()].count("request") == 1
    assert h.trail.status()["queued"] == 0


def test_a_sink_that_cannot_open_is_retried(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sink.fail_open = True
    d = h.trail.start()
    h.until(lambda: d.called)  # start does not wait for the sink
    assert not h.trail.available and "Permission denied" in str(h.trail.error)
    assert not h.trail.record("session_start", start_fields(0))
    h.sink.fail_open = False
    h.until(lambda: h.trail.available)
    assert h.trail.record("session_start", start_fields(1))
    h.stop()
    assert h.sessions() == ["s1"]
    [gap] = [r for r in h.records() if r["kind"] == "unavailable"]
    assert gap["refused"] == {"session_start": 1} and "Permission denied" in gap["reason"]


def test_a_plain_start_writes_no_unavailable_record(h: Harness) -> None:
    h.trail.record("session_start", start_fields(0))  # before start: refused, counted, in no period
    h.start()
    h.stop()
    assert [r["kind"] for r in h.records()] == ["checkpoint", "checkpoint"]


def test_stop_gives_up_on_a_failing_sink_after_its_timeout_and_says_what_was_lost(h: Harness) -> None:
    h.start()
    h.sink.fail = True
    h.trail.record("session_start", start_fields(0))
    h.trail.record("session_start", start_fields(1))
    h.until(lambda: not h.trail.available)
    d = h.trail.stop(timeout=5)
    h.clock.advance(5)
    h.until(lambda: d.called)
    assert h.metrics.get("gatekeeper_audit_lost_total") == 2


def test_stop_writes_everything_accepted(h: Harness) -> None:
    h.start()
    for i in range(300):
        h.trail.record("session_start", start_fields(i))
    h.stop()
    assert h.sessions() == [f"s{i}" for i in range(300)]


def test_gauges(h: Harness) -> None:
    h.start()
    h.sink.fail = True
    h.trail.record("session_start", start_fields(0))
    h.until(lambda: not h.trail.available)
    h.clock.advance(3)
    assert h.metrics.get("gatekeeper_audit_queue_depth") == 1
    assert h.metrics.get("gatekeeper_audit_unavailable_seconds_total") == pytest.approx(3, abs=1)
    assert h.metrics.get("gatekeeper_audit_available") == 0
    h.sink.fail = False
    h.until(lambda: h.trail.available)
    h.clock.advance(1)
    assert h.metrics.get("gatekeeper_audit_queue_depth") == 0
    assert h.metrics.get("gatekeeper_audit_available") == 1


def test_unknown_kinds_are_our_bug(h: Harness) -> None:
    h.start()
    with pytest.raises(ValueError, match="unknown audit record kind"):
        h.trail.record("gossip", {})


def test_from_config_builds_the_file_sink(tmp_path: Path) -> None:
    from gatekeeper.config.values import AuditConfig

    cfg = AuditConfig(hmac_key_file=tmp_path / "k", directory=tmp_path / "audit", instance="gk9", hmac_key=KEY,
                      segment_bytes=4096, fsync="never")
    clock = ThreadedClock()
    trail = AuditTrail.from_config(cfg, reactor=clock)
    assert isinstance(trail.sink, FileSink) and trail.sink.fsync == "never"
    d = trail.start()
    clock.run_until(lambda: d.called)
    trail.record("config_reload", sample_fields("config_reload"))
    d = trail.stop()
    clock.run_until(lambda: d.called)
    [first, *_] = sorted((tmp_path / "audit").iterdir())
    assert first.name == "audit-gk9-000000000000.jsonl"
    assert json.loads(first.read_text().splitlines()[1])["kind"] == "config_reload"


def test_stop_waits_for_open_slots_and_signs_their_records(h: Harness) -> None:
    h.start()
    slot = h.trail.reserve()
    assert slot is not None
    d = h.trail.stop(timeout=30)
    h.clock.drain()
    assert not d.called  # the operation it stands for is still with the broker
    slot.record("request", sample_fields("request"))
    h.until(lambda: d.called)
    kinds = [(r["kind"], r.get("reason")) for r in h.records()]
    assert kinds[-2:] == [("request", None), ("checkpoint", "stop")]
    assert verify(h.dir, KEYS, closed=True).ok


def test_stop_gives_an_unfilled_slot_half_its_timeout(h: Harness) -> None:
    h.start()
    slot = h.trail.reserve()
    assert slot is not None
    d = h.trail.stop(timeout=30)
    h.clock.advance(15)
    h.until(lambda: d.called)
    slot.record("request", sample_fields("request"))  # too late: said so, counted
    assert h.metrics.get("gatekeeper_audit_lost_total") == 1
    assert verify(h.dir, KEYS, closed=True).ok


def unopened(tmp_path: Path) -> Harness:
    """A started trail under ``on_failure: block`` whose sink cannot open (until the test lets it)."""
    h = Harness(tmp_path, on_failure="block")
    h.sink.fail_open = True
    d = h.trail.start()
    h.until(lambda: d.called)
    return h


def test_records_accepted_before_the_sink_opens_follow_its_start_and_a_flush_waits_for_them(tmp_path: Path) -> None:
    h = unopened(tmp_path)
    assert [h.trail.record("session_start", start_fields(i)) for i in range(3)] == [True] * 3  # block: held
    flushed = h.trail.flushed()
    h.clock.drain()
    assert not flushed.called  # nothing can be written yet
    h.sink.fail_open = False
    h.until(lambda: flushed.called)
    assert h.sessions() == ["s0", "s1", "s2"]  # written when the flush fired
    h.stop()
    records = h.records()
    assert (records[0]["kind"], records[0]["reason"]) == ("checkpoint", "start")
    assert verify(h.dir, KEYS, closed=True).ok


def test_a_stop_asked_before_the_sink_opens_completes_once_it_opens(tmp_path: Path) -> None:
    h = unopened(tmp_path)
    assert h.trail.record("session_start", start_fields(0))
    stopped = h.trail.stop(timeout=30)
    h.clock.drain()
    assert not stopped.called
    h.sink.fail_open = False
    h.until(lambda: stopped.called)
    kinds = [(r["kind"], r.get("reason")) for r in h.records()]
    assert kinds == [("checkpoint", "start"), ("session_start", None), ("checkpoint", "stop")]
    assert verify(h.dir, KEYS, closed=True).ok
    assert h.metrics.get("gatekeeper_audit_lost_total") == 0


def test_records_held_for_a_sink_that_never_opens_are_lost_loudly_at_stop(tmp_path: Path) -> None:
    h = unopened(tmp_path)
    assert h.trail.record("session_start", start_fields(0)) and h.trail.record("session_start", start_fields(1))
    stopped = h.trail.stop(timeout=30)
    h.clock.advance(30)  # stop gives up on the sink
    h.until(lambda: stopped.called)
    assert h.metrics.get("gatekeeper_audit_lost_total") == 2


def test_the_trail_makes_its_own_checkpoints_and_unavailable_records(h: Harness) -> None:
    h.start()
    for kind in ("checkpoint", "unavailable"):
        with pytest.raises(ValueError, match="makes its"):
            h.trail.record(kind, {})


def test_a_record_that_does_not_serialise_is_refused_loudly_and_the_chain_goes_on(h: Harness) -> None:
    h.start()
    bad = start_fields(0)
    bad["oops"] = object()  # our bug: not JSON
    assert not h.trail.record("session_start", bad)  # the caller fails closed
    slot = h.trail.reserve()
    assert slot is not None
    slot.record("request", {**sample_fields("request"), "oops": {1, 2}})  # after the fact: lost, said so
    assert h.trail.record("session_start", start_fields(1))
    h.stop()
    assert h.sessions() == ["s1"]
    assert h.metrics.get("gatekeeper_audit_lost_total") == 2 and h.trail.status()["queued"] == 0
    assert verify(h.dir, KEYS, closed=True).ok
