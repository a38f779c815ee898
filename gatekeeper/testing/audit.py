"""Fakes for code that writes or reads the audit trail, without a running reactor or broker.

- ``ThreadedClock``: a ``task.Clock`` that also takes ``callFromThread`` (the writer thread's
  reports) and runs those calls when the test asks (``run_until``, ``drain``).
- ``sample_fields(kind)``: valid fields of every record kind (docs/audit.md), for tests and
  fixtures; ``REQUEST_FIELDS`` is the example request record.
- ``write_trail(directory, items, key)``: a file trail written synchronously through the real
  writer and file sink, for tests that read trails (what-if, search).
- ``RecordingTrail``: stands for ``AuditTrail`` where the data path meets it (``reserve``,
  ``record``, ``available``, ``error``), keeping the records it is given or only counting them.
"""

from __future__ import annotations

import copy
import queue
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from twisted.internet import task

__all__ = ["POLICY_INPUT", "REQUEST_FIELDS", "RecordingTrail", "ThreadedClock", "sample_fields", "write_trail"]


class ThreadedClock(task.Clock):
    """A ``task.Clock`` whose ``callFromThread`` queues the call for ``run_until`` or ``drain``."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        super().__init__()
        self.advance(start)
        self._calls: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.Queue()

    def callFromThread(self, fn: Callable[..., Any], *args: Any) -> None:  # noqa: N802 - the reactor's name
        self._calls.put((fn, args))

    def run_until(self, until: Callable[[], bool], timeout: float = 10.0) -> None:
        """Run the calls threads queued until ``until()`` holds; AssertionError after ``timeout``
        seconds (wall time)."""
        deadline = time.monotonic() + timeout
        while not until():
            try:
                fn, args = self._calls.get(timeout=0.02)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise AssertionError(f"not reached within {timeout}s") from None
                continue
            fn(*args)

    def drain(self, quiet: float = 0.05) -> None:
        """Run the calls threads queued until none came for ``quiet`` seconds."""
        while True:
            try:
                fn, args = self._calls.get(timeout=quiet)
            except queue.Empty:
                return
            fn(*args)


PRINCIPAL = {"sub": "svc-orders", "issuer": "https://idp.example", "groups": ["orders-writers"],
             "mechanism": "OAUTHBEARER"}
SESSION = "01JD3K9Q4X5Y6Z7A8B9C0D1E2F"
POLICY_INPUT = {
    "version": 1, "protocol": "kafka", "operation": "produce",
    "api": {"key": 0, "name": "Produce", "version": 9},
    "principal": {**PRINCIPAL, "claims": {}},
    "resource": {"type": "topic", "name": "orders"},
    "client": {"id": "orders-producer", "address": "10.1.2.3"},
    "session": {"id": SESSION, "started_at": "2026-11-22T10:00:00Z"},
    "request": {"acks": -1, "partitions": [0, 1], "record_count": 120, "bytes": 48211},
    "grants": [], "time": "2026-11-22T10:00:03Z",
}
REVISION = "sha256:9f2c4a0b1d3e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"

REQUEST_FIELDS: dict[str, Any] = {
    "session": SESSION,
    "principal": PRINCIPAL,
    "client": {"id": "orders-producer", "address": "10.1.2.3"},
    "api": {"key": 0, "name": "Produce", "version": 9},
    "correlation_id": 42,
    "operations": [{
        "input": POLICY_INPUT,
        "decision": {"action": "allow", "reason": "orders-writers may produce to orders", "error": None,
                     "revision": REVISION},
        "enforced": {"result": "forwarded"},
    }],
    "outcome": {"from": "broker", "partitions": [
        {"topic": "orders", "partition": 0, "error_code": 0, "base_offset": 1200, "record_count": 70},
        {"topic": "orders", "partition": 1, "error_code": 0, "base_offset": 988, "record_count": 50},
    ]},
    "latency_ms": 0.41,
}

_SAMPLES: dict[str, dict[str, Any]] = {
    "session_start": {"session": SESSION, "listener": "main", "client": {"address": "10.1.2.3", "port": 53122},
                      "tls": {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384",
                              "client_certificate": {"subject": "CN=orders-producer,OU=orders", "issuer": "CN=ca",
                                                     "serial": "1f", "not_after": "2027-01-01T00:00:00Z"}}},
    "session_end": {"session": SESSION, "duration_ms": 61234, "requests": 310,
                    "bytes": {"from_client": 1_204_551, "to_client": 40_112}, "reason": "client closed the connection",
                    "ended_by": "client", "principal": PRINCIPAL},
    "authentication": {"session": SESSION, "result": "success", "mechanism": "OAUTHBEARER", "principal": PRINCIPAL,
                       "token": {"jti": "b7c1e0", "exp": "2026-11-22T11:00:00Z", "issuer": "https://idp.example"},
                       "client_id": "orders-producer"},
    "request": REQUEST_FIELDS,
    "policy_reload": {"result": "loaded", "old_revision": REVISION, "new_revision": "sha256:" + "1" * 64,
                      "trigger": "SIGHUP"},
    "approval": {"event": "approved", "request": {"id": "apr_01JD", "requester": PRINCIPAL, "operation": "delete_topic",
                                                  "resource": {"type": "topic", "name": "orders"},
                                                  "approvers": ["group:data-owners"], "status": "approved"},
                 "by": {"sub": "dana", "issuer": "https://idp.example", "groups": ["data-owners"],
                        "mechanism": "OAUTHBEARER"},
                 "reason": "planned clean-up, CHG-1234"},
    "grant": {"event": "granted", "grant": {"id": "grt_01JD", "principal": PRINCIPAL, "operation": "delete_topic",
                                            "resource": {"type": "topic", "name": "orders"},
                                            "expires_at": "2026-11-22T10:15:00Z", "approved_by": ["dana"],
                                            "request": "apr_01JD"},
              "by": None, "reason": None},
    "config_reload": {"result": "loaded", "changed": ["policy", "limits"]},
    "secret_reload": {"secrets": [{"name": "upstream.sasl.password_file", "file": "/etc/gatekeeper/broker.pw",
                                   "result": "loaded"},
                                  {"name": "masking.hash_key_file", "file": "/etc/gatekeeper/hash.key",
                                   "result": "unchanged"}]},
    "unavailable": {"since": "2026-11-22T10:01:00.000000Z", "until": "2026-11-22T10:01:07.500000Z",
                    "refused": {"request": 12}, "reason": "audit sink file cannot write: No space left on device"},
}


def sample_fields(kind: str) -> dict[str, Any]:
    """Valid fields of a record of ``kind`` (a fresh copy). Not for ``checkpoint``: the writer
    makes those."""
    return copy.deepcopy(_SAMPLES[kind])


def write_trail(directory: str | Path, items: Iterable[tuple[str, Mapping[str, Any], float]], key: bytes, *,
                instance: str = "gk-test", segment_bytes: int = 64 * 1024 * 1024, segment_age: float = 3600.0) -> None:
    """Write ``(kind, fields, time)`` items as a file trail through the real chain, writer and
    file sink (start and stop checkpoints included), synchronously: no reactor, no thread."""
    from gatekeeper.api import AuditOpened, AuditSinkContext
    from gatekeeper.audit.chain import Chain
    from gatekeeper.audit.file_sink import FileSink
    from gatekeeper.audit.writer import Stop, WorkQueue, Writer

    todo = list(items)
    start = todo[0][2] if todo else time.time()
    sink = FileSink({"directory": str(directory), "segment_bytes": segment_bytes, "segment_age": segment_age,
                     "fsync": "never"}, AuditSinkContext("file", instance))
    work = WorkQueue()

    class _Chaining:  # what the trail does on the reactor thread, once the sink opened
        def opened(self, opened: AuditOpened) -> None:
            chain = Chain(opened, key=key, instance=instance, segments=sink.segments)
            work.put(chain.start(start, "file"))
            for kind, fields, t in todo:
                if chain.rotation_due(t):
                    work.put(chain.checkpoint({"reason": "rotate"}, t, last_in_segment=True))
                work.put(chain.record(kind, fields, t))
            work.put(chain.checkpoint({"reason": "stop"}, max(todo[-1][2] if todo else start, chain.last_time)))
            work.put(Stop())

        def __getattr__(self, name: str) -> Callable[..., None]:
            return lambda *args: None

    Writer(sink, work, _Chaining(), sink_name="file").run()


class RecordingTrail:
    """An always-available trail for the data path's side: every record kept in ``records``
    as (kind, fields), or with ``keep=False`` only counted (a benchmark's many records)."""

    available = True
    error = None

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.records: list[tuple[str, Any]] = []
        self.taken = 0

    def record(self, kind: str, fields: Any) -> bool:
        self.taken += 1
        if self.keep:
            self.records.append((kind, fields))
        return True

    def reserve(self) -> _RecordingSlot:
        return _RecordingSlot(self)

    def requests(self) -> list[Any]:
        """The fields of the ``request`` records kept, in order."""
        return [fields for kind, fields in self.records if kind == "request"]


class _RecordingSlot:
    __slots__ = ("trail",)

    def __init__(self, trail: RecordingTrail) -> None:
        self.trail = trail

    def record(self, kind: str, fields: Any) -> None:
        self.trail.record(kind, fields)

    def release(self) -> None:
        pass
