"""Run ``java/DenialProbe.java`` (Kafka's own Java client, one denial cell) and parse its line.

The probe is compiled once per source version into the harness cache; ``run_probe`` blocks
(call it from a test, never from the reactor) and returns the JSON object the probe printed.
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

SOURCE = Path(__file__).resolve().parent / "java" / "DenialProbe.java"
MAIN_CLASS = "DenialProbe"


def probe_classes() -> Path:
    """Compile the probe (once per source version) and return its classes directory."""
    return compile_java(SOURCE, MAIN_CLASS)


def compile_java(source_file: Path, main_class: str) -> Path:
    """Compile one Java source against Kafka's jars, once per source version, into the
    harness cache, and return its classes directory."""
    source = source_file.read_bytes()
    target = deps.cache_dir() / "denial-probe" / hashlib.sha256(source).hexdigest()[:16]
    if (target / f"{main_class}.class").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    staging.chmod(0o755)
    try:
        proc = subprocess.run(
            [_javac(), "-encoding", "UTF-8", "-d", str(staging),
             "-cp", deps.kafka_classpath(), str(source_file)],
            capture_output=True, text=True, timeout=300,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"javac failed on {source_file} (our bug):\n{proc.stdout}{proc.stderr}")
        try:
            staging.rename(target)
        except OSError:
            # Another process finished first; its classes are the same source's.
            if not (target / f"{main_class}.class").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def run_probe(
    bootstrap: str,
    cell: str,
    seconds: float,
    *,
    properties: dict[str, str] | None = None,
    timeout: float = 120,
) -> dict[str, Any]:
    """Run one cell against ``bootstrap`` and return the probe's JSON line as a dict.

    ``properties`` are client settings (SASL, say) applied to every client the probe makes.
    Raises RuntimeError if the probe exits non-zero or prints no JSON object.
    """
    classpath = f"{deps.kafka_classpath()}{os.pathsep}{probe_classes()}"
    cmd = [
        deps.java_executable(), "-Xmx256m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j_config()}",
        "-cp", classpath, MAIN_CLASS, bootstrap, cell, repr(float(seconds)),
        *(f"{key}={value}" for key, value in (properties or {}).items()),
    ]
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace",
                          timeout=timeout)
    result = None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                continue
            if isinstance(result, dict):
                break
            result = None
    if proc.returncode != 0 or result is None:
        raise RuntimeError(
            f"DenialProbe {cell} exited with {proc.returncode} and "
            f"{'a' if result is not None else 'no'} JSON line\n"
            f"stdout:\n{_tail(proc.stdout)}\nstderr:\n{_tail(proc.stderr)}"
        )
    return result


def _javac() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "javac").is_file():
        return str(Path(java_home) / "bin" / "javac")
    found = shutil.which("javac")
    if not found:
        raise deps.DependencyError("no 'javac' on PATH and no JAVA_HOME: install a JDK 17 or newer")
    return found


def log4j_config() -> Path:
    """Kafka's client logging at WARN, to stderr."""
    path = deps.cache_dir() / "denial-probe" / "log4j2.properties"
    text = deps.log4j2_properties("WARN")
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])
