"""The approvals HTTP API against the real thing: the Approvals service on a SQLite store, the
listener on a loopback port, tokens from the test IdP validated by IdentityService.

Each test opens its own requests (its own requester or resource), so they share one server."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import defer
from twisted.internet import reactor as _reactor

from gatekeeper.approvals.http import ROUTES
from harness.approvals import ApprovalsServer
from harness.tokens import TestIdp

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    srv = ApprovalsServer(tmp_path_factory.mktemp("approvals-api"), TestIdp(), _reactor)
    pytest_twisted.blockon(srv.start())
    yield srv
    pytest_twisted.blockon(srv.stop())


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


@defer.inlineCallbacks
def call(server: ApprovalsServer, method: str, path: str, token: str | None = None, body: Any = None,
         raw: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    """(status, JSON body, response) of one API call."""
    h = {"Accept": ["application/json"]}
    if token is not None:
        h["Authorization"] = [f"Bearer {token}"]
    if body is not None or raw is not None:
        h["Content-Type"] = ["application/json"]
    for k, v in (headers or {}).items():
        h[k] = [v]
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    resp = yield treq.request(method, server.url + path, headers=h, data=data, timeout=10)
    content = yield treq.content(resp)
    try:
        parsed = json.loads(content) if content else None
    except ValueError:
        parsed = content
    return resp.code, parsed, resp


def approve(server: ApprovalsServer, rid: str, token: str, reason: str = "looks right") -> Any:
    return call(server, "POST", f"/api/v1/requests/{rid}/approve", token, {"reason": reason})


# -- authentication ---------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_every_api_call_needs_a_valid_token_and_a_refused_one_changes_nothing(server):
    requester = unique("svc")
    req = server.open_request(requester)
    other_idp = TestIdp()  # same issuer and audience, other keys
    bad_tokens = {
        "none": None,
        "garbage": "not-a-jwt",
        "expired": server.token("bob", "data-owners", lifetime=-60),
        "other keys": other_idp.token(sub="bob", groups=("data-owners",)),
        "wrong audience": TestIdp(audience="someone-else").token(sub="bob", groups=("data-owners",)),
        "alg none": server.idp.unsigned_token(sub="bob", groups=["data-owners"]),
        "hs256 confusion": server.idp.hs256_with_public_key(sub="bob", groups=["data-owners"]),
    }
    for what, token in bad_tokens.items():
        for method, path, body in [("GET", "/api/v1/requests", None), ("GET", f"/api/v1/requests/{req.id}", None),
                                   ("POST", f"/api/v1/requests/{req.id}/approve", {"reason": "x"}),
                                   ("POST", f"/api/v1/requests/{req.id}/deny", {"reason": "x"}),
                                   ("GET", "/api/v1/events", None), ("GET", "/api/v1/whoami", None)]:
            status, out, resp = yield call(server, method, path, token, body)
            assert status == 401, (what, method, path, out)
            assert out["error"] == "unauthenticated" and out["reason"], what
            assert resp.headers.getRawHeaders("www-authenticate")[0].startswith("Bearer"), what
    assert server.service.request(req.id).status == "pending" and server.service.request(req.id).votes == ()


@pytest_twisted.inlineCallbacks
def test_whoami_names_the_token_principal(server):
    status, out, _ = yield call(server, "GET", "/api/v1/whoami", server.token("carol", "data-owners", "ops"))
    assert status == 200
    assert out["principal"] == {"sub": "carol", "issuer": server.idp.issuer, "groups": ["data-owners", "ops"]}


# -- deciding ---------------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_self_approval_is_refused_with_the_reason_even_for_an_approver(server):
    alice = unique("alice")
    req = server.open_request(alice, groups=("data-owners",))
    token = server.token(alice, "data-owners")
    for verdict in ("approve", "deny"):
        status, out, _ = yield call(server, "POST", f"/api/v1/requests/{req.id}/{verdict}", token, {"reason": "mine"})
        assert status == 403 and out["error"] == "forbidden"
        assert "segregation of duties" in out["reason"]
    status, out, _ = yield call(server, "GET", f"/api/v1/requests/{req.id}", token)
    assert status == 200 and out["status"] == "pending" and out["votes"] == []
    assert out["viewer"] == {"requester": True, "may_decide": False,
                             "why_not": "segregation of duties: the requester cannot decide their own request"}


@pytest_twisted.inlineCallbacks
def test_a_principal_outside_the_approvers_is_refused(server):
    req = server.open_request(unique("svc"), approvers=("group:data-owners", "user:erin"))
    mallory = server.token("mallory", "marketing")
    status, out, _ = yield approve(server, req.id, mallory)
    assert status == 403 and "not among the approvers" in out["reason"]
    status, out, _ = yield call(server, "GET", f"/api/v1/requests/{req.id}", mallory)
    assert status == 403
    status, out, _ = yield call(server, "GET", "/api/v1/requests", mallory)
    assert req.id not in [r["id"] for r in out["requests"]]
    assert server.service.request(req.id).status == "pending"
    # user:erin is an approver by name, whatever her groups
    status, out, _ = yield approve(server, req.id, server.token("erin"))
    assert status == 200 and out["status"] == "approved"


@pytest_twisted.inlineCallbacks
def test_two_person_rule_needs_two_different_approvers(server):
    requester = unique("svc")
    req = server.open_request(requester, approvals_required=2)
    carol, dave = server.token("carol", "data-owners"), server.token("dave", "data-owners")
    status, out, _ = yield approve(server, req.id, carol, "first look")
    assert status == 200 and out["status"] == "pending" and [v["sub"] for v in out["votes"]] == ["carol"]
    assert out["viewer"]["may_decide"] is False and "already voted" in out["viewer"]["why_not"]
    status, out, _ = yield approve(server, req.id, carol, "again")
    assert status == 409 and "already voted" in out["reason"]
    status, out, _ = yield approve(server, req.id, dave, "second look")
    assert status == 200 and out["status"] == "approved" and out["grant_id"]
    status, out, _ = yield call(server, "GET", f"/api/v1/grants/{out['grant_id']}", server.token(requester))
    assert status == 200 and out["approved_by"] == ["carol", "dave"] and out["live"] is True
    status, out, _ = yield approve(server, req.id, server.token("frank", "data-owners"))
    assert status == 409 and "approved" in out["reason"]


@pytest_twisted.inlineCallbacks
def test_one_denial_decides_and_nothing_is_granted(server):
    requester = unique("svc")
    req = server.open_request(requester)
    status, out, _ = yield call(server, "POST", f"/api/v1/requests/{req.id}/deny", server.token("carol", "data-owners"),
                                {"reason": "not during the freeze"})
    assert status == 200 and out["status"] == "denied" and out["grant_id"] is None
    assert out["votes"][0]["reason"] == "not during the freeze"
    assert server.service.grants_for(server.service.request(req.id).requester) == []


@pytest_twisted.inlineCallbacks
def test_unknown_ids_are_404(server):
    token = server.token("carol", "data-owners")
    for method, path, body in [("GET", "/api/v1/requests/apr_nope", None),
                               ("POST", "/api/v1/requests/apr_nope/approve", {"reason": "x"}),
                               ("GET", "/api/v1/grants/grt_nope", None),
                               ("POST", "/api/v1/grants/grt_nope/revoke", {"reason": "x"})]:
        status, out, _ = yield call(server, method, path, token, body)
        assert status == 404 and out["error"] == "not_found", path


@pytest_twisted.inlineCallbacks
def test_malformed_bodies_and_queries_are_400_and_change_nothing(server):
    req = server.open_request(unique("svc"))
    token = server.token("carol", "data-owners")
    path = f"/api/v1/requests/{req.id}/approve"
    for raw in [b"", b"not json", b"[]", b'{"reason": ""}', b'{"reason": "   "}', b'{"reason": 3}',
                b'{"reason": "ok", "extra": 1}', json.dumps({"reason": "x" * 1001}).encode()]:
        status, out, _ = yield call(server, "POST", path, token, raw=raw)
        assert status == 400 and out["error"] == "bad_request" and out["reason"], raw
    status, out, _ = yield call(server, "POST", path, token, raw=b'{"reason": "' + b"x" * 20000 + b'"}')
    assert status == 413
    for query in ["status=maybe", "mine=yes", "limit=0", "limit=abc", "status=pending&status=denied"]:
        status, out, _ = yield call(server, "GET", f"/api/v1/requests?{query}", token)
        assert status == 400, query
    assert server.service.request(req.id).votes == ()


@pytest_twisted.inlineCallbacks
def test_unknown_routes_are_404_and_wrong_methods_405(server):
    token = server.token("carol")
    status, out, _ = yield call(server, "GET", "/api/v1/nothing", token)
    assert status == 404 and out["error"] == "not_found"
    status, out, resp = yield call(server, "GET", "/api/v1/requests/x/approve", token)
    assert status == 405 and resp.headers.getRawHeaders("allow") == ["POST"]
    status, out, _ = yield call(server, "DELETE", "/api/v1/requests", token)
    assert status == 405


# -- listing ----------------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_mine_lists_the_requesters_own_requests_with_its_own_token(server):
    requester = unique("svc-orders")
    own = [server.open_request(requester, resource=("topic", unique("t"))) for _ in range(2)]
    someone_elses = server.open_request(unique("svc"))
    token = server.token(requester, "orders-writers")  # not an approver of anything
    status, out, _ = yield call(server, "GET", "/api/v1/requests?mine=true", token)
    assert status == 200
    assert {r["id"] for r in out["requests"]} == {r.id for r in own}
    assert all(r["viewer"]["requester"] for r in out["requests"])
    # without mine: the same, as it is an approver of nothing
    status, out, _ = yield call(server, "GET", "/api/v1/requests", token)
    assert {r["id"] for r in out["requests"]} == {r.id for r in own}
    # an approver sees everyone's requests it may approve, not only its own
    status, out, _ = yield call(server, "GET", "/api/v1/requests?status=pending&limit=1000", server.token("carol", "data-owners"))
    ids = {r["id"] for r in out["requests"]}
    assert someone_elses.id in ids and {r.id for r in own} <= ids
    assert all(r["status"] == "pending" for r in out["requests"])
    status, out, _ = yield call(server, "GET", "/api/v1/requests?mine=true", server.token("carol", "data-owners"))
    assert [r for r in out["requests"] if r["requester"]["sub"] != "carol"] == []


@pytest_twisted.inlineCallbacks
def test_a_token_of_another_issuer_is_refused_even_for_a_requesters_name(server):
    requester = unique("svc")
    server.open_request(requester)
    other = TestIdp(issuer="https://other-idp.test")
    status, _, _ = yield call(server, "GET", "/api/v1/requests?mine=true", other.token(sub=requester))
    assert status == 401


# -- grants -----------------------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_revoke_ends_a_grant_for_the_grantee_or_an_approver_only(server):
    requester = unique("svc")
    req = server.open_request(requester)
    status, out, _ = yield approve(server, req.id, server.token("carol", "data-owners"))
    grant_id = out["grant_id"]
    grantee = server.service.request(req.id).requester
    assert server.service.grants_for(grantee)
    outsider = server.token("mallory", "marketing")
    status, out, _ = yield call(server, "POST", f"/api/v1/grants/{grant_id}/revoke", outsider, {"reason": "because"})
    assert status == 403 and server.service.grants_for(grantee)
    status, out, _ = yield call(server, "GET", "/api/v1/grants", outsider)
    assert grant_id not in [g["id"] for g in out["grants"]]
    status, out, _ = yield call(server, "GET", "/api/v1/grants", server.token(requester))
    assert [g["id"] for g in out["grants"]] == [grant_id] and out["grants"][0]["viewer"]["may_revoke"] is True
    status, out, _ = yield call(server, "POST", f"/api/v1/grants/{grant_id}/revoke", server.token("dave", "data-owners"),
                                {"reason": "incident 42"})
    assert status == 200 and out["live"] is False and out["revoked_by"] == "dave" and out["revoke_reason"] == "incident 42"
    assert server.service.grants_for(grantee) == []
    status, out, _ = yield call(server, "POST", f"/api/v1/grants/{grant_id}/revoke", server.token(requester), {"reason": "again"})
    assert status == 409
    status, out, _ = yield call(server, "GET", "/api/v1/grants?live=true", server.token(requester))
    assert grant_id not in [g["id"] for g in out["grants"]]
    status, out, _ = yield call(server, "GET", "/api/v1/grants?live=false", server.token(requester))
    assert grant_id in [g["id"] for g in out["grants"]]


# -- events -----------------------------------------------------------------------------------


class _Events:
    """Reads a server-sent event stream into a list of (event, data) as it arrives."""

    def __init__(self) -> None:
        self.buffer = b""
        self.events: list[tuple[str, Any]] = []
        self.waiting: list[tuple[Any, defer.Deferred[None]]] = []

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            kind, payload = "message", []
            for line in block.decode().split("\n"):
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    payload.append(line[6:])
            if payload:
                self.events.append((kind, json.loads("\n".join(payload))))
        for check, d in list(self.waiting):
            if check(self.events):
                self.waiting.remove((check, d))
                d.callback(None)

    def until(self, check: Any, timeout: float = 10.0) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        if check(self.events):
            d.callback(None)
        else:
            self.waiting.append((check, d))
        return d.addTimeout(timeout, _reactor)


@defer.inlineCallbacks
def open_stream(server: ApprovalsServer, token: str) -> Any:
    resp = yield treq.get(server.url + "/api/v1/events", headers={"Authorization": [f"Bearer {token}"]}, unbuffered=True)
    assert resp.code == 200 and resp.headers.getRawHeaders("content-type")[0].startswith("text/event-stream")
    events = _Events()
    done = treq.collect(resp, events.feed)
    yield events.until(lambda evs: any(k == "ready" for k, _ in evs))
    return events, done, resp


@pytest_twisted.inlineCallbacks
def test_events_tell_each_stream_only_what_its_principal_may_see(server):
    approver, approver_done, resp1 = yield open_stream(server, server.token("carol", "data-owners"))
    outsider, outsider_done, resp2 = yield open_stream(server, server.token("mallory", "marketing"))
    req = server.open_request(unique("svc"))
    yield approver.until(lambda evs: any(k == "request" and d["id"] == req.id for k, d in evs))
    yield approve(server, req.id, server.token("dave", "data-owners"))
    yield approver.until(lambda evs: any(k == "grant" and d["approval_id"] == req.id for k, d in evs))
    seen = [d for k, d in approver.events if k == "request" and d["id"] == req.id]
    assert seen[0]["status"] == "pending" and seen[0]["viewer"]["may_decide"] is True and seen[-1]["status"] == "approved"
    assert [k for k, _ in outsider.events] == ["ready"]
    for r, done in ((resp1, approver_done), (resp2, outsider_done)):
        r.original._transport.loseConnection()
        yield done.addErrback(lambda _: None)


@pytest_twisted.inlineCallbacks
def test_an_event_stream_ends_when_its_token_expires(server):
    events, done, _ = yield open_stream(server, server.token("carol", "data-owners", lifetime=2))
    yield events.until(lambda evs: any(k == "expired" for k, _ in evs), timeout=10)
    yield done  # the server finished the response


# -- the OpenAPI document and the page's headers ------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_the_served_openapi_document_is_the_docs_file_and_lists_exactly_the_routes(server):
    status, served, _ = yield call(server, "GET", "/openapi.json")
    assert status == 200
    assert served == json.loads((ROOT / "docs" / "approvals-openapi.json").read_text())
    assert served["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in served["paths"].items() for method in ops}
    assert documented == {(r.method, r.template) for r in ROUTES}
    for r in ROUTES:
        op = served["paths"][r.template][r.method.lower()]
        assert (op.get("security") == []) == (not r.authenticated), r


def test_the_openapi_document_is_valid_json_schema_wise():
    from jsonschema import Draft202012Validator

    doc = json.loads((ROOT / "docs" / "approvals-openapi.json").read_text())
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


@pytest_twisted.inlineCallbacks
def test_api_answers_match_the_openapi_schemas(server):
    from jsonschema import Draft202012Validator

    doc = json.loads((ROOT / "docs" / "approvals-openapi.json").read_text())

    def check(name: str, value: Any) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
        Draft202012Validator(schema).validate(value)

    requester = unique("svc")
    req = server.open_request(requester)
    carol = server.token("carol", "data-owners")
    _, out, _ = yield call(server, "GET", "/api/v1/requests", carol)
    check("RequestList", out)
    _, out, _ = yield approve(server, req.id, carol)
    check("ApprovalRequest", out)
    _, out, _ = yield call(server, "GET", "/api/v1/grants", carol)
    check("GrantList", out)
    _, out, _ = yield call(server, "GET", "/api/v1/whoami", carol)
    check("Whoami", out)
    _, out, _ = yield approve(server, req.id, carol)
    check("Error", out)


@pytest_twisted.inlineCallbacks
def test_the_page_is_served_with_a_strict_content_security_policy(server):
    resp = yield treq.get(server.url + "/")
    body = yield treq.content(resp)
    assert resp.code == 200 and b"<title>Gatekeeper approvals</title>" in body
    csp = resp.headers.getRawHeaders("content-security-policy")[0]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert resp.headers.getRawHeaders("x-content-type-options") == ["nosniff"]
    assert b"<script>" not in body and b"http://" not in body and b"https://" not in body  # no inline script, no external assets
    for asset in ("/static/app.js", "/static/app.css"):
        r = yield treq.get(server.url + asset)
        text = yield treq.content(r)
        assert r.code == 200 and text and b".innerHTML" not in text and b"insertAdjacentHTML" not in text and b"http://" not in text


# -- wiring: GatewayService runs the service and the listener ------------------------------------


@pytest_twisted.inlineCallbacks
def test_the_gateway_service_starts_and_stops_approvals_and_its_listener(tmp_path):
    from gatekeeper.approvals import Approvals
    from gatekeeper.config import load_config
    from gatekeeper.proxy.gateway import GatewayService
    from harness.gateway import write_config
    from harness.ports import LOOPBACK, free_port, port_open

    idp = TestIdp()
    port = free_port()
    write_config(tmp_path / "gk.yaml", f"{LOOPBACK}:9", extra={
        "identity": {"jwt": {"issuer": idp.issuer, "audience": idp.audience, "jwks_file": str(idp.write_jwks(tmp_path / "jwks.json"))}},
        "approvals": {"store": str(tmp_path / "approvals.sqlite"), "bind": f"{LOOPBACK}:{port}"},
    })
    service = GatewayService(load_config(tmp_path / "gk.yaml"), _reactor)
    service.startService()
    try:
        yield service.started
        assert isinstance(service.gateway.approvals, Approvals)
        resp = yield treq.get(f"http://{LOOPBACK}:{port}/api/v1/whoami",
                              headers={"Authorization": [f"Bearer {idp.token(sub='carol')}"]})
        body = yield treq.json_content(resp)
        assert resp.code == 200 and body["principal"]["sub"] == "carol"
        assert service.approvals_listener.url == f"http://{LOOPBACK}:{port}"
    finally:
        yield service.stopService()
    assert not port_open(port)
    assert (tmp_path / "approvals.sqlite").exists()
