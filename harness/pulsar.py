"""A real Apache Pulsar standalone broker for the Pulsar adapter's integration tests.

    with PulsarBroker() as broker:
        client = pulsar.Client(broker.service_url)

The broker runs ``org.apache.pulsar.PulsarStandaloneStarter`` from the jars
``deps.ensure_pulsar_jars()`` resolves, with the machine's Java, in a fresh temporary directory
(its data paths are relative to it: with no ``data/standalone/zookeeper`` there it keeps its
metadata in RocksDB and runs an embedded bookie, no ZooKeeper), loopback only, on ports picked at
run time, functions worker and stream storage off. It is ready when the admin API answers for
``public/default`` (an open port is not enough: the namespace is created after the port opens).

Optionally the broker also listens with TLS (``tls=(cert_file, key_file, ca_file)``: a
``pulsar+ssl`` port, :attr:`PulsarBroker.tls_port`) and requires tokens (``token_secret``: HS256
tokens of :meth:`PulsarBroker.token`, whose ``sub`` is the role; Pulsar's own authorization on,
``admin`` a super user, ``proxy_roles`` the broker's proxyRoles). The harness's admin calls then
carry an ``admin`` token.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from harness import deps
from harness.ports import LOOPBACK, free_ports
from harness.processes import terminate

__all__ = ["PulsarBroker", "PulsarBrokerError"]

# What Pulsar's own start script passes to Java 17 (netty, bookkeeper and the stats need them).
_JAVA_OPENS = (
    "java.base/java.io", "java.base/java.lang", "java.base/java.nio", "java.base/java.util",
    "java.base/java.util.zip", "java.base/jdk.internal.misc", "java.base/jdk.internal.platform",
    "java.base/sun.net", "java.base/sun.nio.ch", "java.management/sun.management",
    "jdk.management/com.sun.management.internal",
)


class PulsarBrokerError(RuntimeError):
    """The test broker failed to start or an admin call failed (see the log tail)."""


class PulsarBroker:
    """A Pulsar standalone broker in a temporary directory; a context manager."""

    def __init__(self, *, heap: str = "256m", direct_memory: str = "256m", startup_timeout: float = 120.0,
                 extra_config: Mapping[str, str] | None = None, keep_workdir: bool = False,
                 tls: tuple[Path, Path, Path] | None = None, token_secret: bytes | None = None,
                 proxy_roles: tuple[str, ...] = ()) -> None:
        self.heap = heap
        self.direct_memory = direct_memory
        self.startup_timeout = startup_timeout
        self.extra_config = dict(extra_config or {})
        self.keep_workdir = keep_workdir
        self.tls = tls
        self.token_secret = token_secret
        self.proxy_roles = proxy_roles
        self.tls_port = 0
        self.workdir: Path | None = None
        self.port = self.web_port = self.bookie_port = 0
        self.started_in: float | None = None  # seconds from launch to ready
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def service_url(self) -> str:
        return f"pulsar://{LOOPBACK}:{self.port}"

    @property
    def address(self) -> str:
        """``host:port`` of the binary protocol listener."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def tls_address(self) -> str:
        """``host:port`` of the TLS binary protocol listener (with ``tls``)."""
        return f"{LOOPBACK}:{self.tls_port}"

    def token(self, role: str) -> str:
        """A token the broker accepts for ``role`` (with ``token_secret``)."""
        import jwt

        assert self.token_secret is not None, "the broker was started without token_secret"
        return jwt.encode({"sub": role}, self.token_secret, algorithm="HS256")

    @property
    def web_url(self) -> str:
        return f"http://{LOOPBACK}:{self.web_port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            raise PulsarBrokerError("broker already running")
        classpath = deps.pulsar_classpath()
        self.workdir = Path(tempfile.mkdtemp(prefix="gatekeeper-pulsar-"))
        began = time.monotonic()
        try:
            self.port, self.web_port, self.bookie_port, self.tls_port = free_ports(4)
            conf = self.workdir / "standalone.conf"
            conf.write_text("".join(f"{k}={v}\n" for k, v in self._config().items()))
            log4j = self.workdir / "log4j2.properties"
            log4j.write_text(deps.log4j2_properties("INFO", self.log_path))
            cmd = [
                deps.java_executable(), f"-Xmx{self.heap}", f"-Xms{self.heap}",
                f"-XX:MaxDirectMemorySize={self.direct_memory}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                "-Dio.netty.tryReflectionSetAccessible=true", "-Dpulsar.allocator.exit_on_oom=true",
                f"-Dlog4j2.configurationFile={log4j}",
                *[f"--add-opens={module}=ALL-UNNAMED" for module in _JAVA_OPENS],
                "-cp", classpath, "org.apache.pulsar.PulsarStandaloneStarter",
                "--config", str(conf), "-nfw", "-nss", "--bookkeeper-port", str(self.bookie_port),
            ]
            with open(self.console_path, "wb") as console:
                self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                              cwd=self.workdir, start_new_session=True)
            self._wait_ready()
            self.started_in = time.monotonic() - began
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the broker, SIGKILL it after ``timeout`` seconds, remove the temp dir."""
        proc, self._proc = self._proc, None
        terminate(proc, timeout)
        if self.workdir is not None and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> PulsarBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- the admin API ----------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """One admin REST call (``path`` from ``/admin/v2/...``): the decoded JSON body or None."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.web_url + path, data=data, method=method, headers=self._headers())
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text = resp.read()
        except urllib.error.HTTPError as e:
            raise PulsarBrokerError(f"{method} {path}: HTTP {e.code}: {e.read()[:500]!r}") from e
        return json.loads(text) if text.strip() else None

    def topic_stats(self, topic: str) -> dict[str, Any]:
        """``GET .../stats`` of a full topic name ``persistent://tenant/namespace/topic``."""
        domain, _, rest = topic.partition("://")
        return dict(self.admin("GET", f"/admin/v2/{domain}/{rest}/stats"))

    def connected_addresses(self, topic: str) -> set[str]:
        """The ``host:port`` of every producer and consumer connection the broker has on ``topic``."""
        stats = self.topic_stats(topic)
        found = {p.get("address", "") for p in stats.get("publishers", [])}
        for sub in stats.get("subscriptions", {}).values():
            found |= {c.get("address", "") for c in sub.get("consumers", [])}
        return {a.lstrip("/") for a in found if a}

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.log_path, self.console_path):
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(no broker output)"

    @property
    def log_path(self) -> Path:
        return self._dir / "pulsar.log"

    @property
    def console_path(self) -> Path:
        return self._dir / "console.log"

    # -- internals -----------------------------------------------------------------------------

    @property
    def _dir(self) -> Path:
        if self.workdir is None:
            raise PulsarBrokerError("broker not started")
        return self.workdir

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token_secret is not None:
            headers["Authorization"] = f"Bearer {self.token('admin')}"
        return headers

    def _config(self) -> dict[str, str]:
        config = {
            "clusterName": "standalone",
            "bindAddress": LOOPBACK,
            "advertisedAddress": LOOPBACK,
            "brokerServicePort": str(self.port),
            "webServicePort": str(self.web_port),
            "listeningInterface": "lo",
            "allowLoopback": "true",
            "managedLedgerDefaultEnsembleSize": "1",
            "managedLedgerDefaultWriteQuorum": "1",
            "managedLedgerDefaultAckQuorum": "1",
            "functionsWorkerEnabled": "false",
            "systemTopicEnabled": "true",
            "topicLevelPoliciesEnabled": "false",
            "allowAutoTopicCreation": "true",
            "allowAutoTopicCreationType": "non-partitioned",
            "brokerDeleteInactiveTopicsEnabled": "false",
            "journalDirectory": "data/standalone/journal",
            "ledgerDirectories": "data/standalone/ledgers",
        }
        if self.tls is not None:
            cert, key, ca = self.tls
            config.update({"brokerServicePortTls": str(self.tls_port), "tlsCertificateFilePath": str(cert),
                           "tlsKeyFilePath": str(key), "tlsTrustCertsFilePath": str(ca)})
        if self.token_secret is not None:
            secret = base64.b64encode(self.token_secret).decode()
            config.update({
                "authenticationEnabled": "true", "authorizationEnabled": "true",
                "authenticationProviders": "org.apache.pulsar.broker.authentication.AuthenticationProviderToken",
                "tokenSecretKey": f"data:;base64,{secret}", "superUserRoles": "admin",
                "proxyRoles": ",".join(self.proxy_roles),
                "brokerClientAuthenticationPlugin": "org.apache.pulsar.client.impl.auth.AuthenticationToken",
                "brokerClientAuthenticationParameters": f"token:{self.token('admin')}",
            })
        config.update(self.extra_config)
        return config

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise PulsarBrokerError(f"pulsar standalone exited with {code}\n{self.log_tail()}")
            if self._answers_admin():
                return
            time.sleep(0.25)
        raise PulsarBrokerError(f"pulsar standalone not ready within {self.startup_timeout}s\n{self.log_tail()}")

    def _answers_admin(self) -> bool:
        try:
            req = urllib.request.Request(f"{self.web_url}/admin/v2/namespaces/public/default", headers=self._headers())
            with urllib.request.urlopen(req, timeout=2) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False
