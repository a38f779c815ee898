"""Approve decisions in the Kafka connection core, driven directly: the held request waits
(and everything behind it on the connection), then goes on when approved — decided again with
the grant in its inputs — or is refused with a message naming the approval request."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import attrs

from gatekeeper.api import Decision
from gatekeeper.config.values import ApprovalsConfig
from gatekeeper.kafka.codec import API_TABLE, decode_response_body
from tests.unit.samples import req
from tests.unit.test_client_protocol import framed
from tests.unit.test_connection import ALLOW, answer, produce, ready

APPROVE = Decision("approve", reason="guarded", approval={"approvers": ["group:leads"], "wait": "5s", "grant_ttl": "1m"})
GRANT = {"id": "gr_1", "operation": "produce", "resource": {"type": "topic", "name": "guarded"}, "expires_at": "2099-01-01T00:00:00Z"}


def held_core(grants: list[dict[str, Any]] | None = None) -> tuple[Any, Any]:
    core, io, _ = ready()
    config = attrs.evolve(core.s.config, approvals=ApprovalsConfig(store=Path("unused.db"), max_wait=20.0))
    core.s = attrs.evolve(core.s, config=config, grants_for=lambda principal, now: list(grants or ()))
    return core, io


def api_versions(cid: int) -> bytes:
    return framed(req(18, 3, client_software_name="u", client_software_version="1"), 3, cid)


def produce_error(frame: bytes) -> Any:
    return decode_response_body(frame, API_TABLE[0], 9)[1].responses[0].partition_responses[0]


def test_a_held_request_waits_with_everything_behind_it_and_is_refused_naming_the_request() -> None:
    core, io = held_core()
    core.client_data(produce(1, "guarded"))
    answer(core, io, APPROVE)
    (token, (request,), wait) = io.holds.pop()
    assert wait == 5.0  # the decision's wait, under approvals.max_wait
    assert request["operation"] == "produce" and request["resource"].name == "guarded"
    assert request["approval"]["approvers"] == ["group:leads"] and request["reason"] == "guarded"
    core.client_data(api_versions(2))
    assert io.upstream_frames() == []  # the later request waits behind the held one
    core.held(token, [{"id": "apr_x", "status": "pending", "approvers": ["group:leads"],
                      "message": "approval required: request apr_x is pending, waiting for group:leads"}])
    (reply,) = io.client_frames()
    p = produce_error(reply)
    assert p.error_code == 29 and "request apr_x" in p.error_message and "group:leads" in p.error_message
    (forwarded,) = io.upstream_frames()
    assert struct.unpack_from(">h", forwarded)[0] == 18


def test_approved_it_is_decided_again_with_the_grant_in_its_inputs() -> None:
    core, io = held_core(grants=[GRANT])
    core.client_data(produce(1, "guarded"))
    token, inputs = io.asked.pop(0)
    assert inputs[0]["grants"] == [GRANT]
    core.decided(token, [APPROVE])
    (token, _requests, _wait) = io.holds.pop()
    core.held(token, [{"id": "apr_x", "status": "approved", "by": ["lead"]}])
    token, inputs = io.asked.pop(0)  # asked again, not forwarded blindly
    assert inputs[0]["grants"] == [GRANT]
    assert io.upstream_frames() == []
    core.decided(token, [ALLOW])
    (forwarded,) = io.upstream_frames()
    assert struct.unpack_from(">h", forwarded)[0] == 0


def test_a_policy_that_asks_again_after_the_approval_is_a_deny_never_a_second_hold() -> None:
    core, io = held_core()
    core.client_data(produce(1, "guarded"))
    answer(core, io, APPROVE)
    (token, _r, _w) = io.holds.pop()
    core.held(token, [{"id": "apr_x", "status": "approved", "by": ["lead"]}])
    answer(core, io, APPROVE)
    assert io.holds == []
    p = produce_error(io.client_frames()[0])
    assert p.error_code == 29 and "still asks for approval" in p.error_message


def test_denied_or_unconfigured_approvals_are_refused_with_why() -> None:
    core, io = held_core()
    core.client_data(produce(1, "guarded"))
    answer(core, io, APPROVE)
    (token, _r, _w) = io.holds.pop()
    core.held(token, [{"id": "apr_y", "status": "denied", "by": ["lead"], "reason": "not during the freeze"}])
    p = produce_error(io.client_frames()[0])
    assert p.error_code == 29 and "denied by lead: not during the freeze" in p.error_message
    core, io, _ = ready()  # no approvals section
    core.client_data(produce(1, "guarded"))
    answer(core, io, APPROVE)
    assert io.holds == []
    assert "approvals are not configured" in produce_error(io.client_frames()[0]).error_message


def test_a_connection_closed_while_held_ignores_the_outcome() -> None:
    core, io = held_core()
    core.client_data(produce(1, "guarded"))
    answer(core, io, APPROVE)
    (token, _r, _w) = io.holds.pop()
    core.client_lost()
    core.held(token, [{"id": "apr_x", "status": "approved"}])
    assert io.asked == [] and io.upstream_frames() == []
