"""Readiness: can this instance serve clients now? A load balancer asks ``/readyz``.

Two checks run off the reactor's critical path, every ``admin.readiness_interval``: a TCP
connect to the upstream bootstrap servers (reachable if any one accepts), and the policy
engine's health (OPA's ``/health``; the embedded engine is healthy once its policies are
loaded). Each probe is bounded by its own timeout and never overlaps the previous one. The
verdict itself is a pure function of the last results (:func:`verdict`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from gatekeeper.values import HostPort

__all__ = ["Check", "ReadinessProbe", "verdict"]

log = Logger()


@attrs.frozen
class Check:
    """One probe's last result: ok, and if not, why (for the operator)."""

    ok: bool
    detail: str
    at: float  # when it was probed (reactor seconds)


def verdict(*, listening: bool, draining: bool, checks: dict[str, Check | None],
            extra_problems: Sequence[str] = ()) -> tuple[bool, dict[str, Any]]:
    """(ready, the /readyz body): ready when listening, not draining, every check has run and
    passed, and nothing else (``extra_problems``, e.g. the audit trail) holds it back."""
    reasons: list[str] = []
    if draining:
        reasons.append("shutting down: no new connections are taken")
    elif not listening:
        reasons.append("starting: the listeners are not open yet")
    body_checks: dict[str, Any] = {}
    for name, check in checks.items():
        if check is None:
            reasons.append(f"{name}: not probed yet")
            body_checks[name] = {"ok": False, "detail": "not probed yet"}
            continue
        body_checks[name] = {"ok": check.ok, "detail": check.detail}
        if not check.ok:
            reasons.append(f"{name}: {check.detail}")
    reasons.extend(extra_problems)
    ready = not reasons
    body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": body_checks}
    if reasons:
        body["reasons"] = reasons
    return ready, body


class _Hangup(Protocol):
    def connectionMade(self) -> None:
        self.transport.abortConnection()  # type: ignore[union-attr]


class _HangupFactory(Factory):
    noisy = False
    protocol = _Hangup


class ReadinessProbe:
    """Probes the upstream brokers and the policy engine periodically and keeps the results."""

    def __init__(self, reactor: Any, interval: float, bootstrap: Sequence[HostPort],
                 engine_health: Callable[[], defer.Deferred[str | None]], timeout: float,
                 on_change: Callable[[str, Check], None] | None = None) -> None:
        self.reactor = reactor
        self.interval = interval
        self.timeout = timeout
        self.bootstrap = tuple(bootstrap)
        self.engine_health = engine_health
        self.on_change = on_change
        self.results: dict[str, Check | None] = {"upstream": None, "policy_engine": None}
        self._loop: LoopingCall | None = None

    def start(self) -> None:
        self._loop = LoopingCall(self.probe)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=True).addErrback(
            lambda f: log.failure("bug: the readiness probe stopped", f))

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def probe(self) -> defer.Deferred[None]:
        """One round of both checks (LoopingCall waits for it before the next round)."""
        return defer.gatherResults([self._probe_upstream(), self._probe_engine()], consumeErrors=True).addCallback(
            lambda _: None)

    def _record(self, name: str, ok: bool, detail: str) -> None:
        before = self.results.get(name)
        check = Check(ok, detail, self.reactor.seconds())
        self.results[name] = check
        if before is None or before.ok != ok:
            if ok:
                log.info("readiness: {name} ok ({detail})", name=name, detail=detail)
            else:
                log.warn("readiness: {name} failing: {detail}", name=name, detail=detail)
            if self.on_change is not None:
                self.on_change(name, check)

    @defer.inlineCallbacks
    def _probe_upstream(self) -> Any:
        errors = []
        for target in self.bootstrap:
            endpoint = TCP4ClientEndpoint(self.reactor, target.host, target.port, timeout=max(1, int(self.timeout)))
            try:
                yield endpoint.connect(_HangupFactory())
            except Exception as e:
                errors.append(f"{target}: {e.__class__.__name__}: {_first_line(e)}")
                continue
            self._record("upstream", True, f"{target} accepts connections")
            return
        self._record("upstream", False, "no bootstrap server accepts connections (" + "; ".join(errors) + ")")

    @defer.inlineCallbacks
    def _probe_engine(self) -> Any:
        d = self.engine_health()
        timer = self.reactor.callLater(self.timeout, d.cancel)
        try:
            problem = yield d
        except defer.CancelledError:
            problem = f"no answer within {self.timeout:g}s"
        except Exception as e:
            problem = f"{e.__class__.__name__}: {_first_line(e)}"
        finally:
            if timer.active():
                timer.cancel()
        self._record("policy_engine", problem is None, problem or "healthy")


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or e.__class__.__name__
    return text.splitlines()[0][:300]
