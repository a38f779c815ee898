"""Pulsar admin REST calls in the audit trail: the record builders, and the records the proxy
writes over real HTTP (in the test reactor, in front of a small web server answering as a
broker would), each valid against the audit-record schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import jsonschema
import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor
from twisted.web import resource, server
from twisted.web.client import HTTPConnectionPool

pytest.importorskip("gatekeeper_pulsar.admin_auditing", reason="the gatekeeper-pulsar plugin distribution is not installed")

from gatekeeper_pulsar import admin_auditing as aud  # noqa: E402
from gatekeeper_pulsar.admin_proxy import (  # noqa: E402
    AdminProxy,
    AdminSettings,
    AdminSite,
    BoundedRequest,
    WebBroker,
)

from gatekeeper.api import AdapterServices, Decision, Principal  # noqa: E402
from gatekeeper.audit.records import GENESIS, make_record  # noqa: E402
from gatekeeper.metrics import Metrics  # noqa: E402
from gatekeeper.testing.audit import POLICY_INPUT  # noqa: E402

ALICE = Principal("alice", "https://idp", ("ops",), {"jti": "tok-1", "exp": 1_800_000_000, "iss": "https://idp",
                                                     "email": "a@example.com"}, "token")
TOPIC = "/admin/v2/persistent/a/b/orders"


def _validator() -> jsonschema.Draft202012Validator:
    text = resources.files("gatekeeper").joinpath("schemas/audit-record.schema.json").read_text()
    return jsonschema.Draft202012Validator(json.loads(text))


VALIDATOR = _validator()


def _errors(kind: str, fields: dict[str, Any]) -> list[str]:
    record = make_record(kind, fields, instance="gk1", chain="gk1", seq=0, prev=GENESIS, time="2026-11-22T10:00:00.000000Z")
    return [e.message for e in VALIDATOR.iter_errors(record)]


# -- the builders ----------------------------------------------------------------------------------


def test_session_and_login_records_validate_and_never_hold_the_token_or_claims() -> None:
    session = aud.HttpSession("01JD3K9Q4X5Y6Z7A8B9C0D1E2F", 100.0, "127.0.0.1", 40000)
    assert _errors("session_start", aud.session_start(session, "padmin")) == []
    login = aud.authentication_success(session.id, ALICE)
    assert _errors("authentication", login) == []
    assert login["token"] == {"jti": "tok-1", "exp": "2027-01-15T08:00:00.000000Z", "issuer": "https://idp"}
    assert "a@example.com" not in json.dumps(login)
    refused = aud.authentication_failure(session.id, "Basic", "only Authorization: Bearer <token> is accepted here")
    assert _errors("authentication", refused) == []
    assert refused["result"] == "failure" and refused["mechanism"] == "basic" and refused["principal"] is None
    session.requests, session.bytes_in, session.bytes_out, session.principal = 2, 300, 40, ALICE
    end = aud.session_end(session, 101.5)
    assert _errors("session_end", end) == []
    assert (end["duration_ms"], end["ended_by"], end["principal"]["sub"]) == (1500, "client", "alice")
    session.closed_by_gatekeeper("idle HTTP connection timed out")
    session.closed_by_gatekeeper("later reason")
    assert aud.session_end(session, 102.0)["reason"] == "idle HTTP connection timed out"
    assert aud.session_end(session, 102.0)["ended_by"] == "gatekeeper"


def test_a_keep_alive_session_records_each_distinct_token_once() -> None:
    session = aud.HttpSession("s", 0.0, "127.0.0.1", 1)
    assert [session.new_token(t) for t in ("a", "a", "b", "a")] == [True, False, True, True]


def test_request_records_validate_forwarded_denied_and_refused_before_any_decision() -> None:
    session = aud.HttpSession("s", 0.0, "127.0.0.1", 1)
    forwarded = aud.operation_entries([POLICY_INPUT], [Decision("allow")], "sha256:" + "a" * 64, forwarded=True)
    fields = aud.request_fields(session, ALICE, "PUT /admin/v2/{domain}/{tenant}/{namespace}/{topic}", forwarded,
                                aud.broker_outcome(204), 0.0123)
    assert _errors("request", fields) == []
    assert fields["api"] == {"key": 0, "name": "PUT /admin/v2/{domain}/{tenant}/{namespace}/{topic}", "version": 2}
    assert (fields["outcome"], fields["latency_ms"]) == ({"from": "broker", "status": 204}, 12.3)
    assert fields["operations"][0]["enforced"] == {"result": "forwarded"}
    denied = aud.operation_entries([POLICY_INPUT, POLICY_INPUT], [Decision("allow"), Decision("deny", "no")], None,
                                   forwarded=False, status=403)
    fields = aud.request_fields(session, ALICE, "DELETE …", denied, aud.gatekeeper_outcome(403, "no"), 0.001)
    assert _errors("request", fields) == []
    assert [o["enforced"] for o in denied] == [{"result": "denied", "error_code": 403}] * 2
    assert [o["decision"]["action"] for o in denied] == ["allow", "deny"]
    unauthenticated = aud.request_fields(session, None, "GET /admin/v2/tenants", [],
                                         aud.gatekeeper_outcome(401, "token refused: expired"), 0.0)
    assert _errors("request", unauthenticated) == []
    gone = aud.request_fields(session, None, "GET x", [], aud.gatekeeper_outcome(None, "gone"), 0.0)
    assert gone["outcome"] == {"from": "none", "error": "gone"} and _errors("request", gone) == []
    assert _errors("request", {**fields, "outcome": {"from": "broker", "status": 42}}) != []


# -- through the proxy -----------------------------------------------------------------------------


class Slot:
    def __init__(self, trail: FakeTrail) -> None:
        self.trail = trail

    def record(self, kind: str, fields: dict[str, Any]) -> None:
        self.trail.records.append((kind, fields))


class FakeTrail:
    def __init__(self) -> None:
        self.available = True
        self.error: str | None = None
        self.records: list[tuple[str, dict[str, Any]]] = []

    def record(self, kind: str, fields: dict[str, Any]) -> bool:
        if self.available:
            self.records.append((kind, fields))
        return self.available

    def reserve(self) -> Slot | None:
        return Slot(self) if self.available else None

    def kinds(self) -> list[str]:
        return [k for k, _ in self.records]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for k, f in self.records if k == kind]


class Broker(resource.Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[bytes, bytes]] = []

    def render(self, request: Any) -> bytes:
        self.received.append((request.method, request.uri))
        if request.path == b"/admin/v2/persistent/a/b":
            return json.dumps(["persistent://a/b/orders", "persistent://a/b/hidden"]).encode()
        request.setResponseCode(204)
        return b""


def _decide(inputs: list[dict[str, Any]]) -> Any:
    return defer.succeed([Decision("deny", "not yours") if i["operation"] == "delete_topic"
                          or "hidden" in i["resource"]["name"] else Decision("allow") for i in inputs])


@pytest.fixture
def setup() -> Iterator[tuple[Broker, FakeTrail, str]]:
    broker = Broker()
    broker_port = reactor.listenTCP(0, server.Site(broker), interface="127.0.0.1")
    bport = broker_port.getHost().port
    settings = AdminSettings(
        listener="padmin", service=WebBroker("127.0.0.1", bport), brokers=(WebBroker("127.0.0.1", bport),),
        advertised_host="gk.example", broker_ports=(18081,), scheme="http", token=None, auth_required=False,
        authenticate=False, max_body=4096, max_listing=4096, timeout=10.0)
    trail = FakeTrail()
    services = AdapterServices(config=None, metrics=Metrics(), clock=reactor.seconds, identity=None,
                               upstream_credentials=lambda: None, principal_for_client_id=lambda cid: None,
                               next_bootstrap=lambda: None, inputs_decoded=lambda i: None, reactor=reactor,
                               decide_many=_decide, audit=trail, policy_revision=lambda: "sha256:" + "b" * 64)
    proxy = AdminProxy(settings, services)
    site = AdminSite(proxy, requestFactory=type("R", (BoundedRequest,), {"max_body": 4096}))
    gk_port = reactor.listenTCP(0, site, interface="127.0.0.1")
    yield broker, trail, f"http://127.0.0.1:{gk_port.getHost().port}"
    proxy.agent._pool.closeCachedConnections()  # type: ignore[attr-defined]
    for port in (gk_port, broker_port):
        pytest_twisted.blockon(defer.maybeDeferred(port.stopListening))


@pytest_twisted.inlineCallbacks
def test_calls_on_one_connection_are_one_session_with_a_record_each(setup: Any) -> Any:
    broker, trail, url = setup
    pool = HTTPConnectionPool(reactor, persistent=True)
    try:
        created = yield treq.put(url + TOPIC, data=b"", pool=pool)
        yield treq.content(created)
        deleted = yield treq.delete(url + TOPIC, pool=pool)
        yield treq.content(deleted)
        listed = yield treq.get(url + "/admin/v2/persistent/a/b", pool=pool)
        assert (yield treq.json_content(listed)) == ["persistent://a/b/orders"]
    finally:
        yield pool.closeCachedConnections()
    for _ in range(50):
        if "session_end" in trail.kinds():
            break
        yield _sleep(0.02)
    assert (created.code, deleted.code) == (204, 403)
    assert trail.kinds() == ["session_start", "request", "request", "request", "session_end"]
    for kind, fields in trail.records:
        assert _errors(kind, fields) == [], kind
    session = trail.of("session_start")[0]["session"]
    create, delete, listing = trail.of("request")
    assert {r["session"] for r in (create, delete, listing)} == {session}
    assert {r["operations"][0]["input"]["session"]["id"] for r in (create, delete, listing)} == {session}
    assert create["operations"][0]["input"]["operation"] == "create_topic"
    assert create["operations"][0]["enforced"] == {"result": "forwarded"}
    assert create["outcome"] == {"from": "broker", "status": 204}
    assert create["operations"][0]["decision"]["revision"] == "sha256:" + "b" * 64
    assert delete["operations"][0]["decision"]["action"] == "deny"
    assert delete["operations"][0]["enforced"] == {"result": "denied", "error_code": 403}
    assert delete["outcome"] == {"from": "gatekeeper", "status": 403, "error": "not yours"}
    assert [o["input"]["operation"] for o in listing["operations"]] == ["list_topics"]  # the filter's are not recorded
    assert listing["outcome"] == {"from": "broker", "status": 200}
    end = trail.of("session_end")[0]
    assert end["requests"] == 3 and end["ended_by"] == "client" and end["bytes"]["from_client"] > 0
    assert [m for m, _ in broker.received] == [b"PUT", b"GET"]


@pytest_twisted.inlineCallbacks
def test_with_the_trail_unavailable_a_call_is_refused_before_the_broker_sees_it(setup: Any) -> Any:
    broker, trail, url = setup
    trail.available, trail.error = False, "disk full"
    response = yield treq.put(url + TOPIC, data=b"")
    body = yield treq.json_content(response)
    assert response.code == 503
    assert body["reason"] == "audit trail unavailable (disk full): denied until it recovers"
    assert broker.received == [] and trail.records == []


def _sleep(seconds: float) -> defer.Deferred[None]:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d
