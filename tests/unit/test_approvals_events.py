"""EventStreams on a task.Clock: the real Approvals service (in-memory store), DummyRequests as
the open responses. Keep-alives, the end at token expiry, stop, the cap, one broken stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet import task
from twisted.web.test.requesthelper import DummyRequest

from gatekeeper.api import Principal, Resource
from gatekeeper.approvals import Approvals, MemoryStore
from gatekeeper.approvals import events as events_module
from gatekeeper.approvals.events import HEARTBEAT_SECONDS, EventStreams
from gatekeeper.config.values import ApprovalsConfig

CAROL = Principal(sub="carol", issuer="idp", groups=("data-owners",))
MALLORY = Principal(sub="mallory", issuer="idp", groups=("marketing",))


def _service(clock: task.Clock) -> Approvals:
    clock.advance(1_800_000_000)
    service = Approvals(ApprovalsConfig.from_dict({"store": "unused.sqlite"}), reactor=clock, store=MemoryStore())
    d = service.start()
    assert d.called
    return service


def _open(service: Approvals, sub: str = "svc") -> Any:
    return service.open(principal=Principal(sub=sub, issuer="idp"), client=None, operation="produce",
                        resource=Resource("topic", "orders"), summary={}, reason="owner needed",
                        approval={"approvers": ["group:data-owners"]})


def _events(request: DummyRequest) -> list[tuple[str, Any]]:
    out = []
    for block in b"".join(request.written).decode().split("\n\n"):
        kind = next((line[7:] for line in block.split("\n") if line.startswith("event: ")), None)
        data = next((line[6:] for line in block.split("\n") if line.startswith("data: ")), None)
        if kind is not None:
            out.append((kind, json.loads(data) if data else None))
    return out


@pytest.fixture
def setup() -> Any:
    clock = task.Clock()
    service = _service(clock)
    streams = EventStreams(service, clock)
    streams.start()
    yield clock, service, streams
    streams.stop()


def test_a_stream_gets_ready_then_what_its_principal_may_see(setup: Any) -> None:
    clock, service, streams = setup
    carol, mallory = DummyRequest([b""]), DummyRequest([b""])
    streams.open(carol, CAROL, clock.seconds() + 300)
    streams.open(mallory, MALLORY, clock.seconds() + 300)
    req = _open(service)
    assert [k for k, _ in _events(carol)] == ["ready", "request"]
    assert _events(carol)[1][1]["id"] == req.id and _events(carol)[1][1]["viewer"]["may_decide"] is True
    assert [k for k, _ in _events(mallory)] == ["ready"]
    assert carol.responseHeaders.getRawHeaders(b"content-type") == [b"text/event-stream; charset=utf-8"]


def test_keep_alives_every_15_seconds(setup: Any) -> None:
    clock, service, streams = setup
    r = DummyRequest([b""])
    streams.open(r, CAROL, clock.seconds() + 300)
    before = len(r.written)
    clock.advance(HEARTBEAT_SECONDS)
    clock.advance(HEARTBEAT_SECONDS)
    assert r.written[before:] == [b": keep-alive\n\n", b": keep-alive\n\n"]


def test_a_stream_ends_when_its_token_expires(setup: Any) -> None:
    clock, service, streams = setup
    r = DummyRequest([b""])
    streams.open(r, CAROL, clock.seconds() + 40)
    clock.advance(39)
    assert not r.finished
    clock.advance(1)
    assert _events(r)[-1][0] == "expired" and r.finished and streams.streams == []


def test_a_closed_stream_is_forgotten_and_its_timer_cancelled(setup: Any) -> None:
    clock, service, streams = setup
    r = DummyRequest([b""])
    streams.open(r, CAROL, clock.seconds() + 40)
    expiry = streams.streams[0].expiry
    r.processingFailed(Exception("client went away"))  # fires notifyFinish with a failure
    assert streams.streams == [] and not expiry.active()


def test_stop_ends_every_stream_and_unsubscribes(setup: Any) -> None:
    clock, service, streams = setup
    rs = [DummyRequest([b""]) for _ in range(3)]
    for r in rs:
        streams.open(r, CAROL, clock.seconds() + 300)
    streams.stop()
    assert all(r.finished for r in rs) and streams.streams == []
    written = [len(r.written) for r in rs]
    _open(service, "later")
    assert [len(r.written) for r in rs] == written


def test_too_many_streams_are_refused(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock, service, streams = setup
    monkeypatch.setattr(events_module, "MAX_STREAMS", 2)
    assert streams.open(DummyRequest([b""]), CAROL, clock.seconds() + 300) is not None
    assert streams.open(DummyRequest([b""]), CAROL, clock.seconds() + 300) is not None
    assert streams.open(DummyRequest([b""]), CAROL, clock.seconds() + 300) is None


def test_one_broken_stream_does_not_keep_the_event_from_the_others(setup: Any) -> None:
    clock, service, streams = setup
    broken, fine = DummyRequest([b""]), DummyRequest([b""])
    streams.open(broken, CAROL, clock.seconds() + 300)
    streams.open(fine, CAROL, clock.seconds() + 300)

    def fail(data: bytes) -> None:
        raise OSError("connection reset")

    broken.write = fail  # type: ignore[method-assign]
    req = _open(service)
    assert ("request", req.id) in [(k, d["id"]) for k, d in _events(fine) if d and "id" in d]
    assert broken not in [s.request for s in streams.streams]
