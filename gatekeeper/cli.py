"""The ``gatekeeper`` command."""

from __future__ import annotations

import argparse
import sys

from gatekeeper import __version__
from gatekeeper.config import ConfigError, load_config

__all__ = ["main"]


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as e:
        for line in e.errors:
            print(f"gatekeeper: config error: {line}", file=sys.stderr)
        return 2
    for lst in config.listeners:
        print(f"listener {lst.name}: {lst.bind} (broker ports {lst.broker_ports[0]}-{lst.broker_ports[-1]})")
    print(f"upstream: {', '.join(map(str, config.upstream.bootstrap_servers))}")
    print(f"policy engine: {config.policy.engine}")
    return 0


def _run(args: argparse.Namespace) -> int:
    """Run in the foreground (same as ``twistd -n gatekeeper --config FILE``)."""
    from twisted.scripts.twistd import run as twistd_run

    sys.argv = ["twistd", "--nodaemon", "--pidfile=", "gatekeeper", "--config", args.config]
    twistd_run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gatekeeper", description="Gatekeeper policy gateway for Kafka")
    parser.add_argument("--version", action="version", version=f"gatekeeper {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check-config", help="validate a config file and print what it sets up")
    p.add_argument("config")
    p.set_defaults(func=_check_config)
    p = sub.add_parser("run", help="run the gateway in the foreground")
    p.add_argument("--config", "-c", required=True)
    p.set_defaults(func=_run)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
