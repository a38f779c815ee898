"""What the connection core tells the shell about answers it may move itself (splice): only the
rest of a Fetch answer that nobody reads, only once its length and correlation id were read
here, and only while it is next in line for the client."""

from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.testing.audit import RecordingTrail
from tests.unit.test_connection import ALLOW, DENY, answer, produce, produce_response, ready
from tests.unit.test_connection_masking import MASK, fetch_request, fetch_response, records


def _fetch_answered(core: Any, io: Any, cid: int = 1, decision: Any = ALLOW) -> bytes:
    core.client_data(fetch_request(cid, "orders"))
    answer(core, io, decision)
    return fetch_response(cid, {"orders": records(300)})


def test_the_rest_of_an_unread_fetch_answer_is_announced_once_its_head_is_read() -> None:
    core, io, adapter = ready()
    frame = _fetch_answered(core, io)
    assert core.passthrough_next() and core.passthrough_left() == 0
    core.upstream_data(frame[:8])  # its length and correlation id, as the shell hands them over
    assert not core.passthrough_next()
    assert core.passthrough_left() == len(frame) - 8
    assert b"".join(io.client) == frame[:8]
    # The shell moves the rest in two steps, the second partly queued (a slow client); the
    # answer to a request forwarded meanwhile reaches the client after it.
    core.client_data(produce(2, "orders"))
    answer(core, io, ALLOW)
    core.passed_through(1000)
    assert core.passthrough_left() == len(frame) - 1008
    core.passed_through(len(frame) - 1008, queued=300)
    assert core.passthrough_left() == 0
    following = produce_response(2, "orders")
    core.upstream_data(following)
    assert b"".join(io.client) == frame[:8] + following  # the moved bytes never passed here
    metrics = adapter.settings.metrics
    assert metrics.get("gatekeeper_spliced_bytes_total", to="socket") == len(frame) - 8 - 300
    assert metrics.get("gatekeeper_spliced_bytes_total", to="queue") == 300
    assert metrics.get("gatekeeper_bytes_total", direction="from_broker") == len(frame) + len(following)


def test_a_local_answer_waits_until_the_moved_bytes_have_all_passed() -> None:
    core, io, _ = ready()
    frame = _fetch_answered(core, io)
    core.upstream_data(frame[:8])
    core.client_data(produce(2, "orders"))
    answer(core, io, DENY)  # answered by Gatekeeper itself, at once
    assert b"".join(io.client) == frame[:8]
    core.passed_through(len(frame) - 9)
    assert b"".join(io.client) == frame[:8]
    core.passed_through(1)
    denial = b"".join(io.client)[8:]
    assert int.from_bytes(denial[4:8], "big") == 2  # the denial's correlation id, after the answer


def test_more_bytes_than_announced_is_refused() -> None:
    core, io, _ = ready()
    frame = _fetch_answered(core, io)
    with pytest.raises(ValueError, match="announced"):
        core.passed_through(1)  # nothing announced yet
    core.upstream_data(frame[:8])
    with pytest.raises(ValueError, match="announced"):
        core.passed_through(len(frame))
    with pytest.raises(ValueError, match="announced"):
        core.passed_through(10, queued=11)
    core.passed_through(len(frame) - 8)
    assert core.passthrough_left() == 0


def test_the_bytes_not_moved_can_still_come_the_ordinary_way() -> None:
    core, io, _ = ready()
    frame = _fetch_answered(core, io)
    core.upstream_data(frame[:8])
    core.passed_through(5000)
    core.upstream_data(frame[5008:])  # the client's socket filled: the shell reads the rest
    assert core.passthrough_left() == 0
    assert b"".join(io.client) == frame[:8] + frame[5008:]


def _fetched(trail: RecordingTrail) -> list[dict[str, Any]]:
    (request,) = trail.requests()
    return request["outcome"]["partitions"]  # type: ignore[no-any-return]


def test_an_audited_answer_is_offered_to_a_shell_that_copies_and_read_from_the_copy() -> None:
    trail = RecordingTrail()
    core, io, _ = ready(trail=trail)
    frame = _fetch_answered(core, io)
    assert core.passthrough_next(read=True) and not core.passthrough_next()
    assert core.passthrough_view() is None  # nothing announced yet
    core.upstream_data(frame[:8])
    left = len(frame) - 8
    assert core.passthrough_left(read=True) == left and core.passthrough_left() == 0
    # The shell copies what it moves: 5,000 bytes, then 20 the ordinary way (its client's
    # socket filled), then the rest partly queued.
    view = core.passthrough_view()
    assert view is not None and len(view) == left
    view[:5000] = frame[8:5008]
    core.passed_through(5000, read=True)
    core.upstream_data(frame[5008:5028])
    view = core.passthrough_view()
    assert view is not None and len(view) == left - 5020
    view[:] = frame[5028:]
    assert not trail.requests()  # the record waits for the answer's last byte
    core.passed_through(left - 5020, queued=100, read=True)
    assert core.passthrough_left(read=True) == 0 and core.passthrough_view() is None
    assert b"".join(io.client) == frame[:8] + frame[5008:5028]  # the moved bytes never passed here
    assert _fetched(trail) == [{"topic": "orders", "partition": 0, "error_code": 0,
                                "first_offset": 0, "last_offset": 299, "record_count": 300}]


def test_an_audited_answer_whose_copy_does_not_read_ends_the_connection_and_says_so() -> None:
    trail = RecordingTrail()
    core, io, _ = ready(trail=trail)
    frame = _fetch_answered(core, io)
    core.upstream_data(frame[:8])
    view = core.passthrough_view()
    assert view is not None
    view[:] = b"\xff" * len(view)  # the copy is not the answer: counts that do not read
    core.passed_through(len(view), read=True)
    assert core.closing
    assert "passed on, but" in trail.requests()[0]["outcome"]["error"]


def test_no_other_answer_is_offered() -> None:
    # A Produce answer (small, and read for nothing, but not a Fetch).
    core, io, _ = ready()
    core.client_data(produce(1, "orders"))
    answer(core, io, ALLOW)
    assert not core.passthrough_next()
    # A Fetch answer read for the audit trail's offsets, to a shell that does not copy.
    core, io, _ = ready(trail=RecordingTrail())
    frame = _fetch_answered(core, io)
    assert not core.passthrough_next()
    core.upstream_data(frame[:8])
    assert core.passthrough_left() == 0
    with pytest.raises(ValueError, match="announced"):
        core.passed_through(1000)
    # A Fetch answer masked before the client reads it.
    core, io, _ = ready()
    _fetch_answered(core, io, decision=MASK)
    assert not core.passthrough_next()
    # A Fetch not yet decided, and one whose answer's first bytes are already here.
    core, io, _ = ready()
    core.client_data(fetch_request(1, "orders"))
    assert not core.passthrough_next()
    answer(core, io, ALLOW)
    assert core.passthrough_next()
    core.upstream_data(fetch_response(1, {"orders": records(3)})[:3])
    assert not core.passthrough_next() and core.passthrough_left() == 0


def test_nothing_is_offered_once_the_connection_is_closing() -> None:
    core, io, _ = ready()
    frame = _fetch_answered(core, io)
    core.upstream_data(frame[:8])
    assert core.passthrough_left() > 0
    core.client_lost()
    assert core.passthrough_left() == 0 and not core.passthrough_next()
