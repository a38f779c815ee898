"""The compiled hot path (setup.py, gatekeeper/compiled.py): the test command builds every
listed module and the tests run them compiled; an extension runs only while its source is the
one it was compiled from; GATEKEEPER_PURE_PYTHON=1 runs every source."""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gatekeeper import compiled

ROOT = Path(__file__).resolve().parents[2]
PURE = os.environ.get(compiled.PURE_ENV) == "1"


def _listed() -> list[str]:
    """setup.py's COMPILED list, read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "COMPILED" for t in targets):
                assert node.value is not None
                return [p.removesuffix(".py").replace("/", ".") for p in ast.literal_eval(node.value)]
    raise AssertionError("setup.py has no COMPILED list")


@pytest.mark.skipif(PURE, reason=f"{compiled.PURE_ENV}=1: every module runs from source")
def test_every_listed_module_was_built_and_runs_compiled() -> None:
    listed = _listed()
    built = compiled.manifest()
    assert sorted(built) == sorted(listed), "the build's manifest is not setup.py's list: run scripts/setup.sh"
    not_compiled = {}
    for name in listed:
        module = importlib.import_module(name)
        if not isinstance(module.__spec__.loader, importlib.machinery.ExtensionFileLoader):
            not_compiled[name] = compiled.status()["from_source"].get(name, module.__file__)
    assert not not_compiled, not_compiled


def test_an_extension_is_used_only_for_the_bytes_it_was_compiled_from(tmp_path: Path) -> None:
    source = tmp_path / "walks.py"
    source.write_bytes(b"X = 1\n")
    digest = hashlib.sha256(b"X = 1\n").hexdigest()
    name = "gatekeeper.kafka.walks"
    assert compiled.source_reason(name, source, {name: digest}, pure=False) is None
    assert compiled.source_reason(name, source, {name: digest}, pure=True) == "GATEKEEPER_PURE_PYTHON=1"
    assert compiled.source_reason(name, source, {}, pure=False) == "not in the build's manifest"
    source.write_bytes(b"X = 2\n")  # one byte edited
    assert compiled.source_reason(name, source, {name: digest}, pure=False) == (
        "its source changed after it was compiled")
    source.unlink()
    assert "cannot be read" in (compiled.source_reason(name, source, {name: digest}, pure=False) or "")


def test_a_damaged_manifest_vouches_for_nothing(tmp_path: Path) -> None:
    path = tmp_path / "_compiled.json"
    assert compiled.manifest(path) == {}  # none
    path.write_text("{not json")
    assert compiled.manifest(path) == {}
    path.write_text(json.dumps(["gatekeeper.kafka.walks"]))
    assert compiled.manifest(path) == {}
    path.write_text(json.dumps({"gatekeeper.kafka.walks": "ab", "gatekeeper.x": 3}))
    assert compiled.manifest(path) == {"gatekeeper.kafka.walks": "ab"}


def test_the_startup_line_says_what_runs_compiled() -> None:
    assert "pure Python" in compiled.summary({"compiled": [], "from_source": {}, "built": 0})
    line = compiled.summary({"compiled": ["a", "b"], "from_source": {"gatekeeper.c": "its source changed"},
                             "built": 3})
    assert line == "hot-path modules: 2 imported compiled (of 3 built), 1 from source: gatekeeper.c (its source changed)"


_PROBE = """
import json, gatekeeper.kafka.framing as framing, gatekeeper.kafka.walks as walks
from gatekeeper import compiled
print(json.dumps({"framing": framing.__file__, "walks": walks.__file__,
                  "edited": getattr(framing, "EDITED", False), "status": compiled.status()}))
"""


@pytest.mark.skipif(PURE, reason=f"{compiled.PURE_ENV}=1: every module runs from source")
def test_an_edited_source_runs_instead_of_its_stale_extension(tmp_path: Path) -> None:
    # A copy of the built package, one source edited after the build, imported in a fresh
    # interpreter (this one has its modules already).
    package = Path(compiled.__file__).parent
    shutil.copytree(package, tmp_path / "gatekeeper", ignore=shutil.ignore_patterns("__pycache__", "*.c"))
    with (tmp_path / "gatekeeper/kafka/framing.py").open("a") as f:
        f.write("\nEDITED = True\n")

    def probe(**env: str) -> dict:
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(tmp_path), **env}, timeout=120)
        return json.loads(out.stdout)

    found = probe()
    assert found["framing"] == str(tmp_path / "gatekeeper/kafka/framing.py") and found["edited"] is True, found
    assert found["status"]["from_source"] == {"gatekeeper.kafka.framing": "its source changed after it was compiled"}
    assert found["walks"].startswith(str(tmp_path / "gatekeeper/kafka/walks.")), found
    assert found["walks"].endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), found
    assert "gatekeeper.kafka.walks" in found["status"]["compiled"]

    pure = probe(**{compiled.PURE_ENV: "1"})
    assert pure["walks"] == str(tmp_path / "gatekeeper/kafka/walks.py"), pure
    assert pure["status"]["compiled"] == [], pure
