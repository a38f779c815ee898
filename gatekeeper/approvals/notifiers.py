"""Notifiers: telling people that an approval request waits (``gatekeeper.notifiers`` plugins).

Built in: ``log`` (a log line per event) and ``webhook`` (an HTTP POST of the event as JSON,
signed with HMAC-SHA256, retried with exponential backoff). A notifier never blocks the reactor
and never holds anything up: a request is held, approved or denied whatever the notifiers do;
a notification that fails for good is logged and counted by the service.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import jsonschema
import treq
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from gatekeeper.api import NotifierContext
from gatekeeper.approvals.model import rfc3339
from gatekeeper.config.values import NotifierConfig
from gatekeeper.logsafe import printable
from gatekeeper.plugins import NOTIFIERS, load
from gatekeeper.values import parse_duration

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ConfiguredNotifier",
    "LogNotifier",
    "NotifierError",
    "WebhookError",
    "WebhookNotifier",
    "load_notifiers",
    "options_errors",
    "sign",
]

log = Logger()

SIGNATURE_HEADER = "X-Gatekeeper-Signature"
TIMESTAMP_HEADER = "X-Gatekeeper-Timestamp"
EVENT_HEADER = "X-Gatekeeper-Event"
DELIVERY_HEADER = "X-Gatekeeper-Delivery"
MIN_SECRET_BYTES = 16
_MAX_BACKOFF = 300.0


class NotifierError(Exception):
    """A configured notifier cannot be loaded or built (the operator's config)."""


class WebhookError(Exception):
    """A webhook delivery failed for good."""


class ConfiguredNotifier:
    """A notifier plugin as configured: its name (for logs and metrics), the event types it is
    told of, and the plugin object (``notify(event)`` returns None or a Deferred)."""

    def __init__(self, name: str, notifier: Any, events: Sequence[str] = ("request_opened",)) -> None:
        self.name = name
        self.notifier = notifier
        self.events = tuple(events)

    def __repr__(self) -> str:
        return f"ConfiguredNotifier({self.name!r}, events={self.events!r})"


def options_errors(cfg: NotifierConfig, where: str) -> list[str]:
    """What is wrong with one ``approvals.notifiers`` entry, one line per problem naming its
    YAML path (``where``): an unknown plugin, or options its schema refuses."""
    try:
        cls = load(NOTIFIERS, cfg.name)
    except Exception as e:
        return [f"{where}.name: {e}"]
    schema = getattr(cls, "options_schema", {"type": "object"})
    errors = []
    for err in sorted(jsonschema.Draft202012Validator(schema).iter_errors(dict(cfg.options)),
                      key=lambda e: list(map(str, e.absolute_path))):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        errors.append(f"{where}{path}: {err.message}")
    return errors


def load_notifiers(configs: Sequence[NotifierConfig], *, reactor: Any,
                   page_url: str | None = None) -> list[ConfiguredNotifier]:
    """Build the configured notifiers (once, at start). Raises NotifierError."""
    out = []
    for i, cfg in enumerate(configs):
        where = f"approvals.notifiers[{i}]"
        errors = options_errors(cfg, where)
        if errors:
            raise NotifierError("; ".join(errors))
        cls = load(NOTIFIERS, cfg.name)
        context = NotifierContext(name=cfg.name, reactor=reactor, base=cfg.base, page_url=page_url)
        try:
            notifier = cls(dict(cfg.options), context)
        except (ValueError, OSError) as e:
            raise NotifierError(f"{where} ({cfg.name}): {e}") from e
        out.append(ConfiguredNotifier(cfg.name, notifier, cfg.events))
    return out


# -- log -----------------------------------------------------------------------------------------


class LogNotifier:
    """One log line per event, for operators who watch the logs (or ship them to an alerting
    system)."""

    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object", "additionalProperties": False,
                                                   "properties": {}}

    def __init__(self, options: Mapping[str, Any], context: NotifierContext) -> None:
        self.name = context.name

    def notify(self, event: Mapping[str, Any]) -> None:
        log.info("{line}", line=describe(event))


def describe(event: Mapping[str, Any]) -> str:
    """An event in one line of text (client-controlled strings escaped)."""
    kind = event.get("type")
    request = event.get("request")
    grant = event.get("grant")
    url = f" {event['url']}" if event.get("url") else ""
    if request is not None:
        who = printable(request["requester"]["sub"])
        what = (f"{request['operation']} {request['resource']['type']} "
                f"{printable(request['resource']['name'])}")
        if kind == "request_opened":
            return (f"approval request {request['id']} waits: {who} asks to {what} "
                    f"({printable(request.get('reason'))}); approvers {', '.join(request['approvers'])}{url}")
        return f"approval request {request['id']} ({who} to {what}) is {request['status']}{url}"
    if grant is not None:
        return (f"grant {grant['id']} of {printable(grant['principal']['sub'])} for {grant['operation']} "
                f"{grant['resource']['type']} {printable(grant['resource']['name'])}: {kind} by "
                f"{printable(grant.get('revoked_by'))} ({printable(grant.get('revoke_reason'))})")
    return f"approvals event {kind}"


