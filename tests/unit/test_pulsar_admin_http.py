"""The Pulsar admin REST proxy over real HTTP, in the test reactor, in front of a small web
server that answers as a broker would for the cases a single standalone broker never produces:
redirects to other brokers, a listing that is not a list, a large answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor
from twisted.web import resource, server

pytest.importorskip("gatekeeper_pulsar.admin_proxy", reason="the gatekeeper-pulsar plugin distribution is not installed")

from gatekeeper_pulsar.admin_proxy import AdminProxy, AdminSettings, BoundedRequest, WebBroker  # noqa: E402

from gatekeeper.api import AdapterServices, Decision  # noqa: E402
from gatekeeper.metrics import Metrics  # noqa: E402

BIG = bytes(range(256)) * 8192  # 2 MiB


class Broker(resource.Resource):
    """Answers each path from ``answers``: (code, headers, body); records what it was sent."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[bytes, tuple[int, dict[bytes, bytes], bytes]] = {}
        self.received: list[tuple[bytes, bytes, dict[bytes, list[bytes]]]] = []

    def render(self, request: Any) -> bytes:
        self.received.append((request.method, request.uri, dict(request.requestHeaders.getAllRawHeaders())))
        code, headers, body = self.answers.get(request.path, (404, {}, b'{"reason": "Topic not found"}'))
        request.setResponseCode(code)
        for name, value in headers.items():
            request.setHeader(name, value)
        return body


def _decide(inputs: list[dict[str, Any]]) -> Any:
    """Allows everything but describing a topic whose name has ``hidden`` in it."""
    return defer.succeed([Decision("deny", "hidden") if i["operation"] == "describe_topic" and "hidden" in i["resource"]["name"]
                          else Decision("allow") for i in inputs])


@pytest.fixture
def setup() -> Iterator[tuple[Broker, str, int]]:
    broker = Broker()
    broker_port = reactor.listenTCP(0, server.Site(broker), interface="127.0.0.1")
    bport = broker_port.getHost().port
    settings = AdminSettings(
        listener="padmin", service=WebBroker("127.0.0.1", bport), brokers=(WebBroker("127.0.0.1", bport),),
        advertised_host="gk.example", broker_ports=(18081,), scheme="http", token="gk-token", auth_required=False,
        authenticate=False, max_body=4096, max_listing=4096, timeout=10.0)
    services = AdapterServices(config=None, metrics=Metrics(), clock=reactor.seconds, identity=None,
                               upstream_credentials=lambda: None, principal_for_client_id=lambda cid: None,
                               next_bootstrap=lambda: None, inputs_decoded=lambda i: None, reactor=reactor,
                               decide_many=_decide)
    proxy = AdminProxy(settings, services)
    site = server.Site(proxy, requestFactory=type("R", (BoundedRequest,), {"max_body": 4096}))
    gk_port = reactor.listenTCP(0, site, interface="127.0.0.1")
    yield broker, f"http://127.0.0.1:{gk_port.getHost().port}", bport
    proxy.agent._pool.closeCachedConnections()  # type: ignore[attr-defined]
    for port in (gk_port, broker_port):
        pytest_twisted.blockon(defer.maybeDeferred(port.stopListening))


TOPIC = b"/admin/v2/persistent/a/b/orders"


@pytest_twisted.inlineCallbacks
def test_a_redirect_to_a_known_broker_points_at_gatekeepers_port(setup: Any) -> Any:
    broker, url, bport = setup
    broker.answers[TOPIC + b"/stats"] = (307, {b"location": f"http://127.0.0.1:{bport}/admin/v2/persistent/a/b/orders/stats?authoritative=true".encode()}, b"")
    response = yield treq.get(url + TOPIC.decode() + "/stats", allow_redirects=False)
    yield treq.content(response)
    assert response.code == 307
    assert response.headers.getRawHeaders("location") == [
        "http://gk.example:18081/admin/v2/persistent/a/b/orders/stats?authoritative=true"]


