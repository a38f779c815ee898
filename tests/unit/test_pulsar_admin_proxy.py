"""The Pulsar admin REST proxy (gatekeeper_pulsar.admin_proxy) without a broker: fail-closed
decisions, authentication, which broker a call goes to, and redirect rewriting."""

from __future__ import annotations

import io
import json
from typing import Any

import attrs
import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.web.test.requesthelper import DummyRequest

pytest.importorskip("gatekeeper_pulsar.admin_proxy", reason="the gatekeeper-pulsar plugin distribution is not installed")

from gatekeeper_pulsar.admin_proxy import AdminProxy, AdminSettings, WebBroker  # noqa: E402

from gatekeeper.api import AdapterServices, Decision  # noqa: E402
from gatekeeper.metrics import Metrics  # noqa: E402

SETTINGS = AdminSettings(
    listener="padmin", service=WebBroker("10.0.0.9", 8090),
    brokers=(WebBroker("10.0.0.1", 8080), WebBroker("10.0.0.2", 8081)),
    advertised_host="gatekeeper.example", broker_ports=(18081, 18082), scheme="http", token="gk-token",
    auth_required=False, authenticate=False, max_body=1024, max_listing=4096, timeout=5.0)


def _services(reactor: Any, decide: Any) -> AdapterServices:
    return AdapterServices(config=None, metrics=Metrics(), clock=lambda: 1_700_000_000.0, identity=None,
                           upstream_credentials=lambda: None, principal_for_client_id=lambda cid: None,
                           next_bootstrap=lambda: None, inputs_decoded=lambda inputs: None,
                           reactor=reactor, decide_many=decide)


def _request(method: str, uri: str, body: bytes = b"", headers: dict[str, str] | None = None) -> DummyRequest:
    req = DummyRequest([])
    req.method = method.encode()
    req.uri = uri.encode()
    req.content = io.BytesIO(body)  # type: ignore[attr-defined]
    for name, value in (headers or {}).items():
        req.requestHeaders.setRawHeaders(name, [value])
    return req


def _serve(settings: AdminSettings, decide: Any, req: DummyRequest) -> MemoryReactorClock:
    reactor = MemoryReactorClock()
    AdminProxy(settings, _services(reactor, decide)).render(req)
    reactor.advance(0)  # name resolution (of an address) and connection attempts run on the clock
    return reactor


def _answer(req: DummyRequest) -> dict[str, Any]:
    assert req.finished
    return dict(json.loads(b"".join(req.written)))


TOPIC_DELETE = "/admin/v2/persistent/acme/orders/payments"


def test_an_engine_failure_is_a_deny_and_nothing_is_forwarded() -> None:
    req = _request("DELETE", TOPIC_DELETE)
    reactor = _serve(SETTINGS, lambda inputs: defer.fail(RuntimeError("OPA unreachable")), req)
    assert req.responseCode == 403
    body = _answer(req)
    assert body["reason"] == "policy engine failed, denied: OPA unreachable"
    assert body["operation"] == "delete_topic"
    assert reactor.tcpClients == []


def test_no_engine_is_a_deny() -> None:
    req = _request("DELETE", TOPIC_DELETE)
    reactor = _serve(SETTINGS, None, req)
    assert req.responseCode == 403 and "no policy engine" in _answer(req)["reason"]
    assert reactor.tcpClients == []


def test_an_engine_that_raises_is_a_deny() -> None:
    def boom(inputs: Any) -> Any:
        raise ValueError("malformed decision")

    req = _request("DELETE", TOPIC_DELETE)
    reactor = _serve(SETTINGS, boom, req)
    assert req.responseCode == 403 and "malformed decision" in _answer(req)["reason"]
    assert reactor.tcpClients == []


@pytest.mark.parametrize("decision", [Decision("mask", "pii"), Decision("approve", "needs an owner"), Decision("deny", "no")])
def test_anything_but_allow_is_a_deny(decision: Decision) -> None:
    req = _request("PUT", TOPIC_DELETE)
    reactor = _serve(SETTINGS, lambda inputs: defer.succeed([decision] * len(inputs)), req)
    assert req.responseCode == 403 and decision.reason in _answer(req)["reason"]
    assert reactor.tcpClients == []


