"""Fetch, cache and locate the real Kafka and OPA the harness runs.

Kafka's jars come from Maven Central through ``harness/kafka/pom.xml``, Pulsar's (the standalone
broker the Pulsar adapter's tests run) through ``harness/pulsar_maven/pom.xml`` with a settings file
that mirrors every repository to Maven Central; OPA is built with
``go install`` at the version pinned in ``gatekeeper/policy/opa_version.py``. Both land in the
cache directory (``$GATEKEEPER_CACHE``, else ``~/.cache/gatekeeper``) and are fetched once.
The approver page's browser test drives Debian's ``chromium`` and ``chromium-driver`` packages,
installed with apt when ``/usr/bin/chromedriver`` is missing (nothing downloads a browser at
run time):

    python -m harness.deps      # from the repository root: ensure all, print their paths
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from gatekeeper.policy.opa_version import OPA_VERSION

KAFKA_VERSION = "4.3.1"
# kafka-clients pins slf4j-api 1.7.x, which Maven picks over the 2.x that log4j-slf4j2-impl
# needs; with 1.7.x on the classpath every Kafka log line goes to the NOP logger.
SLF4J_API_VERSION = "2.0.16"

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
# 4.0.8 does not resolve from Maven Central alone: two of its dependencies are not served there.
PULSAR_VERSION = "4.0.7"
PULSAR_POM = Path(__file__).resolve().parent / "pulsar_maven" / "pom.xml"
PULSAR_SETTINGS = Path(__file__).resolve().parent / "pulsar_maven" / "settings.xml"
_MARKER = ".complete"


class DependencyError(RuntimeError):
    """A tool the harness needs could not be fetched or found (the machine's setup)."""


def cache_dir() -> Path:
    """The harness cache: ``$GATEKEEPER_CACHE`` or ``~/.cache/gatekeeper`` (created)."""
    env = os.environ.get("GATEKEEPER_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "gatekeeper"
    path.mkdir(parents=True, exist_ok=True)
    return path


def kafka_home() -> Path:
    """Directory for this Kafka version: ``lib/`` with the jars, plus generated configs."""
    return cache_dir() / f"kafka-{KAFKA_VERSION}"


def java_executable() -> str:
    """The Java used for the broker and tools: ``$JAVA_HOME/bin/java``, else ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise DependencyError("no 'java' on PATH and no JAVA_HOME: install a JDK 17 or newer")
    return found


def kafka_classpath() -> str:
    """A ``-cp`` value holding every Kafka jar (ensures they are present)."""
    return str(ensure_kafka_jars() / "*")


def ensure_kafka_jars() -> Path:
    """Return the directory with Kafka's runtime jars, resolving them with Maven if needed.

    Idempotent: a marker file records the pom it was resolved from, so a changed pom or an
    interrupted download is resolved again. Safe to call from concurrent processes.
    """
    lib = kafka_home() / "lib"
    expected = _marker_text()
    if _lib_complete(lib, expected):
        return lib
    with _locked(_lock_file(kafka_home())):
        if _lib_complete(lib, expected):
            return lib
        staging = lib.with_name("lib.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _mvn(
            "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        )
        _check_slf4j(staging)
        (staging / _MARKER).write_text(expected)
        old = lib.with_name("lib.old")
        shutil.rmtree(old, ignore_errors=True)
        if lib.exists():
            lib.rename(old)
        staging.rename(lib)
        shutil.rmtree(old, ignore_errors=True)
    return lib


def pulsar_home() -> Path:
    """Directory for this Pulsar version: ``lib/`` with the broker's runtime jars."""
    return cache_dir() / f"pulsar-{PULSAR_VERSION}"


def pulsar_classpath() -> str:
    """A ``-cp`` value holding every Pulsar broker jar (ensures they are present)."""
    return str(ensure_pulsar_jars() / "*")


def ensure_pulsar_jars() -> Path:
    """Return the directory with the Pulsar broker's runtime jars, resolving them if needed.

    Pulsar's parent POM declares repositories besides Maven Central (and redefines
    ``central``); ``harness/pulsar_maven/settings.xml`` mirrors them all to Maven Central, so nothing
    else is asked. Idempotent and safe across processes, like :func:`ensure_kafka_jars`.
    """
    lib = pulsar_home() / "lib"
    expected = _pulsar_marker_text()
    needed = [f"pulsar-broker-{PULSAR_VERSION}.jar", f"pulsar-client-original-{PULSAR_VERSION}.jar"]
    if _complete(lib, expected, needed):
        return lib
    with _locked(_lock_file(pulsar_home())):
        if _complete(lib, expected, needed):
            return lib
        staging = lib.with_name("lib.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _mvn(
            "-s", str(PULSAR_SETTINGS), "-f", str(PULSAR_POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        )
        missing = [name for name in needed if not (staging / name).is_file()]
        if missing:
            raise DependencyError(f"{PULSAR_POM} resolved without {', '.join(missing)}")
        (staging / _MARKER).write_text(expected)
        old = lib.with_name("lib.old")
        shutil.rmtree(old, ignore_errors=True)
        if lib.exists():
            lib.rename(old)
        staging.rename(lib)
        shutil.rmtree(old, ignore_errors=True)
    return lib


def ensure_opa() -> Path:
    """Return the path of the pinned ``opa`` binary, building it with ``go install`` if needed."""
    target = cache_dir() / f"opa-{OPA_VERSION}"
    binary = target / "opa"
    if _is_executable(binary):
        return binary
    with _locked(_lock_file(target)):
        if _is_executable(binary):
            return binary
        go = shutil.which("go")
        if not go:
            raise DependencyError(f"no 'go' on PATH: needed to build opa {OPA_VERSION}")
        env = dict(os.environ, GOBIN=str(target), CGO_ENABLED=os.environ.get("CGO_ENABLED", "0"))
        _run([go, "install", f"github.com/open-policy-agent/opa@{OPA_VERSION}"], env=env)
        if not _is_executable(binary):
            raise DependencyError(f"go install finished but {binary} is missing")
    return binary


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
_CHROMIUM_PACKAGES = ("chromium", "chromium-driver")


def ensure_chromium() -> tuple[Path, Path]:
    """Return (chromium, chromedriver), installing Debian's packages with apt if needed.

    Idempotent: apt runs only when ``/usr/bin/chromedriver`` or ``/usr/bin/chromium`` is
    missing. Needs root (or passwordless sudo) and apt; otherwise says what to install.
    """
    if _is_executable(CHROMEDRIVER) and _is_executable(CHROMIUM):
        return CHROMIUM, CHROMEDRIVER
    with _locked(cache_dir() / "chromium.lock"):
        if _is_executable(CHROMEDRIVER) and _is_executable(CHROMIUM):
            return CHROMIUM, CHROMEDRIVER
        apt = shutil.which("apt-get")
        wanted = " ".join(_CHROMIUM_PACKAGES)
        if apt is None:
            raise DependencyError(f"{CHROMEDRIVER} is missing and there is no apt-get: install {wanted} (Debian packages)")
        prefix: list[str] = []
        if os.geteuid() != 0:
            sudo = shutil.which("sudo")
            if sudo is None:
                raise DependencyError(f"{CHROMEDRIVER} is missing: run 'apt-get install -y {wanted}' as root")
            prefix = [sudo, "-n"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = [*prefix, apt, "install", "-y", "--no-install-recommends", *_CHROMIUM_PACKAGES]
        try:
            _run(install, env=env)
        except DependencyError:
            _run([*prefix, apt, "update"], env=env)  # a fresh machine has no package lists yet
            _run(install, env=env)
        if not (_is_executable(CHROMEDRIVER) and _is_executable(CHROMIUM)):
            raise DependencyError(f"apt-get installed {wanted} but {CHROMIUM} or {CHROMEDRIVER} is missing")
    return CHROMIUM, CHROMEDRIVER


def log4j2_properties(level: str = "INFO", log_file: Path | None = None) -> str:
    """A log4j2 properties config: everything at ``level`` to ``log_file``, or to stderr."""
    if log_file is None:
        appender = ["appender.out.type = Console", "appender.out.target = SYSTEM_ERR"]
    else:
        appender = ["appender.out.type = File", f"appender.out.fileName = {log_file}"]
    lines = [
        "status = error",
        "name = gatekeeper-testing",
        *appender,
        "appender.out.name = OUT",
        "appender.out.layout.type = PatternLayout",
        "appender.out.layout.pattern = [%d] %p %m (%c)%n",
        f"rootLogger.level = {level}",
        "rootLogger.appenderRef.out.ref = OUT",
        # Chatty at INFO and of no use when reading a failed test's broker log.
        "logger.clients.name = org.apache.kafka.clients",
        "logger.clients.level = WARN",
        "logger.request.name = kafka.request.logger",
        "logger.request.level = WARN",
        "logger.config.name = org.apache.kafka.common.config.AbstractConfig",
        "logger.config.level = WARN",
    ]
    return "\n".join(lines) + "\n"


def _marker_text() -> str:
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    return f"kafka {KAFKA_VERSION}\npom-sha256 {digest}\nslf4j-api {SLF4J_API_VERSION}\n"


def _pulsar_marker_text() -> str:
    digest = hashlib.sha256(PULSAR_POM.read_bytes() + PULSAR_SETTINGS.read_bytes()).hexdigest()
    return f"pulsar {PULSAR_VERSION}\npom-and-settings-sha256 {digest}\n"


def _lib_complete(lib: Path, expected: str) -> bool:
    return _complete(lib, expected, [f"kafka_2.13-{KAFKA_VERSION}.jar", f"kafka-tools-{KAFKA_VERSION}.jar"])


def _complete(lib: Path, expected: str, needed: list[str]) -> bool:
    marker = lib / _MARKER
    if not marker.is_file() or marker.read_text() != expected:
        return False
    return all((lib / name).is_file() for name in needed)


def _check_slf4j(lib: Path) -> None:
    """The pom pins slf4j-api 2.x; with 1.x on the classpath Kafka's log lines all vanish."""
    if list(lib.glob("slf4j-api-1.*.jar")) or not list(lib.glob("slf4j-api-2.*.jar")):
        raise DependencyError(f"{POM} must resolve slf4j-api 2.x (and not 1.x) for Kafka's logs")


def _mvn(*args: str) -> None:
    mvn = shutil.which("mvn")
    if not mvn:
        raise DependencyError("no 'mvn' on PATH: needed to fetch Kafka's jars from Maven Central")
    _run([mvn, "-q", "-B", *args])


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise DependencyError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _lock_file(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main() -> int:
    print(f"kafka {KAFKA_VERSION} jars: {ensure_kafka_jars()}")
    print(f"pulsar {PULSAR_VERSION} jars: {ensure_pulsar_jars()}")
    print(f"opa {OPA_VERSION}: {ensure_opa()}")
    print(f"java: {java_executable()}")
    chromium, chromedriver = ensure_chromium()
    print(f"chromium: {chromium}, chromedriver: {chromedriver}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
