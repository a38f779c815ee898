"""The built-in notifiers: ``webhook`` against a real local Twisted web server (signature,
retries with backoff on 5xx and timeouts, no retry on other 4xx, failures counted by the
service) and ``log``; loading them from config as plugins."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web import resource, server

from gatekeeper.api import NotifierContext, Principal, Resource
from gatekeeper.approvals import Approvals, MemoryStore
from gatekeeper.approvals.notifiers import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    LogNotifier,
    NotifierError,
    WebhookError,
    WebhookNotifier,
    describe,
    load_notifiers,
    sign,
)
from gatekeeper.config import ApprovalsConfig, NotifierConfig
from gatekeeper.metrics import Metrics
from gatekeeper.plugins import NOTIFIERS, available, load

SECRET = b"0123456789abcdef-webhook-secret"
ALICE = Principal("alice", "https://idp", ("dev",))
EVENT = {"type": "request_opened", "at": "2027-01-15T08:00:00.000Z",
         "request": {"id": "apr_x", "status": "pending", "requester": {"sub": "alice"}, "operation": "produce",
                     "resource": {"type": "topic", "name": "payments"}, "reason": "needs a lead",
                     "approvers": ["group:payments-leads"]}}


class Hook(resource.Resource):
    """Answers each POST with the next code of ``codes`` (the last one repeats); ``None`` never
    answers (a hung receiver)."""

    isLeaf = True

    def __init__(self, codes: list[int | None]) -> None:
        super().__init__()
        self.codes = codes
        self.received: list[tuple[dict[bytes, bytes], bytes]] = []
        self.hung: list[Any] = []

    def render_POST(self, request: Any) -> Any:
        headers = {k.lower(): v[0] for k, v in request.requestHeaders.getAllRawHeaders()}
        self.received.append((headers, request.content.read()))
        code = self.codes[min(len(self.received) - 1, len(self.codes) - 1)]
        if code is None:
            self.hung.append(request)
            return server.NOT_DONE_YET
        request.setResponseCode(code)
        return b"ok"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook.key"
    path.write_bytes(SECRET + b"\n")
    return path


@pytest.fixture
def serve() -> Iterator[Any]:
    ports: list[Any] = []

    def start(hook: Hook) -> str:
        port = reactor.listenTCP(0, server.Site(hook), interface="127.0.0.1")
        ports.append(port)
        return f"http://127.0.0.1:{port.getHost().port}/hook"

    yield start
    for port in ports:
        pytest_twisted.blockon(defer.maybeDeferred(port.stopListening))


def webhook(url: str, secret_file: Path, **options: Any) -> WebhookNotifier:
    return WebhookNotifier({"url": url, "secret_file": secret_file.name, "backoff": "10ms", **options},
                           NotifierContext(name="webhook", reactor=reactor, base=secret_file.parent))


@pytest_twisted.inlineCallbacks
def test_webhook_posts_the_event_signed_with_the_key(serve: Any, secret_file: Path) -> Any:
    hook = Hook([204])
    notifier = webhook(serve(hook), secret_file)
    yield notifier.notify(EVENT)
    [(headers, body)] = hook.received
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER.lower().encode()].decode() == expected == sign(SECRET, body)
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[TIMESTAMP_HEADER.lower().encode()]) > 1_600_000_000
    assert headers[b"x-gatekeeper-event"] == b"request_opened"
    sent = json.loads(body)
    assert sent["request"] == EVENT["request"] and sent["type"] == "request_opened"
    assert sent["delivery"] == headers[b"x-gatekeeper-delivery"].decode()


@pytest_twisted.inlineCallbacks
def test_webhook_retries_on_500_with_the_same_body_until_it_is_taken(serve: Any, secret_file: Path) -> Any:
    hook = Hook([500, 503, 200])
    yield webhook(serve(hook), secret_file, retries=3).notify(EVENT)
    assert len(hook.received) == 3
    bodies = {body for _, body in hook.received}
    signatures = {headers[b"x-gatekeeper-signature"] for headers, _ in hook.received}
    assert len(bodies) == 1 and len(signatures) == 1  # one delivery, deduplicable


@pytest_twisted.inlineCallbacks
def test_webhook_gives_up_after_its_retries(serve: Any, secret_file: Path) -> Any:
    hook = Hook([500])
    with pytest.raises(WebhookError, match=r"gave up after 3 attempt\(s\); last: HTTP 500"):
        yield webhook(serve(hook), secret_file, retries=2).notify(EVENT)
    assert len(hook.received) == 3


@pytest_twisted.inlineCallbacks
def test_webhook_does_not_retry_a_refusal(serve: Any, secret_file: Path) -> Any:
    hook = Hook([401])
    with pytest.raises(WebhookError, match="HTTP 401 .not retried"):
        yield webhook(serve(hook), secret_file, retries=3).notify(EVENT)
    assert len(hook.received) == 1


@pytest_twisted.inlineCallbacks
def test_webhook_times_out_a_hung_receiver_and_retries(serve: Any, secret_file: Path) -> Any:
    hook = Hook([None, 200])
    yield webhook(serve(hook), secret_file, timeout="200ms", retries=1).notify(EVENT)
    assert len(hook.received) == 2
    assert hook.hung and hook.hung[0].channel is None  # the first attempt's connection was dropped


@pytest_twisted.inlineCallbacks
def test_webhook_connection_refused_is_retried_then_fails(secret_file: Path) -> Any:
    port = reactor.listenTCP(0, server.Site(Hook([200])), interface="127.0.0.1")
    url = f"http://127.0.0.1:{port.getHost().port}/hook"
    yield port.stopListening()
    with pytest.raises(WebhookError, match="gave up after 2"):
        yield webhook(url, secret_file, retries=1).notify(EVENT)


def test_webhook_backoff_doubles_without_blocking() -> None:
    """On a task.Clock: the retries wait 1s, 2s, 4s; cancelling stops the delivery at once."""
    clock = task.Clock()
    attempts: list[float] = []

    class Fake(WebhookNotifier):
        def _post(self, body: bytes, headers: Any) -> defer.Deferred[int]:
            attempts.append(clock.seconds())
            return defer.succeed(500)

    key = Path(__file__)  # any readable file of more than 16 bytes
    notifier = Fake({"url": "http://x.invalid/", "secret_file": str(key), "retries": 3},
                    NotifierContext(name="webhook", reactor=clock))
    d = notifier.notify(EVENT)
    clock.pump([0.5] * 20)
    assert attempts == [0.0, 1.0, 3.0, 7.0]
    with pytest.raises(WebhookError):
        d.result.raiseException()
    d.addErrback(lambda f: None)
    attempts.clear()
    d = notifier.notify(EVENT)  # the first attempt at once, then waiting 1s for the second
    d.addErrback(lambda f: f.trap(defer.CancelledError))
    d.cancel()
    clock.advance(100)
    assert attempts == [10.0] and clock.getDelayedCalls() == []


def test_webhook_secret_must_be_readable_and_long_enough(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"tiny")
    ctx = NotifierContext(name="webhook", reactor=reactor, base=tmp_path)
    with pytest.raises(ValueError, match="holds 4 bytes"):
        WebhookNotifier({"url": "http://x/", "secret_file": "short.key"}, ctx)
    with pytest.raises(ValueError, match="cannot read"):
        WebhookNotifier({"url": "http://x/", "secret_file": "missing.key"}, ctx)


@pytest_twisted.inlineCallbacks
def test_a_failing_webhook_is_counted_and_never_fails_the_request(serve: Any, secret_file: Path, tmp_path: Path) -> Any:
    hook = Hook([500])
    metrics = Metrics()
    cfg = ApprovalsConfig(store=tmp_path / "unused.db", notifiers=(
        NotifierConfig("webhook", {"url": serve(hook), "secret_file": "webhook.key", "retries": 1, "backoff": "10ms"},
                       base=secret_file.parent),))
    approvals = Approvals(cfg, reactor=reactor, metrics=metrics, store=MemoryStore(),
                          notifiers=load_notifiers(cfg.notifiers, reactor=reactor))
    yield approvals.start()
    r = approvals.open(principal=ALICE, client=None, operation="produce", resource=Resource("topic", "t"),
                       summary={}, reason="", approval={"approvers": ["user:bob"]})
    assert r.pending  # open returned at once, the delivery goes on
    for _ in range(100):
        if metrics.get("gatekeeper_approval_notifier_failures_total", notifier="webhook"):
            break
        yield task.deferLater(reactor, 0.01, lambda: None)
    assert metrics.get("gatekeeper_approval_notifier_failures_total", notifier="webhook") == 1
    assert len(hook.received) == 2
    yield approvals.stop()


def test_log_notifier_writes_one_escaped_line() -> None:
    lines: list[str] = []

    def observer(event: dict[str, Any]) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    try:
        notifier = LogNotifier({}, NotifierContext(name="log", reactor=reactor))
        event = {**EVENT, "url": "https://gk.example/approvals?request=apr_x",
                 "request": {**EVENT["request"], "resource": {"type": "topic", "name": "evil\nforged line"}}}
        assert notifier.notify(event) is None
    finally:
        globalLogPublisher.removeObserver(observer)
    [line] = [line for line in lines if "apr_x" in line]
    assert "alice asks to produce topic evil\\nforged line" in line
    assert "group:payments-leads" in line and "https://gk.example/approvals?request=apr_x" in line
    assert "\n" not in line


def test_describe_other_events() -> None:
    decided = {"type": "request_decided", "request": {**EVENT["request"], "status": "denied"}}
    assert describe(decided) == "approval request apr_x (alice to produce topic payments) is denied"
    revoked = {"type": "grant_revoked", "grant": {"id": "grt_1", "principal": {"sub": "alice"}, "operation": "produce",
                                                  "resource": {"type": "topic", "name": "t"}, "revoked_by": "bob",
                                                  "revoke_reason": "done"}}
    assert describe(revoked) == "grant grt_1 of alice for produce topic t: grant_revoked by bob (done)"


def test_builtin_notifiers_load_by_name() -> None:
    assert {"log", "webhook"} <= set(available(NOTIFIERS))
    assert load(NOTIFIERS, "webhook") is WebhookNotifier
    assert load(NOTIFIERS, "log") is LogNotifier


def test_load_notifiers_builds_them_with_their_events(secret_file: Path) -> None:
    configs = (NotifierConfig("log"),
               NotifierConfig("webhook", {"url": "http://hooks.example/x", "secret_file": "webhook.key"},
                              events=("request_opened", "request_decided"), base=secret_file.parent))
    built = load_notifiers(configs, reactor=reactor, page_url="https://gk.example/approvals")
    assert [(n.name, n.events, type(n.notifier)) for n in built] == [
        ("log", ("request_opened",), LogNotifier),
        ("webhook", ("request_opened", "request_decided"), WebhookNotifier),
    ]
    with pytest.raises(NotifierError, match=r"approvals.notifiers\[0\].*secret_file"):
        load_notifiers((NotifierConfig("webhook", {"url": "http://x/"}),), reactor=reactor)
    with pytest.raises(NotifierError, match=r"approvals.notifiers\[0\] \(webhook\): secret_file"):
        load_notifiers((NotifierConfig("webhook", {"url": "http://x/", "secret_file": "/nonexistent"}),),
                       reactor=reactor)
    with pytest.raises(NotifierError, match=r"no plugin 'pager'"):
        load_notifiers((NotifierConfig("pager"),), reactor=reactor)


def test_the_service_from_config_has_its_notifiers_and_sqlite_store(tmp_path: Path) -> None:
    from gatekeeper.approvals import SqliteStore

    cfg = ApprovalsConfig(store=tmp_path / "a.db", notifiers=(NotifierConfig("log", events=("request_decided",)),))
    approvals = Approvals.from_config(cfg, reactor=reactor)
    assert isinstance(approvals.store, SqliteStore) and approvals.store.path == tmp_path / "a.db"
    assert [(n.name, n.events) for n in approvals.notifiers] == [("log", ("request_decided",))]