def test_every_operation_of_a_call_must_be_allowed() -> None:
    """A cursor reset is decided on the subscription and on the topic: one deny refuses it."""
    seen: list[list[dict[str, Any]]] = []

    def decide(inputs: list[dict[str, Any]]) -> Any:
        seen.append(inputs)
        return defer.succeed([Decision("allow"), Decision("deny", "topic is not yours")])

    req = _request("POST", f"{TOPIC_DELETE}/subscription/billing/skip_all")
    reactor = _serve(SETTINGS, decide, req)
    assert [(i["operation"], i["resource"]["type"]) for i in seen[0]] == [("commit_offset", "group"), ("commit_offset", "topic")]
    assert seen[0][0]["protocol"] == "pulsar" and seen[0][0]["api"]["name"].startswith("POST /admin/v2/{domain}/")
    assert req.responseCode == 403 and _answer(req)["resource"]["type"] == "topic"
    assert reactor.tcpClients == []


def test_a_missing_decision_is_a_deny() -> None:
    req = _request("POST", f"{TOPIC_DELETE}/subscription/billing/skip_all")
    reactor = _serve(SETTINGS, lambda inputs: defer.succeed([Decision("allow")]), req)
    assert req.responseCode == 403 and "missing" in _answer(req)["reason"]
    assert reactor.tcpClients == []


@pytest.mark.parametrize(("slot", "where"), [(None, ("10.0.0.9", 8090)), (0, ("10.0.0.1", 8080)),
                                             (1, ("10.0.0.2", 8081))])
def test_allowed_calls_go_to_the_broker_behind_the_port(slot: int | None, where: tuple[str, int]) -> None:
    req = _request("DELETE", TOPIC_DELETE)
    settings = SETTINGS if slot is None else attrs.evolve(SETTINGS, slot=slot)
    reactor = _serve(settings, lambda inputs: defer.succeed([Decision("allow")] * len(inputs)), req)
    # The memory reactor resolves every name to 127.0.0.1: the port tells the brokers apart.
    assert [c[1] for c in reactor.tcpClients] == [where[1]]


def test_a_port_without_a_broker_answers_503() -> None:
    req = _request("GET", "/admin/v2/tenants")
    reactor = _serve(attrs.evolve(SETTINGS, slot=2), lambda i: defer.succeed([Decision("allow")]), req)
    assert req.responseCode == 503 and reactor.tcpClients == []


def test_authentication_required_without_a_token_is_401() -> None:
    settings = attrs.evolve(SETTINGS, auth_required=True, authenticate=True)
    req = _request("GET", "/admin/v2/tenants")
    reactor = _serve(settings, lambda i: defer.succeed([Decision("allow")] * len(i)), req)
    assert req.responseCode == 401 and req.responseHeaders.getRawHeaders(b"www-authenticate") == [b"Bearer"]
    assert reactor.tcpClients == []


def test_basic_credentials_are_refused() -> None:
    req = _request("GET", "/admin/v2/tenants", headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    reactor = _serve(SETTINGS, lambda i: defer.succeed([Decision("allow")] * len(i)), req)
    assert req.responseCode == 401 and reactor.tcpClients == []


def test_a_body_over_the_limit_is_413() -> None:
    req = _request("POST", f"{TOPIC_DELETE}/retention", body=b"1" * 2000)
    reactor = _serve(SETTINGS, lambda i: defer.succeed([Decision("allow")] * len(i)), req)
    assert req.responseCode == 413 and reactor.tcpClients == []


@pytest.mark.parametrize(("location", "rewritten"), [
    ("http://10.0.0.1:8080/admin/v2/persistent/a/b/c?authoritative=true",
     "http://gatekeeper.example:18081/admin/v2/persistent/a/b/c?authoritative=true"),
    ("http://10.0.0.2:8081/admin/v2/tenants", "http://gatekeeper.example:18082/admin/v2/tenants"),
    ("/admin/v2/tenants", "/admin/v2/tenants"),
    ("http://10.0.0.3:8080/admin/v2/tenants", None),  # not a broker Gatekeeper fronts
    ("http://10.0.0.1:9999/admin/v2/tenants", None),
    ("https://10.0.0.1:8080/admin/v2/tenants", None),
    ("http://10.0.0.9:8090/admin/v2/tenants", None),  # the service address is no broker port
])
def test_redirects_point_at_gatekeeper_or_are_refused(location: str, rewritten: str | None) -> None:
    assert SETTINGS.rewrite_location(location) == rewritten
