"""Verifying a chain, as pure code: fed the records of one chain in their stored order, it
finds edited records (hash), deleted and reordered ones (seq), broken links (prev), forged
checkpoints (mac) and an unsigned tail; ``Report`` gathers every chain's result.

The readers (``gatekeeper.audit.reader``) add what depends on where records are stored:
segment names and boundaries for files, duplicates across partitions for Kafka.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from gatekeeper.audit.records import CHECKPOINT, GENESIS, record_hash, verify_checkpoint

__all__ = ["ChainCheck", "ChainSummary", "Problem", "Report", "slim"]

MAX_PROBLEMS_PER_CHAIN = 50


@attrs.frozen
class Problem:
    """What is wrong and where: ``where`` names the segment file and line (``FILE:LINE``) or
    the topic partition and offset (``TOPIC[P]@OFFSET``)."""

    where: str
    message: str
    chain: str | None = None
    seq: int | None = None

    def __str__(self) -> str:
        at = f" (chain {self.chain}, seq {self.seq})" if self.seq is not None else (
            f" (chain {self.chain})" if self.chain else "")
        return f"{self.where}{at}: {self.message}"


@attrs.frozen
class ChainSummary:
    chain: str
    instance: str | None
    first_seq: int | None
    last_seq: int | None
    records: int
    checkpoints: int
    last_checkpoint_seq: int | None
    closed: bool  # ends with a stop checkpoint

    @property
    def unsigned(self) -> int:
        """Records after the last checkpoint (not vouched for by a signature yet)."""
        if self.last_seq is None:
            return 0
        if self.last_checkpoint_seq is None:
            return self.records
        return self.last_seq - self.last_checkpoint_seq


@attrs.frozen
class Report:
    records: int
    chains: tuple[ChainSummary, ...]
    problems: tuple[Problem, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


_SLIM_KEYS = ("seq", "prev", "hash", "chain", "instance", "kind", "reason")


def slim(record: Mapping[str, Any], keys: Mapping[str, bytes] | None) -> dict[str, Any]:
    """What ``ChainCheck.feed`` needs of a record, its hash and signature checked now: a few
    hundred bytes to keep instead of the record (a reader that must reorder records first)."""
    out = {k: record.get(k) for k in _SLIM_KEYS}
    out["_edited"] = record_hash(record) != record.get("hash")
    if record.get("kind") == CHECKPOINT and keys is not None:
        out["_signature"] = verify_checkpoint(record, keys)
    return out


class ChainCheck:
    """One chain's checks, fed in stored order (``feed``), then ``finish``."""

    def __init__(self, chain: str, keys: Mapping[str, bytes] | None, *, partial: bool = False,
                 closed: bool = False) -> None:
        self.chain = chain
        self.keys = keys  # None: checkpoints are not verified (--unsigned)
        self.partial, self.require_closed = partial, closed
        self.problems: list[Problem] = []
        self.instance: str | None = None
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.last_hash: str | None = None
        self.last_kind: str | None = None
        self.last_reason: str | None = None
        self.last_where = ""
        self.records = 0
        self.checkpoints = 0
        self.last_checkpoint_seq: int | None = None
        self._missing: dict[int, int] = {}  # seq reported missing -> index of that problem
        self._dropped = 0

    def problem(self, where: str, message: str, seq: int | None = None) -> None:
        if len(self.problems) >= MAX_PROBLEMS_PER_CHAIN:
            self._dropped += 1
            return
        self.problems.append(Problem(where, message, self.chain, seq))

    def feed(self, where: str, record: Mapping[str, Any]) -> None:
        """Check one record (or its ``slim`` form) after the ones fed before it."""
        seq, prev, stored = record.get("seq"), record.get("prev"), record.get("hash")
        if not isinstance(seq, int) or not isinstance(prev, str) or not isinstance(stored, str):
            self.problem(where, "not an audit record (no seq, prev or hash)")
            return
        self.records += 1
        self.instance = self.instance or record.get("instance")
        if record.get("chain") != self.chain:
            self.problem(where, f"belongs to chain {record.get('chain')!r}, found among chain {self.chain!r}", seq)
        edited = record["_edited"] if "_edited" in record else record_hash(record) != stored
        if edited:
            self.problem(where, "edited: its content does not match its hash", seq)
        self._order(where, seq, prev, stored)
        if record.get("kind") == CHECKPOINT:
            self.checkpoints += 1
            if self.keys is not None:
                wrong = record["_signature"] if "_signature" in record else verify_checkpoint(record, self.keys)
                if wrong is not None:
                    self.problem(where, wrong, seq)
                else:
                    self.last_checkpoint_seq = seq
            else:
                self.last_checkpoint_seq = seq
        self.last_kind, self.last_reason = record.get("kind"), record.get("reason")
        self.last_where = where

    def _order(self, where: str, seq: int, prev: str, stored: str) -> None:
        if self.last_seq is None:
            self.first_seq = seq
            if seq == 0:
                if prev != GENESIS:
                    self.problem(where, "the chain's first record (seq 0) does not start from the genesis hash", seq)
            elif not self.partial:
                self.problem(where, f"the chain starts at seq {seq}: records 0..{seq - 1} are missing "
                                    "(a removed segment? --partial accepts a trail whose start is gone)", seq)
        else:
            expected = self.last_seq + 1
            if seq == expected:
                if prev != self.last_hash:
                    self.problem(where, f"does not link to seq {self.last_seq} at {self.last_where}: a record "
                                        "between them was removed or one of them replaced", seq)
            elif seq > expected:
                span = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}..{seq - 1}"
                self.problem(where, f"{span} missing before it (deleted, or moved elsewhere)", seq)
                for s in range(expected, min(seq, expected + 1000)):
                    self._missing[s] = len(self.problems) - 1
            else:
                index = self._missing.pop(seq, None)
                if index is not None and index < len(self.problems):
                    earlier = self.problems[index]
                    self.problems[index] = Problem(
                        earlier.where, f"records out of order: seq {seq} is stored later, at {where} "
                                       "(reordered)", self.chain, earlier.seq)
                else:
                    self.problem(where, f"seq {seq} after seq {self.last_seq}: out of order (reordered, "
                                        "duplicated or inserted)", seq)
                # keep checking from the higher position: this record is out of place
                return
        self.last_seq, self.last_hash = seq, stored

    def finish(self) -> ChainSummary:
        if self.last_kind == CHECKPOINT and self.last_reason == "rotate":
            self.problem(self.last_where, "the chain ends with a rotate checkpoint: the segment after it is "
                                          "missing (removed?)", self.last_seq)
        if self.require_closed and not (self.last_kind == CHECKPOINT and self.last_reason == "stop"):
            self.problem(self.last_where or "(end)", "the chain does not end with a stop checkpoint (--closed): "
                                                     "records after it were cut off, or the writer did not stop "
                                                     "cleanly", self.last_seq)
        if self._dropped:
            self.problems.append(Problem(self.last_where, f"{self._dropped} more problem(s) not shown", self.chain))
        return ChainSummary(self.chain, self.instance, self.first_seq, self.last_seq, self.records, self.checkpoints,
                            self.last_checkpoint_seq, self.last_kind == CHECKPOINT and self.last_reason == "stop")
