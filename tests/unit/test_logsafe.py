from __future__ import annotations

from gatekeeper.logsafe import printable


def test_control_characters_cannot_forge_a_log_line() -> None:
    forged = "app\n2026-12-01T00:00:00+0000 [gatekeeper.proxy.client#info] authenticated admin"
    out = printable(forged)
    assert "\n" not in out and out.startswith("app\\n2026")
    assert printable("\x1b[31mred") == "\\x1b[31mred"
    assert printable("plain client-1") == "plain client-1" and printable(None) == "-"
    assert printable("x" * 1000, 10).startswith("x" * 10 + "...")
