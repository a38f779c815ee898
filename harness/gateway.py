"""Run Gatekeeper in front of a broker for tests, the quickstart and benchmarks.

Two ways: ``TwistdGateway`` starts a real ``twistd -n gatekeeper`` process; ``write_config``
gives the YAML both ways use (the in-process fixture builds a GatewayService from it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self

import attrs
import yaml

from harness.ports import LOOPBACK, free_port, free_port_range, port_open
from harness.processes import terminate

__all__ = ["GatewayPorts", "TwistdGateway", "write_config"]


@attrs.frozen
class GatewayPorts:
    bootstrap_port: int
    broker_ports: tuple[int, ...]
    admin_port: int

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.bootstrap_port}"


def write_config(path: Path, upstream: str, *, slots: int = 3, level: str = "info", extra: dict[str, Any] | None = None,
                 auth: dict[str, Any] | None = None, tls: dict[str, Any] | None = None) -> GatewayPorts:
    """Write a config for one listener in front of ``upstream`` on fresh loopback ports."""
    ports = GatewayPorts(free_port(), tuple(free_port_range(slots)), free_port())
    raw: dict[str, Any] = {
        "listeners": [
            {
                "name": "default",
                "bind": f"{LOOPBACK}:{ports.bootstrap_port}",
                "advertised_host": LOOPBACK,
                "broker_ports": f"{ports.broker_ports[0]}-{ports.broker_ports[-1]}",
            }
        ],
        "upstream": {"bootstrap_servers": [upstream]},
        "policy": {"engine": "allow-all"},
        "admin": {"bind": f"{LOOPBACK}:{ports.admin_port}"},
        "logging": {"level": level},
    }
    if auth is not None:
        raw["listeners"][0]["authentication"] = auth
    if tls is not None:
        raw["listeners"][0]["tls"] = tls
    for key, value in (extra or {}).items():
        # admin and logging settings add to the defaults above (the admin port stays bound).
        merge = key in ("admin", "logging") and isinstance(value, dict)
        raw[key] = {**raw[key], **value} if merge else value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return ports


def _extra_ports(extra: dict[str, Any]) -> list[int]:
    """Loopback ports the extra config sections bind (today: the approvals API)."""
    bind = (extra.get("approvals") or {}).get("bind")
    return [int(str(bind).rsplit(":", 1)[1])] if bind else []


class TwistdGateway:
    """``twistd -n gatekeeper --config FILE`` as a child process, logs to a file."""

    # Set in twistd's environment, over this process's. A class default too: the Pulsar and
    # mixed-protocol tests' subclasses write their own config and do not call this __init__.
    env: Mapping[str, str] = MappingProxyType({})

    def __init__(self, workdir: Path, upstream: str, *, level: str = "info", extra: dict[str, Any] | None = None,
                 auth: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> None:
        self.env = dict(env or {})
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "gatekeeper.yaml"
        self.log_path = self.workdir / "gatekeeper.log"
        self.ports = write_config(self.config_path, upstream, level=level, extra=extra, auth=auth)
        self.proc: subprocess.Popen[bytes] | None = None
        # Every port the config opens must be listening before start() returns (the approvals
        # API's listener may open after the Kafka listener; a test calling it then is refused).
        self.listening = [self.ports.bootstrap_port, self.ports.admin_port, *_extra_ports(extra or {})]

    @property
    def bootstrap(self) -> str:
        return self.ports.bootstrap

    def start(self, timeout: float = 30.0) -> Self:
        twistd = Path(sys.executable).with_name("twistd")
        cmd = [str(twistd), "-n", "--pidfile=", f"--logfile={self.log_path}", "gatekeeper", "--config", str(self.config_path)]
        # stderr to a file, not a pipe: a pipe nobody reads would block twistd once it filled.
        self.stderr_path = self.workdir / "twistd.stderr"
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **self.env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                detail = self.stderr_path.read_text(errors="replace")
                raise RuntimeError(f"twistd gatekeeper exited with {self.proc.returncode}: {detail}\n{self.log_tail()}")
            if all(port_open(port) for port in self.listening):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"twistd gatekeeper did not listen within {timeout}s\n{self.log_tail()}")

    def metric(self, prefix: str) -> float:
        """The sum of the /metrics series whose line starts with ``prefix``."""
        import urllib.request

        text = urllib.request.urlopen(f"http://{LOOPBACK}:{self.ports.admin_port}/metrics", timeout=10).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))

    def cpu_seconds(self) -> float:
        """The twistd process's CPU time (user + system), from /proc."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        """The twistd process's resident memory, from /proc."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc status")

    def reload(self) -> None:
        """SIGHUP: reload policies and data."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        terminate(self.proc, 10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL twistd, as a crash would; :meth:`start` again keeps the config and the ports."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self, *, crash: bool = False, timeout: float = 30.0) -> None:
        """Stop (SIGTERM, or SIGKILL with ``crash``) and start again on the same ports."""
        if crash:
            self.kill()
        else:
            self.stop()
        self.start(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
