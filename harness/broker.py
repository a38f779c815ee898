"""A real single-node Kafka (KRaft broker + controller) for integration tests and benchmarks.

    with KafkaBroker() as broker:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)

The broker runs from the jars ``deps.ensure_kafka_jars()`` resolves, with the machine's Java,
in a temporary directory, on loopback ports picked at run time. Listeners:

- ``PLAINTEXT`` at :attr:`KafkaBroker.bootstrap`, no authentication;
- ``SASL_PLAINTEXT`` at :attr:`KafkaBroker.sasl_bootstrap`, mechanisms PLAIN, SCRAM-SHA-256 and
  SCRAM-SHA-512, one PLAIN user and one SCRAM user (random passwords, see the attributes), and
  ``extra_users`` (name -> password) for every mechanism;
- ``CONTROLLER`` for KRaft itself;
- with ``relay_port``, a fourth listener ``RELAY`` (PLAINTEXT) at :attr:`KafkaBroker.relay_target`
  that the broker *advertises* at ``127.0.0.1:relay_port``: a client bootstrapping through a relay
  on that port (``harness.relay``) is told to come back through the relay, so all its traffic
  crosses it, while the other listeners stay direct.

A second node for a two-node cluster joins a started one, broker only (no CONTROLLER listener):

    with KafkaBroker() as first, KafkaBroker(join=first) as second:   # node ids 1 and 2

It takes the first node's cluster id, controller quorum and users (the SCRAM credentials live in
the cluster's metadata, the PLAIN ones in each node's JAAS config, so both nodes accept both).
Stop it before the first (the ``with`` above does): a broker whose controller is gone waits for
it until SIGKILLed.

:meth:`KafkaBroker.kill` (SIGKILL) and :meth:`KafkaBroker.restart` keep the data directory and
every port, as a crashed and restarted broker would.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from harness import deps, javatools
from harness.ports import LOOPBACK, free_ports, port_open
from harness.processes import terminate

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
_PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


class BrokerError(RuntimeError):
    """The test broker failed to start or a tool run against it failed (see the log tail)."""


class KafkaBroker:
    """A KRaft Kafka node in a temporary directory (broker and controller, or with ``join`` a
    broker only, in that node's cluster); a context manager."""

    def __init__(
        self,
        *,
        heap: str = "1g",
        startup_timeout: float = 60.0,
        extra_config: Mapping[str, str] | None = None,
        scram_user: str = "gatekeeper",
        plain_user: str = "gatekeeper",
        extra_users: Mapping[str, str] | None = None,
        keep_workdir: bool = False,
        relay_port: int | None = None,
        join: KafkaBroker | None = None,
        node_id: int | None = None,
    ) -> None:
        self.heap = heap
        self.startup_timeout = startup_timeout
        self.extra_config = dict(extra_config or {})
        self.keep_workdir = keep_workdir
        self.scram_user = scram_user
        self.scram_password = secrets.token_urlsafe(16)
        self.plain_user = plain_user
        self.plain_password = secrets.token_urlsafe(16)
        self.extra_users = dict(extra_users or {})  # more PLAIN and SCRAM users: name -> password
        self.cluster_id = _cluster_id()
        self.join = join  # the node whose controller this broker-only node joins (see the module doc)
        self.node_id: int = node_id if node_id is not None else (1 if join is None else join.node_id + 1)
        if join is not None:  # the same cluster and the same users as the node joined
            self.cluster_id = join.cluster_id
            self.scram_user, self.scram_password = join.scram_user, join.scram_password
            self.plain_user, self.plain_password = join.plain_user, join.plain_password
            self.extra_users = {**join.extra_users, **self.extra_users}
        self.port = 0
        self.sasl_port = 0
        self.controller_port = 0
        self.relay_port = relay_port  # where the RELAY listener is advertised (a relay listens there)
        self.relay_listener_port = 0  # where the RELAY listener really listens
        self.workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- addresses and client settings -------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of the PLAINTEXT listener."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of the SASL_PLAINTEXT listener."""
        return f"{LOOPBACK}:{self.sasl_port}"

    @property
    def relay_target(self) -> str:
        """``127.0.0.1:PORT`` where the RELAY listener really listens (what a relay forwards to)."""
        return f"{LOOPBACK}:{self.relay_listener_port}"

    @property
    def relay_bootstrap(self) -> str:
        """``127.0.0.1:relay_port``: the RELAY listener's advertised address (the relay's)."""
        return f"{LOOPBACK}:{self.relay_port}"

    @property
    def log_path(self) -> Path:
        """The broker's log4j log file (INFO)."""
        return self._dir / "server.log"

    @property
    def console_path(self) -> Path:
        """The broker process's stdout and stderr."""
        return self._dir / "console.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker process's id, None when it is not running."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def credentials(self, mechanism: str) -> tuple[str, str]:
        """(user, password) of the built-in user for ``mechanism``."""
        if mechanism == "PLAIN":
            return self.plain_user, self.plain_password
        if mechanism in SCRAM_MECHANISMS:
            return self.scram_user, self.scram_password
        raise ValueError(f"unsupported SASL mechanism {mechanism!r}")

    def kafka_python_sasl_config(
        self, mechanism: str = "SCRAM-SHA-512", password: str | None = None
    ) -> dict[str, Any]:
        """kafka-python keyword arguments for the SASL listener as the built-in user."""
        user, default_password = self.credentials(mechanism)
        return {
            "bootstrap_servers": self.sasl_bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": mechanism,
            "sasl_plain_username": user,
            "sasl_plain_password": default_password if password is None else password,
        }

    def java_sasl_properties(self, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
        """Java client properties (``--command-config``) for the SASL listener."""
        user, password = self.credentials(mechanism)
        module = _PLAIN_MODULE if mechanism == "PLAIN" else _SCRAM_MODULE
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism,
            "sasl.jaas.config": f'{module} required username="{user}" password="{password}";',
        }

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Format storage, start the broker and wait until it answers requests.

        Starting again after :meth:`stop` gives a new, empty cluster on new ports (use
        :meth:`restart` after :meth:`kill` to keep them).
        """
        if self.running:
            raise BrokerError("broker already running")
        if self.join is not None and not self.join.running:
            raise BrokerError("the node to join is not running: start it first")
        self.workdir = Path(tempfile.mkdtemp(prefix="gatekeeper-kafka-"))
        try:
            self.port, self.sasl_port, self.controller_port, self.relay_listener_port = free_ports(4)
            props = self._dir / "server.properties"
            props.write_text(_properties_text(self._server_properties()))
            log4j = self._dir / "log4j2.properties"
            log4j.write_text(deps.log4j2_properties("INFO", self.log_path))
            self._format(props)
            self._launch()
        except BaseException:
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; the data directory and the ports are kept."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self, timeout: float | None = None) -> None:
        """Start the broker again after :meth:`kill`: same data directory, same ports, same cluster.

        Waits until it answers requests again (log recovery first). A port still held by the
        kernel after the kill is retried until ``timeout`` (default: the start-up timeout)."""
        if self.running:
            raise BrokerError("broker already running")
        self._dir  # noqa: B018 (raises if never started)
        self._launch(timeout)

    def _launch(self, timeout: float | None = None) -> None:
        with open(self.console_path, "ab") as console:
            self._proc = subprocess.Popen(
                [
                    deps.java_executable(), f"-Xmx{self.heap}", "-Xms256m",
                    "-XX:+UseG1GC", "-Djava.awt.headless=true",
                    f"-Dlog4j2.configurationFile={self._dir / 'log4j2.properties'}",
                    "-cp", deps.kafka_classpath(), "kafka.Kafka", str(self._dir / "server.properties"),
                ],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                cwd=self._dir, start_new_session=True,
            )
        self._wait_ready(timeout)

    def stop_process(self, timeout: float = 20.0) -> None:
        """SIGTERM the broker (SIGKILL after ``timeout``) but keep its directory and ports, as a
        clean shutdown would: :meth:`start_process` (or :meth:`restart`) brings it back."""
        proc, self._proc = self._proc, None
        terminate(proc, timeout)

    def start_process(self) -> None:
        """Start the broker again after :meth:`stop_process`: same ports, same data."""
        self.restart()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the broker, SIGKILL it after ``timeout`` seconds, remove the temp dir."""
        proc, self._proc = self._proc, None
        terminate(proc, timeout)
        if self.workdir is not None and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers for tests -----------------------------------------------------------------

    def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, str] | None = None,
        exist_ok: bool = True,
    ) -> None:
        """Create ``name`` (replication factor 1) and wait until every partition has a leader.

        With ``exist_ok`` an existing topic of that name is fine (tests share one broker)."""
        from kafka import KafkaAdminClient
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            spec = {"num_partitions": partitions, "replication_factor": 1,
                    "configs": dict(config or {})}
            try:
                admin.create_topics({name: spec})
            except TopicAlreadyExistsError:
                if not exist_ok:
                    raise
            admin.wait_for_topics([name])
        finally:
            admin.close()

    def set_scram_password(
        self, user: str, password: str, mechanism: str = "SCRAM-SHA-512", wait: float = 10.0
    ) -> None:
        """Create or change a SCRAM credential with Kafka's own ``kafka-configs`` tool.

        Waits (up to ``wait`` seconds) until the SASL listener accepts the new password.
        """
        if mechanism not in SCRAM_MECHANISMS:
            raise ValueError(f"not a SCRAM mechanism: {mechanism!r}")
        args = [
            "--bootstrap-server", self.bootstrap, "--alter", "--entity-type", "users",
            "--entity-name", user,
            "--add-config", f"{mechanism}=[iterations=4096,password={password}]",
        ]
        try:
            javatools.run_tool(javatools.CONFIG_COMMAND, args, heap="256m")
        except javatools.JavaToolError as exc:
            raise BrokerError(f"kafka-configs could not set the password: {exc}") from exc
        if user == self.scram_user:
            self.scram_password = password
        deadline = time.monotonic() + wait
        while not self.sasl_login_ok(user, password, mechanism):
            if time.monotonic() > deadline:
                raise BrokerError(f"new {mechanism} password for {user!r} not accepted in {wait}s")
            time.sleep(0.2)

    def sasl_login_ok(self, user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> bool:
        """True if the SASL listener authenticates ``user`` with ``password`` (kafka-python).

        A refused login takes about 3 s: kafka-python retries it until its bootstrap timeout.
        """
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=mechanism, sasl_plain_username=user,
                sasl_plain_password=password, request_timeout_ms=3000,
                bootstrap_timeout_ms=3000,
            )
        except KafkaError:
            return False
        try:
            admin.describe_cluster()
            return True
        except KafkaError:
            return False
        finally:
            admin.close()

    def failed_authentications(self) -> list[str]:
        """The broker log's "Failed authentication" lines (SASL logins it refused), in order."""
        text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        return [line for line in text.splitlines() if "Failed authentication" in line]

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` of the broker log and of its console output."""
        parts = []
        for path in (self.log_path, self.console_path):
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(no broker output)"

    # -- internals -----------------------------------------------------------------------------

    @property
    def _dir(self) -> Path:
        if self.workdir is None:
            raise BrokerError("broker not started")
        return self.workdir

    def _server_properties(self) -> dict[str, str]:
        plain = {self.plain_user: self.plain_password, **self.extra_users}
        plain_users = " ".join(f'user_{user}="{password}"' for user, password in plain.items())
        voter = self if self.join is None else self.join
        listeners = f"PLAINTEXT://{LOOPBACK}:{self.port},SASL_PLAINTEXT://{LOOPBACK}:{self.sasl_port}"
        if self.join is None:
            listeners += f",CONTROLLER://{LOOPBACK}:{self.controller_port}"
        props = {
            "process.roles": "broker,controller" if self.join is None else "broker",
            "node.id": str(self.node_id),
            "controller.quorum.voters": f"{voter.node_id}@{LOOPBACK}:{voter.controller_port}",
            "listeners": listeners,
            "advertised.listeners": (
                f"PLAINTEXT://{LOOPBACK}:{self.port},SASL_PLAINTEXT://{LOOPBACK}:{self.sasl_port}"
            ),
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "sasl.enabled.mechanisms": ",".join(("PLAIN", *SCRAM_MECHANISMS)),
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                f"{_PLAIN_MODULE} required {plain_users};"
            ),
            "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": (
                f"{_SCRAM_MODULE} required;"
            ),
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
                f"{_SCRAM_MODULE} required;"
            ),
            "log.dirs": str(self._dir / "data"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
        }
        if self.relay_port is not None:
            props["listeners"] += f",RELAY://{LOOPBACK}:{self.relay_listener_port}"
            props["advertised.listeners"] += f",RELAY://{LOOPBACK}:{self.relay_port}"
            props["listener.security.protocol.map"] += ",RELAY:PLAINTEXT"
        props.update(self.extra_config)
        return props

    def _format(self, props: Path) -> None:
        args = [
            "format", "--cluster-id", self.cluster_id, "--config", str(props),
            "--ignore-formatted",
        ]
        # SCRAM credentials are cluster metadata: the controller's format writes them, once.
        users = {self.scram_user: self.scram_password, **self.extra_users} if self.join is None else {}
        for mechanism in SCRAM_MECHANISMS:
            for user, password in users.items():
                args += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        try:
            javatools.run_tool(javatools.STORAGE_TOOL, args, heap="256m")
        except javatools.JavaToolError as exc:
            raise BrokerError(f"kafka-storage format failed: {exc}") from exc

    def _wait_ready(self, timeout: float | None = None) -> None:
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise BrokerError(f"Kafka broker exited with {code} while starting\n{self.log_tail()}")
            if port_open(self.port) and port_open(self.sasl_port) and self._answers_metadata():
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"Kafka broker not ready after {timeout}s on {self.bootstrap}\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def _answers_metadata(self) -> bool:
        """True once the broker answers with itself among the cluster's brokers (registered)."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap, request_timeout_ms=2000,
                bootstrap_timeout_ms=2000,
            )
        except KafkaError:
            return False
        try:
            brokers = admin.describe_cluster().get("brokers") or []
            return any(b.get("broker_id") == self.node_id and not b.get("is_fenced") for b in brokers)
        except KafkaError:
            return False
        finally:
            admin.close()


def _cluster_id() -> str:
    """A random KRaft cluster id (a base64url-encoded UUID, 22 characters).

    Never one that starts with '-' (1 in 64 would): kafka-storage would read it as an option, so
    Kafka's own Uuid.randomUuid() draws again in that case too."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _properties_text(props: Mapping[str, str]) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n")

    return "".join(f"{key}={escape(value)}\n" for key, value in props.items())
