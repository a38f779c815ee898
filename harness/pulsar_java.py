"""The Pulsar Java client (``pulsar-client-original``, among the broker's jars) as a test client.

    events = run_java_client(service_url, token, "produce-consume", topic, "readers", 10)

``harness/PulsarJavaClient.java`` is compiled with the machine's ``javac`` on first use into a
cache directory named for the source's digest (idempotent, safe across processes), then run
with the Pulsar jars on the classpath. It prints one JSON object per line; this returns them.
Blocking: call it from a test, never from the reactor.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from harness import deps

__all__ = ["JavaClientError", "compiled_classes", "run_java_client"]

SOURCE = Path(__file__).with_name("PulsarJavaClient.java")
MAIN_CLASS = "PulsarJavaClient"


class JavaClientError(RuntimeError):
    """The Java test client did not compile, exited non-zero or printed something not JSON."""


def _javac() -> str:
    java = Path(deps.java_executable())
    candidate = java.resolve().with_name("javac")
    found = candidate if candidate.is_file() else shutil.which("javac")
    if not found:
        raise JavaClientError("javac is not installed (a JDK 17 is needed to compile harness/PulsarJavaClient.java)")
    return str(found)


def compiled_classes() -> Path:
    """The directory holding ``PulsarJavaClient.class``, compiling it if this source is new."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    target = deps.cache_dir() / "pulsar-java-client" / digest
    if (target / f"{MAIN_CLASS}.class").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{digest}.", dir=target.parent))
    try:
        proc = subprocess.run([_javac(), "-nowarn", "-cp", deps.pulsar_classpath(), "-d", str(staging), str(SOURCE)],
                              capture_output=True, timeout=300)
        if proc.returncode != 0:
            raise JavaClientError(f"javac failed on {SOURCE}:\n{proc.stderr.decode(errors='replace')[-3000:]}")
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / f"{MAIN_CLASS}.class").is_file():  # not another process's finished copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _log4j_config() -> Path:
    path = deps.cache_dir() / "pulsar-java-client" / "log4j2.properties"
    text = deps.log4j2_properties("WARN")
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_name(f"{path.name}.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def run_java_client(service_url: str, token: str | None, mode: str, topic: str, subscription: str = "java-readers",
                    count: int = 10, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Run the Java client to completion; the events it printed, in order (the last is ``done``)."""
    classes = compiled_classes()
    cmd = [
        deps.java_executable(), "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={_log4j_config()}",
        "-cp", f"{classes}{os.pathsep}{deps.pulsar_classpath()}", MAIN_CLASS,
        service_url, token or "-", mode, topic, subscription, str(count),
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise JavaClientError(f"the Java client exited with {proc.returncode}:\n{stderr[-3000:]}")
    events = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            events.append(json.loads(line))
        except ValueError as e:
            raise JavaClientError(f"the Java client printed a line that is not JSON: {line!r}") from e
    if not events or events[-1].get("event") != "done":
        raise JavaClientError(f"the Java client did not finish: {events!r}\n{stderr[-3000:]}")
    return events
