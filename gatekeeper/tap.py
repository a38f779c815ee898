"""``twistd gatekeeper``: options and service construction."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from twisted.application import service
from twisted.logger import ILogObserver, Logger
from twisted.python import usage
from twisted.python.components import Componentized

from gatekeeper.config import ConfigError, load_config
from gatekeeper.logs import log_observer, open_log
from gatekeeper.proxy.dispatch import dispatch_directly
from gatekeeper.proxy.gateway import GatewayService

__all__ = ["Options", "makeService"]

log = Logger()


class Options(usage.Options):
    synopsis = "--config FILE"
    optParameters = [["config", "c", None, "Path to the Gatekeeper YAML config file."]]

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("--config FILE is required")


class _TwistdGatewayService(GatewayService):
    """Under twistd: hands twistd the log observer (format, level, capped rotation) through
    the application's ``ILogObserver`` component, which twistd prefers to its own."""

    log_observer: Any = None

    def startService(self) -> None:
        super().startService()
        # The process is Gatekeeper's, so is its reactor: events go to the connections without
        # Twisted's per-event legacy log context (gatekeeper/proxy/dispatch.py).
        direct = dispatch_directly(self.gateway.reactor)
        log.info("reactor {reactor}: {how}", reactor=type(self.gateway.reactor).__name__,
                 how="events dispatched directly" if direct else "Twisted's own event dispatch")
        if threading.current_thread() is threading.main_thread():
            self.gateway.reactor.callWhenRunning(self._install_sigterm)

    def _install_sigterm(self) -> None:
        """SIGTERM stops gracefully (``stopService`` drains) and twistd then exits 0: the
        reactor's own handler would make twistd kill itself with SIGTERM at the end, an exit
        status that supervisors other than systemd report as a failure."""
        reactor = self.gateway.reactor

        def on_term(signum: int, frame: Any) -> None:
            reactor.callFromThread(self._stop_once)

        signal.signal(signal.SIGTERM, on_term)

    def _stop_once(self) -> None:
        if self.gateway.draining or not self.running:
            return
        log.info("received SIGTERM: shutting down, requests in flight get up to {grace:g}s (shutdown.grace)",
                 grace=self.gateway.config.shutdown.grace)
        self.gateway.reactor.stop()

    def setServiceParent(self, parent: Any) -> None:
        if self.log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)


def makeService(options: Options, reactor: Any = None) -> service.IService:
    try:
        config = load_config(options["config"])
    except ConfigError as e:
        for line in e.errors:
            sys.stderr.write(f"gatekeeper: config error: {line}\n")
        raise SystemExit(2) from e
    gateway = _TwistdGatewayService(config, reactor)
    twistd = getattr(options, "parent", None)
    if twistd is not None and not twistd.get("syslog") and not twistd.get("logger"):
        out = open_log(config.logging, twistd.get("logfile"), bool(twistd.get("nodaemon")))
        if out is not None:
            gateway.log_observer = log_observer(config.logging, out)
    return gateway
