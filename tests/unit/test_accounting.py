"""The fault tests' loss accounting (harness.accounting): acknowledged against stored."""

from __future__ import annotations

from harness.accounting import account, checksum, longest_gap, record_value, recovery_seconds


def _crc(key: str) -> int:
    return checksum(record_value(key, 50))


ACKED = {k: _crc(k) for k in ("r-1", "r-2", "r-3")}


def test_all_acknowledged_stored_once_is_ok() -> None:
    a = account(ACKED, [(k, c) for k, c in ACKED.items()])
    assert a.ok and a.acknowledged == a.stored == 3 and a.duplicates == 0 and a.in_doubt == 0
    assert a.acknowledged_digest == a.stored_digest and a.problems() == []


def test_a_lost_record_is_named() -> None:
    a = account(ACKED, [("r-1", ACKED["r-1"]), ("r-3", ACKED["r-3"])])
    assert not a.ok and a.lost == ("r-2",)
    assert "1 acknowledged records lost" in a.problems()[0]


def test_a_second_copy_is_a_duplicate() -> None:
    stored = [(k, c) for k, c in ACKED.items()] + [("r-2", ACKED["r-2"])]
    a = account(ACKED, stored)
    assert not a.ok and a.duplicates == 1 and a.stored == 4


def test_another_value_under_an_acknowledged_key_is_corruption() -> None:
    stored = [("r-1", ACKED["r-1"]), ("r-2", 7), ("r-3", ACKED["r-3"])]
    a = account(ACKED, stored)
    assert not a.ok and a.corrupted == ("r-2",) and a.acknowledged_digest != a.stored_digest


def test_stored_but_not_acknowledged_is_in_doubt_when_failed_or_unreported() -> None:
    stored = [(k, c) for k, c in ACKED.items()] + [("r-4", _crc("r-4")), ("r-5", _crc("r-5"))]
    a = account(ACKED, stored, failed={"r-4"}, sent=[*ACKED, "r-4", "r-5"])
    assert a.ok, a.problems()
    assert a.in_doubt_failed == ("r-4",) and a.in_doubt_unreported == ("r-5",) and a.in_doubt == 2


def test_stored_but_never_sent_is_unexplained() -> None:
    stored = [(k, c) for k, c in ACKED.items()] + [("x-9", 1)]
    a = account(ACKED, stored, sent=list(ACKED))
    assert not a.ok and a.unexplained == ("x-9",)


def test_record_values_differ_by_key_and_have_the_size() -> None:
    assert len(record_value("k", 200)) == 200 and record_value("a", 64) != record_value("b", 64)


def test_recovery_is_the_first_acknowledgement_after_the_fault() -> None:
    assert recovery_seconds([1.0, 2.0, 5.5, 6.0], 4.0) == 1.5
    assert recovery_seconds([1.0, 2.0], 4.0) is None


def test_longest_gap_counts_from_start_to_end() -> None:
    assert longest_gap([1.0, 2.0, 7.0], 0.0, 8.0) == 5.0
    assert longest_gap([], 0.0, 3.0) == 3.0
