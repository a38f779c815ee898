"""The Pulsar admin REST API through Gatekeeper: a Twisted Web reverse proxy that decides every
call before the broker sees it.

Per request: the client's bearer JWT is validated (``identity.jwt``), the call is mapped to its
operations (:mod:`gatekeeper_pulsar.admin_routes`) and put to the policy; all allowed, it is
forwarded to the broker's web service with Gatekeeper's own admin token (the client's
``Authorization`` and every header not on a short list are dropped) and the answer streamed back.
Denied: 403 with ``{"reason": ...}``, the body Pulsar's admin clients read their error from. A
policy engine that fails is a deny. A listing is read whole and shown filtered to the names the
policy allows describing. A broker's redirect names a broker: it is rewritten to Gatekeeper's port
for that broker, or refused (502) when the broker is not one Gatekeeper fronts.

With an audit trail, each client connection is a session and each call a ``request`` record
(:mod:`gatekeeper_pulsar.admin_auditing`); a call is forwarded only once its record has a place
in the trail, else it is refused with 503 (fail closed).
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http import HTTPChannel, PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource as WebResource
from twisted.web.server import NOT_DONE_YET, Request, Site

from gatekeeper.api import ANONYMOUS, AdapterServices, Decision, Operation, Principal, Resource
from gatekeeper.logsafe import printable
from gatekeeper.policy.input import SessionInfo, build_input, new_session_id
from gatekeeper_pulsar import admin_auditing as aud
from gatekeeper_pulsar.admin_auditing import HttpSession
from gatekeeper_pulsar.admin_routes import Route, RouteError, route

__all__ = ["AdminProxy", "AdminSettings", "AdminSite", "BoundedRequest", "WebBroker"]

log = Logger()

# Request headers passed to the broker; everything else (Authorization, cookies, forwarding and
# method-override headers, Accept-Encoding: listings are read as plain JSON) stays here.
_REQUEST_HEADERS = (b"content-type", b"accept", b"user-agent")
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade",
                         b"proxy-authenticate", b"proxy-authorization", b"location", b"content-length"})
_REDIRECTS = (301, 302, 303, 307, 308)
_API_VERSION = aud.API_VERSION


@attrs.frozen
class WebBroker:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def is_at(self, host: str, port: int) -> bool:
        return self.port == port and self.host.lower() == host.lower()


@attrs.frozen
class AdminSettings:
    listener: str
    service: WebBroker  # behind the bind port
    brokers: tuple[WebBroker, ...]  # behind broker port i
    advertised_host: str
    broker_ports: tuple[int, ...]
    scheme: str  # how clients reach Gatekeeper (https with listener TLS)
    token: str | None = attrs.field(repr=False)
    auth_required: bool
    authenticate: bool
    max_body: int
    max_listing: int
    timeout: float
    slot: int | None = None

    @property
    def target(self) -> WebBroker | None:
        if self.slot is None:
            return self.service
        return self.brokers[self.slot] if self.slot < len(self.brokers) else None

    def rewrite_location(self, location: str) -> str | None:
        """Gatekeeper's URL for a broker's redirect target; None: a broker it does not front."""
        parts = urlsplit(location)
        if not parts.netloc:
            return location  # relative: it stays on Gatekeeper
        if parts.scheme != "http" or parts.hostname is None:
            return None
        try:
            port = parts.port or 80
        except ValueError:
            return None
        for i, broker in enumerate(self.brokers[: len(self.broker_ports)]):
            if broker.is_at(parts.hostname, port):
                return urlunsplit((self.scheme, f"{self.advertised_host}:{self.broker_ports[i]}", parts.path,
                                   parts.query, ""))
        return None


class _QuietFactory(HTTPConnectionPool._factory):  # type: ignore[misc,name-defined,valid-type]
    noisy = False  # no start/stop log line per broker connection


class _QuietPool(HTTPConnectionPool):
    _factory = _QuietFactory


def _closing(channel: Any, reason: str) -> None:
    session = getattr(channel, "gk_session", None)
    if session is not None:
        session.closed_by_gatekeeper(reason)


class _SessionChannel(HTTPChannel):
    """A client connection: one audit session for every call it carries (keep-alive)."""

    gk_session: HttpSession | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        proxy = getattr(getattr(self, "site", None), "resource", None)
        if isinstance(proxy, AdminProxy):
            self.gk_session = proxy.session_opened(self.transport.getPeer())  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self.gk_session is not None:
            self.gk_session.bytes_in += len(data)
        super().dataReceived(data)

    def timeoutConnection(self) -> None:
        _closing(self, "idle HTTP connection timed out")
        super().timeoutConnection()

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        super().connectionLost(reason)
        proxy = getattr(getattr(self, "site", None), "resource", None)
        if self.gk_session is not None and isinstance(proxy, AdminProxy):
            proxy.session_closed(self.gk_session)


def _session_channel(factory: Any) -> _SessionChannel:
    return _SessionChannel()


class AdminSite(Site):
    """The listener's HTTP site: its channels are audit sessions."""

    protocol = _session_channel  # type: ignore[assignment]


