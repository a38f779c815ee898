"""``gatekeeper audit verify|search|replay`` on file trails: output, filters, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.audit import format_time
from gatekeeper.cli import main
from gatekeeper.testing.audit import sample_fields, write_trail

KEY = b"audit-key-0123456789abcdef"
T0 = 1_800_000_000.0


def request(session: str, sub: str, operation: str, topic: str, action: str, **enforced: Any) -> dict[str, Any]:
    fields = sample_fields("request")
    fields["session"] = session
    fields["principal"]["sub"] = sub
    op = fields["operations"][0]
    op["input"]["principal"]["sub"] = sub
    op["input"]["operation"] = operation
    op["input"]["resource"] = {"type": "topic", "name": topic}
    op["decision"]["action"] = action
    op["enforced"] = enforced or {"result": "forwarded"}
    return fields


def session(kind: str, sid: str) -> dict[str, Any]:
    fields = sample_fields(kind)
    fields["session"] = sid
    return fields


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    d = tmp_path / "audit"
    items = [
        ("session_start", session("session_start", "S1"), T0),
        ("authentication", session("authentication", "S1"), T0 + 1),
        ("request", request("S1", "svc-orders", "produce", "orders", "allow"), T0 + 2),
        ("session_start", session("session_start", "S2"), T0 + 3),
        ("request", request("S2", "mallory", "consume", "payments", "deny", result="denied", error_code=29), T0 + 4),
        ("request", request("S1", "svc-orders", "consume", "orders", "mask", result="masked", masked_fields=3), T0 + 5),
        ("session_end", session("session_end", "S1"), T0 + 600),
    ]
    write_trail(d, items, KEY, instance="gk1")
    return d


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    p = tmp_path / "audit.key"
    p.write_bytes(KEY + b"\n")
    return p


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_ok(capsys: pytest.CaptureFixture[str], trail: Path, keyfile: Path) -> None:
    code, out, _ = run(capsys, "audit", "verify", str(trail), "--key-file", str(keyfile))
    assert code == 0
    assert out.strip().splitlines()[-1] == "ok 9 records in 1 chain"


def test_verify_names_the_problem_and_fails(capsys: pytest.CaptureFixture[str], trail: Path, keyfile: Path) -> None:
    [seg] = sorted(trail.iterdir())[:1]
    lines = seg.read_bytes().splitlines(keepends=True)
    del lines[2]
    seg.write_bytes(b"".join(lines))
    code, out, _ = run(capsys, "audit", "verify", str(trail), "--key-file", str(keyfile))
    assert code == 1
    assert f"FAIL {seg.name}:3 (chain gk1, seq 3): seq 2 missing before it" in out
    assert out.strip().splitlines()[-1] == "FAILED: 1 problem(s) in 8 records, 1 chain(s)"
    code, out, _ = run(capsys, "audit", "verify", str(trail), "--key-file", str(keyfile), "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"] and report["problems"][0]["seq"] == 3


def test_verify_needs_a_key_unless_told_otherwise(capsys: pytest.CaptureFixture[str], trail: Path) -> None:
    code, _, err = run(capsys, "audit", "verify", str(trail))
    assert code == 2 and "no checkpoint key" in err
    code, out, _ = run(capsys, "audit", "verify", str(trail), "--unsigned")
    assert code == 0 and "checkpoint signatures NOT verified" in out


def test_verify_with_the_config(capsys: pytest.CaptureFixture[str], trail: Path, keyfile: Path, tmp_path: Path) -> None:
    config = tmp_path / "gk.yaml"
    config.write_text(yaml.safe_dump({
        "listeners": [{"name": "l", "bind": "127.0.0.1:9192", "broker_ports": "9193-9194"}],
        "upstream": {"bootstrap_servers": ["127.0.0.1:9092"]}, "policy": {"engine": "allow-all"},
        "audit": {"hmac_key_file": str(keyfile), "directory": str(trail)}}))
    code, out, _ = run(capsys, "audit", "verify", "--config", str(config))
    assert code == 0 and "ok 9 records" in out


def test_an_unreadable_source_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "audit", "verify", str(tmp_path / "nope"), "--unsigned")
    assert code == 3 and "no such directory" in err
    code, _, err = run(capsys, "audit", "search", "kafka:nohost")
    assert code == 2 and "expected kafka:<host:port" in err


def test_search_filters(capsys: pytest.CaptureFixture[str], trail: Path) -> None:
    code, out, _ = run(capsys, "audit", "search", str(trail), "--action", "deny")
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split() == ["TIME", "SESSION", "KIND", "PRINCIPAL", "OPERATION", "RESOURCE", "ACTION", "DETAIL"]
    assert len(rows) == 1 and "mallory" in rows[0] and "topic:payments" in rows[0] and "denied (29)" in rows[0]

    def matches(*args: str) -> list[str]:
        _, out, _ = run(capsys, "audit", "search", str(trail), "--json", *args)
        return [f"{r['kind']}:{r.get('session')}:{r['seq']}" for r in map(json.loads, out.splitlines())]

    assert matches("--principal", "svc-orders", "--kind", "request") == ["request:S1:3", "request:S1:6"]
    assert matches("--topic", "orders") == ["request:S1:3", "request:S1:6"]
    assert matches("--resource", "topic:payments") == ["request:S2:5"]
    assert matches("--operation", "consume", "--action", "mask") == ["request:S1:6"]
    assert matches("--session", "S2") == ["session_start:S2:4", "request:S2:5"]
    assert matches("--since", format_time(T0 + 3), "--until", format_time(T0 + 4.5)) == [
        "session_start:S2:4", "request:S2:5"]
    assert matches("--kind", "session_end") == ["session_end:S1:7"]
    assert matches("--principal", "nobody") == []
    assert matches("--limit", "2") == ["checkpoint:None:0", "session_start:S1:1"]
    _, out, _ = run(capsys, "audit", "search", str(trail), "--principal", "nobody")
    assert out.strip() == "no matching records"


def test_search_times_and_resources_are_checked(capsys: pytest.CaptureFixture[str], trail: Path) -> None:
    code, _, err = run(capsys, "audit", "search", str(trail), "--since", "yesterday")
    assert code == 2 and "expected a time" in err
    code, _, err = run(capsys, "audit", "search", str(trail), "--resource", "orders")
    assert code == 2 and "expected TYPE:NAME" in err


def test_replay_prints_the_timeline(capsys: pytest.CaptureFixture[str], trail: Path) -> None:
    code, out, _ = run(capsys, "audit", "replay", "S1", str(trail))
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 5
    assert "session start on listener main from 10.1.2.3:53122, TLS TLSv1.3" in lines[0]
    assert "authenticated svc-orders (OAUTHBEARER; issuer https://idp.example; groups orders-writers)" in lines[1]
    assert "Produce v9 #42: produce topic:orders -> allow" in lines[2]
    assert "orders[0] offsets 1200+70; orders[1] offsets 988+50" in lines[2]
    assert "masked 3 fields masked" in lines[3]
    assert lines[4].split("  ", 1)[1].startswith("session end (client): client closed the connection")
    code, out, _ = run(capsys, "audit", "replay", "NOPE", str(trail))
    assert code == 1 and "no records of session NOPE" in out


def test_replay_records_needs_the_gateway_address(capsys: pytest.CaptureFixture[str], trail: Path) -> None:
    code, _, err = run(capsys, "audit", "replay", "S1", str(trail), "--records")
    assert code == 2 and "--records needs --bootstrap" in err


def test_output_is_safe_for_a_terminal(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    d = tmp_path / "audit"
    write_trail(d, [("request", request("S9", "evil\x1b[2Jname", "produce", "t", "deny", result="denied"), T0)],
                KEY, instance="gk1")
    _, out, _ = run(capsys, "audit", "search", str(d), "--kind", "request")
    assert "\x1b" not in out and "evil\\x1b[2Jname" in out
