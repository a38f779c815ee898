"""Tools for policy authors: run the Rego tests, and evaluate one input (``gatekeeper policy``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from gatekeeper.policy.decision import DecisionError, parse_decision
from gatekeeper.policy.opa_version import OPA_VERSION

__all__ = ["OpaMissing", "cached_opa", "eval_input", "find_opa", "run_tests"]


class OpaMissing(Exception):
    """No ``opa`` binary: say how to get one."""


def find_opa() -> str:
    """``$GATEKEEPER_OPA``, then ``opa`` on PATH, then the pinned build the test harness caches."""
    candidates = [os.environ.get("GATEKEEPER_OPA"), shutil.which("opa"), str(cached_opa())]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    raise OpaMissing(
        "no 'opa' binary found: set GATEKEEPER_OPA, put opa on PATH, or, in a Gatekeeper checkout, "
        f"run 'python -m harness.deps' to build OPA {OPA_VERSION} with go install"
    )


def cached_opa() -> Path:
    """Where the harness puts its OPA build: ``$GATEKEEPER_CACHE`` (else ``~/.cache/gatekeeper``)
    ``/opa-<version>/opa``. The path may not exist."""
    env = os.environ.get("GATEKEEPER_CACHE")
    cache = Path(env).expanduser() if env else Path.home() / ".cache" / "gatekeeper"
    return cache / f"opa-{OPA_VERSION}" / "opa"


def run_tests(policy_dir: Path, verbose: bool = False) -> int:
    """``opa test`` over the policies (and their data.json); returns its exit code."""
    cmd = [find_opa(), "test", str(policy_dir)] + (["-v"] if verbose else [])
    return subprocess.run(cmd, check=False).returncode


def eval_input(policy_dir: Path, data: Path | None, decision_path: str, policy_input: Any) -> dict[str, Any]:
    """The decision for one input, as Gatekeeper would parse it: {"decision": …} or {"error": …}."""
    query = "data." + decision_path.strip("/").replace("/", ".")
    cmd = [find_opa(), "eval", "--format", "json", "--stdin-input", "-d", str(policy_dir)]
    if data is not None and not data.resolve().is_relative_to(policy_dir.resolve()):
        cmd += ["-d", str(data)]
    proc = subprocess.run(cmd + [query], input=json.dumps(policy_input), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": f"opa eval failed: {proc.stderr.strip() or proc.stdout.strip()}"}
    result = json.loads(proc.stdout).get("result") or []
    raw = result[0]["expressions"][0]["value"] if result else None
    try:
        decision = parse_decision(raw)
    except DecisionError as e:
        return {"error": str(e), "raw": raw, "enforced": "deny"}
    return {"decision": raw, "enforced": decision.action if decision.action == "allow" else f"{decision.action} ({decision.error})"}
