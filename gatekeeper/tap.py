"""``twistd gatekeeper``: options and service construction."""

from __future__ import annotations

import sys
from typing import Any

from twisted.application import service
from twisted.python import usage

from gatekeeper.config import ConfigError, load_config
from gatekeeper.proxy.gateway import GatewayService

__all__ = ["Options", "makeService"]


class Options(usage.Options):
    synopsis = "--config FILE"
    optParameters = [["config", "c", None, "Path to the Gatekeeper YAML config file."]]

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("--config FILE is required")


def makeService(options: Options, reactor: Any = None) -> service.IService:
    try:
        config = load_config(options["config"])
    except ConfigError as e:
        for line in e.errors:
            sys.stderr.write(f"gatekeeper: config error: {line}\n")
        raise SystemExit(2) from e
    return GatewayService(config, reactor)
