"""verify() on file trails: an untouched trail verifies, and every kind of tampering is found
and named (segment file and line, seq): an edited record, a deleted one, a reordered pair, a
truncated segment, a removed or inserted segment, a forged checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.audit import iter_records, key_id, verify
from gatekeeper.audit.file_sink import segment_name
from gatekeeper.audit.records import checkpoint_mac, record_hash, serialize
from gatekeeper.testing.audit import sample_fields, write_trail

KEY = b"audit-key-0123456789abcdef"
KEYS = {key_id(KEY): KEY}
T0 = 1_800_000_000.0


def items(n: int, start: float = T0) -> list[tuple[str, dict[str, Any], float]]:
    kinds = ["session_start", "authentication", "request", "request", "session_end"]
    return [(kinds[i % len(kinds)], sample_fields(kinds[i % len(kinds)]), start + i) for i in range(n)]


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """About 40 records in 1 KiB segments: each segment ends with a rotate checkpoint."""
    d = tmp_path / "audit"
    write_trail(d, items(30), KEY, instance="gk1", segment_bytes=4096)
    return d


def files(d: Path) -> list[Path]:
    return sorted(d.iterdir())


def lines(p: Path) -> list[bytes]:
    return p.read_bytes().splitlines(keepends=True)


def problems(d: Path, **kw: Any) -> list[str]:
    report = verify(d, KEYS, **kw)
    return [str(p) for p in report.problems]


def test_an_untouched_trail_verifies(trail: Path) -> None:
    assert len(files(trail)) >= 4
    report = verify(trail, KEYS)
    assert report.ok, report.problems
    assert report.records == len(list(iter_records(trail)))
    [chain] = report.chains
    assert (chain.chain, chain.first_seq, chain.closed, chain.unsigned) == ("gk1", 0, True, 0)
    assert verify(trail, KEYS, closed=True).ok


def test_every_segment_but_the_last_ends_with_a_rotate_checkpoint(trail: Path) -> None:
    for f in files(trail)[:-1]:
        last = json.loads(lines(f)[-1])
        assert (last["kind"], last["reason"]) == ("checkpoint", "rotate")
    first = json.loads(lines(files(trail)[0])[0])
    assert (first["kind"], first["reason"], first["seq"]) == ("checkpoint", "start", 0)


def test_an_edited_record_is_found(trail: Path) -> None:
    f = files(trail)[1]
    data = lines(f)
    record = json.loads(data[2])
    record["operations" if "operations" in record else "session"] = "tampered"
    data[2] = json.dumps(record).encode() + b"\n"
    f.write_bytes(b"".join(data))
    assert problems(trail) == [f"{f.name}:3 (chain gk1, seq {record['seq']}): edited: its content does not match its hash"]


def test_an_edited_and_rehashed_record_breaks_the_next_link(trail: Path) -> None:
    f = files(trail)[1]
    data = lines(f)
    record = json.loads(data[2])
    record["time"] = "2020-01-01T00:00:00.000000Z"
    record["hash"] = record_hash(record)
    data[2] = serialize(record)
    f.write_bytes(b"".join(data))
    [found] = problems(trail)
    assert found.startswith(f"{f.name}:4 (chain gk1, seq {record['seq'] + 1}): does not link to seq {record['seq']}")


def test_a_rewritten_chain_is_caught_by_the_next_checkpoint(trail: Path) -> None:
    """Whoever edits a record and re-hashes everything after it cannot re-sign the checkpoints."""
    everything = [(f, json.loads(line)) for f in files(trail) for line in lines(f)]
    everything[5][1]["session"] = "someone-else"
    prev = None
    for _, record in everything:
        if prev is not None:
            record["prev"] = prev
        record["hash"] = record_hash(record)
        prev = record["hash"]
    for f in files(trail):
        f.write_bytes(b"".join(serialize(r) for g, r in everything if g == f))
    found = problems(trail)
    assert found and all("checkpoint signature does not verify" in p for p in found)
    assert verify(trail, None).ok  # the chain alone does not show it: that is what checkpoints are for


def test_a_deleted_record_is_found(trail: Path) -> None:
    f = files(trail)[2]
    data = lines(f)
    gone = json.loads(data[3])["seq"]
    del data[3]
    f.write_bytes(b"".join(data))
    assert problems(trail) == [f"{f.name}:4 (chain gk1, seq {gone + 1}): seq {gone} missing before it "
                               "(deleted, or moved elsewhere)"]


def test_a_reordered_pair_is_found(trail: Path) -> None:
    f = files(trail)[1]
    data = lines(f)
    a = json.loads(data[2])["seq"]
    data[2], data[3] = data[3], data[2]
    f.write_bytes(b"".join(data))
    found = problems(trail)
    assert found[0] == (f"{f.name}:3 (chain gk1, seq {a + 1}): records out of order: seq {a} is stored later, "
                        f"at {f.name}:4 (reordered)")
    assert len(found) == 1


def test_a_truncated_segment_is_found(trail: Path) -> None:
    f = files(trail)[1]
    data = lines(f)
    f.write_bytes(b"".join(data[:-3]))
    found = problems(trail)
    nxt = files(trail)[2].name
    assert any(p.startswith(f"{f.name} ") and "without a closing checkpoint" in p and "truncated" in p for p in found)
    assert any(p.startswith(f"{nxt}:1") and "missing before it" in p for p in found)


def test_a_torn_last_line_is_found(trail: Path) -> None:
    f = files(trail)[-1]
    data = f.read_bytes()
    f.write_bytes(data[:-20])
    found = problems(trail)
    assert any(p.startswith(f"{f.name}:{len(lines(f))} (chain gk1): the line is cut off") for p in found), found


def test_a_removed_segment_is_found(trail: Path) -> None:
    middle = files(trail)[2]
    first_seq = json.loads(lines(middle)[0])["seq"]
    middle.unlink()
    found = problems(trail)
    assert any(f"seqs {first_seq}.." in p and "missing before it" in p for p in found), found


def test_a_removed_first_segment_is_found_unless_partial(trail: Path) -> None:
    files(trail)[0].unlink()
    found = problems(trail)
    assert len(found) == 1 and "the chain starts at seq" in found[0]
    assert verify(trail, KEYS, partial=True).ok


def test_a_removed_last_segment_is_found(trail: Path) -> None:
    files(trail)[-1].unlink()
    found = problems(trail)
    assert len(found) == 1 and "ends with a rotate checkpoint: the segment after it is missing" in found[0]


def test_an_inserted_segment_is_found(trail: Path, tmp_path: Path) -> None:
    """A segment from another trail of the same instance (copied in), and a made-up one."""
    other = tmp_path / "other"
    write_trail(other, items(30, start=T0 + 10_000), KEY, instance="gk1", segment_bytes=4096)
    intruder = files(other)[1]
    shutil.copy(intruder, trail / (intruder.name + ".tmp"))
    (trail / (intruder.name + ".tmp")).rename(trail / segment_name("gk1", 10**6))
    found = problems(trail)
    assert any(segment_name("gk1", 10**6) in p and "named for seq 1000000" in p for p in found), found


def test_an_inserted_segment_between_two_is_found(trail: Path) -> None:
    first_seq = json.loads(lines(files(trail)[2])[0])["seq"]
    fake = trail / segment_name("gk1", first_seq - 1)
    fake.write_bytes(lines(files(trail)[1])[0])  # a copy of an earlier record, renamed into the gap
    found = problems(trail)
    assert any(p.startswith(f"{fake.name}:1") for p in found), found


def test_a_forged_checkpoint_is_found(trail: Path) -> None:
    f = files(trail)[1]
    data = lines(f)
    cp = json.loads(data[-1])
    assert cp["kind"] == "checkpoint"
    cp["records"] = 999
    cp["mac"] = checkpoint_mac(cp, b"the attacker's own key")
    cp["hash"] = record_hash(cp)
    data[-1] = serialize(cp)
    f.write_bytes(b"".join(data))
    # the next record's link still points at the original checkpoint: fix it up too, as an attacker would
    nxt = files(trail)[2]
    data2 = lines(nxt)
    following = json.loads(data2[0])
    following["prev"] = cp["hash"]
    following["hash"] = record_hash(following)
    data2[0] = serialize(following)
    nxt.write_bytes(b"".join(data2))
    found = problems(trail)
    assert any(p.startswith(f"{f.name}:{len(data)} (chain gk1, seq {cp['seq']}): checkpoint signature does not verify")
               for p in found), found


def test_a_checkpoint_signed_with_an_unknown_key_is_reported(trail: Path) -> None:
    other = b"another-key-0123456789abcdef"
    found = [str(p) for p in verify(trail, {key_id(other): other}).problems]
    assert found and all(f"signed with key {key_id(KEY)}, which was not given" in p for p in found)


def test_an_unsigned_tail_is_noted(tmp_path: Path) -> None:
    d = tmp_path / "audit"
    write_trail(d, items(5), KEY, instance="gk1")
    f = files(d)[-1]
    data = lines(f)
    f.write_bytes(b"".join(data[:-1]))  # the stop checkpoint gone: as if the writer still ran
    report = verify(d, KEYS)
    assert report.ok
    assert any("5 record(s) after the last checkpoint (seq 0) are not signed yet" in n for n in report.notes)
    assert not verify(d, KEYS, closed=True).ok


def test_several_chains_in_one_directory_are_checked_each(tmp_path: Path) -> None:
    d = tmp_path / "audit"
    write_trail(d, items(10), KEY, instance="gk1", segment_bytes=4096)
    write_trail(d, items(10, start=T0 + 0.5), KEY, instance="gk2", segment_bytes=4096)
    report = verify(d, KEYS)
    assert report.ok and [c.chain for c in report.chains] == ["gk1", "gk2"]
    times = [r["time"] for r in iter_records(d)]
    assert times == sorted(times)  # chains merged by time
    assert {r["chain"] for r in iter_records(d)} == {"gk1", "gk2"}
