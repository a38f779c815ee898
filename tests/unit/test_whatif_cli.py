"""``gatekeeper policy what-if`` and ``gatekeeper policy fixtures`` end to end: a trail decided
under policy A, replayed against A and against B (one topic revoked, another opened), and
fixtures checked with the real ``opa test``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gatekeeper.audit.records import key_id
from gatekeeper.cli import main
from gatekeeper.policy.authoring import OpaMissing, find_opa
from tests.unit import whatif_trail as trail


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    a = trail.policy(tmp_path, "a", ["orders", "payments"])
    b = trail.policy(tmp_path, "b", ["orders", "invoices"])  # payments revoked, invoices opened
    source = trail.write_trail(tmp_path / "audit", trail.records(a, trail.traffic()), segment_bytes=64 * 1024)
    return a, b, source


def test_the_trail_is_a_valid_chained_trail(setup) -> None:
    from gatekeeper.audit.reader import verify

    _, _, source = setup
    assert len(list(source.glob("audit-gk-test-*.jsonl"))) > 1  # several segments
    report = verify(source, {key_id(trail.KEY): trail.KEY}, closed=True)
    assert report.ok, report.problems
    from importlib import resources

    import jsonschema

    from gatekeeper.audit.reader import iter_records

    schema = json.loads(resources.files("gatekeeper").joinpath("schemas/audit-record.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for record in iter_records(source):
        validator.validate(record)


def test_the_same_policy_changes_nothing(setup, capsys) -> None:
    a, _, source = setup
    assert main(["policy", "what-if", "--policies", str(a), "--audit", str(source)]) == 0
    out = capsys.readouterr().out
    assert "No decision would change" in out
    assert "would change:   none" in out


def test_a_revoked_topic_and_an_opened_one_are_exactly_the_changes(setup, capsys) -> None:
    _, b, source = setup
    assert main(["policy", "what-if", "--policies", str(b), "--audit", str(source), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    changes = {(c["before"], c["after"], c["operation"], c["resource"]): c for c in report["changes"]}
    assert set(changes) == {
        ("allow", "deny", "produce", "topic payments"),
        ("deny", "allow", "produce", "topic invoices"),
    }
    revoked = changes["allow", "deny", "produce", "topic payments"]
    assert revoked["count"] == 100
    assert revoked["principals"] == [{"principal": "svc-orders", "count": 100}]
    assert len(revoked["sessions"]) == 3 and all(s.startswith("01JSESSION") for s in revoked["sessions"])
    assert "no grant allows produce" in revoked["reason_after"]
    assert changes["deny", "allow", "produce", "topic invoices"]["count"] == 20
    summary = report["summary"]
    assert summary["inputs"] == len(trail.traffic())
    assert summary["changed"] == 120
    assert summary["transitions"] == {"allow → deny": 100, "deny → allow": 20}
    # Every input of one principal, operation and topic is one evaluation: the library reads
    # the time only for time-boxed grants, and these inputs carry none.
    assert summary["distinct"] == summary["evaluations"] == 5


def test_the_table_names_before_after_counts_principals_and_sessions(setup, capsys) -> None:
    _, b, source = setup
    assert main(["policy", "what-if", "--policies", str(b), "--audit", str(source)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("Decisions that would change under")
    row = next(line for line in lines if "topic payments" in line)
    assert row.split()[:5] == ["allow", "→", "deny", "100", "produce"]
    assert "svc-orders (100)" in row and "01JSESSION" in row
    assert "would change:   120 (allow → deny 100; deny → allow 20)" in out


def test_since_keeps_only_the_later_records(setup, capsys) -> None:
    _, b, source = setup
    # Session 3's records are the last minute of the trail; invoices is produced to in it.
    code = main(["policy", "what-if", "--policies", str(b), "--audit", str(source), "--since", "2026-11-22T10:03:00Z", "--json"])
    assert code == 1
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["inputs"] == len(trail.traffic()) // 4
    assert summary["transitions"] == {"allow → deny": 25, "deny → allow": 5}


def test_a_policy_that_does_not_load_is_exit_2(setup, tmp_path, capsys) -> None:
    _, _, source = setup
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "p.rego").write_text("package gatekeeper\n\ndecision := {\n")
    assert main(["policy", "what-if", "--policies", str(bad), "--audit", str(source)]) == 2
    err = capsys.readouterr().err
    assert "the candidate policies cannot be loaded" in err and "p.rego" in err


def test_an_unreadable_trail_is_exit_2(setup, tmp_path, capsys) -> None:
    a, _, _ = setup
    assert main(["policy", "what-if", "--policies", str(a), "--audit", str(tmp_path / "nowhere")]) == 2
    assert "cannot read the audit trail" in capsys.readouterr().err
    assert main(["policy", "what-if", "--policies", str(a), "--audit", str(a / "data.json"), "--since", "yesterday"]) == 2
    assert "neither a duration" in capsys.readouterr().err


def test_damaged_lines_are_skipped_and_named(setup, capsys) -> None:
    a, _, source = setup
    first = sorted(source.glob("*.jsonl"))[0]
    lines = first.read_text().splitlines(keepends=True)
    lines[3] = '{"kind": "request", "operations": [{"inp\n'
    first.write_text("".join(lines))
    assert main(["policy", "what-if", "--policies", str(a), "--audit", str(source)]) == 0
    out = capsys.readouterr().out
    assert f"1 stored line was not an audit record, skipped ({first.name}:4)" in out
    assert "gatekeeper audit verify" in out


def _opa() -> str:
    try:
        return find_opa()
    except OpaMissing as e:
        pytest.skip(str(e))


def test_fixtures_pass_opa_test_against_a_and_fail_against_b(setup, tmp_path, capsys) -> None:
    a, b, source = setup
    out = tmp_path / "fixtures"
    assert main(["policy", "fixtures", "--audit", str(source), "--out", str(out)]) == 0
    assert "wrote 5 cases" in capsys.readouterr().out
    cases = json.loads((out / "recorded_decisions.json").read_text())["gatekeeper_recorded"]["cases"]
    assert sorted((c["input"]["resource"]["name"], c["expected"]["action"]) for c in cases) == [
        ("invoices", "deny"), ("orders", "allow"), ("orders", "allow"), ("payments", "allow"), ("payments", "deny"),
    ]
    opa = _opa()
    passed = subprocess.run([opa, "test", str(a), str(out)], capture_output=True, text=True, timeout=120)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "PASS: 5/5" in passed.stdout
    failed = subprocess.run([opa, "test", str(b), str(out)], capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0
    fails = [line for line in failed.stdout.splitlines() if line.endswith(")") and ": FAIL" in line]
    assert len(fails) == 2, failed.stdout
    assert any("produce_topic_payments_allow" in line for line in fails)
    assert any("produce_topic_invoices_deny" in line for line in fails)
    assert "FAIL: 2/5" in failed.stdout


def test_the_trail_and_decision_path_can_come_from_the_gateway_config(setup, tmp_path, capsys) -> None:
    import yaml

    _, b, source = setup
    key = tmp_path / "audit.key"
    key.write_bytes(trail.KEY)
    key.chmod(0o600)
    config = tmp_path / "gk.yaml"
    config.write_text(yaml.safe_dump({
        "listeners": [{"name": "l", "bind": "127.0.0.1:9192", "broker_ports": "9193-9194"}],
        "upstream": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "policy": {"engine": "embedded", "policies": str(b), "decision": "gatekeeper/decision"},
        "audit": {"hmac_key_file": str(key), "directory": str(source)}}))
    assert main(["policy", "what-if", "--policies", str(b), "--config", str(config), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["summary"]["changed"] == 120
    assert main(["policy", "what-if", "--policies", str(b)]) == 2
    assert "give --audit SOURCE, or --config" in capsys.readouterr().err


def test_fixtures_of_an_empty_window_are_refused(setup, tmp_path, capsys) -> None:
    _, _, source = setup
    code = main(["policy", "fixtures", "--audit", str(source), "--out", str(tmp_path / "f"), "--since", "2030-01-01"])
    assert code == 2
    assert "no recorded policy decisions in the audit trail" in capsys.readouterr().err
    code = main(["policy", "fixtures", "--audit", str(source), "--out", str(tmp_path / "f"), "--decision", "data.x y"])
    assert code == 2 and "expected names separated by '/'" in capsys.readouterr().err
