"""The quickstart: a local Kafka broker and Gatekeeper in front of it, in the foreground.

    bash scripts/quickstart.sh [CONFIG]      # default config/example.yaml

The broker gets a free loopback port; the config's ``upstream.bootstrap_servers`` is pointed
at it and everything else (listeners, admin port) is used as written. Ctrl-C stops both.
Nothing depends on the working directory: the default config is found from this file's place in
the checkout, and a config's relative ``policies``/``data`` paths are relative to that config.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from gatekeeper.config import ConfigError, parse_config
from harness.broker import KafkaBroker

ROOT = Path(__file__).resolve().parents[1]  # the checkout: harness/ sits at its root
DEFAULT_CONFIG = ROOT / "config" / "example.yaml"


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else DEFAULT_CONFIG
    raw = yaml.safe_load(source.read_text())
    workdir = Path(tempfile.mkdtemp(prefix="gatekeeper-quickstart-"))
    print(f"quickstart: starting a Kafka broker (logs in {workdir})", flush=True)
    policy = raw.get("policy", {})
    for key in ("policies", "data"):  # the copy lives elsewhere: make its paths absolute
        if key in policy and not Path(policy[key]).is_absolute():
            policy[key] = str((source.parent / policy[key]).resolve())
    with KafkaBroker() as broker:
        raw["upstream"]["bootstrap_servers"] = [broker.bootstrap]
        try:
            config = parse_config(raw)
        except ConfigError as e:
            for line in e.errors:
                print(f"quickstart: config error in {source}: {line}", file=sys.stderr)
            return 2
        path = workdir / "gatekeeper.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        listener = config.listeners[0]
        print(
            "\n".join(
                [
                    "",
                    f"  Kafka broker (direct):   {broker.bootstrap}",
                    f"  Gatekeeper bootstrap:    {listener.advertised_host}:{listener.bind.port}",
                    f"  Admin (health, metrics): http://{config.admin.bind}/healthz  /metrics" if config.admin.bind else "",
                    f"  Config in use:           {path}",
                    "",
                    f"  Policy:                  {config.policy.engine} engine, {config.policy.policies}",
                    "  Topics demo, demo.* and audit.* are open to anyone (audit.* cannot be deleted);",
                    "  everything else is denied by the default policy. Try:",
                    f"    {sys.executable} -c \"from kafka import KafkaProducer as P; "
                    f"print(P(bootstrap_servers='{listener.advertised_host}:{listener.bind.port}').send('demo', b'hi').get(10))\"",
                    "  Ctrl-C stops Gatekeeper and the broker.",
                    "",
                ]
            ),
            flush=True,
        )
        twistd = Path(sys.executable).with_name("twistd")
        proc = subprocess.Popen([str(twistd), "-n", "--pidfile=", "gatekeeper", "--config", str(path)])
        signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            return proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
