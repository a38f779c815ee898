"""The ``kafka`` audit sink: a topic on the upstream cluster, written with Gatekeeper's own
credentials (the ``upstream`` section's SASL and TLS settings) by kafka-python's producer:
idempotent, ``acks=all``, keyed by session id (records of no session by chain), the record's
time as the Kafka timestamp.

Several instances write one topic, each its own chain: a writer run's chain is
``<instance>@<start time>-<random>``, from seq 0 (the topic is not read back at start).
A write is done when the broker acknowledged every line; lines the broker acknowledged are not
sent again when the writer retries the rest. A failed producer is closed and a new one made
on the next write (re-reading the credentials), so recovery needs no restart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from gatekeeper.api import AuditLine, AuditOpened, AuditSinkContext, AuditSinkError, SegmentPolicy
from gatekeeper.audit.kafka_settings import client_settings

__all__ = ["KafkaSink", "run_id"]


def run_id(now: float | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ-<8 hex>``: when a writer run started, and random bits."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{os.urandom(4).hex()}"


class KafkaSink:
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["topic"],
        "properties": {
            "topic": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,249}$"},
            "timeout": {"type": "number", "exclusiveMinimum": 0},
        },
    }
    segments: SegmentPolicy | None = None

    def __init__(self, options: Mapping[str, Any], context: AuditSinkContext) -> None:
        if context.upstream is None:
            raise ValueError("the kafka audit sink needs the upstream section (bootstrap servers, credentials)")
        self.topic = options["topic"]
        self.timeout = float(options.get("timeout", 10.0))
        self.context = context
        self.chain = ""
        self._producer: Any = None
        self._acked = -1  # the highest seq of a write the broker acknowledged entirely
        self._acked_seqs: set[int] = set()  # acknowledged within a write that failed elsewhere

    def _settings(self) -> dict[str, Any]:
        ms = int(self.timeout * 1000)
        return {
            **client_settings(self.context.upstream, self.context.credentials()),
            "client_id": f"gatekeeper-audit-{self.context.instance}",
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 5,
            "max_block_ms": ms,
            "request_timeout_ms": max(1000, ms // 2),
            "delivery_timeout_ms": ms,
            "retry_backoff_ms": 100,
            "reconnect_backoff_max_ms": 1000,
            "bootstrap_timeout_ms": ms,
        }

    def open(self) -> AuditOpened:
        self.chain = f"{self.context.instance}@{run_id()}"
        self._connect()
        return AuditOpened(chain=self.chain)

    def _connect(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer
            from kafka.errors import KafkaError

            try:
                self._producer = KafkaProducer(**self._settings())
            except (KafkaError, ValueError, OSError) as e:
                raise AuditSinkError(f"topic {self.topic}: cannot connect to the cluster: {type(e).__name__}: {e}") from e
        return self._producer

    def write(self, lines: Sequence[AuditLine]) -> None:
        from kafka.errors import KafkaError

        producer = self._connect()
        todo = [line for line in lines if line.seq > self._acked and line.seq not in self._acked_seqs]
        futures = []
        error: str | None = None
        try:
            for line in todo:
                futures.append((line, producer.send(self.topic, key=line.key, value=line.data,
                                                    timestamp_ms=int(line.time * 1000))))
            producer.flush(timeout=self.timeout)
        except (KafkaError, OSError) as e:
            error = f"{type(e).__name__}: {e}"
        for line, future in futures:
            if future.succeeded():
                self._acked_seqs.add(line.seq)
            elif error is None:
                exc = future.exception
                error = f"{type(exc).__name__}: {exc}" if exc is not None else "not acknowledged in time"
        if error is None and len(futures) < len(todo):
            error = "not every record was sent"
        if error is not None:
            self._reset()
            raise AuditSinkError(f"topic {self.topic}: {error}")
        if todo:
            self._acked = max(self._acked, todo[-1].seq)
        self._acked_seqs = {s for s in self._acked_seqs if s > self._acked}

    def _reset(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=1)
            except Exception:
                pass

    def idle(self) -> None:
        pass

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=self.timeout)
