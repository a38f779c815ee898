"""Audited answers are passed on as they arrive: a Produce answer is read in place, a Fetch
answer that comes in chunks goes to the client chunk by chunk and is read for the audit
record's offsets once its last chunk has gone."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from gatekeeper.testing.audit import RecordingTrail
from gatekeeper.testing.connection import RecordingIO
from tests.unit.test_connection import (
    ALLOW,
    answer,
    produce,
    produce_response,
    ready,
)
from tests.unit.test_connection_masking import fetch_request, fetch_response, records


def audited() -> tuple[Any, RecordingIO, RecordingTrail]:
    trail = RecordingTrail()
    core, io, _ = ready(trail=trail)
    return core, io, trail


def test_a_fetch_answer_in_chunks_reaches_the_client_before_its_end_and_is_recorded_after_it() -> None:
    core, io, trail = audited()
    core.client_data(fetch_request(1, "orders"))
    answer(core, io, ALLOW)
    frame = fetch_response(1, {"orders": records(300)})
    thirds = [frame[:len(frame) // 3], frame[len(frame) // 3:2 * len(frame) // 3], frame[2 * len(frame) // 3:]]
    core.upstream_data(thirds[0])
    assert b"".join(io.client) == thirds[0]  # passed on, not held until the rest comes
    assert trail.requests() == []
    core.upstream_data(thirds[1])
    assert b"".join(io.client) == thirds[0] + thirds[1]
    # The last chunk, with the next answer's first bytes behind it.
    core.client_data(produce(2, "orders"))
    answer(core, io, ALLOW)
    following = produce_response(2, "orders")
    core.upstream_data(thirds[2] + following[:5])
    core.upstream_data(following[5:])
    assert b"".join(io.client) == frame + following
    fetch, produced = trail.requests()
    assert fetch["api"]["name"] == "Fetch"
    assert fetch["outcome"] == {"from": "broker", "partitions": [
        {"topic": "orders", "partition": 0, "error_code": 0, "first_offset": 0, "last_offset": 299, "record_count": 300}]}
    assert produced["outcome"]["partitions"][0]["base_offset"] == 7


def test_gathered_answers_reuse_their_buffers_and_each_is_read_from_its_own_bytes() -> None:
    # A buffer that held a larger answer before holds the next, smaller one: its record reads
    # that answer's offsets, not the stale bytes behind them; one that did not read ends the
    # connection as before, and its buffer is given back too.
    from gatekeeper.kafka.responses import GATHER_BUFFERS

    core, io, trail = audited()
    GATHER_BUFFERS.clear()
    frames = [fetch_response(cid, {"orders": records(n)}) for cid, n in ((1, 300), (2, 120), (3, 200))]
    for cid, frame in enumerate(frames, 1):
        core.client_data(fetch_request(cid, "orders"))
        answer(core, io, ALLOW)
        for at in range(0, len(frame), 4096):
            core.upstream_data(frame[at:at + 4096])
    assert b"".join(io.client) == b"".join(frames)
    assert [r["outcome"]["partitions"][0]["last_offset"] for r in trail.requests()] == [299, 119, 199]
    assert [r["outcome"]["partitions"][0]["record_count"] for r in trail.requests()] == [300, 120, 200]
    assert GATHER_BUFFERS.kept == len(frames[0])  # the first answer's buffer, kept, served the others


def test_gather_buffers_keep_a_bounded_number_of_bytes_the_largest_first() -> None:
    from gatekeeper.kafka.responses import GatherBuffers

    buffers = GatherBuffers(kept_bytes=1000)
    small, large = buffers.take(100), buffers.take(600)
    assert (len(small), len(large)) == (100, 600)
    buffers.give(small)
    buffers.give(large)
    assert buffers.kept == 700
    assert buffers.take(500) is large and buffers.take(50) is small  # the first that is large enough
    buffers.give(small)
    buffers.give(large)
    buffers.give(buffers.take(900))  # 1,600 kept would be over the bound: the smallest go
    assert buffers.kept == 900
    buffers.give(bytearray(5000))  # larger than the bound: not kept
    assert buffers.kept == 900


def test_a_connection_ending_inside_an_audited_answer_still_records_the_request() -> None:
    core, io, trail = audited()
    core.client_data(fetch_request(1, "orders"))
    answer(core, io, ALLOW)
    frame = fetch_response(1, {"orders": records(300)})
    core.upstream_data(frame[:1000])
    core.client_lost()
    (fetch,) = trail.requests()
    assert fetch["outcome"] == {"from": "broker", "error": "the connection ended while the broker's answer was passed on"}


def test_a_whole_produce_answer_is_read_in_place_and_passed_on_as_it_came() -> None:
    core, io, trail = audited()
    core.client_data(produce(1, "orders", "billing"))
    answer(core, io, ALLOW, ALLOW)
    raw = produce_response(1, "orders", "billing")
    core.upstream_data(raw)
    assert b"".join(io.client) == raw
    (produced,) = trail.requests()
    assert [(p["topic"], p["base_offset"]) for p in produced["outcome"]["partitions"]] == [("orders", 7), ("billing", 7)]


def test_a_produce_answer_reaches_the_client_before_its_record_is_made() -> None:
    core, io, trail = audited()
    core.client_data(produce(1, "orders"))
    answer(core, io, ALLOW)
    records_when_written: list[int] = []
    to_client = io.to_client
    io.to_client = lambda data: (records_when_written.append(len(trail.requests())), to_client(data))  # type: ignore[method-assign]
    core.upstream_data(produce_response(1, "orders"))
    assert records_when_written == [0]  # the answer went out first
    assert len(trail.requests()) == 1


@pytest.mark.parametrize("version", [9, 12])
def test_a_produce_answer_that_is_read_whole_reaches_the_client_before_its_record_is_made(version: int) -> None:
    # From v10 on an answer may name a new leader's address (KIP-951), so it is reassembled and
    # walked before it goes on; its record is still built only once it has gone, and several
    # answers that arrive together go out together, then are recorded in their order.
    core, io, trail = audited()
    core.client_data(produce(1, "orders", version=version) + produce(2, "billing", version=version))
    answer(core, io, ALLOW)
    answer(core, io, ALLOW)
    seen: list[int] = []
    to_client = io.to_client
    io.to_client = lambda data: (seen.append(len(trail.requests())), to_client(data))  # type: ignore[method-assign]
    raw = produce_response(1, "orders", version=version) + produce_response(2, "billing", version=version)
    core.upstream_data(raw)
    assert b"".join(io.client) == raw
    assert seen and set(seen) == {0}  # every answer went out before any record was made
    assert [(r["correlation_id"], r["outcome"]["partitions"][0]["topic"], r["outcome"]["partitions"][0]["base_offset"])
            for r in trail.requests()] == [(1, "orders", 7), (2, "billing", 7)]


def test_a_record_whose_outcome_cannot_be_built_is_still_made_and_says_so() -> None:
    # A Gatekeeper bug in building the outcome: the operation happened, so its record is made,
    # with the error in place of the outcome; the connection goes on.
    core, io, trail = audited()
    core.client_data(produce(1, "orders", version=12))
    answer(core, io, ALLOW)
    (entry,) = core._sent

    def broken() -> dict[str, Any]:
        raise KeyError("a bug")

    core._audit_outcome(entry, broken)
    core._flush()
    (produced,) = trail.requests()
    assert produced["outcome"] == {"from": "broker", "error": "outcome not read: KeyError"}
    assert produced["operations"][0]["enforced"] == {"result": "forwarded"}
    assert io.closed == []


def test_an_audited_answer_that_does_not_read_is_recorded_as_such_and_ends_the_connection() -> None:
    core, io, trail = audited()
    core.client_data(produce(1, "orders"))
    answer(core, io, ALLOW)
    good = produce_response(1, "orders")
    # The partition's fields cut short, the frame's length made to match: a whole frame that
    # does not read.
    bad = struct.pack(">i", len(good) - 4 - 12) + good[4:-12]
    core.upstream_data(bad)
    assert b"".join(io.client) == bad  # passed on as it came (cut through)
    assert io.closed == [True]
    (produced,) = trail.requests()
    assert produced["outcome"]["from"] == "broker"
    assert "does not decode" in produced["outcome"]["error"]
    core.client_lost()
    kinds = [kind for kind, _ in trail.records]
    assert kinds == ["session_start", "request", "session_end"]  # recorded once, in its place


def test_a_chunked_audited_answer_that_does_not_read_is_recorded_as_such() -> None:
    core, io, trail = audited()
    core.client_data(fetch_request(1, "orders"))
    answer(core, io, ALLOW)
    good = fetch_response(1, {"orders": records(300)})
    # The records cut short, the frame's length made to match: whole, but it does not read.
    bad = struct.pack(">i", len(good) - 4 - 40) + good[4:-40]
    for start in range(0, len(bad), 1000):
        core.upstream_data(bad[start:start + 1000])
    assert b"".join(io.client) == bad
    assert io.closed == [True]
    (fetch,) = trail.requests()
    assert fetch["outcome"]["from"] == "broker"
    assert "does not decode" in fetch["outcome"]["error"]
