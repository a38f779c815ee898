"""Kafka's own Java command-line tools, run from the harness's jars with the machine's Java.

Console producer and consumer, producer and consumer perf tests: each function takes a
bootstrap ``host:port``, runs the tool to completion in a subprocess (blocking: call it from a
test or a benchmark, never from the reactor) and returns what it printed, parsed.

Client settings such as SASL go in ``properties`` (written to a ``--command-config`` file),
e.g. ``KafkaBroker.java_sasl_properties("SCRAM-SHA-512")``.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from harness import deps

CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERFORMANCE = "org.apache.kafka.tools.ConsumerPerformance"
CONFIG_COMMAND = "kafka.admin.ConfigCommand"
STORAGE_TOOL = "kafka.tools.StorageTool"

DEFAULT_HEAP = "512m"


class JavaToolError(RuntimeError):
    """A Kafka Java tool exited non-zero or printed output we could not parse."""


@attrs.frozen
class ToolOutput:
    """What a tool printed: ``stdout`` and ``stderr`` decoded as UTF-8."""

    returncode: int
    stdout: str
    stderr: str


@attrs.frozen
class ConsoleRecord:
    """One record as the console consumer printed it (``key`` is None unless asked for)."""

    key: str | None
    value: str


@attrs.frozen
class ProducerPerfResult:
    """The summary line of ``kafka-producer-perf-test``."""

    records: int
    records_per_sec: float
    mb_per_sec: float
    avg_latency_ms: float
    max_latency_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float


@attrs.frozen
class ConsumerPerfResult:
    """The result row of ``kafka-consumer-perf-test``."""

    mb: float
    mb_per_sec: float
    records: int
    records_per_sec: float
    rebalance_time_ms: float
    fetch_time_ms: float
    fetch_mb_per_sec: float
    fetch_records_per_sec: float


def run_tool(
    main_class: str,
    args: Sequence[str],
    *,
    stdin: bytes | Path | None = None,
    timeout: float = 120.0,
    heap: str = DEFAULT_HEAP,
    check: bool = True,
) -> ToolOutput:
    """Run ``java -cp <kafka jars> main_class args...`` and return its output.

    ``stdin`` is fed to the tool (bytes, or a file to read). Tool logging goes to stderr at
    WARN. Raises :class:`JavaToolError` on a non-zero exit when ``check`` is true.
    """
    cmd = [
        deps.java_executable(), f"-Xmx{heap}", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={_tools_log4j_config()}",
        "-cp", deps.kafka_classpath(), main_class, *args,
    ]
    if isinstance(stdin, Path):
        with open(stdin, "rb") as handle:
            proc = subprocess.run(cmd, stdin=handle, capture_output=True, timeout=timeout)
    else:
        stdin_data = stdin if stdin is not None else b""
        proc = subprocess.run(cmd, input=stdin_data, capture_output=True, timeout=timeout)
    out = ToolOutput(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )
    if check and proc.returncode != 0:
        raise JavaToolError(
            f"{main_class} exited with {proc.returncode}\n"
            f"stdout:\n{_tail(out.stdout)}\nstderr:\n{_tail(out.stderr)}"
        )
    return out


def console_produce(
    bootstrap: str,
    topic: str,
    data: bytes | Path | Iterable[str] | Iterable[tuple[str, str]],
    *,
    parse_key: bool | None = None,
    key_separator: str = "\t",
    compression: str | None = None,
    acks: str = "all",
    properties: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    check: bool = True,
) -> ToolOutput:
    """Produce records with ``kafka-console-producer``; one record per input line.

    ``data`` is raw input (bytes or a file), or lines, or ``(key, value)`` pairs; pairs turn
    on ``parse.key`` with ``key_separator``. For raw input pass ``parse_key=True`` to read
    keys. Send errors are logged on ``stderr`` (the tool still exits 0 on most of them).
    """
    stdin, keyed = _console_input(data, key_separator)
    if parse_key is None:
        parse_key = keyed
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--request-required-acks", acks]
    if parse_key:
        args += ["--reader-property", "parse.key=true",
                 "--reader-property", f"key.separator={key_separator}"]
    if compression:
        args += ["--command-property", f"compression.type={compression}"]
    with _command_config(properties) as config_args:
        return run_tool(CONSOLE_PRODUCER, args + config_args, stdin=stdin, timeout=timeout,
                        check=check)


def console_consume(
    bootstrap: str,
    topic: str,
    *,
    max_messages: int | None = None,
    from_beginning: bool = True,
    print_key: bool = False,
    key_separator: str = "\t",
    timeout_ms: int = 10_000,
    group: str | None = None,
    properties: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> list[ConsoleRecord]:
    """Consume with ``kafka-console-consumer`` and return the records it printed.

    Stops after ``max_messages`` records, or when none arrives for ``timeout_ms`` (then the
    list is shorter). Values must not contain newlines (the tool prints one per line).
    """
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--timeout-ms", str(timeout_ms)]
    if max_messages is not None:
        args += ["--max-messages", str(max_messages)]
    if from_beginning:
        args.append("--from-beginning")
    if group:
        args += ["--group", group]
    if print_key:
        args += ["--formatter-property", "print.key=true",
                 "--formatter-property", f"key.separator={key_separator}"]
    with _command_config(properties) as config_args:
        out = run_tool(CONSOLE_CONSUMER, args + config_args, timeout=timeout)
    records = []
    for line in out.stdout.splitlines():
        if print_key:
            key, _, value = line.partition(key_separator)
            records.append(ConsoleRecord(key, value))
        else:
            records.append(ConsoleRecord(None, line))
    return records


_PRODUCER_SUMMARY = re.compile(
    r"^(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>[\d.]+) ms 50th, "
    r"(?P<p95>[\d.]+) ms 95th, (?P<p99>[\d.]+) ms 99th, (?P<p999>[\d.]+) ms 99\.9th\.?$"
)


def producer_perf(
    bootstrap: str,
    topic: str,
    *,
    num_records: int,
    record_size: int | None = 100,
    throughput: int = -1,
    properties: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 600.0,
) -> ProducerPerfResult:
    """Run ``kafka-producer-perf-test`` and parse its summary line.

    ``throughput`` is records/s (-1: unthrottled). ``properties`` are producer settings
    (``acks``, ``compression.type``, SASL ...).
    """
    args = [
        "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(num_records),
        "--throughput", str(throughput), *extra_args,
    ]
    if record_size is not None:  # None: the records come from --payload-file in extra_args
        args += ["--record-size", str(record_size)]
    with _command_config(properties) as config_args:
        out = run_tool(PRODUCER_PERFORMANCE, args + config_args, timeout=timeout)
    return parse_producer_perf(out.stdout)


def parse_producer_perf(stdout: str) -> ProducerPerfResult:
    """Parse the final summary of ``kafka-producer-perf-test`` output (not the steady-state
    line printed after it when ``--warmup-records`` is given)."""
    for line in stdout.splitlines():
        match = _PRODUCER_SUMMARY.match(line.strip())
        if match:
            g = match.groupdict()
            return ProducerPerfResult(
                records=int(g["records"]), records_per_sec=float(g["rps"]),
                mb_per_sec=float(g["mbps"]), avg_latency_ms=float(g["avg"]),
                max_latency_ms=float(g["max"]), p50_ms=float(g["p50"]),
                p95_ms=float(g["p95"]), p99_ms=float(g["p99"]), p999_ms=float(g["p999"]),
            )
    raise JavaToolError(f"no summary line in producer perf output:\n{_tail(stdout)}")


def consumer_perf(
    bootstrap: str,
    topic: str,
    *,
    num_records: int,
    timeout_ms: int = 30_000,
    group: str | None = None,
    properties: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 600.0,
) -> ConsumerPerfResult:
    """Run ``kafka-consumer-perf-test`` until ``num_records`` are read and parse its result.

    Raises :class:`JavaToolError` if fewer arrive within ``timeout_ms``.
    """
    args = [
        "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(num_records),
        "--timeout", str(timeout_ms), *extra_args,
    ]
    if group:
        args += ["--group", group]
    with _command_config(properties) as config_args:
        out = run_tool(CONSUMER_PERFORMANCE, args + config_args, timeout=timeout)
    result = parse_consumer_perf(out.stdout)
    if result.records < num_records:
        raise JavaToolError(
            f"consumer perf read {result.records} of {num_records} records in {timeout_ms} ms\n"
            f"stderr:\n{_tail(out.stderr)}"
        )
    return result


def parse_consumer_perf(stdout: str) -> ConsumerPerfResult:
    """Parse the header and result row of ``kafka-consumer-perf-test`` output."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    for index, line in enumerate(lines[:-1]):
        if line.startswith("start.time"):
            names = [name.strip() for name in line.split(",")]
            row = dict(zip(names, (value.strip() for value in lines[index + 1].split(",")),
                           strict=False))
            try:
                return ConsumerPerfResult(
                    mb=float(row["data.consumed.in.MB"]), mb_per_sec=float(row["MB.sec"]),
                    records=int(row["data.consumed.in.nMsg"]),
                    records_per_sec=float(row["nMsg.sec"]),
                    rebalance_time_ms=float(row["rebalance.time.ms"]),
                    fetch_time_ms=float(row["fetch.time.ms"]),
                    fetch_mb_per_sec=float(row["fetch.MB.sec"]),
                    fetch_records_per_sec=float(row["fetch.nMsg.sec"]),
                )
            except (KeyError, ValueError) as exc:
                raise JavaToolError(f"bad consumer perf row ({exc}):\n{_tail(stdout)}") from exc
    raise JavaToolError(f"no result in consumer perf output:\n{_tail(stdout)}")


def _console_input(
    data: bytes | Path | Iterable[str] | Iterable[tuple[str, str]], separator: str
) -> tuple[bytes | Path, bool]:
    if isinstance(data, bytes | Path):
        return data, False
    lines = []
    keyed = False
    for item in data:
        if isinstance(item, tuple):
            key, value = item
            keyed = True
            lines.append(f"{key}{separator}{value}")
        else:
            lines.append(item)
    return ("".join(f"{line}\n" for line in lines)).encode(), keyed


@contextmanager
def _command_config(properties: Mapping[str, str] | None) -> Iterator[list[str]]:
    if not properties:
        yield []
        return
    fd, name = tempfile.mkstemp(prefix="gatekeeper-tool-", suffix=".properties")
    try:
        with os.fdopen(fd, "w") as handle:
            for key, value in properties.items():
                handle.write(f"{key}={_escape_property(value)}\n")
        yield ["--command-config", name]
    finally:
        os.unlink(name)


def _escape_property(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _tools_log4j_config() -> Path:
    path = deps.kafka_home() / "tools-log4j2.properties"
    text = deps.log4j2_properties("WARN")
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_name(f"{path.name}.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])
