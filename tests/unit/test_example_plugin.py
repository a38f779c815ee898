"""The example third-party distribution in plugins/gatekeeper-example-masking: it imports only
``gatekeeper.api`` and works through the rules engine. (That it installs and is found by its
entry points is checked when it is installed; the end-to-end test through the gateway is in
tests/integration.)"""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

from gatekeeper.plugins import DETECTORS, MASKERS, available, load
from gatekeeper.testing.masking import masking_with

EXAMPLE = Path(__file__).resolve().parents[2] / "plugins" / "gatekeeper-example-masking"


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return importlib.import_module("gatekeeper_example_masking")


def test_the_example_imports_only_the_public_api() -> None:
    for source in (EXAMPLE / "gatekeeper_example_masking").rglob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gatekeeper"):
                assert node.module == "gatekeeper.api", f"{source.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("gatekeeper") for a in node.names), source.name


def test_the_example_declares_its_entry_points() -> None:
    import tomllib

    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    assert project["entry-points"][MASKERS] == {"initials": "gatekeeper_example_masking:Initials"}
    assert project["entry-points"][DETECTORS] == {"employee_id": "gatekeeper_example_masking:EmployeeId"}


def test_the_example_through_the_rules_engine(example) -> None:
    masking = masking_with(maskers={"initials": example.Initials}, detectors={"employee_id": example.EmployeeId})
    plan = masking.plan([{"field": "$.name", "masker": "initials"}, {"detector": "employee_id", "masker": "last4"}],
                        "consume")
    out = plan.apply(None, b'{"name": "Ada Lovelace", "badge": "EMP-004217"}', [])
    assert json.loads(out.value) == {"name": "A. L.", "badge": "******4217"}


@pytest.mark.skipif("initials" not in available(MASKERS), reason="the example distribution is not installed")
def test_the_installed_example_is_found_by_its_entry_points() -> None:
    assert "employee_id" in available(DETECTORS)
    assert load(MASKERS, "initials").__name__ == "Initials"
    assert load(DETECTORS, "employee_id").__name__ == "EmployeeId"
