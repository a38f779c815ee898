"""Where and how Gatekeeper's log goes under twistd: text or JSON lines, a level, and a log
file whose rotated copies are capped in number.

twistd's own ``--logfile`` rotates every 1 MB and keeps every rotated file forever; so
``twistd gatekeeper`` hands twistd this observer instead (twistd uses an ``ILogObserver``
component of the application before its own): same destination (``--logfile``, ``-`` for
stdout), rotated at ``logging.max_file_bytes``, at most ``logging.max_files`` old files kept.

JSON lines carry only what a text line shows (the formatted message) plus a few named fields,
never the whole event, so a secret held in an event field that the message does not print is
not written either (and messages print no secrets: ``gatekeeper.logsafe``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)
from twisted.python.logfile import LogFile
from zope.interface import implementer

from gatekeeper.config import LoggingConfig
from gatekeeper.logsafe import printable

__all__ = ["JsonLinesObserver", "log_observer", "open_log"]

# Event fields copied into a JSON line when a log call names them (the connection's logs do).
CONTEXT_FIELDS = ("session", "principal", "listener", "peer", "client")

_LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn, "error": LogLevel.error}


def _iso(t: float | None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


@implementer(ILogObserver)
class JsonLinesObserver:
    """One JSON object per line: time, level, namespace, message, and the context fields the
    event has (session id, principal, listener, peer); a failure's traceback as ``failure``."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, event: dict[str, Any]) -> None:
        level = event.get("log_level")
        record: dict[str, Any] = {
            "time": _iso(event.get("log_time")),
            "level": getattr(level, "name", "info"),
            "namespace": event.get("log_namespace") or "-",
            "message": formatEvent(event),
        }
        for key in CONTEXT_FIELDS:
            value = event.get(key)
            if value is not None and value != "-":
                record[key] = printable(value)
        failure = event.get("log_failure")
        if failure is not None:
            record["failure"] = failure.getTraceback()
        self.out.write(json.dumps(record) + "\n")  # ASCII-escaped: a value never breaks the line
        self.out.flush()


def open_log(settings: LoggingConfig, logfile: str | None, nodaemon: bool) -> IO[str] | None:
    """The stream twistd's ``--logfile`` names: stdout for ``-`` (or none with ``-n``), else a
    file rotated by size with at most ``max_files`` rotated copies; None for syslog."""
    if logfile == "-" or (nodaemon and not logfile):
        return sys.stdout
    return LogFile.fromFullPath(logfile or "twistd.log", rotateLength=settings.max_file_bytes,
                                maxRotatedFiles=settings.max_files)  # type: ignore[no-any-return]


def log_observer(settings: LoggingConfig, out: IO[str]) -> ILogObserver:
    """The observer for ``out`` in the configured format, dropping events below the level."""
    observer: ILogObserver = JsonLinesObserver(out) if settings.format == "json" else textFileLogObserver(out)
    predicate = LogLevelFilterPredicate(defaultLogLevel=_LEVELS[settings.level])
    return FilteringLogObserver(observer, [predicate])