@pytest_twisted.inlineCallbacks
def test_a_redirect_to_an_unknown_broker_is_refused(setup: Any) -> Any:
    broker, url, _ = setup
    broker.answers[TOPIC] = (307, {b"location": b"http://10.1.2.3:8080/admin/v2/persistent/a/b/orders"}, b"")
    response = yield treq.delete(url + TOPIC.decode(), allow_redirects=False)
    body = yield treq.json_content(response)
    assert response.code == 502 and "does not front" in body["reason"]
    assert "10.1.2.3" not in json.dumps(body) and response.headers.getRawHeaders("location") is None


@pytest_twisted.inlineCallbacks
def test_a_listing_is_filtered_name_by_name(setup: Any) -> Any:
    broker, url, _ = setup
    names = ["persistent://a/b/orders", "persistent://a/b/hidden-1", "persistent://a/b/payments"]
    broker.answers[b"/admin/v2/persistent/a/b"] = (200, {b"content-type": b"application/json"}, json.dumps(names).encode())
    response = yield treq.get(url + "/admin/v2/persistent/a/b")
    assert response.code == 200
    assert (yield treq.json_content(response)) == ["persistent://a/b/orders", "persistent://a/b/payments"]


@pytest.mark.parametrize("answer", [b"<html>not json</html>", b'{"topics": []}', b'["a", 1]', b"[" + b'"x",' * 2000 + b'"y"]'])
@pytest_twisted.inlineCallbacks
def test_a_listing_gatekeeper_cannot_filter_is_not_passed_on(setup: Any, answer: bytes) -> Any:
    broker, url, _ = setup
    broker.answers[b"/admin/v2/persistent/a/b"] = (200, {}, answer)
    response = yield treq.get(url + "/admin/v2/persistent/a/b")
    body = yield treq.json_content(response)
    assert response.code == 502 and set(body) == {"reason"}


@pytest_twisted.inlineCallbacks
def test_answers_stream_back_whole_with_the_brokers_status(setup: Any) -> Any:
    broker, url, _ = setup
    broker.answers[TOPIC + b"/internalStats"] = (200, {b"content-type": b"application/octet-stream"}, BIG)
    response = yield treq.get(url + TOPIC.decode() + "/internalStats")
    assert response.code == 200 and (yield treq.content(response)) == BIG
    missing = yield treq.get(url + TOPIC.decode() + "/stats")
    assert missing.code == 404 and (yield treq.json_content(missing)) == {"reason": "Topic not found"}


@pytest_twisted.inlineCallbacks
def test_only_gatekeepers_credential_and_a_few_headers_reach_the_broker(setup: Any) -> Any:
    broker, url, _ = setup
    broker.answers[TOPIC + b"/retention"] = (204, {}, b"")
    response = yield treq.post(url + TOPIC.decode() + "/retention", data=b'{"retentionTimeInMinutes": 1}',
                               headers={"Content-Type": "application/json", "Cookie": "session=abc",
                                        "X-HTTP-Method-Override": "DELETE", "X-Forwarded-For": "10.0.0.1"})
    yield treq.content(response)
    assert response.code == 204
    method, uri, headers = broker.received[-1]
    assert (method, uri) == (b"POST", TOPIC + b"/retention")
    assert headers[b"Authorization"] == [b"Bearer gk-token"]
    assert headers[b"Content-Type"] == [b"application/json"]
    assert not {b"Cookie", b"X-Http-Method-Override", b"X-Forwarded-For"} & set(headers)


@pytest_twisted.inlineCallbacks
def test_a_denied_call_never_reaches_the_broker(setup: Any) -> Any:
    broker, url, _ = setup
    response = yield treq.get(url + "/admin/v2/persistent/a/b/hidden-1/stats")
    body = yield treq.json_content(response)
    assert response.code == 403 and body["reason"] == "hidden"
    assert broker.received == []

