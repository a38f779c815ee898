"""The what-if report as text: a table of the decisions that would change, then a summary."""

from __future__ import annotations

from collections.abc import Sequence

from gatekeeper.logsafe import printable
from gatekeeper.policy.whatif_report import Change, Report

__all__ = ["render"]

MAX_PRINCIPALS = 3


def render(report: Report, *, candidate: str, notes: Sequence[str] = ()) -> str:
    s = report.summary
    out: list[str] = []
    if report.changes:
        out.append(f"Decisions that would change under {candidate}:")
        out.append("")
        out += _table(report.changes)
    else:
        out.append(f"No decision would change under {candidate}.")
    if report.detail_changes:
        out.append("")
        out.append("Same verdict, other reason, mask or approval terms:")
        out.append("")
        out += _table(report.detail_changes)
    out.append("")
    out.append(
        f"Summary: {s.inputs:,} recorded decisions, {s.distinct:,} distinct inputs, "
        f"{s.evaluations:,} evaluations."
    )
    if s.changed:
        kinds = "; ".join(f"{t} {n:,}" for t, n in s.transitions)
        out.append(f"  would change:   {s.changed:,} ({kinds})")
    else:
        out.append("  would change:   none")
    if s.detail_changes:
        out.append(f"  other details:  {s.detail_changes:,} (same verdict)")
    out.append(f"  unchanged:      {s.compared - s.changed - s.detail_changes:,}")
    if s.invalid_after:
        out.append(
            f"  no valid decision from the candidate for {s.invalid_after:,} (denied, as the gateway would)"
        )
    if s.not_compared:
        out.append(
            f"  not compared:   {s.not_compared:,} recorded denies that stood in for an engine that did "
            "not answer (no policy made them)"
        )
    if s.revisions:
        out.append("  recorded under: " + ", ".join(f"{printable(r, 80)} ({n:,})" for r, n in s.revisions))
    for note in notes:
        out.append(f"  note: {note}")
    return "\n".join(out) + "\n"


def _table(changes: Sequence[Change]) -> list[str]:
    header = ("BEFORE → AFTER", "COUNT", "OPERATION", "RESOURCE", "PRINCIPALS", "EXAMPLE SESSIONS")
    rows = [
        (
            f"{c.before} → {c.after}",
            f"{c.count:,}",
            printable(c.operation, 40),
            printable(c.resource, 80),
            _principals(c),
            ", ".join(printable(s, 40) for s in c.sessions) or "-",
        )
        for c in changes
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for n, row in enumerate((header, *rows)):
        cells = [row[i].rjust(widths[i]) if i == 1 else row[i].ljust(widths[i]) for i in range(len(widths))]
        lines.append("  " + "  ".join([*cells, row[-1]]).rstrip())
        if n > 0:
            c = changes[n - 1]
            lines.append(f"      was: {_one_line(c.reason_before) or '-'}")
            lines.append(f"      now: {_one_line(c.reason_after) or '-'}")
    return lines


def _principals(c: Change) -> str:
    shown = [f"{printable(p, 60)} ({n:,})" for p, n in c.principals[:MAX_PRINCIPALS]]
    more = len(c.principals) - MAX_PRINCIPALS
    if more > 0:
        shown.append(f"+{more} more")
    return ", ".join(shown)


def _one_line(text: str, limit: int = 160) -> str:
    return printable(" ".join(text.split()), limit)
