"""The approvals service: the one object the Kafka adapter, the HTTP API and the CLI call.

Everything runs on the reactor thread. What is in force — pending requests, live grants — is
held in memory, so ``open``, ``grants_for`` and the listings answer at once; every change is
applied in memory first (a revoke stops working at once) and written through the store off
the reactor thread. The rules themselves are the pure functions of ``model``.

- ``open`` opens an approval request, or joins the one pending for the same principal,
  operation and resource; notifiers are told once per new request.
- ``wait`` hands out a Deferred per holder (a held Kafka request): it fires with the request
  when it is decided or expires, or with the still pending request when ``timeout`` passes.
  Cancelling it (the client went away) drops that holder only; the request stays.
- ``approve`` / ``deny`` / ``revoke`` take an authenticated approver and fail with
  ``Refused(status, reason)``.
- ``grants_for`` gives the policy-input ``grants`` of a principal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from gatekeeper.api import ANONYMOUS, Principal, Resource
from gatekeeper.approvals import model
from gatekeeper.approvals.model import (
    ApprovalRequest,
    ApprovalSpec,
    Grant,
    Refused,
    identity,
    is_live,
    rfc3339,
)
from gatekeeper.approvals.notifiers import ConfiguredNotifier, load_notifiers
from gatekeeper.approvals.store import SqliteStore, Store, StoreError
from gatekeeper.config.values import ApprovalsConfig
from gatekeeper.logsafe import printable

__all__ = ["Approvals", "describe_metrics"]

log = Logger()

Event = dict[str, Any]
_SWEEP_INTERVAL = 60.0


def describe_metrics(metrics: Any) -> None:
    metrics.describe("gatekeeper_approval_requests_total", "counter",
                     "Approve decisions, by result: opened (a new approval request), joined (one already pending for the same principal, operation and resource), refused (too many pending).")
    metrics.describe("gatekeeper_approval_requests_pending", "gauge", "Approval requests waiting for a decision.")
    metrics.describe("gatekeeper_approval_votes_total", "counter", "Approvers' votes, by verdict.")
    metrics.describe("gatekeeper_approval_decisions_total", "counter", "Approval requests decided, by status (approved, denied, expired).")
    metrics.describe("gatekeeper_approval_grants_active", "gauge", "Time-boxed grants in force (unexpired, unrevoked).")
    metrics.describe("gatekeeper_approval_grants_revoked_total", "counter", "Grants revoked before their expiry.")
    metrics.describe("gatekeeper_approval_notifier_failures_total", "counter", "Notifications that failed for good (after the notifier's own retries), by notifier.")
    metrics.describe("gatekeeper_approval_store_errors_total", "counter", "Approval store writes that failed (the change is in force until a restart, but not saved).")


class _NullMetrics:
    def describe(self, *a: Any, **k: Any) -> None: ...

    def inc(self, *a: Any, **k: Any) -> None: ...

    def set(self, *a: Any, **k: Any) -> None: ...


class Approvals:
    """Approval requests and time-boxed grants (module docstring). ``store`` defaults to a
    ``SqliteStore`` on ``config.store``; ``notifiers`` are ``ConfiguredNotifier`` (see
    ``gatekeeper.approvals.notifiers.load_notifiers``) or bare plugin objects (told of
    ``request_opened`` only)."""

    def __init__(self, config: ApprovalsConfig, *, reactor: Any, metrics: Any = None,
                 notifiers: Sequence[Any] = (), store: Store | None = None) -> None:
        self.config = config
        self.reactor = reactor
        self.metrics = metrics if metrics is not None else _NullMetrics()
        describe_metrics(self.metrics)
        self.store: Store = store if store is not None else SqliteStore(config.store, reactor)
        self.notifiers = [n if isinstance(n, ConfiguredNotifier) else ConfiguredNotifier(type(n).__name__, n)
                          for n in notifiers]
        self.grants_version = 0  # bumps on every change to the set of live grants
        self._requests: dict[str, ApprovalRequest] = {}  # pending, and decided within `history`
        self._pending: dict[model.Triple, str] = {}
        self._pending_count: dict[tuple[str, str | None], int] = {}
        self._grants: dict[str, Grant] = {}  # live, and ended within `history`
        self._live: dict[tuple[str, str | None], dict[str, dict[str, Any]]] = {}  # identity -> id -> to_input()
        self._waiters: dict[str, list[defer.Deferred[ApprovalRequest]]] = {}
        self._timers: dict[str, Any] = {}  # request id / grant id -> IDelayedCall
        self._subscribers: list[Callable[[Event], None]] = []
        self._deliveries: set[defer.Deferred[Any]] = set()
        self._sweep: task.LoopingCall | None = None
        self._running = False

    @classmethod
    def from_config(cls, config: ApprovalsConfig, *, reactor: Any, metrics: Any = None) -> Approvals:
        """The service as configured: the SQLite store and the configured notifiers. Raises
        NotifierError (the operator's config) when a notifier cannot be built."""
        notifiers = load_notifiers(config.notifiers, reactor=reactor, page_url=config.page_url)
        return cls(config, reactor=reactor, metrics=metrics, notifiers=notifiers)

    # -- life cycle ----------------------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self) -> Any:
        """Open the store and load what is in force (plus `history`) into memory. A pending
        request whose time ran out while Gatekeeper was down expires now."""
        yield self.store.open()
        now = self._now()
        loaded = yield self.store.load(now - self.config.history)
        for request in loaded.requests:
            expired = model.expire(request, now)
            if expired is not request:
                self._background(self.store.put_request(expired))
            self._put_request(expired)
        for grant in loaded.grants:
            self._put_grant(grant, now)
        self._running = True
        self._sweep = task.LoopingCall(self._prune)
        self._sweep.clock = self.reactor
        self._sweep.start(_SWEEP_INTERVAL, now=False)
        self._gauges()
        log.info("approvals: {pending} pending request(s), {live} live grant(s) loaded from {store}",
                 pending=len(self._pending), live=self._live_count(), store=str(self.config.store))

    @defer.inlineCallbacks
    def stop(self) -> Any:
        """Stop timers, release every holder (with the request as it is: still pending), stop
        notifications in flight and close the store after the writes asked for so far."""
        self._running = False
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()
        for request_id in list(self._waiters):
            self._release(request_id)
        for d in list(self._deliveries):
            d.cancel()
        yield self.store.close()

    # -- the Kafka side ------------------------------------------------------------------------

    def spec(self, approval: Mapping[str, Any]) -> ApprovalSpec:
        """The approve decision's ``approval`` with the config's bounds applied; Refused(400)
        when it is malformed (the policy's bug: the decision schema should have caught it)."""
        try:
            return ApprovalSpec.from_decision(approval, default_grant_ttl=self.config.default_grant_ttl,
                                              max_grant_ttl=self.config.max_grant_ttl, max_wait=self.config.max_wait)
        except (ValueError, KeyError, TypeError) as e:
            raise Refused(400, f"malformed approval in the decision: {e}") from e

    def hold_seconds(self, approval: Mapping[str, Any]) -> float:
        """How long to hold the request that got this approve decision: its ``wait``, capped
        by ``approvals.max_wait`` (which is also the default)."""
        return self.spec(approval).wait

    def open(self, *, principal: Principal, client: Mapping[str, Any] | None, operation: str,
             resource: Resource, summary: Mapping[str, Any] | None, reason: str,
             approval: Mapping[str, Any]) -> ApprovalRequest:
        """The pending approval request for (principal, operation, resource): the one already
        pending, or a new one (saved in the background, notifiers told). Raises Refused: 429
        when the principal has ``max_pending_per_principal`` requests pending already, 403 for an
        anonymous principal (its grant would be everybody's), 400 for a malformed approval."""
        self._check_running()
        if identity(principal) == identity(ANONYMOUS):
            raise Refused(403, "an unauthenticated client cannot ask for approval: its grant would be "
                               "everybody's; connect with credentials")
        now = self._now()
        key = model.triple(principal, operation, resource)
        pending_id = self._pending.get(key)
        if pending_id is not None:
            request = self._requests[pending_id]
            if now < request.expires_at:
                self.metrics.inc("gatekeeper_approval_requests_total", result="joined")
                return request
            self._expire(pending_id)
        who = identity(principal)
        if self._pending_count.get(who, 0) >= self.config.max_pending_per_principal:
            self.metrics.inc("gatekeeper_approval_requests_total", result="refused")
            raise Refused(429, f"{principal.sub} already has {self.config.max_pending_per_principal} approval "
                               "requests pending; wait for them to be decided")
        request = model.open_request(
            id=model.new_request_id(), requester=principal, client=client, operation=operation,
            resource=resource, summary=summary or {}, reason=reason, spec=self.spec(approval), now=now,
            request_ttl=self.config.request_ttl)
        self._put_request(request)
        self._background(self.store.put_request(request))
        self.metrics.inc("gatekeeper_approval_requests_total", result="opened")
        self._gauges()
        log.info("approval request {id} opened: {sub} asks to {operation} {rtype} {rname}; approvers {approvers}",
                 id=request.id, sub=printable(principal.sub), operation=operation, rtype=resource.type,
                 rname=printable(resource.name), approvers=", ".join(request.approvers))
        self._emit("request_opened", request=request)
        return request

    def wait(self, request_id: str, timeout: float | None = None) -> defer.Deferred[ApprovalRequest]:
        """A Deferred that fires with the request once it is no longer pending, or, after
        ``timeout`` seconds, with it as it is then. Cancel it freely: the request is untouched.
        Fails with Refused(404) for an unknown request."""
        request = self._requests.get(request_id)
        if request is None:
            return defer.fail(Refused(404, f"no approval request {request_id}"))
        if not request.pending:
            return defer.succeed(request)

        def cancelled(d: defer.Deferred[ApprovalRequest]) -> None:
            self._drop_waiter(request_id, d)

        d: defer.Deferred[ApprovalRequest] = defer.Deferred(cancelled)
        self._waiters.setdefault(request_id, []).append(d)
        if timeout is not None:
            call = self.reactor.callLater(max(0.0, timeout), self._wait_over, request_id, d)

            def done(result: Any) -> Any:
                if call.active():
                    call.cancel()
                return result

            d.addBoth(done)
        return d

    def grants_for(self, principal: Principal, now: float | None = None) -> list[dict[str, Any]]:
        """The live grants of ``principal`` (same sub and issuer) as a policy input carries
        them, the longest-lasting first. Do not mutate them."""
        live = self._live.get(identity(principal))
        if not live:
            return []
        t = self._now() if now is None else now
        grants = [self._grants[gid] for gid in live]
        return [live[g.id] for g in sorted(grants, key=lambda g: -g.expires_at) if is_live(g, t)]

    def client_message(self, request: ApprovalRequest) -> str:
        """What a held request's client is told when it is not approved in time."""
        where = f"; see {self.request_url(request.id)}" if self.config.page_url else ""
        return (f"approval required: request {request.id} is {request.status}, waiting for "
                f"{', '.join(request.approvers)}{where}")

    def request_url(self, request_id: str) -> str | None:
        """The approver page's address of one request (``page_url`` with ``?request=ID``)."""
        if not self.config.page_url:
            return None
        sep = "&" if "?" in self.config.page_url else "?"
        return f"{self.config.page_url}{sep}request={request_id}"

    # -- approvers -----------------------------------------------------------------------------

    def approve(self, request_id: str, approver: Principal, reason: str = "") -> defer.Deferred[ApprovalRequest]:
        """Vote to approve; fires with the request after the vote (approved once enough distinct
        approvers agreed) when it is saved. Fails with Refused (403 segregation of duties or not
        an approver, 404 unknown, 409 not pending or already voted) or StoreError."""
        return self._vote(request_id, approver, "approve", reason)

    def deny(self, request_id: str, approver: Principal, reason: str = "") -> defer.Deferred[ApprovalRequest]:
        """Deny: one approver's denial decides the request. Fails as ``approve`` does."""
        return self._vote(request_id, approver, "deny", reason)

    def revoke(self, grant_id: str, by: Principal, reason: str = "") -> defer.Deferred[Grant]:
        """End a grant now (it stops working at once). Its grantee or one of the approvers of the
        approval that made it may; Refused otherwise (403, 404, 409 when already ended)."""
        try:
            self._check_running()
            grant = self._grants.get(grant_id)
            if grant is None:
                raise Refused(404, f"no grant {grant_id}")
            revoked = model.revoke(grant, by, reason, self._now())
        except Refused as e:
            return defer.fail(e)
        self._put_grant(revoked, self._now())
        self.metrics.inc("gatekeeper_approval_grants_revoked_total")
        self._gauges()
        log.info("grant {id} of {sub} revoked by {by}: {reason}", id=grant_id, sub=printable(grant.sub),
                 by=printable(by.sub), reason=printable(reason))
        self._emit("grant_revoked", grant=revoked)
        return self._persist(self.store.put_grant(revoked), revoked)

    def _vote(self, request_id: str, approver: Principal, verdict: str, reason: str) -> defer.Deferred[ApprovalRequest]:
        try:
            self._check_running()
            request = self._requests.get(request_id)
            if request is None:
                raise Refused(404, f"no approval request {request_id}")
            now = self._now()
            if request.pending and now >= request.expires_at:
                self._expire(request_id)
                request = self._requests[request_id]
            voted, grant = model.vote(request, approver, verdict, reason, now, model.new_grant_id())
        except Refused as e:
            return defer.fail(e)
        self.metrics.inc("gatekeeper_approval_votes_total", verdict=verdict)
        log.info("approval request {id}: {by} votes {verdict} ({reason})", id=request_id, by=printable(approver.sub),
                 verdict=verdict, reason=printable(reason))
        writes = []
        if grant is not None:
            self._put_grant(grant, now)
            writes.append(self.store.put_grant(grant))
        writes.append(self.store.put_request(voted))
        self._put_request(voted)
        if voted.pending:
            self._emit("request_voted", request=voted)
        else:
            self._decided(voted, grant)
        return self._persist(defer.gatherResults(writes, consumeErrors=True), voted)

    # -- listings ------------------------------------------------------------------------------

    def request(self, request_id: str) -> ApprovalRequest | None:
        return self._requests.get(request_id)

    def requests(self, status: str | None = None, requester: Principal | None = None) -> list[ApprovalRequest]:
        """Pending requests and those decided within ``approvals.history``, oldest first."""
        out = [r for r in self._requests.values()
               if (status is None or r.status == status)
               and (requester is None or identity(r.requester) == identity(requester))]
        return sorted(out, key=lambda r: r.created_at)

    def decidable_by(self, approver: Principal) -> list[ApprovalRequest]:
        """The pending requests ``approver`` may vote on now."""
        now = self._now()
        return [r for r in self.requests(model.PENDING) if model.may_decide(r, approver, now) is None]

    def grant(self, grant_id: str) -> Grant | None:
        return self._grants.get(grant_id)

    def grants(self, live: bool = True, principal: Principal | None = None) -> list[Grant]:
        """Live grants (``live=False``: also those ended within ``approvals.history``), by
        grantee when ``principal`` is given, oldest first."""
        now = self._now()
        out = [g for g in self._grants.values()
               if (not live or is_live(g, now))
               and (principal is None or (g.sub, g.issuer) == identity(principal))]
        return sorted(out, key=lambda g: g.granted_at)

    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``fn(event)`` on every change, on the reactor thread; returns the unsubscribe.
        Events: ``{"type", "at", "request"?, "grant"?}`` with type request_opened,
        request_voted, request_decided, grant_created, grant_revoked or grant_expired."""
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    # -- in memory -----------------------------------------------------------------------------

    def _now(self) -> float:
        return float(self.reactor.seconds())

    def _check_running(self) -> None:
        if not self._running:
            raise RuntimeError("Approvals used before start() or after stop()")  # our bug

    def _put_request(self, request: ApprovalRequest) -> None:
        """Record ``request`` in memory and keep the pending index and expiry timer in step."""
        old = self._requests.get(request.id)
        self._requests[request.id] = request
        key = model.request_triple(request)
        who = identity(request.requester)
        was_pending = old is not None and old.pending
        if request.pending and not was_pending:
            self._pending[key] = request.id
            self._pending_count[who] = self._pending_count.get(who, 0) + 1
            delay = max(0.0, request.expires_at - self._now())
            self._timers[request.id] = self.reactor.callLater(delay, self._expire, request.id)
        elif was_pending and not request.pending:
            if self._pending.get(key) == request.id:
                del self._pending[key]
            left = self._pending_count.get(who, 1) - 1
            if left > 0:
                self._pending_count[who] = left
            else:
                self._pending_count.pop(who, None)
            call = self._timers.pop(request.id, None)
            if call is not None and call.active():
                call.cancel()

    def _put_grant(self, grant: Grant, now: float) -> None:
        """Record ``grant`` in memory; the live index holds it while it is live."""
        self._grants[grant.id] = grant
        who = (grant.sub, grant.issuer)
        live = self._live.get(who, {})
        if is_live(grant, now):
            if grant.id not in live:
                live[grant.id] = grant.to_input()
                self._live[who] = live
                self.grants_version += 1
                delay = max(0.0, grant.expires_at - now)
                self._timers[grant.id] = self.reactor.callLater(delay, self._grant_expired, grant.id)
        elif grant.id in live:
            del live[grant.id]
            if not live:
                del self._live[who]
            self.grants_version += 1
            call = self._timers.pop(grant.id, None)
            if call is not None and call.active():
                call.cancel()

    def _expire(self, request_id: str) -> None:
        request = self._requests.get(request_id)
        if request is None or not request.pending:
            return
        expired = model.expire(request, max(self._now(), request.expires_at))
        self._put_request(expired)
        self._background(self.store.put_request(expired))
        log.info("approval request {id} expired undecided", id=request_id)
        self._decided(expired, None)

    def _grant_expired(self, grant_id: str) -> None:
        self._timers.pop(grant_id, None)
        grant = self._grants.get(grant_id)
        if grant is None:
            return
        self._put_grant(grant, max(self._now(), grant.expires_at))
        self._gauges()
        self._emit("grant_expired", grant=grant)

    def _decided(self, request: ApprovalRequest, grant: Grant | None) -> None:
        self.metrics.inc("gatekeeper_approval_decisions_total", status=request.status)
        self._gauges()
        if grant is not None:
            self._emit("grant_created", grant=grant)
        self._emit("request_decided", request=request, grant=grant)
        self._release(request.id)

    def _release(self, request_id: str) -> None:
        request = self._requests[request_id]
        for d in self._waiters.pop(request_id, []):
            d.callback(request)

    def _drop_waiter(self, request_id: str, d: defer.Deferred[ApprovalRequest]) -> None:
        waiters = self._waiters.get(request_id)
        if waiters is not None and d in waiters:
            waiters.remove(d)
            if not waiters:
                del self._waiters[request_id]

    def _wait_over(self, request_id: str, d: defer.Deferred[ApprovalRequest]) -> None:
        self._drop_waiter(request_id, d)
        if not d.called:
            d.callback(self._requests[request_id])

    def _prune(self) -> None:
        """Forget (in memory only) requests decided and grants ended before ``history``."""
        now = self._now()
        horizon = now - self.config.history
        for rid, r in list(self._requests.items()):
            if not r.pending and r.decided_at is not None and r.decided_at < horizon and rid not in self._waiters:
                del self._requests[rid]
        for gid, g in list(self._grants.items()):
            ended = g.revoked_at if g.revoked_at is not None else g.expires_at
            if not is_live(g, now) and ended < horizon:
                del self._grants[gid]
        self._gauges()

    def _live_count(self) -> int:
        return sum(len(v) for v in self._live.values())

    def _gauges(self) -> None:
        self.metrics.set("gatekeeper_approval_requests_pending", float(len(self._pending)))
        self.metrics.set("gatekeeper_approval_grants_active", float(self._live_count()))

    # -- the outside ---------------------------------------------------------------------------

    def _persist(self, d: defer.Deferred[Any], result: Any = None) -> defer.Deferred[Any]:
        """``d`` (a store write) → ``result``; a failed write is logged and counted, and the
        returned Deferred fails with StoreError."""

        def failed(f: Failure) -> Failure:
            err = f.value.subFailure.value if isinstance(f.value, defer.FirstError) else f.value
            self.metrics.inc("gatekeeper_approval_store_errors_total")
            log.error("approvals store write failed (the change is in force but not saved): {err}", err=str(err))
            return Failure(StoreError(f"in force, but not saved in the store: {err}"))

        return d.addCallbacks(lambda _: result, failed)

    def _background(self, d: defer.Deferred[Any]) -> None:
        """A write nobody waits for: its failure is logged and counted by ``_persist``."""
        self._persist(d).addErrback(lambda _: None)

    def _emit(self, kind: str, request: ApprovalRequest | None = None, grant: Grant | None = None) -> None:
        event: Event = {"type": kind, "at": rfc3339(self._now())}
        if request is not None:
            event["request"] = request.to_json()
            url = self.request_url(request.id)
            if url is not None:
                event["url"] = url
        if grant is not None:
            event["grant"] = grant.to_json()
        for fn in list(self._subscribers):
            try:
                fn(event)
            except Exception:
                log.failure("approvals subscriber {fn!r} failed on {kind}", fn=fn, kind=kind)
        for n in self.notifiers:
            if kind in n.events:
                self._notify(n, event)

    def _notify(self, n: ConfiguredNotifier, event: Event) -> None:
        d = defer.maybeDeferred(n.notifier.notify, event)
        self._deliveries.add(d)

        def failed(f: Failure) -> None:
            if f.check(defer.CancelledError):
                return
            self.metrics.inc("gatekeeper_approval_notifier_failures_total", notifier=n.name)
            log.warn("notifier {name} failed on {kind}: {err}", name=n.name, kind=event["type"],
                     err=f.getErrorMessage())

        def done(result: Any) -> Any:
            self._deliveries.discard(d)
            return result

        d.addErrback(failed)
        d.addBoth(done)
