"""A real OPA server for integration tests: ``opa run --server`` on a free loopback port."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from harness import deps
from harness.ports import LOOPBACK, free_port
from harness.processes import terminate


class OpaError(RuntimeError):
    """The test OPA server failed to start (see the log tail in the message)."""


def opa_version() -> str:
    """The version line of the pinned ``opa`` binary, e.g. ``"1.22.2"``."""
    proc = subprocess.run(
        [str(deps.ensure_opa()), "version"], capture_output=True, text=True, timeout=30,
        check=True,
    )
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Version":
            return value.strip()
    raise OpaError(f"no 'Version:' line in `opa version` output:\n{proc.stdout}")


class OpaServer:
    """``opa run --server`` on 127.0.0.1; a context manager. ``restart()`` keeps the port.

    ``paths`` (policy files, data files or directories) are loaded at start, as for
    ``opa run``; policies can also be pushed later through the REST API at :attr:`url`.
    """

    def __init__(
        self,
        paths: Sequence[Path | str] = (),
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
        log_level: str = "info",
        request_log_level: str = "error",
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.port = port or 0
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self.request_log_level = request_log_level
        self._logdir = Path(tempfile.mkdtemp(prefix="gatekeeper-opa-"))
        self.log_path = self._logdir / "opa.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the REST API, ``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start OPA (on the same port as before if it ran already) and wait for /health."""
        if self.running:
            raise OpaError("OPA already running")
        if not self.port:
            self.port = free_port()
        cmd = [
            str(deps.ensure_opa()), "run", "--server", "--addr", f"{LOOPBACK}:{self.port}",
            "--skip-version-check", "--log-level", self.log_level,
            "--log-level-request", self.request_log_level, "--log-format", "text",
            *self.extra_args, *self.paths,
        ]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM OPA, SIGKILL it after ``timeout`` seconds. The log file is kept."""
        proc, self._proc = self._proc, None
        terminate(proc, timeout)

    def kill(self) -> None:
        """SIGKILL OPA at once, as a crash would (for fail-closed tests)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        """Stop OPA if running and start it again on the same port (state is lost)."""
        self.stop()
        self.start()

    def healthy(self) -> bool:
        """True if GET /health answers 200."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1.0) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.is_file():
            return "(no OPA output)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        """Stop OPA and remove its log directory."""
        self.stop()
        shutil.rmtree(self._logdir, ignore_errors=True)

    def __enter__(self) -> OpaServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not self.healthy():
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise OpaError(f"opa exited with {code} while starting\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise OpaError(
                    f"OPA not healthy after {self.startup_timeout}s at {self.url}\n{self.log_tail()}"
                )
            time.sleep(0.05)
