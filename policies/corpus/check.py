"""Check the decision corpus: every input and expected decision against the schemas, and every
expected decision against what OPA decides.

    ~/.cache/gatekeeper/venv/bin/python policies/corpus/check.py [CORPUS_FILE_OR_DIR ...]

With no arguments, checks every policies/corpus/*/cases.json. A corpus file is
{"policy": "gatekeeper/decision", "data": "policies/data.json" | {...} | null, "cases":
[{"name", "input", "expected"}]}. OPA gets what Gatekeeper's engines get: the *.rego files under
policies/ except tests, and the corpus's data document only (not the data.json files that
`opa test policies/` picks up). Exits 1 on any mismatch, 2 if it cannot run.
The opa binary: $GATEKEEPER_OPA, else opa on PATH, else the test harness's cached build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
SCHEMAS = ROOT / "gatekeeper" / "schemas"


def find_opa() -> str:
    cached = sorted(Path.home().glob(".cache/gatekeeper/opa-v*/opa"))
    for candidate in [os.environ.get("GATEKEEPER_OPA"), shutil.which("opa"), *map(str, reversed(cached))]:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("no opa binary: set GATEKEEPER_OPA or put opa on PATH")


RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")

# jsonschema checks "date-time" only when rfc3339-validator is installed: check it here either way.
FORMATS = FormatChecker()


@FORMATS.checks("date-time")
def is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not RFC3339.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    return Draft202012Validator(schema, format_checker=FORMATS)


def corpus_files(args: list[str]) -> list[Path]:
    if not args:
        return sorted((POLICIES / "corpus").glob("*/cases.json"))
    files: list[Path] = []
    for arg in map(Path, args):
        files += sorted(arg.rglob("*.json")) if arg.is_dir() else [arg]
    return files


def policy_modules(into: Path) -> None:
    """Copy the policies as the engines load them: every *.rego but the tests."""
    for rego in POLICIES.rglob("*.rego"):
        if not rego.name.endswith("_test.rego"):
            target = into / rego.relative_to(POLICIES)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rego, target)


def evaluate(opa: str, modules: Path, data: Path | None, query: str, policy_input: Any) -> Any:
    cmd = [opa, "eval", "--format", "json", "--stdin-input", "-d", str(modules)]
    if data is not None:
        cmd += ["-d", str(data)]
    proc = subprocess.run([*cmd, query], input=json.dumps(policy_input), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return f"opa eval failed: {(proc.stderr or proc.stdout).strip()}"
    result = json.loads(proc.stdout).get("result")
    return result[0]["expressions"][0]["value"] if result else "undefined"


def check(opa: str, path: Path, work: Path, inputs: Draft202012Validator, decisions: Draft202012Validator) -> list[str]:
    doc = json.loads(path.read_text())
    spec = doc.get("data")
    if isinstance(spec, str):
        data: Path | None = ROOT / spec
    elif isinstance(spec, dict):
        data = work / f"{path.parent.name}-data.json"
        data.write_text(json.dumps(spec))
    else:
        data = None
    query = "data." + doc["policy"].strip("/").replace("/", ".")
    problems = []
    for case in doc["cases"]:
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {case['name']}"
        problems += [f"{where}: input: {e.json_path}: {e.message}" for e in inputs.iter_errors(case["input"])]
        problems += [f"{where}: expected: {e.json_path}: {e.message}" for e in decisions.iter_errors(case["expected"])]
        got = evaluate(opa, work / "policies", data, query, case["input"])
        if got != case["expected"]:
            problems.append(f"{where}: expected {json.dumps(case['expected'])}, OPA gives {json.dumps(got)}")
    return problems


def main() -> int:
    opa = find_opa()
    files = corpus_files(sys.argv[1:])
    if not files:
        print("no corpus files found", file=sys.stderr)
        return 2
    inputs, decisions = validator("policy-input.schema.json"), validator("decision.schema.json")
    total, problems = 0, []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        policy_modules(work / "policies")
        for path in files:
            found = check(opa, path.resolve(), work, inputs, decisions)
            cases = len(json.loads(path.read_text())["cases"])
            total += cases
            print(f"{path}: {cases} cases, {len(found) or 'no'} problems")
            problems += found
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{total} cases in {len(files)} files: {'FAILED, ' + str(len(problems)) + ' problems' if problems else 'all agree'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
