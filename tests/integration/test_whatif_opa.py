"""``gatekeeper policy what-if --engine opa``: the candidate pushed to a real OPA server and
decided there, with the same changes as on the embedded engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit import whatif_trail as trail

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _what_if(*args: str) -> subprocess.CompletedProcess[str]:
    # A process of its own: the OPA engine runs a reactor, which pytest-twisted's owns here.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gatekeeper.cli", "policy", "what-if", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_opa_and_embedded_report_the_same_changes(opa_server, tmp_path: Path) -> None:
    opa_server.restart()  # a clean OPA: only this candidate's policies
    a = trail.policy(tmp_path, "a", ["orders", "payments"])
    b = trail.policy(tmp_path, "b", ["orders", "invoices"])
    source = trail.write_trail(tmp_path / "audit", trail.records(a, trail.traffic()))
    on_opa = _what_if("--policies", str(b), "--audit", str(source), "--engine", "opa", "--url", opa_server.url, "--json")
    embedded = _what_if("--policies", str(b), "--audit", str(source), "--json")
    assert on_opa.returncode == embedded.returncode == 1, on_opa.stderr + embedded.stderr
    opa_report, embedded_report = json.loads(on_opa.stdout), json.loads(embedded.stdout)
    assert opa_report["changes"] == embedded_report["changes"]
    assert opa_report["summary"]["changed"] == 120
    # OPA cannot say what an evaluation read: every input that differs in the time (which the
    # policy may read) is evaluated.
    assert opa_report["summary"]["evaluations"] == len(trail.traffic())
    assert embedded_report["summary"]["evaluations"] == 5
    same = _what_if("--policies", str(a), "--audit", str(source), "--engine", "opa", "--url", opa_server.url)
    assert same.returncode == 0, same.stdout + same.stderr


def test_opa_not_answering_is_exit_2(tmp_path: Path) -> None:
    a = trail.policy(tmp_path, "a", ["orders"])
    source = trail.write_trail(tmp_path / "audit", trail.records(a, trail.traffic()[:5]))
    proc = _what_if("--policies", str(a), "--audit", str(source), "--engine", "opa", "--url", "http://127.0.0.1:9")
    assert proc.returncode == 2
    assert "cannot be loaded into OPA at http://127.0.0.1:9" in proc.stderr
    proc = _what_if("--policies", str(a), "--audit", str(source), "--engine", "opa")
    assert proc.returncode == 2 and "--engine opa needs --url" in proc.stderr
