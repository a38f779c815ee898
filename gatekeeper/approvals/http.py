"""The approvals HTTP API and approver page (Twisted Web, JSON), on the ``approvals.bind`` listener.

Every ``/api/v1`` call carries ``Authorization: Bearer <JWT>``, validated by the gateway's
IdentityService exactly as a Kafka client's token (issuer, audience, JWKS, algorithms, leeway).
Refusals are ``{"error": ..., "reason": ...}`` with 400, 401, 403, 404, 405, 409, 413 or 429, and
change nothing. The route table below is the API: the OpenAPI document
(``gatekeeper/approvals/openapi.json``, copied to ``docs/approvals-openapi.json``) lists exactly
these routes, which a test checks. Nothing here blocks the reactor: the service answers from
memory and writes to its store off the reactor.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from importlib import resources
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

from gatekeeper.api import Principal
from gatekeeper.approvals.events import EventStreams
from gatekeeper.approvals.model import STATUSES, Refused
from gatekeeper.approvals.store import StoreError
from gatekeeper.approvals.views import (
    grant_json,
    is_requester,
    may_see_grant,
    may_see_request,
    principal_json,
    request_json,
)
from gatekeeper.identity.jwt_validator import AuthError
from gatekeeper.ratelimit import LogSampler

__all__ = ["ROUTES", "ApiError", "ApprovalsApi", "Route"]

log = Logger()

MAX_BODY = 16 * 1024
MAX_REASON = 1000
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
BEARER_MECHANISM = "BEARER"

_SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"cache-control": b"no-store",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}
# The page loads only its own script and style, talks only to this origin, and cannot be framed.
_PAGE_CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
             b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_UNAUTHENTICATED_REASON = ("the bearer token was refused: missing, malformed, expired, or not signed by the "
                           "identity provider this gateway trusts (the gateway's log says which)")


class ApiError(Exception):
    """A refusal the API answers with ``status`` and ``{"error": error, "reason": reason}``."""

    ERRORS = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large", 429: "too_many_requests",
              500: "internal", 503: "unavailable"}

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason
        self.error = self.ERRORS.get(status, "error")


@attrs.frozen
class Route:
    """One route: ``template`` is the OpenAPI path (``{id}`` is one path segment)."""

    method: str
    template: str
    handler: str  # ApprovalsApi method name
    authenticated: bool = True

    def match(self, segments: list[str]) -> dict[str, str] | None:
        parts = self.template.strip("/").split("/") if self.template != "/" else []
        if len(parts) != len(segments):
            return None
        params: dict[str, str] = {}
        for part, seg in zip(parts, segments, strict=True):
            m = re.fullmatch(r"\{(\w+)\}", part)
            if m:
                if not seg:
                    return None
                params[m.group(1)] = seg
            elif part != seg:
                return None
        return params


ROUTES: tuple[Route, ...] = (
    Route("GET", "/", "page", authenticated=False),
    Route("GET", "/static/app.js", "script", authenticated=False),
    Route("GET", "/static/app.css", "style", authenticated=False),
    Route("GET", "/openapi.json", "openapi", authenticated=False),
    Route("GET", "/api/v1/whoami", "whoami"),
    Route("GET", "/api/v1/requests", "list_requests"),
    Route("GET", "/api/v1/requests/{id}", "get_request"),
    Route("POST", "/api/v1/requests/{id}/approve", "approve"),
    Route("POST", "/api/v1/requests/{id}/deny", "deny"),
    Route("GET", "/api/v1/grants", "list_grants"),
    Route("GET", "/api/v1/grants/{id}", "get_grant"),
    Route("POST", "/api/v1/grants/{id}/revoke", "revoke"),
    Route("GET", "/api/v1/events", "events"),
)


def _asset(name: str) -> bytes:
    return (resources.files("gatekeeper.approvals") / name).read_bytes()


class ApprovalsApi(resource.Resource):
    """The whole listener's resource: dispatches on :data:`ROUTES`."""

    isLeaf = True

    def __init__(self, approvals: Any, identity: Any, clock: Any, streams: EventStreams | None = None) -> None:
        super().__init__()
        self.approvals, self.identity, self.clock = approvals, identity, clock
        self.streams = streams or EventStreams(approvals, clock)
        self._refusal_log = LogSampler(10.0)  # one line per peer per 10 s: no log flood from bad tokens
        self.assets = {
            "page": (b"text/html; charset=utf-8", _asset("web/index.html")),
            "script": (b"text/javascript; charset=utf-8", _asset("web/app.js")),
            "style": (b"text/css; charset=utf-8", _asset("web/app.css")),
            "openapi": (b"application/json", _asset("openapi.json")),
        }

    # -- dispatch -------------------------------------------------------------------------

    def render(self, request: Any) -> Any:
        for name, value in _SECURITY_HEADERS.items():
            request.setHeader(name, value)
        try:
            route, params = self._route(request)
            if not route.authenticated:
                return self._asset(request, route.handler)
            principal = self._authenticate(request)
            handler: Callable[..., Any] = getattr(self, route.handler)
            result = handler(request, principal, **params)
        except ApiError as e:
            return self._error(request, e)
        except Exception as e:  # our bug, or the service's: still a JSON answer
            return self._error(request, self._refusal(request, e))
        if result is server.NOT_DONE_YET:
            return result
        if isinstance(result, defer.Deferred):
            self._finish_later(request, result)
            return server.NOT_DONE_YET
        return self._json(request, 200, result)

    def _route(self, request: Any) -> tuple[Route, dict[str, str]]:
        raw = request.path.decode("ascii", "replace")
        segments = [urllib.parse.unquote(s) for s in raw.strip("/").split("/")] if raw.strip("/") else []
        method = request.method.decode("ascii", "replace")
        allowed = []
        for route in ROUTES:
            params = route.match(segments)
            if params is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET" and not route.authenticated):
                return route, params
            allowed.append(route.method)
        if allowed:
            request.setHeader(b"allow", ", ".join(sorted(set(allowed))).encode())
            raise ApiError(405, f"{method} is not allowed on {raw} (allowed: {', '.join(sorted(set(allowed)))})")
        raise ApiError(404, f"no such route: {raw} (the routes are in /openapi.json)")

    def _authenticate(self, request: Any) -> Principal:
        header = (request.getHeader(b"authorization") or b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            request.setHeader(b"www-authenticate", b'Bearer realm="gatekeeper-approvals"')
            raise ApiError(401, "no bearer token: send Authorization: Bearer <JWT from your identity provider>")
        try:
            validated = self.identity.validate(token.strip(), BEARER_MECHANISM)
        except AuthError as e:
            peer = _peer(request)
            held = self._refusal_log.admit(peer, self.clock.seconds())
            if held is not None:
                log.info("approvals API: token refused from {peer}: {reason}{more}", peer=peer, reason=e.reason,
                         more=f" ({held} more since the last such line)" if held else "")
            request.setHeader(b"www-authenticate", b'Bearer realm="gatekeeper-approvals", error="invalid_token"')
            raise ApiError(401, _UNAUTHENTICATED_REASON) from None
        request.token_expires_at = validated.expires_at
        return validated.principal  # type: ignore[no-any-return]

    def _asset(self, request: Any, name: str) -> bytes:
        content_type, body = self.assets[name]
        request.setHeader(b"content-type", content_type)
        if name == "page":
            request.setHeader(b"content-security-policy", _PAGE_CSP)
        return body

    def _json(self, request: Any, status: int, body: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body, sort_keys=True).encode()

    def _error(self, request: Any, e: ApiError) -> bytes:
        return self._json(request, e.status, {"error": e.error, "reason": e.reason})

    def _finish_later(self, request: Any, d: defer.Deferred[Any]) -> None:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def ok(body: Any) -> None:
            if not gone:
                request.write(self._json(request, 200, body))
                request.finish()

        def failed(f: Failure) -> None:
            e = self._refusal(request, f.value)
            if not gone:
                request.write(self._error(request, e))
                request.finish()

        d.addCallbacks(ok, failed)

    def _refusal(self, request: Any, err: BaseException | None) -> ApiError:
        if isinstance(err, ApiError):
            return err
        if isinstance(err, Refused):
            return ApiError(err.status, err.reason)
        if isinstance(err, StoreError):
            log.error("approvals API: {method} {path}: {err}", method=request.method, path=request.path, err=str(err))
            return ApiError(500, f"{err}; the gateway's log has the details")
        log.failure("approvals API: {method} {path} failed", Failure(err), method=request.method, path=request.path)
        return ApiError(500, "the gateway failed to do this; its log has the details")

    # -- handlers -------------------------------------------------------------------------

    def whoami(self, request: Any, principal: Principal) -> dict[str, Any]:
        return {"principal": principal_json(principal),
                "token_expires_at": _iso(request.token_expires_at)}

    def list_requests(self, request: Any, principal: Principal) -> dict[str, Any]:
        status = _query(request, "status")
        if status is not None and status not in STATUSES:
            raise ApiError(400, f"status={status!r}: expected one of {', '.join(STATUSES)}")
        mine = _flag(request, "mine", False)
        limit = _limit(request)
        found = self.approvals.requests(status=status, requester=principal if mine else None)
        now = self.clock.seconds()
        visible = [r for r in found if may_see_request(r, principal) and (not mine or is_requester(r, principal))]
        visible.sort(key=lambda r: r.created_at, reverse=True)
        return {"requests": [request_json(r, principal, now) for r in visible[:limit]],
                "truncated": len(visible) > limit}

    def get_request(self, request: Any, principal: Principal, id: str) -> dict[str, Any]:
        return request_json(self._visible_request(id, principal), principal, self.clock.seconds())

    def approve(self, request: Any, principal: Principal, id: str) -> defer.Deferred[Any]:
        return self._decide(request, principal, id, self.approvals.approve)

    def deny(self, request: Any, principal: Principal, id: str) -> defer.Deferred[Any]:
        return self._decide(request, principal, id, self.approvals.deny)

    def _decide(self, request: Any, principal: Principal, id: str, action: Callable[..., Any]) -> defer.Deferred[Any]:
        reason = _reason(request)
        d = defer.maybeDeferred(action, id, principal, reason)  # the service refuses: 403, 404, 409
        return d.addCallback(lambda r: request_json(r, principal, self.clock.seconds()))

    def _visible_request(self, id: str, principal: Principal) -> Any:
        found = self.approvals.request(id)
        if found is None:
            raise ApiError(404, f"no approval request {id} (decided ones are kept for approvals.history)")
        if not may_see_request(found, principal):
            raise ApiError(403, f"{principal.sub} is neither the requester of {id} nor among its approvers")
        return found

    def list_grants(self, request: Any, principal: Principal) -> dict[str, Any]:
        live = _flag(request, "live", True)
        limit = _limit(request)
        now = self.clock.seconds()
        visible = [g for g in self.approvals.grants(live=live) if may_see_grant(g, principal)]
        visible.sort(key=lambda g: g.granted_at, reverse=True)
        return {"grants": [grant_json(g, principal, now) for g in visible[:limit]], "truncated": len(visible) > limit}

    def get_grant(self, request: Any, principal: Principal, id: str) -> dict[str, Any]:
        return grant_json(self._visible_grant(id, principal), principal, self.clock.seconds())

    def _visible_grant(self, id: str, principal: Principal) -> Any:
        found = self.approvals.grant(id)
        if found is None:
            raise ApiError(404, f"no grant {id} (ended ones are kept for approvals.history)")
        if not may_see_grant(found, principal):
            raise ApiError(403, f"{principal.sub} is neither the grantee of {id} nor among its approvers")
        return found

    def revoke(self, request: Any, principal: Principal, id: str) -> defer.Deferred[Any]:
        reason = _reason(request)
        d = defer.maybeDeferred(self.approvals.revoke, id, principal, reason)  # the service refuses: 403, 404, 409
        return d.addCallback(lambda g: grant_json(g, principal, self.clock.seconds()))

    def events(self, request: Any, principal: Principal) -> Any:
        opened = self.streams.open(request, principal, request.token_expires_at)
        if opened is None:
            raise ApiError(503, "too many event streams are open on this gateway; try again later")
        return opened


# -- request parsing ------------------------------------------------------------------------


def _query(request: Any, name: str) -> str | None:
    values = request.args.get(name.encode())
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, f"{name} is given {len(values)} times: give it once")
    return values[0].decode("utf-8", "replace")  # type: ignore[no-any-return]


