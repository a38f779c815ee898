"""Loss accounting for fault tests: what producers were told was acknowledged against what the
broker holds. Pure functions over keys and checksums; the clients that gather them are in
``harness.ledger``.

Every record a fault test produces has a unique key (a sequence number) and a value whose CRC-32
the producer remembers. After the run the topic is read straight from the broker and compared:

- **lost**: acknowledged but not stored (must be none);
- **duplicates**: stored copies beyond the first of a key (must be none: idempotence);
- **corrupted**: stored under an acknowledged key with another checksum (must be none);
- **in doubt**: stored but never acknowledged: allowed only for records whose delivery the
  producer was told failed, or was never told about (the run ended first) — reported by name.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import attrs

__all__ = ["Accounting", "account", "checksum", "longest_gap", "record_value", "recovery_seconds"]


def record_value(key: str, size: int) -> bytes:
    """The value produced under ``key``: deterministic, ``size`` bytes, different for every key."""
    seed = hashlib.sha256(key.encode()).hexdigest().encode()
    return (seed * (size // len(seed) + 1))[:size]


def checksum(value: bytes) -> int:
    return zlib.crc32(value)


def _digest(pairs: Iterable[tuple[str, int]]) -> str:
    h = hashlib.sha256()
    for key, crc in sorted(pairs):
        h.update(f"{key}:{crc:08x}\n".encode())
    return h.hexdigest()[:16]


@attrs.frozen
class Accounting:
    acknowledged: int
    stored: int  # records in the topic, every copy counted
    duplicates: int
    lost: tuple[str, ...]
    corrupted: tuple[str, ...]
    in_doubt_failed: tuple[str, ...]  # stored, and the producer was told the delivery failed
    in_doubt_unreported: tuple[str, ...]  # stored, and the producer was never told either way
    unexplained: tuple[str, ...]  # stored, not acknowledged, and never sent by this producer
    acknowledged_digest: str  # over (key, crc) of what was acknowledged
    stored_digest: str  # over (key, crc) of what is stored under acknowledged keys

    @property
    def ok(self) -> bool:
        """No loss, no duplicate, no corruption, nothing stored that was never sent."""
        return (not self.lost and not self.duplicates and not self.corrupted and not self.unexplained
                and self.acknowledged_digest == self.stored_digest)

    @property
    def in_doubt(self) -> int:
        return len(self.in_doubt_failed) + len(self.in_doubt_unreported)

    def problems(self) -> list[str]:
        """What broke the promise, in words (empty when :attr:`ok`)."""
        out = []
        if self.lost:
            out.append(f"{len(self.lost)} acknowledged records lost, e.g. {list(self.lost[:5])}")
        if self.duplicates:
            out.append(f"{self.duplicates} duplicate records stored")
        if self.corrupted:
            out.append(f"{len(self.corrupted)} records stored with another checksum, e.g. {list(self.corrupted[:5])}")
        if self.unexplained:
            out.append(f"{len(self.unexplained)} records stored that were never sent, e.g. {list(self.unexplained[:5])}")
        if not out and self.acknowledged_digest != self.stored_digest:
            out.append(f"digest of acknowledged {self.acknowledged_digest} != stored {self.stored_digest}")
        return out


def account(acknowledged: Mapping[str, int], stored: Sequence[tuple[str, int]],
            failed: Iterable[str] = (), sent: Iterable[str] | None = None) -> Accounting:
    """Compare ``acknowledged`` (key -> crc) with ``stored`` ((key, crc) per stored record).

    ``failed``: keys whose delivery report was an error; ``sent``: every key produced (default:
    acknowledged and failed), so a stored key neither acknowledged nor failed is unreported if it
    was sent and unexplained if not."""
    failed = set(failed)
    sent_keys = set(acknowledged) | failed if sent is None else set(sent)
    copies = Counter(key for key, _ in stored)
    first: dict[str, int] = {}
    for key, crc in stored:
        first.setdefault(key, crc)
    extra = sorted(set(first) - set(acknowledged))
    return Accounting(
        acknowledged=len(acknowledged),
        stored=len(stored),
        duplicates=sum(n - 1 for n in copies.values()),
        lost=tuple(sorted(set(acknowledged) - set(first))),
        corrupted=tuple(sorted(k for k, crc in acknowledged.items() if k in first and first[k] != crc)),
        in_doubt_failed=tuple(k for k in extra if k in failed),
        in_doubt_unreported=tuple(k for k in extra if k not in failed and k in sent_keys),
        unexplained=tuple(k for k in extra if k not in sent_keys),
        acknowledged_digest=_digest(acknowledged.items()),
        stored_digest=_digest((k, first[k]) for k in acknowledged if k in first),
    )


def recovery_seconds(ack_times: Sequence[float], fault_end: float) -> float | None:
    """Seconds from ``fault_end`` to the first acknowledgement at or after it (None: none came)."""
    after = [t for t in ack_times if t >= fault_end]
    return min(after) - fault_end if after else None


def longest_gap(ack_times: Sequence[float], start: float, end: float) -> float:
    """The longest time between ``start``, consecutive acknowledgements and ``end``."""
    points = [start, *sorted(t for t in ack_times if start <= t <= end), end]
    return max((b - a for a, b in zip(points, points[1:], strict=False)), default=0.0)