class BoundedRequest(Request):
    """A request whose body may not grow past ``max_body`` bytes while it is read (Twisted Web
    would otherwise spool any size to a temporary file before the resource sees it): past it,
    the connection closes."""

    max_body = 1 << 20

    def gotLength(self, length: int | None) -> None:
        self._body_bytes = 0
        if length is not None and length > self.max_body:
            log.info("pulsar admin: a request body of {n} bytes is over options.max_body_bytes; connection closed",
                     n=length)
            _closing(self.channel, f"a request body of {length} bytes is over options.max_body_bytes")
            self.channel.transport.loseConnection()  # type: ignore[union-attr]
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self._body_bytes += len(data)
        if self._body_bytes > self.max_body:
            if self.channel is not None and self.channel.transport is not None:
                _closing(self.channel, f"a request body is over {self.max_body} bytes (options.max_body_bytes)")
                self.channel.transport.loseConnection()
            return
        super().handleContentChunk(data)


class AdminProxy(WebResource):
    isLeaf = True

    def __init__(self, settings: AdminSettings, services: AdapterServices) -> None:
        super().__init__()
        self.settings = settings
        self.services = services
        reactor = services.reactor
        self.reactor = reactor
        self.agent = Agent(reactor, connectTimeout=min(settings.timeout, 10.0),
                           pool=_QuietPool(reactor, persistent=True))

    def render(self, request: Any) -> Any:
        _Call(self, request).start()
        return NOT_DONE_YET

    # -- audit sessions: one per client connection ---------------------------------------------------

    def session_opened(self, peer: Any) -> HttpSession:
        now = self.services.clock()
        session = HttpSession(new_session_id(now), now, str(getattr(peer, "host", "?")), int(getattr(peer, "port", 0) or 0))
        if self.services.audit is not None:
            self.services.audit.record("session_start", aud.session_start(session, self.settings.listener))
        return session

    def session_closed(self, session: HttpSession) -> None:
        if session.ended:
            return
        session.ended = True
        if self.services.audit is not None:
            self.services.audit.record("session_end", aud.session_end(session, self.services.clock()))


