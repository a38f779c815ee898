"""The chain a trail grows: places, links, checkpoints and segment ends, as pure values; the
lines it makes, stored by the real file sink, verify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.api import AuditHead, AuditLine, AuditOpened, AuditSinkContext, SegmentPolicy
from gatekeeper.audit import key_id, verify
from gatekeeper.audit.chain import Chain
from gatekeeper.audit.file_sink import FileSink
from gatekeeper.audit.records import (
    GENESIS,
    envelope,
    format_time,
    record_hash,
    seal,
    verify_checkpoint,
)
from gatekeeper.testing.audit import sample_fields

KEY = b"chain-key-0123456789abcdef"
T = 1_800_000_000.0


def parse(line: AuditLine) -> dict[str, Any]:
    assert line.data.endswith(b"\n") and line.data.count(b"\n") == 1
    record: dict[str, Any] = json.loads(line.data)
    return record


def new_chain(segments: SegmentPolicy | None = None, **kw: Any) -> tuple[Chain, AuditOpened]:
    opened = AuditOpened(chain="gk1", **kw)
    return Chain(opened, key=KEY, instance="gk1", segments=segments), opened


def test_a_new_chain_starts_with_a_signed_checkpoint_at_genesis_and_links_every_record() -> None:
    chain, opened = new_chain()
    lines = [chain.start(T, "file")]
    for i in range(3):
        fields = sample_fields("session_start")
        fields["session"] = f"s{i}"
        lines.append(chain.record("session_start", fields, T + i))
    records = [parse(line) for line in lines]
    assert [r["seq"] for r in records] == [line.seq for line in lines] == [0, 1, 2, 3]
    assert records[0]["prev"] == GENESIS and records[0]["reason"] == "start" and records[0]["resumed"] is None
    assert verify_checkpoint(records[0], {key_id(KEY): KEY}) is None
    for before, after in zip(records, records[1:], strict=False):
        assert after["prev"] == before["hash"]
    assert all(r["hash"] == record_hash(r) for r in records)
    assert [line.key for line in lines] == [b"gk1", b"s0", b"s1", b"s2"]  # a session's records, by session
    assert (chain.seq, chain.prev, chain.since_checkpoint, chain.last_time) == (4, records[-1]["hash"], 3, T + 2)


def test_a_record_is_sealed_in_its_place_as_the_whole_envelope_would_be() -> None:
    chain, _ = new_chain()
    fields = sample_fields("request")
    seq, prev = chain.seq, chain.prev
    line = chain.record("request", fields, T)
    assert (line.data, chain.prev) == seal(envelope("request", fields, instance="gk1", chain="gk1", seq=seq, prev=prev,
                                                     time=format_time(T)))


def test_a_record_that_does_not_serialise_leaves_the_chain_as_it_was() -> None:
    chain, _ = new_chain()
    before = (chain.seq, chain.prev, chain.since_checkpoint)
    with pytest.raises(TypeError):
        chain.record("request", {"session": "s", "note": object()}, T)
    with pytest.raises(ValueError, match="envelope keys: seq"):
        chain.record("request", {"seq": 1}, T)
    assert (chain.seq, chain.prev, chain.since_checkpoint) == before


def test_a_continued_chain_starts_after_the_head_and_says_what_was_repaired() -> None:
    head = AuditHead(41, "ab" * 32)
    chain, opened = new_chain(head=head, repaired={"segment": "audit-gk1-000000000000.jsonl", "torn_bytes": 7,
                                                   "sha256": "cd" * 32})
    start = parse(chain.start(T, "kafka"))
    assert (start["seq"], start["prev"], start["resumed"]) == (42, head.hash, {"seq": 41, "hash": head.hash})
    assert start["repaired"]["torn_bytes"] == 7 and start["writer"]["sink"] == "kafka"


def test_checkpoints_count_the_records_since_the_last_one() -> None:
    chain, opened = new_chain()
    chain.start(T, "file")
    for i in range(5):
        chain.record("session_start", sample_fields("session_start"), T + i)
    cp = parse(chain.checkpoint({"reason": "interval"}, T + 10))
    assert cp["records"] == 5 and chain.since_checkpoint == 0
    assert parse(chain.checkpoint({"reason": "stop"}, T + 11))["records"] == 0


@pytest.mark.parametrize(("policy", "step"), [
    (SegmentPolicy(max_bytes=5000, max_age=3600.0), 1.0),  # by size
    (SegmentPolicy(max_bytes=10**9, max_age=10.0), 4.0),  # by age
])
def test_rotation_is_due_past_the_segment_size_or_age_and_the_rotate_checkpoint_ends_the_segment(
        policy: SegmentPolicy, step: float) -> None:
    chain, opened = new_chain(segments=policy)
    assert not chain.rotation_due(T)  # no segment yet
    size, first, t = len(chain.start(T, "file").data), T, T
    for _ in range(50):
        t += step
        due = size >= policy.max_bytes or t - first >= policy.max_age
        assert chain.rotation_due(t) is due
        if due:
            break
        size += len(chain.record("request", sample_fields("request"), t).data)
    else:
        raise AssertionError("never due")
    line = chain.checkpoint({"reason": "rotate"}, t, last_in_segment=True)
    assert line.last_in_segment and not chain.rotation_due(t + 10**6)  # a new segment starts with the next line
    chain.record("request", sample_fields("request"), t + 10**6)
    assert chain.rotation_due(t + 10**6 + policy.max_age)


def test_the_lines_stored_by_the_file_sink_verify_across_segments(tmp_path: Path) -> None:
    sink = FileSink({"directory": str(tmp_path), "segment_bytes": 4096, "fsync": "never"},
                    AuditSinkContext("file", "gk1"))
    opened = sink.open()
    chain = Chain(opened, key=KEY, instance="gk1", segments=sink.segments)
    lines = [chain.start(T, "file")]
    for i in range(20):
        if chain.rotation_due(T + i):
            lines.append(chain.checkpoint({"reason": "rotate"}, T + i, last_in_segment=True))
        lines.append(chain.record("request", sample_fields("request"), T + i))
    lines.append(chain.checkpoint({"reason": "stop"}, T + 20))
    sink.write(lines)
    sink.close()
    assert len(list(tmp_path.iterdir())) > 2
    report = verify(tmp_path, {key_id(KEY): KEY}, closed=True)
    assert report.ok, report.problems
