"""The ``file`` audit sink: JSON Lines segments in a directory, one chain per instance.

A segment is named ``audit-<chain>-<seq>.jsonl`` after the sequence number of its first record
(12 digits at least), so the names sort in chain order. The trail closes a segment with a
signed rotate checkpoint past ``segment_bytes`` or ``segment_age``; a new writer run continues
the chain in a new segment. ``fsync``: ``always`` (every write, before the writer reports it
written: the segment is opened ``O_DSYNC``, so the write itself waits for the disk, as with
``fdatasync``), ``interval`` (at most ``fsync_interval`` after a write), ``never`` (the OS decides).

A failed write leaves no trace: the sink cuts the segment back to its last complete write
before it writes again (the writer retries with the same lines). Continuing a chain after a
crash, it cuts off a torn last line (bytes after the last newline) and says so; the start
checkpoint records it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from gatekeeper.api import (
    AuditHead,
    AuditLine,
    AuditOpened,
    AuditSinkContext,
    AuditSinkError,
    SegmentPolicy,
)

__all__ = ["SEGMENT_NAME", "FileSink", "segment_name", "segments"]

SEGMENT_NAME = re.compile(r"^audit-(?P<chain>[A-Za-z0-9_.@-]+)-(?P<seq>[0-9]{12,})\.jsonl$")
FSYNC = ("always", "interval", "never")


def segment_name(chain: str, seq: int) -> str:
    return f"audit-{chain}-{seq:012d}.jsonl"


def segments(directory: Path) -> dict[str, list[tuple[int, Path]]]:
    """The segment files in ``directory`` by chain, each list in sequence order."""
    out: dict[str, list[tuple[int, Path]]] = {}
    for path in directory.iterdir():
        m = SEGMENT_NAME.match(path.name)
        if m and path.is_file():
            out.setdefault(m["chain"], []).append((int(m["seq"]), path))
    for items in out.values():
        items.sort()
    return out


class FileSink:
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["directory"],
        "properties": {
            "directory": {"type": "string", "minLength": 1},
            "segment_bytes": {"type": "integer", "minimum": 1024},
            "segment_age": {"type": "number", "exclusiveMinimum": 0},
            "fsync": {"enum": list(FSYNC)},
            "fsync_interval": {"type": "number", "minimum": 0},
        },
    }

    def __init__(self, options: Mapping[str, Any], context: AuditSinkContext) -> None:
        self.directory = context.path(options["directory"])
        self.chain = context.instance
        self.segments: SegmentPolicy | None = SegmentPolicy(int(options.get("segment_bytes", 64 * 1024 * 1024)),
                                      float(options.get("segment_age", 3600.0)))
        self.fsync = options.get("fsync", "always")
        if self.fsync not in FSYNC:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC)}, not {self.fsync!r}")
        self.fsync_interval = float(options.get("fsync_interval", 1.0))
        self._fd: int | None = None
        self._path: Path | None = None
        self._good_size = 0  # the current segment's size after its last complete write
        self._done_seq = -1  # the last seq written completely
        self._broken = False
        self._dirty = False  # written but not fsynced
        self._synced_at = 0.0
        self._clock = time.monotonic

    # -- the sink interface ------------------------------------------------------------------

    def open(self) -> AuditOpened:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
            mine = segments(self.directory).get(self.chain, [])
        except OSError as e:
            raise AuditSinkError(f"audit directory {self.directory}: {e.strerror or e}") from e
        repaired = None
        for _, path in reversed(mine):
            head, cut = self._last_record(path)
            repaired = repaired or cut
            if head is not None:
                self._done_seq = head.seq
                return AuditOpened(chain=self.chain, head=head, repaired=repaired)
            # an empty segment (a crash right after creating it): the head is in the one before
        return AuditOpened(chain=self.chain, repaired=repaired)

    def write(self, lines: Sequence[AuditLine]) -> None:
        try:
            self._write(lines)
        except OSError as e:
            self._broken = True
            where = self._path or self.directory
            raise AuditSinkError(f"{where}: {e.strerror or e}") from e

    def idle(self) -> None:
        if self._dirty and self.fsync == "interval" and self._fd is not None \
                and self._clock() - self._synced_at >= self.fsync_interval:
            try:
                self._sync()
            except OSError as e:
                self._broken = True
                raise AuditSinkError(f"{self._path}: fsync: {e.strerror or e}") from e

    def close(self) -> None:
        if self._fd is not None:
            try:
                if self.fsync != "never" and self._dirty:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd, self._path = None, None

    # -- internals -----------------------------------------------------------------------------

    def _write(self, lines: Sequence[AuditLine]) -> None:
        if self._broken:
            self._repair()
        todo = [line for line in lines if line.seq > self._done_seq]
        start = 0
        while start < len(todo):
            end = start
            while end < len(todo) and not todo[end].last_in_segment:
                end += 1
            group = todo[start:end + 1]  # up to and including the segment's last line
            if self._fd is None:
                self._new_segment(group[0])
            data = b"".join(line.data for line in group)
            self._write_all(data)
            # Known without asking the kernel (an lseek is one more system call, and every
            # system call on this thread costs the reactor thread a wait for the interpreter's
            # lock): the segment is ours alone, appended to, and this write went whole.
            self._good_size += len(data)
            closes = group[-1].last_in_segment
            if self.fsync == "always":
                pass  # the segment is opened O_DSYNC: each write returned once it was on disk
            elif closes or (self.fsync == "interval" and self._clock() - self._synced_at >= self.fsync_interval):
                self._sync()
            else:
                self._dirty = True
            self._done_seq = group[-1].seq
            if closes:
                assert self._fd is not None  # opened above for this group
                os.close(self._fd)
                self._fd, self._path, self._good_size = None, None, 0
            start = end + 1

    def _sync(self) -> None:
        if self._fd is not None and self.fsync != "never":
            os.fsync(self._fd)
        self._dirty = False
        self._synced_at = self._clock()

    def _new_segment(self, first: AuditLine) -> None:
        path = self.directory / segment_name(self.chain, first.seq)
        self._path = path
        # fsync always: O_DSYNC makes each write return once its data (and the file's size) are
        # on disk, as an fdatasync would, in the one system call.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_DSYNC if self.fsync == "always" else 0)
        self._fd = os.open(path, flags, 0o640)
        self._good_size = os.lseek(self._fd, 0, os.SEEK_END)
        if self.fsync != "never":
            dfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            if n <= 0:
                raise OSError(errno.EIO, "short write")
            view = view[n:]

    def _repair(self) -> None:
        """Cut the current segment back to its last complete write (a failed write may have
        left part of a line), before writing again."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self._good_size)
                if self.fsync != "never":
                    os.fsync(self._fd)
            except OSError:
                try:
                    os.close(self._fd)
                finally:
                    self._fd = None
                raise
        elif self._path is not None and self._path.exists():
            os.truncate(self._path, self._good_size)
        self._broken = False

    def _last_record(self, path: Path) -> tuple[AuditHead | None, dict[str, Any] | None]:
        """The last complete record of a segment (None: the segment holds none), and what was cut
        off after it (a torn last line: a crash in the middle of a write), or None."""
        try:
            with open(path, "r+b") as f:
                size = f.seek(0, os.SEEK_END)
                tail, end = _tail(f, size)
                repaired = None
                if end < size:
                    f.seek(end)
                    torn = f.read()
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
                    repaired = {"segment": path.name, "torn_bytes": len(torn),
                                "sha256": hashlib.sha256(torn).hexdigest()}
        except OSError as e:
            raise AuditSinkError(f"{path}: {e.strerror or e}") from e
        if tail is None:
            return None, repaired
        try:
            record = json.loads(tail)
            head = AuditHead(int(record["seq"]), str(record["hash"]))
        except (ValueError, KeyError, TypeError) as e:
            raise AuditSinkError(f"{path}: its last record cannot be read ({e}); run `gatekeeper audit verify "
                                 f"{self.directory}` and move the directory away to start a new trail") from e
        return head, repaired


def _tail(f: Any, size: int, chunk: int = 64 * 1024) -> tuple[bytes | None, int]:
    """(the last newline-terminated line without its newline, the offset just after it), or
    (None, 0) when the file holds no newline."""
    pos, buf, last_nl = size, b"", -1
    while True:  # buf is the file's bytes [pos, size)
        if last_nl < 0:
            i = buf.rfind(b"\n")
            if i >= 0:
                last_nl = pos + i
        if last_nl >= 0:
            j = buf.rfind(b"\n", 0, last_nl - pos)
            if j >= 0:
                return buf[j + 1:last_nl - pos], last_nl + 1
            if pos == 0:
                return buf[:last_nl], last_nl + 1
        elif pos == 0:
            return None, 0
        start = max(0, pos - chunk)
        f.seek(start)
        buf = f.read(pos - start) + buf
        pos = start
