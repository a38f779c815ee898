"""``gatekeeper policy eval`` and ``gatekeeper policy test`` for policy authors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

GK = str(Path(sys.executable).with_name("gatekeeper"))
POLICY_DIR = Path(__file__).parent / "policy"


def _input(op: str, topic: str, groups: list[str]) -> dict:
    return {"version": 1, "protocol": "kafka", "operation": op, "api": {"key": 0, "name": "Produce", "version": 9},
            "principal": {"sub": "svc", "issuer": None, "groups": groups, "claims": {}, "mechanism": "NONE"},
            "resource": {"type": "topic", "name": topic}, "client": {"id": "c", "address": "127.0.0.1"},
            "session": {"id": "s", "started_at": "2026-11-23T00:00:00Z"}, "request": {}, "grants": [],
            "time": "2026-11-23T00:00:00Z"}


@pytest.mark.parametrize(("op", "topic", "groups", "action"), [
    ("produce", "orders", ["orders-writers"], "allow"),
    ("produce", "payments", ["orders-writers"], "deny"),
    ("delete_topic", "audit.log", ["platform"], "deny"),
])
def test_policy_eval_prints_the_decision(tmp_path, op, topic, groups, action) -> None:
    f = tmp_path / "in.json"
    f.write_text(json.dumps(_input(op, topic, groups)))
    proc = subprocess.run([GK, "policy", "eval", "-i", str(f), "--policies", str(POLICY_DIR)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["decision"]["action"] == action


def test_policy_commands_say_clearly_when_opa_is_missing(tmp_path) -> None:
    env = {**os.environ, "PATH": "/usr/bin:/bin", "GATEKEEPER_CACHE": str(tmp_path / "empty"), "GATEKEEPER_OPA": ""}
    proc = subprocess.run([GK, "policy", "test", str(POLICY_DIR)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 3
    assert "no 'opa' binary found" in proc.stderr and "GATEKEEPER_OPA" in proc.stderr