def _flag(request: Any, name: str, default: bool) -> bool:
    value = _query(request, name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise ApiError(400, f"{name}={value!r}: expected true or false")
    return value == "true"


def _limit(request: Any) -> int:
    value = _query(request, "limit")
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise ApiError(400, f"limit={value!r}: expected a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def _reason(request: Any) -> str:
    """The ``reason`` of a JSON body ``{"reason": "..."}``: required, 1 to 1000 characters."""
    body = request.content.read(MAX_BODY + 1) if request.content is not None else b""
    if len(body) > MAX_BODY:
        raise ApiError(413, f"the body is over {MAX_BODY} bytes")
    try:
        doc = json.loads(body or b"null")
    except ValueError as e:
        raise ApiError(400, f"the body is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, 'expected a JSON object {"reason": "why"}')
    unknown = sorted(set(doc) - {"reason"})
    if unknown:
        raise ApiError(400, f"unknown field(s) {', '.join(unknown)}: the body is {{\"reason\": \"why\"}}")
    reason = doc.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        got = "nothing" if reason is None else f"{type(reason).__name__} {reason!r}"
        raise ApiError(400, f"reason: expected a non-empty string saying why (it goes into the audit trail), got {got}")
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise ApiError(400, f"reason: {len(reason)} characters, at most {MAX_REASON}")
    return reason


def _peer(request: Any) -> str:
    return str(getattr(request.getClientAddress(), "host", "?"))


def _iso(ts: float) -> str:
    from gatekeeper.approvals.model import rfc3339

    return rfc3339(ts)