class _Call:
    """One admin request through Gatekeeper."""

    def __init__(self, proxy: AdminProxy, request: Any) -> None:
        self.proxy = proxy
        self.s = proxy.settings
        self.services = proxy.services
        self.request = request
        self.gone = False
        self.stream: _Stream | None = None
        self.method = request.method.decode("ascii", "replace").upper()
        self.target_text = "?"
        self.principal: Principal = ANONYMOUS
        # For the audit trail: the call's place in it, what it was decided as and what came of it.
        self.received_at = self.services.clock()
        self.http, self.own_session = self._http_session()
        self.slot: Any = None
        self.authenticated: Principal | None = None
        self.found: Route | None = None
        self.inputs: list[dict[str, Any]] = []
        self.decisions: list[Decision] | None = None
        self.forwarded = False
        self.status: int | None = None  # the broker's
        self.recorded = False

    def _http_session(self) -> tuple[HttpSession, bool]:
        """The connection's audit session; a request on a channel that has none (not served by
        :class:`AdminSite`) is a session of its own."""
        session = getattr(getattr(self.request, "channel", None), "gk_session", None)
        if session is not None:
            return session, False
        return self.proxy.session_opened(self.request.getClientAddress()), True

    # -- the steps --------------------------------------------------------------------------------

    def start(self) -> None:
        self.request.notifyFinish().addErrback(self._client_gone)
        self.http.requests += 1
        trail = self.services.audit
        if trail is not None:
            # A place in the trail is taken before anything is decided or forwarded: a call that
            # could not be recorded does not happen (fail closed).
            self.slot = trail.reserve()
            if self.slot is None:
                self.services.metrics.inc("gatekeeper_rejected_total", reason="audit_unavailable")
                self._reply(503, f"audit trail unavailable ({trail.error or 'its queue is full'}): "
                                 "denied until it recovers")
                return
        try:
            self.target_text = self.request.uri.decode("ascii")
        except UnicodeDecodeError:
            self._reply(400, "the request target is not ASCII: percent-encode it")
            return
        target = self.s.target
        if target is None:
            self._reply(503, f"no broker is configured for this port (listener {self.s.listener}: options.brokers)")
            return
        content = self.request.content
        body = content.read(self.s.max_body + 1) if content is not None else b""
        if len(body) > self.s.max_body:
            self._reply(413, f"the request body is over {self.s.max_body} bytes (options.max_body_bytes)")
            return
        principal = self._authenticate()
        if principal is None:
            return
        self.principal = self.authenticated = principal
        try:
            found = route(self.method, self.target_text, body)
        except RouteError as e:
            self._reply(400, str(e))
            return
        self.found = found
        now = self.services.clock()
        self.session = SessionInfo(self.http.id, self.http.started_at, self.http.address, principal=principal,
                                   protocol="pulsar")
        inputs = self.inputs = [self._input(op, found, now) for op in found.operations]
        self._decide(inputs).addCallbacks(
            lambda decisions: self._decided(found, target, body, decisions),
            lambda f: self._deny(found.operations[0], f"policy engine failed, denied: {f.getErrorMessage()}"))

    def _authenticate(self) -> Principal | None:
        header = self.request.getHeader("authorization")
        if header is None:
            if self.s.auth_required:
                self._refuse_login("none", "authentication is required on this listener: send Authorization: Bearer <token>",
                                   "Bearer")
                return None
            return ANONYMOUS
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self._refuse_login(scheme, "only Authorization: Bearer <token> is accepted here", "Bearer")
            return None
        identity = self.services.identity
        if identity is None:
            self._refuse_login(scheme, "token authentication is not configured (identity.jwt)", "Bearer")
            return None
        try:
            validated = identity.validate(token.strip(), "token")
        except Exception as e:  # the validator's errors say what is wrong with the token
            self._refuse_login(scheme, f"token refused: {e}", 'Bearer error="invalid_token"')
            return None
        principal: Principal = validated.principal
        self.http.principal = principal
        if self.services.audit is not None and self.http.new_token(token.strip()):
            self.services.audit.record("authentication", aud.authentication_success(self.http.id, principal))
        return principal

    def _refuse_login(self, scheme: str, reason: str, challenge: str) -> None:
        if self.services.audit is not None:
            self.services.audit.record("authentication", aud.authentication_failure(self.http.id, scheme, reason))
        self._reply(401, reason, {"WWW-Authenticate": challenge})

    def _input(self, op: Operation, found: Route, now: float) -> dict[str, Any]:
        return build_input(op, api_key=0, api_name=found.api, api_version=_API_VERSION, client_id=None,
                           session=self.session, now=now, grants=self.services.grants_for(self.principal, now))

    def _decide(self, inputs: list[dict[str, Any]]) -> defer.Deferred[list[Decision]]:
        decide = self.services.decide_many
        if decide is None:
            return defer.fail(RuntimeError("no policy engine is available to this adapter"))
        self.services.inputs_decoded(inputs)
        d: defer.Deferred[list[Decision]] = defer.maybeDeferred(decide, inputs)
        return d

    def _decided(self, found: Route, target: WebBroker, body: bytes, decisions: list[Decision]) -> None:
        if len(decisions) != len(found.operations):
            self._deny(found.operations[0], "policy engine failed, denied: a decision is missing")
            return
        self.decisions = list(decisions)
        for op, decision in zip(found.operations, decisions, strict=True):
            if decision.action != "allow":
                reason = decision.reason or "denied by policy"
                if decision.action in ("mask", "approve"):
                    reason = f"{decision.action} is not supported for the Pulsar admin API, so it is a deny: {reason}"
                self._deny(op, reason)
                return
        self._forward(found, target, body)

    def _deny(self, op: Operation, reason: str) -> None:
        log.info("pulsar admin {method} {path}: {operation} on {resource} denied for {sub}: {reason}",
                 method=self.method, path=printable(self.target_text[:300]), operation=op.name,
                 resource=printable(op.resource.name), sub=printable(self.principal.sub), reason=reason)
        self.services.metrics.inc("gatekeeper_pulsar_admin_requests_total", outcome="denied")
        self._reply(403, reason, extra={"operation": op.name, "resource": op.resource.to_json()})

    # -- the broker -------------------------------------------------------------------------------

    def _forward(self, found: Route, target: WebBroker, body: bytes) -> None:
        if self.gone:
            return
        headers = Headers()
        for name in _REQUEST_HEADERS:
            values = self.request.requestHeaders.getRawHeaders(name)
            if values:
                headers.setRawHeaders(name, values)
        if self.s.token is not None:
            headers.setRawHeaders(b"authorization", [b"Bearer " + self.s.token.encode()])
        producer = FileBodyProducer(BytesIO(body)) if body or self.method in ("POST", "PUT") else None
        url = (target.url + self.target_text).encode("ascii")
        d = self.proxy.agent.request(self.method.encode("ascii"), url, headers, producer)
        d.addTimeout(self.s.timeout, self.proxy.reactor)
        d.addCallbacks(lambda response: self._answered(found, response), self._unreachable)
        self.forwarded = True
        self.services.metrics.inc("gatekeeper_pulsar_admin_requests_total", outcome="forwarded")

    def _unreachable(self, failure: Failure) -> None:
        if failure.check(defer.TimeoutError, defer.CancelledError):
            self._reply(504, f"the broker did not answer within {self.s.timeout:g}s (options.timeout)")
        else:
            self._reply(502, f"Gatekeeper cannot reach the broker: {failure.getErrorMessage()}")

    def _answered(self, found: Route, response: Any) -> None:
        self.status = int(response.code)
        if self.gone:
            response.deliverBody(_Discard())
            return
        if response.code in _REDIRECTS:
            self._redirect(response)
        elif found.listing is not None and response.code == 200:
            collect = _Collect(self.s.max_listing)
            response.deliverBody(collect)
            collect.done.addCallbacks(lambda data: self._filter(found, data),
                                      lambda f: self._reply(502, f"the broker's listing could not be read: "
                                                                 f"{f.getErrorMessage()}"))
        else:
            self._copy_head(response)
            length = response.headers.getRawHeaders(b"content-length")
            if length and response.length is not None:
                self.request.setHeader(b"content-length", str(response.length).encode())
            self.stream = _Stream(self)
            response.deliverBody(self.stream)

    def _copy_head(self, response: Any) -> None:
        self.request.setResponseCode(response.code, response.phrase)
        for name, values in response.headers.getAllRawHeaders():
            if name.lower() not in _HOP_BY_HOP:
                self.request.responseHeaders.setRawHeaders(name, values)

    def _redirect(self, response: Any) -> None:
        response.deliverBody(_Discard())
        location = (response.headers.getRawHeaders(b"location") or [b""])[0].decode("latin-1")
        rewritten = self.s.rewrite_location(location) if location else None
        if rewritten is None:
            log.warn("pulsar admin: the broker redirected {method} {path} to {location}, which is not a broker "
                     "listener {listener} fronts (options.brokers); refused", method=self.method,
                     path=printable(self.target_text[:300]), location=printable(location[:300]), listener=self.s.listener)
            self._reply(502, "the broker redirected the call to a broker this listener does not front "
                             "(listeners[].options.brokers); Gatekeeper refuses to hand its address out")
            return
        self._copy_head(response)
        self.request.setHeader(b"location", rewritten.encode("ascii", "replace"))
        self.request.setHeader(b"content-length", b"0")
        self._finish()
        self._record(aud.broker_outcome(response.code))

    def _filter(self, found: Route, data: bytes) -> None:
        assert found.listing is not None
        try:
            names = json.loads(data)
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self._reply(502, "the broker's listing is not a JSON array of names; Gatekeeper does not pass it on unfiltered")
            return
        if not names:
            self._listing([])
            return
        listing = found.listing
        now = self.services.clock()
        ops = [Operation(listing.operation, Resource(listing.resource_type, n), {"listing": True}) for n in names]
        self._decide([self._input(op, found, now) for op in ops]).addCallbacks(
            lambda decisions: self._listing([n for n, d in zip(names, decisions, strict=True) if d.action == "allow"]
                                            if len(decisions) == len(names) else None),
            lambda f: self._deny(found.operations[0], f"policy engine failed, denied: {f.getErrorMessage()}"))

    def _listing(self, names: list[str] | None) -> None:
        if names is None:
            self._deny(Operation("list", Resource("cluster", "pulsar-cluster")),
                       "policy engine failed, denied: a decision is missing")
            return
        self._send(200, json.dumps(names).encode())
        self._record(aud.broker_outcome(200))

    # -- answers ----------------------------------------------------------------------------------

    def _reply(self, code: int, reason: str, headers: dict[str, str] | None = None,
               extra: dict[str, Any] | None = None) -> None:
        if code not in (403,):
            self.services.metrics.inc("gatekeeper_pulsar_admin_requests_total", outcome=str(code))
        self._send(code, json.dumps({"reason": reason, **(extra or {})}).encode(), headers)
        self._record(aud.gatekeeper_outcome(code, reason), status=code)

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        if self.gone or self.request.finished:
            return
        self.request.setResponseCode(code)
        self.request.setHeader(b"content-type", b"application/json")
        self.request.setHeader(b"content-length", str(len(body)).encode())
        for name, value in (headers or {}).items():
            self.request.setHeader(name.encode(), value.encode())
        self.write(body)
        self._finish()

    def write(self, data: bytes) -> None:
        self.http.bytes_out += len(data)
        self.request.write(data)

    def _finish(self) -> None:
        if not self.gone and not self.request.finished:
            self.request.finish()

    def _client_gone(self, failure: Failure) -> None:
        self.gone = True
        if self.stream is not None and self.stream.transport is not None:
            self.stream.transport.stopProducing()  # type: ignore[attr-defined]
        if self.status is not None:
            self._record(aud.broker_outcome(self.status, "the client closed the connection before the whole answer "
                                                         "was sent"))
        else:
            self._record(aud.gatekeeper_outcome(None, "the client closed the connection before it was answered"))

    # -- the audit trail --------------------------------------------------------------------------

    def _record(self, outcome: dict[str, Any], status: int | None = None) -> None:
        """The call's ``request`` record, written once, into the place taken for it."""
        if self.recorded:
            return
        self.recorded = True
        if self.slot is not None:
            decisions = self.decisions
            if decisions is None or len(decisions) != len(self.inputs):
                reason = str(outcome.get("error") or "not decided")
                decisions = [Decision("deny", reason)] * len(self.inputs)
            api = self.found.api if self.found is not None else f"{self.method} {self.target_text[:300]}"
            operations = aud.operation_entries(self.inputs, decisions, self.services.policy_revision(),
                                               forwarded=self.forwarded, status=status)
            self.slot.record("request", aud.request_fields(self.http, self.authenticated, api, operations, outcome,
                                                           self.services.clock() - self.received_at))
        if self.own_session:
            self.proxy.session_closed(self.http)


class _Stream(Protocol):
    """The broker's answer, written to the client as it arrives."""

    def __init__(self, call: _Call) -> None:
        self.call = call

    def dataReceived(self, data: bytes) -> None:
        if not self.call.gone:
            self.call.write(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        call = self.call
        if call.gone:
            return
        status = call.status if call.status is not None else 0
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            call._finish()
            call._record(aud.broker_outcome(status))
        else:  # the broker's answer broke off: the client must not take a part for the whole
            call._record(aud.broker_outcome(status, f"the broker's answer broke off: {reason.getErrorMessage()}"))
            _closing(call.request.channel, "the broker's answer broke off")
            transport = getattr(call.request.channel, "transport", None)
            if transport is not None:
                transport.abortConnection()


class _Collect(Protocol):
    """A whole answer, up to ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.done.errback(ValueError(f"it is over {self.limit} bytes (options.max_listing_bytes)"))
            if self.transport is not None:
                self.transport.stopProducing()  # type: ignore[attr-defined]
            return
        self.parts.append(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self.done.called:
            return
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


class _Discard(Protocol):
    def dataReceived(self, data: bytes) -> None:
        pass