# -- webhook -------------------------------------------------------------------------------------


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Gatekeeper-Signature`` value of ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    """POSTs each event as JSON to ``url``, signed with the key in ``secret_file``
    (``X-Gatekeeper-Signature: sha256=<hex HMAC-SHA256 of the body>``). A connection error, a
    timeout, a 5xx, 408 or 429 is retried after ``backoff``, doubling each time, up to
    ``retries`` times; another 4xx is not retried. The body carries ``delivery`` (the same on
    every retry: deduplicate on it) and ``at`` (when the event happened); the
    ``X-Gatekeeper-Timestamp`` header (Unix seconds of this attempt) is not signed."""

    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url", "secret_file"],
        "properties": {
            "url": {"type": "string", "pattern": "^https?://[^\\s]+$"},
            "secret_file": {"type": "string", "minLength": 1},
            "timeout": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$"},
            "retries": {"type": "integer", "minimum": 0, "maximum": 20},
            "backoff": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$"},
        },
    }

    def __init__(self, options: Mapping[str, Any], context: NotifierContext) -> None:
        self.name = context.name
        self.reactor = context.reactor
        self.url = str(options["url"])
        self.timeout = parse_duration(options.get("timeout", "10s"))
        self.retries = int(options.get("retries", 3))
        self.backoff = parse_duration(options.get("backoff", "1s"))
        path = context.path(options["secret_file"])
        try:
            secret = path.read_bytes().strip()
        except OSError as e:
            raise ValueError(f"secret_file {path}: cannot read: {e.strerror}") from e
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"secret_file {path} holds {len(secret)} bytes; the key must have at least "
                             f"{MIN_SECRET_BYTES} (e.g. `head -c 32 /dev/urandom | base64`)")
        self._secret = secret
        # Notifications are rare: no connections kept open between them.
        self._http = treq.client.HTTPClient(Agent(self.reactor, pool=HTTPConnectionPool(self.reactor, persistent=False)))
        self._deliveries = 0

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.url!r})"

    def body(self, event: Mapping[str, Any], delivery: str) -> bytes:
        return json.dumps({**event, "delivery": delivery}, sort_keys=True, separators=(",", ":")).encode()

    def notify(self, event: Mapping[str, Any]) -> defer.Deferred[None]:
        self._deliveries += 1
        delivery = f"{event.get('type')}-{(event.get('request') or event.get('grant') or {}).get('id')}-" \
                   f"{rfc3339(self.reactor.seconds())}-{self._deliveries}"
        return self._deliver(event, delivery)

    @defer.inlineCallbacks
    def _deliver(self, event: Mapping[str, Any], delivery: str) -> Any:
        body = self.body(event, delivery)
        signature = sign(self._secret, body)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.backoff * 2 ** (attempt - 1), _MAX_BACKOFF)
                yield task.deferLater(self.reactor, delay, lambda: None)
            headers: dict[str | bytes, list[str | bytes]] = {
                "Content-Type": ["application/json"],
                "User-Agent": ["gatekeeper-approvals"],
                SIGNATURE_HEADER: [signature],
                TIMESTAMP_HEADER: [str(int(self.reactor.seconds()))],
                EVENT_HEADER: [str(event.get("type"))],
                DELIVERY_HEADER: [delivery],
            }
            try:
                code = yield self._post(body, headers)
            except defer.CancelledError:
                raise  # Gatekeeper is stopping
            except Exception as e:
                last = "timed out" if isinstance(e, defer.TimeoutError) else f"{type(e).__name__}: {e}"
                log.debug("webhook {url} attempt {n}: {err}", url=self.url, n=attempt + 1, err=last)
                continue
            if 200 <= code < 300:
                return None
            last = f"HTTP {code}"
            if 400 <= code < 500 and code not in (408, 429):
                raise WebhookError(f"webhook {self.url} refused the notification: {last} (not retried)")
            log.debug("webhook {url} attempt {n}: {err}", url=self.url, n=attempt + 1, err=last)
        raise WebhookError(f"webhook {self.url}: gave up after {self.retries + 1} attempt(s); last: {last}")

    def _post(self, body: bytes, headers: dict[str | bytes, list[str | bytes]]) -> defer.Deferred[int]:
        """The response's status code, once its body is read; TimeoutError after ``timeout``."""

        def drained(response: Any) -> Any:
            return treq.content(response).addCallback(lambda _: response.code)

        d: defer.Deferred[Any] = self._http.post(self.url, data=body, headers=headers)
        d.addCallback(drained)
        d.addTimeout(self.timeout, self.reactor)
        return d
