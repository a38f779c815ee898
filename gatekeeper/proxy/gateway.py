"""The gateway: listeners, protocol adapters, the policy engine and metrics for all client
connections. Protocol-neutral: adapters come from the ``gatekeeper.adapters`` entry points."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from twisted.application import service
from twisted.internet import defer, threads
from twisted.internet.endpoints import SSL4ClientEndpoint, TCP4ClientEndpoint
from twisted.internet.interfaces import IListeningPort, IReactorCore, IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from gatekeeper.api import ANONYMOUS, AdapterServices, Principal, UpstreamTarget
from gatekeeper.approvals import Approvals
from gatekeeper.audit import AuditTrail
from gatekeeper.audit.shapes import audit_approval_record
from gatekeeper.config import Config, ListenerConfig
from gatekeeper.identity.secrets import exposed_secret_files, read_password
from gatekeeper.identity.service import IdentityService
from gatekeeper.masking import Masking
from gatekeeper.metrics import gateway_metrics
from gatekeeper.plugins import ADAPTERS, load
from gatekeeper.policy.factory import make_engine
from gatekeeper.proxy.admin import listen_admin
from gatekeeper.proxy.client import ClientProtocol
from gatekeeper.proxy.context import ProxyContext
from gatekeeper.proxy.lag import ReactorLag
from gatekeeper.proxy.readiness import Check, ReadinessProbe, verdict
from gatekeeper.proxy.tls import client_options, listener_endpoint
from gatekeeper.proxy.upstream import UpstreamProtocol
from gatekeeper.ratelimit import LogSampler
from gatekeeper.values import HostPort

__all__ = ["Gateway", "GatewayService"]

log = Logger()
_WORKER_THREADS = 2
_DRAIN_POLL = 0.05  # seconds between looks at the connections still answering at shutdown


class _ClientFactory(Factory):
    noisy = False

    def __init__(self, context: ProxyContext, listener: ListenerConfig, slot: int | None) -> None:
        self.context, self.listener, self.slot = context, listener, slot

    def buildProtocol(self, addr: Any) -> ClientProtocol:
        return ClientProtocol(self.context, self.listener, self.slot)


class _OneProtocol(Factory):
    """Connects one given protocol instance, quietly (no start/stop log line per connection)."""

    noisy = False

    def __init__(self, upstream: UpstreamProtocol) -> None:
        self.upstream = upstream

    def buildProtocol(self, addr: Any) -> UpstreamProtocol:
        return self.upstream


class Gateway:
    def __init__(self, config: Config, reactor: Any, upstream_connector: Any = None) -> None:
        self.config = config
        self.upstream_connector = upstream_connector or self._tcp_connect
        self.reactor = reactor
        self.clock: IReactorTime = reactor
        self.metrics = gateway_metrics()
        self.engine = make_engine(config.policy, self.metrics, reactor)
        self._client_principals = {
            cid: Principal(sub=p["sub"], groups=tuple(p.get("groups", ())), mechanism="CLIENT_ID")
            for cid, p in config.identity.client_id_principals.items()
        }
        self.connections: dict[ClientProtocol, tuple[str, str]] = {}  # accepted: (listener, source address)
        self._per_listener: dict[str, int] = {}
        self._per_address: dict[str, int] = {}
        self._limit_log = LogSampler(10.0)
        self.ports: list[IListeningPort] = []
        self.draining = False
        self.lag = ReactorLag(reactor, self.metrics)
        self.readiness = ReadinessProbe(
            reactor, config.admin.readiness_interval, config.upstream.bootstrap_servers, self.engine.health,
            timeout=max(0.5, min(config.admin.readiness_interval, config.upstream.connect_timeout)),
            on_change=self._readiness_changed)
        self._bootstrap: Iterator[HostPort] = itertools.cycle(config.upstream.bootstrap_servers)
        self.debug_inputs = config.log_level == "debug"
        self.upstream_password: str | None = None
        self.load_secrets()
        self.identity = IdentityService(config.identity.jwt, reactor) if config.identity.jwt else None
        # Approval requests and grants (None: the config has no approvals section). The Kafka
        # side holds requests on it; GatewayService serves its API on approvals.bind.
        self.approvals: Approvals | None = None
        self._approvals_started = False
        if config.approvals is not None:
            self.approvals = Approvals.from_config(config.approvals, reactor=reactor, metrics=self.metrics)
        approvals = self.approvals
        # The audit trail (None: no audit section): every session, login and decided request.
        self.audit: AuditTrail | None = None
        if config.audit is not None:
            self.audit = AuditTrail.from_config(config.audit, reactor=reactor, metrics=self.metrics,
                                                upstream=config.upstream, credentials=self.upstream_credentials)
        services = AdapterServices(
            config=config, metrics=self.metrics, clock=reactor.seconds, identity=self.identity,
            upstream_credentials=self.upstream_credentials, principal_for_client_id=self.principal_for,
            next_bootstrap=self.next_bootstrap, inputs_decoded=lambda inputs: self.inputs_decoded(inputs),
            masking=Masking(config.masking),
            grants_for=(lambda principal, now: approvals.grants_for(principal, now)) if approvals else (lambda principal, now: []),
            audit=self.audit, policy_revision=lambda: self.engine.revision,
            reactor=reactor, decide_many=lambda inputs: self.engine.decide_many(inputs),
        )
        self.adapters = {name: load(ADAPTERS, name)(services) for name in sorted({lst.protocol for lst in config.listeners})}
        # CPU-bound work of the data path (masking large record sets) runs here, off the
        # reactor thread; compression releases the GIL, so two threads use both cores.
        self.workers = ThreadPool(minthreads=0, maxthreads=_WORKER_THREADS, name="gatekeeper-workers")
        self.context = ProxyContext(
            adapters=self.adapters, engine=self.engine, clock=reactor,
            connect=self.connect_upstream, opened=self.connection_opened, closed=self.connection_closed,
            offload=lambda work: threads.deferToThreadPool(reactor, self.workers, work),
            approvals=self.approvals,
        )

    # -- listening ------------------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self) -> Any:
        """Load the policies, then listen on every listener's bootstrap and broker ports."""
        if self.audit is not None:
            yield self.audit.start()
        yield self.engine.start()
        self.audit_policy("loaded", None, "start")
        if self.approvals is not None:
            if self.audit is not None:
                self.approvals.subscribe(self._audit_approval_event)
            yield self.approvals.start()
            self._approvals_started = True
        self.workers.start()
        self.lag.start()
        log.info("policy engine {engine} ready", engine=self.engine.name)
        if self.config.policy.engine == "allow-all":
            log.warn("policy.engine is allow-all: every request is allowed without a policy; use it to bring up the data path only")
        for exposed in exposed_secret_files(self.config):
            log.warn("secret file readable by others than its owner: {file}; chmod 600 it", file=exposed)
        if self._client_principals:
            log.warn(
                "identity.client_id_principals is configured: {n} principal(s) are given to whoever "
                "claims their client id, which any client can do; use it for tests and demos only, "
                "never where the identities matter",
                n=len(self._client_principals),
            )
        try:
            for listener in self.config.listeners:
                endpoint = listener_endpoint(self.reactor, listener)
                port = yield endpoint(listener.bind.port).listen(self._factory(listener, None))
                self.ports.append(port)
                for slot, broker_port in enumerate(listener.broker_ports):
                    p = yield endpoint(broker_port).listen(self._factory(listener, slot))
                    self.ports.append(p)
                log.info(
                    "listener {name}: bootstrap {bind}, broker ports {first}-{last}, advertised as {adv}",
                    name=listener.name,
                    bind=str(listener.bind),
                    first=listener.broker_ports[0],
                    last=listener.broker_ports[-1],
                    adv=listener.advertised_host,
                )
        except Exception:
            yield self.stop()
            raise
        if self.config.admin.bind is not None:
            self.readiness.start()

    def _factory(self, listener: ListenerConfig, slot: int | None) -> Any:
        """The connection shell around the adapter's connection core, or the adapter's own
        server factory (an adapter that serves HTTP, e.g. ``pulsar-admin``)."""
        serve = getattr(self.adapters[listener.protocol], "server_factory", None)
        if serve is not None:
            return serve(listener, slot)
        return _ClientFactory(self.context, listener, slot)

    def bound_port(self, listener_index: int = 0) -> int:
        """The bootstrap port actually bound (useful with port 0 in tests)."""
        per_listener = [1 + len(lst.broker_ports) for lst in self.config.listeners]
        return int(self.ports[sum(per_listener[:listener_index])].getHost().port)  # type: ignore[attr-defined]

    @defer.inlineCallbacks
    def stop(self, grace: float = 0.0) -> Any:
        """Stop listening; give the requests in flight up to ``grace`` seconds to be answered
        (no new request is read meanwhile), then close every connection and stop the rest."""
        self.draining = True
        self.metrics.set("gatekeeper_draining", 1)
        self.readiness.stop()
        self.lag.stop()
        ports, self.ports = self.ports, []
        yield defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])
        if grace > 0 and self.connections:
            yield self._drain(grace)
        for conn in list(self.connections):
            conn.transport.loseConnection()  # type: ignore[union-attr]
        if self.workers.started:
            self.workers.stop()
        if self.approvals is not None and self._approvals_started:
            self._approvals_started = False
            yield self.approvals.stop()
        yield self.engine.stop()
        if self.audit is not None:
            yield self.audit.stop()

    @defer.inlineCallbacks
    def _drain(self, grace: float) -> Any:
        """Close each connection once its requests in flight are answered, until ``grace``."""
        started, n = self.clock.seconds(), len(self.connections)
        log.info("shutting down: {n} client connection(s) finish the requests in flight, for up to {grace:g}s",
                 n=n, grace=grace)
        while self.connections and self.clock.seconds() - started < grace:
            for conn in list(self.connections):
                conn.drain()
            if self.connections:
                yield deferLater(self.clock, _DRAIN_POLL, lambda: None)
        left = len(self.connections)
        if left:
            log.warn("shutting down: {left} of {n} connection(s) still had requests in flight after {grace:g}s "
                     "(shutdown.grace); closing them, their clients retry elsewhere", left=left, n=n, grace=grace)
        else:
            log.info("shutting down: every connection closed with its requests answered, in {s:.2f}s",
                     s=self.clock.seconds() - started)

    # -- connections ----------------------------------------------------------------------

    def principal_for(self, client_id: str | None) -> Principal:
        """The principal of a connection without authentication: from the (test-only) client id
        mapping, else anonymous."""
        return self._client_principals.get(client_id or "", ANONYMOUS)

    def next_bootstrap(self) -> HostPort:
        return next(self._bootstrap)

    def connect_upstream(self, target: HostPort, protocol: UpstreamProtocol) -> defer.Deferred[UpstreamProtocol]:
        """Connect to a broker for one client (the connection core authenticates it)."""
        self.metrics.inc("gatekeeper_upstream_connections_total")
        return self.upstream_connector(target, protocol)  # type: ignore[no-any-return]

    def upstream_credentials(self) -> tuple[str, str, str] | None:
        """Gatekeeper's own broker credentials in force: (mechanism, username, password)."""
        sasl = self.config.upstream.sasl
        if sasl is None or self.upstream_password is None:
            return None
        return sasl.mechanism, sasl.username, self.upstream_password

    def audit_policy(self, result: str, old: str | None, trigger: str, reason: str = "") -> None:
        """A policy_reload record: which revision was in force before and after."""
        if self.audit is None:
            return
        fields = {"result": result, "old_revision": old, "new_revision": self.engine.revision, "trigger": trigger}
        if reason:
            fields["reason"] = reason
        self.audit.record("policy_reload", fields)

    def _audit_approval_event(self, event: Any) -> None:
        """Approval decisions and grant changes, into the audit trail."""
        if self.audit is None:
            return
        record = audit_approval_record(event)
        if record is not None:
            self.audit.record(*record)

    def load_secrets(self) -> None:
        """Read Gatekeeper's broker secret (at start and on SIGHUP); new connections use it."""
        sasl = self.config.upstream.sasl
        if sasl is None:
            return
        if sasl.password is not None:
            log.warn("upstream.sasl.password is inline in the config: use password_file or password_env")
        self.upstream_password = read_password(sasl)

    def _tcp_connect(self, target: HostPort | UpstreamTarget, protocol: UpstreamProtocol) -> defer.Deferred[UpstreamProtocol]:
        up = self.config.upstream
        # An adapter fronting a cluster of its own says which TLS settings reach it.
        tls = target.tls if isinstance(target, UpstreamTarget) else up.tls
        endpoint: Any
        if tls is not None:
            options = client_options(tls, target.host)
            endpoint = SSL4ClientEndpoint(self.reactor, target.host, target.port, options, timeout=up.connect_timeout)
        else:
            endpoint = TCP4ClientEndpoint(self.reactor, target.host, target.port, timeout=up.connect_timeout)
        return endpoint.connect(_OneProtocol(protocol))  # type: ignore[return-value]

    def connection_opened(self, conn: ClientProtocol) -> str | None:
        """Count a new client connection; the reason to refuse it if it is over a limit."""
        limits = self.config.limits
        listener = conn.listener.name
        address = str(getattr(conn.transport.getPeer(), "host", "?"))  # type: ignore[union-attr]
        refusal = None
        if self._per_listener.get(listener, 0) >= limits.max_connections_per_listener:
            refusal = f"listener {listener} has {limits.max_connections_per_listener} connections (limits.max_connections_per_listener)"
        elif self._per_address.get(address, 0) >= limits.max_connections_per_address:
            refusal = f"{address} has {limits.max_connections_per_address} connections (limits.max_connections_per_address)"
        if refusal is not None:
            self.metrics.inc("gatekeeper_rejected_total", reason="connection_limit")
            held = self._limit_log.admit((listener, address), self.clock.seconds())
            if held is not None:
                log.warn("refused a connection from {address} on listener {listener}: {why}{more}", address=address,
                         listener=listener, why=refusal, more=f" ({held} more since the last such line)" if held else "")
            return refusal
        self.connections[conn] = (listener, address)
        self._per_listener[listener] = self._per_listener.get(listener, 0) + 1
        self._per_address[address] = self._per_address.get(address, 0) + 1
        self.metrics.inc("gatekeeper_connections_total", listener=listener)
        self.metrics.set("gatekeeper_connections_active", len(self.connections))
        return None

    def connection_closed(self, conn: ClientProtocol) -> None:
        counted = self.connections.pop(conn, None)
        if counted is None:
            return  # refused when it opened: never counted
        listener, address = counted
        for counts, key in ((self._per_listener, listener), (self._per_address, address)):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]
        self.metrics.set("gatekeeper_connections_active", len(self.connections))

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(listening, the /healthz body)."""
        listening = bool(self.ports)
        body: dict[str, Any] = {"status": "ok" if listening else "starting", "connections": len(self.connections)}
        if self.audit is not None:
            # Operations are denied while the trail cannot take records (on_failure: deny).
            body["audit"] = {"available": self.audit.available, "error": self.audit.error}
            if listening and not self.audit.available:
                body["status"] = "audit trail unavailable"
                return False, body
        return listening, body

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """(ready, the /readyz body): listening, not shutting down, the broker and the policy
        engine reachable, and the audit trail (if any) taking records."""
        problems = []
        if self.audit is not None and not self.audit.available:
            problems.append(f"audit trail unavailable: {self.audit.error}")
        ok, body = verdict(listening=bool(self.ports), draining=self.draining, checks=self.readiness.results,
                           extra_problems=problems)
        body["connections"] = len(self.connections)
        self.metrics.set("gatekeeper_ready", 1 if ok else 0)
        return ok, body

    def _readiness_changed(self, name: str, check: Check) -> None:
        gauge = {"upstream": "gatekeeper_upstream_reachable", "policy_engine": "gatekeeper_engine_reachable"}[name]
        self.metrics.set(gauge, 1 if check.ok else 0)

    def inputs_decoded(self, inputs: list[dict[str, Any]]) -> None:
        """Hook for every policy input built; logged at debug level."""
        if self.debug_inputs:
            for i in inputs:
                log.debug("policy input {input}", input=json.dumps(i, sort_keys=True))


class GatewayService(service.Service):
    """Runs a Gateway (and its admin endpoint) under twistd or any Twisted application."""

    started: defer.Deferred[None]
    """Set by startService: fires once every listener and the admin endpoint are up; if starting
    fails, errbacks with that failure after it has been logged and the reactor told to stop."""

    def __init__(self, config: Config, reactor: IReactorCore | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor  # type: ignore[assignment]
        self.gateway = Gateway(config, reactor)
        self.admin_port: IListeningPort | None = None
        self.approvals_listener: Any = None  # an ApprovalsListener while approvals.bind is served

    def startService(self) -> None:
        super().startService()
        d = self.gateway.start()

        def started(_: Any) -> Any:
            bind = self.gateway.config.admin.bind
            if bind is None:
                return None
            return listen_admin(self.gateway.reactor, bind, self.gateway.health, self.gateway.metrics.render,
                                self.gateway.ready).addCallback(self._admin_started)

        def approvals_listening(_: Any) -> Any:
            settings = self.gateway.config.approvals
            if settings is None or settings.bind is None or self.gateway.approvals is None:
                return None
            # Imported here: the listener uses gatekeeper.proxy.tls, whose package imports this module.
            from gatekeeper.approvals.listener import ApprovalsListener

            assert self.gateway.identity is not None  # the config loader requires identity.jwt with approvals
            self.approvals_listener = ApprovalsListener(self.gateway.reactor, settings, self.gateway.approvals,
                                                        self.gateway.identity)
            return self.approvals_listener.start().addCallback(
                lambda listener: log.info("approvals API and approver page on {url}", url=listener.url))

        def failed(f: Any) -> Any:
            log.critical("gateway failed to start: {err}", err=f.getErrorMessage())
            sys.stderr.write(f"gatekeeper: failed to start: {f.getErrorMessage()}\n")
            reactor = self.gateway.reactor
            reactor.addSystemEventTrigger("after", "shutdown", os._exit, 3)
            reactor.stop()
            return f

        self.started = d.addCallback(started).addCallback(approvals_listening).addErrback(failed)
        self._install_sighup()

    def _install_sighup(self) -> None:
        """SIGHUP reloads policies and data; client connections stay up."""
        if threading.current_thread() is not threading.main_thread():
            return
        reactor = self.gateway.reactor

        def on_hup(signum: int, frame: Any) -> None:
            reactor.callFromThread(self.reload)

        signal.signal(signal.SIGHUP, on_hup)

    def reload(self) -> Any:
        gateway = self.gateway
        secret = {"name": "upstream.sasl.password", "result": "loaded"}
        try:
            gateway.load_secrets()
            log.info("broker credentials re-read; new upstream connections use them")
        except Exception as e:
            secret = {"name": "upstream.sasl.password", "result": "failed", "error": str(e)}
            log.error("re-reading broker credentials failed, the previous ones stay: {err}", err=str(e))
        if gateway.identity is not None:
            gateway.identity.refresh_jwks()
        secrets = [secret] if gateway.config.upstream.sasl is not None else []
        for name, adapter in gateway.adapters.items():
            reload_adapter = getattr(adapter, "reload", None)
            if reload_adapter is None:
                continue
            try:
                secrets.extend(reload_adapter())
            except Exception as e:  # the adapter's bug: its previous secrets stay
                log.failure("the {name} adapter failed to reload", name=name)
                secrets.append({"name": f"adapter {name}", "result": "failed", "error": str(e)})
        if gateway.audit is not None and secrets:
            gateway.audit.record("secret_reload", {"secrets": secrets})  # which, never the value
        old = gateway.engine.revision
        d = gateway.engine.reload()
        d.addCallback(lambda _: gateway.audit_policy("loaded", old, "sighup"))

        def refused(f: Any) -> None:  # logged by the engine, the old policies stay
            gateway.audit_policy("failed", old, "sighup", f.getErrorMessage())

        d.addErrback(refused)
        return d

    def _admin_started(self, port: IListeningPort) -> None:
        self.admin_port = port

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        """SIGTERM (or any stop): no new connections, requests in flight answered up to
        ``shutdown.grace``, then everything closed. The admin endpoint stays up meanwhile, so
        ``/readyz`` says "shutting down" to the load balancer."""
        super().stopService()
        ds = []
        if self.approvals_listener is not None:
            ds.append(self.approvals_listener.stop())
        ds.append(self.gateway.stop(self.gateway.config.shutdown.grace))
        yield defer.gatherResults(ds)
        if self.admin_port is not None:
            yield defer.maybeDeferred(self.admin_port.stopListening)
