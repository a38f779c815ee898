"""The ``gatekeeper`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    if config.audit is not None:
        where = config.audit.directory if config.audit.sink == "file" else (
            f"topic {config.audit.topic}" if config.audit.sink == "kafka" else "plugin options")
        print(f"audit: {config.audit.sink} sink ({where}), instance {config.audit.instance}, "
              f"on_failure {config.audit.on_failure}")
    return 0


def _run(args: argparse.Namespace) -> int:
    """Run in the foreground (same as ``twistd -n gatekeeper --config FILE``)."""
    from twisted.scripts.twistd import run as twistd_run

    sys.argv = ["twistd", "--nodaemon", "--pidfile=", "gatekeeper", "--config", args.config]
    twistd_run()
    return 0


def _policy_test(args: argparse.Namespace) -> int:
    from gatekeeper.policy.authoring import OpaMissing, run_tests

    try:
        return run_tests(Path(args.policies), verbose=args.verbose)
    except OpaMissing as e:
        print(f"gatekeeper: {e}", file=sys.stderr)
        return 3


def _policy_eval(args: argparse.Namespace) -> int:
    import json

    from gatekeeper.policy.authoring import OpaMissing, eval_input

    try:
        policy_input = json.loads(Path(args.input).read_text())
    except (OSError, ValueError) as e:
        print(f"gatekeeper: cannot read the input document {args.input}: {e}", file=sys.stderr)
        return 2
    try:
        out = eval_input(Path(args.policies), Path(args.data) if args.data else None, args.decision, policy_input)
    except OpaMissing as e:
        print(f"gatekeeper: {e}", file=sys.stderr)
        return 3
    print(json.dumps(out, indent=2, sort_keys=True))
    return 1 if "error" in out else 0


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
    policy = sub.add_parser(
        "policy", help="policy authoring: run the Rego tests, evaluate an input, replay the audit trail"
    )
    psub = policy.add_subparsers(dest="policy_command", required=True)
    p = psub.add_parser("test", help="run opa test over the policies")
    p.add_argument("policies", nargs="?", default="policies")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=_policy_test)
    p = psub.add_parser("eval", help="print the decision for one policy input document")
    p.add_argument("--input", "-i", required=True, help="a JSON policy input document")
    p.add_argument("--policies", default="policies")
    p.add_argument("--data", help="a data document (policies/data.json is loaded with the policies)")
    p.add_argument("--decision", default="gatekeeper/decision", help="data path of the decision rule")
    p.set_defaults(func=_policy_eval)
    from gatekeeper.approvals.cli import add_commands

    add_commands(sub)
    from gatekeeper.audit.cli import add_commands as add_audit_commands
    from gatekeeper.policy.replay import add_parsers

    add_parsers(psub)
    add_audit_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
