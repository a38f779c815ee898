"""Which of Gatekeeper's modules run compiled, and never one compiled from other bytes.

The install builds the hot-path modules listed in ``setup.py`` as C extensions too (Cython,
from the same sources, Python's semantics kept), and writes ``_compiled.json``: each compiled
module and the SHA-256 of the source it was compiled from. Python prefers an extension to a
source of the same name, so an edited source would run as its old compiled self. The finder
installed here (first on ``sys.meta_path``) stops that: a Gatekeeper extension module is used
only while its source's digest is the one the manifest names; otherwise the source is loaded.
``GATEKEEPER_PURE_PYTHON=1`` loads every source (a profile of Python functions, fuzzing with
coverage, a suspected difference).

This runs at import time, before any reactor: reading a source to hash it is fine here.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["PURE_ENV", "install", "manifest", "source_reason", "status", "summary"]

PURE_ENV = "GATEKEEPER_PURE_PYTHON"
_MANIFEST = Path(__file__).with_name("_compiled.json")
_PACKAGE = __name__.rpartition(".")[0] + "."

_compiled: list[str] = []  # modules loaded from their extension
_from_source: dict[str, str] = {}  # module -> why its extension was passed over


def manifest(path: Path = _MANIFEST) -> dict[str, str]:
    """Module name -> digest of the source it was compiled from; empty when there is no build."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str)}


def source_reason(name: str, source: Path, built: Mapping[str, str], pure: bool) -> str | None:
    """Why module ``name``'s extension must not be used (its source is ``source``), or None
    when it may: the manifest names the digest of the source's bytes."""
    if pure:
        return f"{PURE_ENV}=1"
    digest = built.get(name)
    if digest is None:
        return "not in the build's manifest"
    try:
        current = hashlib.sha256(source.read_bytes()).hexdigest()
    except OSError as e:
        return f"its source cannot be read ({e.strerror})"
    if current != digest:
        return "its source changed after it was compiled"
    return None


class _CompiledOnlyIfCurrent(importlib.abc.MetaPathFinder):
    def __init__(self, built: Mapping[str, str], pure: bool) -> None:
        self._built = built
        self._pure = pure

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_PACKAGE):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return spec
        assert spec.origin is not None  # an extension is a file
        source = Path(spec.origin).with_name(fullname.rpartition(".")[2] + ".py")
        if not source.is_file():
            return spec
        reason = source_reason(fullname, source, self._built, self._pure)
        if reason is None:
            _compiled.append(fullname)
            return spec
        _from_source[fullname] = reason
        return importlib.util.spec_from_file_location(fullname, source)


def install(environ: Mapping[str, str] = os.environ) -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if any(isinstance(f, _CompiledOnlyIfCurrent) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _CompiledOnlyIfCurrent(manifest(), environ.get(PURE_ENV) == "1"))


def status() -> dict[str, Any]:
    """What has been imported so far: the modules running compiled, those whose source was
    loaded instead (with why), and how many the build compiled."""
    return {"compiled": sorted(_compiled), "from_source": dict(sorted(_from_source.items())),
            "built": len(manifest())}


def summary(found: Mapping[str, Any]) -> str:
    """``status()`` as one line for the startup log."""
    compiled, from_source, built = found["compiled"], found["from_source"], found["built"]
    if not built:
        return "hot-path modules: pure Python (no compiled build; setup.py builds them)"
    line = f"hot-path modules: {len(compiled)} imported compiled (of {built} built)"
    if from_source:
        line += f", {len(from_source)} from source: " + "; ".join(
            f"{name} ({why})" for name, why in sorted(from_source.items()))
    return line
