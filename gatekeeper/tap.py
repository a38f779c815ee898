"""``twistd gatekeeper``: options and service construction."""

from __future__ import annotations

import sys
from typing import Any

from twisted.application import service
from twisted.logger import ILogObserver
from twisted.python import usage
from twisted.python.components import Componentized

from gatekeeper.config import ConfigError, load_config
from gatekeeper.logs import log_observer, open_log
from gatekeeper.proxy.gateway import GatewayService

__all__ = ["Options", "makeService"]


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
