"""A trail's chain as it grows: each record's place in it (``seq`` and the previous record's
hash), the signed checkpoints, and where segments end. Pure over values: no I/O, no clock, no
thread.

The trail (``gatekeeper.audit.trail``) keeps its chain on the reactor thread, where each record
is made, and hands the writer thread finished lines (``AuditLine``) that it only stores. Chaining
there costs a hash per record (``records.seal_record``); chaining on the writer thread cost that and
more, paid while the reactor thread waited for the interpreter's lock (``docs/audit.md``, "What
it costs").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatekeeper import __version__
from gatekeeper.api import AuditLine, AuditOpened, SegmentPolicy
from gatekeeper.audit.records import (
    CHECKPOINT,
    GENESIS,
    format_time,
    seal_record,
    serialize,
    sign_checkpoint,
)

__all__ = ["UNCOUNTED", "Chain"]

# Kinds of record the trail makes itself; every other record stands for something a caller
# handed over (it counts against the queue bound until written).
UNCOUNTED = frozenset({CHECKPOINT, "unavailable"})


class Chain:
    """The chain a sink opened (``AuditOpened``: a new one, or the head of one it holds). Each
    method returns the next line, in chain order; the caller stores the lines in that order."""

    def __init__(self, opened: AuditOpened, *, key: bytes, instance: str, segments: SegmentPolicy | None) -> None:
        self.opened = opened
        self.name = opened.chain
        self._name_key = opened.chain.encode()
        self._key, self.instance, self.segments = key, instance, segments
        self.seq, self.prev = (0, GENESIS) if opened.head is None else (opened.head.seq + 1, opened.head.hash)
        self.since_checkpoint = 0  # records since the last checkpoint
        self.last_time = 0.0  # of the last record
        self._segment_bytes = 0
        self._segment_started: float | None = None

    def start(self, time: float, sink_name: str) -> AuditLine:
        """The start checkpoint: the chain's first record, or the first after the head the sink
        continues (``resumed``), with what the sink repaired to continue it."""
        opened = self.opened
        resumed = None if opened.head is None else {"seq": opened.head.seq, "hash": opened.head.hash}
        fields: dict[str, Any] = {"reason": "start", "resumed": resumed,
                                  "writer": {"version": __version__, "sink": sink_name}}
        if opened.repaired is not None:
            fields["repaired"] = dict(opened.repaired)
        return self.checkpoint(fields, time)

    def record(self, kind: str, fields: Mapping[str, Any], time: float) -> AuditLine:
        """The line of a record of ``kind`` made at ``time``, sealed here (``records.seal_record``).
        Raises what the JSON writer raises for fields that do not serialise, and ValueError (our
        bug) for fields that use an envelope key; the chain is then as it was."""
        data, digest = seal_record(kind, fields, instance=self.instance, chain=self.name, seq=self.seq,
                                   prev=self.prev, time=format_time(time))
        session = fields.get("session")
        key = session.encode() if type(session) is str and session else self._name_key
        self.since_checkpoint += 1
        if time > self.last_time:
            self.last_time = time
        return self._line(kind, data, digest, time, key, False)

    def rotation_due(self, time: float) -> bool:
        """Whether the segment must be closed (a rotate checkpoint) before a record made at ``time``."""
        policy, started = self.segments, self._segment_started
        if policy is None or started is None:
            return False
        return self._segment_bytes >= policy.max_bytes or time - started >= policy.max_age

    def checkpoint(self, fields: Mapping[str, Any], time: float, *, last_in_segment: bool = False) -> AuditLine:
        """A checkpoint signing the chain head with the trail's key: ``fields`` say why
        (``reason``: ``start``, ``interval``, ``rotate``, ``stop``); ``records`` counts the
        records since the last one. ``last_in_segment`` closes the segment with it."""
        record = sign_checkpoint({"records": self.since_checkpoint, **fields}, self._key, instance=self.instance,
                                 chain=self.name, seq=self.seq, prev=self.prev, time=format_time(time))
        self.since_checkpoint = 0
        return self._line(CHECKPOINT, serialize(record), record["hash"], time, self._name_key, last_in_segment)

    def _line(self, kind: str, data: bytes, digest: str, time: float, key: bytes,
              last_in_segment: bool) -> AuditLine:
        line = AuditLine(chain=self.name, seq=self.seq, kind=kind, time=time, key=key, data=data,
                         last_in_segment=last_in_segment)
        self.seq += 1
        self.prev = digest
        if last_in_segment:
            self._segment_bytes, self._segment_started = 0, None
        else:
            self._segment_bytes += len(data)
            if self._segment_started is None:
                self._segment_started = time
        return line
