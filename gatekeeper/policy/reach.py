"""Which volatile input fields did one evaluation actually read?

``reads.scan`` says which of the volatile fields (``cache.VOLATILE_FIELDS``: time, session,
client, request sizes) a policy *may* read, and where: the file and line of every reference.
The default library, for one, reads ``input.time`` — but only to check a time-boxed grant, so
an input with no such grant is decided the same at any time. ``ReadSites.reached(lines)``
turns what an evaluation reached (``EmbeddedEvaluator.lines_reached``, regorus's coverage)
into the fields it read: a field counts as read when one of its reference lines was reached,
*or might have been* (a line the coverage report says nothing about). Only a line the report
lists as not reached rules a reference out.

Why that is enough: regorus marks the first line of every expression it evaluates, and
reading ``input.time`` is evaluating the expression that starts with that ``input``. Two
inputs that differ only in fields the evaluation of one of them never read are evaluated
step for step alike, so they get the same decision (``whatif`` relies on this).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from gatekeeper.policy.embedded import LinesReached
from gatekeeper.policy.reads import PolicyReads

__all__ = ["ReadSites"]


@attrs.frozen
class ReadSites:
    """Where a policy revision may read each volatile field: field -> ((file, line), ...)."""

    sites: Mapping[str, tuple[tuple[str, int], ...]]
    clock: tuple[str, ...] = ()  # calls that read the clock, not the input (time.now_ns() at f:l)

    @classmethod
    def of(cls, reads: PolicyReads) -> ReadSites:
        """Every read the scan found, those a ``ttl_covers_time`` declaration covers included:
        the cache may leave such a read out of its key, a replay may not."""
        sites: dict[str, list[tuple[str, int]]] = {}
        clock = []
        for read in (*reads.reads, *reads.covered):
            file, _, line = read.where.rpartition(":")
            sites.setdefault(read.field, []).append((file, int(line)))
            if not read.what.startswith("input"):
                clock.append(str(read))
        return cls({field: tuple(s) for field, s in sites.items()}, tuple(clock))

    @property
    def fields(self) -> frozenset[str]:
        """The fields the policy may read at all."""
        return frozenset(self.sites)

    def reached(self, lines: Mapping[str, LinesReached]) -> frozenset[str]:
        """The fields one evaluation read (or may have read), given the lines it reached."""
        out = set()
        for field, sites in self.sites.items():
            for file, line in sites:
                seen = lines.get(file)
                if seen is not None and (line in seen.covered or line not in seen.not_covered):
                    out.add(field)
                    break
        return frozenset(out)
