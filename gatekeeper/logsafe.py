"""Client-controlled strings made safe for a log line: control characters (a newline could
forge a line) and other non-printables escaped, and long values cut."""

from __future__ import annotations

__all__ = ["printable"]

_MAX = 256


def printable(value: object, limit: int = _MAX) -> str:
    """``value`` as text with every character that is not printable escaped (``\\n``, ``\\x1b``);
    None as ``-``."""
    if value is None:
        return "-"
    text = str(value)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
