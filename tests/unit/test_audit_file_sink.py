"""The file sink on its own: segments named by their first seq, rotation by size and age (via
the writer), the fsync policies, a failed write cut back before the retry, a torn tail cut off
(and reported) when a chain is continued."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

import gatekeeper.audit.file_sink as file_sink
from gatekeeper.api import AuditLine, AuditSinkContext, AuditSinkError
from gatekeeper.audit import key_id, verify
from gatekeeper.audit.file_sink import FileSink, segment_name
from gatekeeper.testing.audit import sample_fields, write_trail

KEY = b"audit-key-0123456789abcdef"


def sink(d: Path, **options: Any) -> FileSink:
    return FileSink({"directory": str(d), **options}, AuditSinkContext("file", "gk1"))


def line(seq: int, last: bool = False, size: int = 0) -> AuditLine:
    data = json.dumps({"seq": seq, "hash": f"{seq:064x}", "pad": "x" * size}).encode() + b"\n"
    return AuditLine(chain="gk1", seq=seq, kind="request", time=0.0, key=b"k", data=data, last_in_segment=last)


def test_segments_are_named_by_their_first_seq_and_closed_after_a_last_line(tmp_path: Path) -> None:
    s = sink(tmp_path)
    assert s.open().head is None
    s.write([line(0), line(1, last=True), line(2)])
    s.write([line(3)])
    s.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [segment_name("gk1", 0), segment_name("gk1", 2)]
    assert len((tmp_path / segment_name("gk1", 2)).read_bytes().splitlines()) == 2


def test_a_retried_write_skips_what_was_written(tmp_path: Path) -> None:
    s = sink(tmp_path)
    s.open()
    s.write([line(0), line(1)])
    s.write([line(0), line(1), line(2)])
    s.close()
    assert len((tmp_path / segment_name("gk1", 0)).read_bytes().splitlines()) == 3


def test_rotation_by_size(tmp_path: Path) -> None:
    items = [("request", sample_fields("request"), 1_800_000_000.0 + i) for i in range(20)]
    write_trail(tmp_path, items, KEY, instance="gk1", segment_bytes=8 * 1024)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) > 2
    for name in names[:-1]:
        assert (tmp_path / name).stat().st_size < 8 * 1024 + 4096  # closed once past the size
    assert verify(tmp_path, {key_id(KEY): KEY}).ok


def test_rotation_by_age(tmp_path: Path) -> None:
    items = [("config_reload", sample_fields("config_reload"), 1_800_000_000.0 + 25 * i) for i in range(12)]
    write_trail(tmp_path, items, KEY, instance="gk1", segment_age=100)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3  # 0..75, 100..175, 200..275
    from gatekeeper.audit import parse_time

    for name in names:
        times = [parse_time(json.loads(x)["time"]) for x in (tmp_path / name).read_bytes().splitlines()]
        assert max(times) - min(times) <= 100  # the rotate checkpoint has the time of the record that closed it
    assert verify(tmp_path, {key_id(KEY): KEY}).ok


@pytest.mark.parametrize("policy, writes, expected, dsync", [
    ("always", 3, 1, True),  # the new segment's directory entry; each write waits for the disk (O_DSYNC)
    ("never", 3, 0, False),
])
def test_fsync_policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str, writes: int,
                        expected: int, dsync: bool) -> None:
    calls: list[int] = []
    opened: list[int] = []
    real_open = os.open

    def spy_open(path: Any, flags: int, *args: Any) -> int:
        if str(path).endswith(".jsonl"):
            opened.append(flags)
        return real_open(path, flags, *args)

    monkeypatch.setattr(file_sink.os, "fsync", lambda fd: calls.append(fd))
    monkeypatch.setattr(file_sink.os, "open", spy_open)
    s = sink(tmp_path, fsync=policy)
    s.open()
    for i in range(writes):
        s.write([line(i)])
    assert len(calls) == expected
    assert len(opened) == 1 and bool(opened[0] & os.O_DSYNC) == dsync
    s.close()
    assert len(calls) == expected  # nothing left unsynced to sync at close


def test_the_segment_size_kept_without_lseek_matches_the_file(tmp_path: Path) -> None:
    """The size a failed write is cut back to is counted, not asked of the kernel."""
    s = sink(tmp_path, fsync="never")
    s.open()
    for i in range(5):
        s.write([line(i)])
        assert s._path is not None
        assert s._good_size == s._path.stat().st_size
    s.close()


def test_fsync_interval_syncs_at_most_that_often_and_when_idle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    now = [100.0]
    monkeypatch.setattr(file_sink.os, "fsync", lambda fd: calls.append(fd))
    s = sink(tmp_path, fsync="interval", fsync_interval=1.0)
    s._clock = lambda: now[0]
    s.open()
    s.write([line(0)])  # 100s since "the last fsync": synced, and the directory entry
    assert len(calls) == 2
    s.write([line(1)])
    s.idle()
    assert len(calls) == 2  # within the interval
    now[0] += 1.5
    s.idle()
    assert len(calls) == 3
    s.idle()
    assert len(calls) == 3  # nothing new written


def test_a_failed_write_leaves_no_partial_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = sink(tmp_path, fsync="never")
    s.open()
    s.write([line(0)])
    real_write = os.write

    def half_then_fail(fd: int, data: Any) -> int:
        n = real_write(fd, bytes(data[: len(data) // 2]))
        monkeypatch.setattr(file_sink.os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
        return n

    monkeypatch.setattr(file_sink.os, "write", half_then_fail)
    with pytest.raises(AuditSinkError, match="No space left on device"):
        s.write([line(1, size=1000), line(2)])
    path = tmp_path / segment_name("gk1", 0)
    assert not path.read_bytes().endswith(b"\n")  # the disk holds half a line now
    with pytest.raises(AuditSinkError):
        s.write([line(1, size=1000), line(2)])  # still failing: cut back, then fails again
    monkeypatch.setattr(file_sink.os, "write", real_write)
    s.write([line(1, size=1000), line(2), line(3)])
    s.close()
    assert [json.loads(x)["seq"] for x in path.read_bytes().splitlines()] == [0, 1, 2, 3]


def test_a_segment_that_cannot_be_created_fails_the_write_until_it_can(tmp_path: Path) -> None:
    d = tmp_path / "audit"
    s = sink(d, fsync="never")
    s.open()
    s.write([line(0, last=True)])
    os.rename(d, tmp_path / "moved")
    d.write_text("not a directory")  # even root cannot create a file in it
    with pytest.raises(AuditSinkError, match="Not a directory"):
        s.write([line(1)])
    d.unlink()
    os.rename(tmp_path / "moved", d)
    s.write([line(1)])
    s.close()
    assert (d / segment_name("gk1", 1)).exists()


def test_continuing_a_chain_cuts_off_a_torn_tail_and_reports_it(tmp_path: Path) -> None:
    items = [("config_reload", sample_fields("config_reload"), 1_800_000_000.0 + i) for i in range(3)]
    write_trail(tmp_path, items, KEY, instance="gk1")
    [seg] = sorted(tmp_path.iterdir())
    good = seg.read_bytes()
    torn = b'{"chain":"gk1","hash":"ab'
    seg.write_bytes(good + torn)
    s = sink(tmp_path)
    opened = s.open()
    last = json.loads(good.splitlines()[-1])
    assert opened.head is not None and (opened.head.seq, opened.head.hash) == (last["seq"], last["hash"])
    assert opened.repaired == {"segment": seg.name, "torn_bytes": len(torn), "sha256": hashlib.sha256(torn).hexdigest()}
    assert seg.read_bytes() == good


def test_continuing_after_an_empty_segment(tmp_path: Path) -> None:
    write_trail(tmp_path, [("config_reload", sample_fields("config_reload"), 1_800_000_000.0)], KEY, instance="gk1")
    [seg] = sorted(tmp_path.iterdir())
    (tmp_path / segment_name("gk1", 3)).touch()  # a crash right after creating the next segment
    opened = sink(tmp_path).open()
    assert opened.head is not None and opened.head.seq == 2 and opened.repaired is None


def test_an_unreadable_last_record_stops_the_sink_from_guessing(tmp_path: Path) -> None:
    (tmp_path / segment_name("gk1", 0)).write_bytes(b"garbage\n")
    with pytest.raises(AuditSinkError, match="its last record cannot be read"):
        sink(tmp_path).open()


def test_other_chains_and_files_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("hello")
    (tmp_path / segment_name("gk2", 0)).write_bytes(b'{"seq":5,"hash":"x"}\n')
    assert sink(tmp_path).open().head is None
