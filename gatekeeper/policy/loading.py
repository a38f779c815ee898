"""Reading the policy files and data document an engine loads (shared by both engines)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["PolicyLoadError", "read_data", "read_modules"]


class PolicyLoadError(Exception):
    """The operator's policies or data cannot be loaded; the message names the file."""


def read_modules(policy_dir: Path) -> dict[str, str]:
    """Every ``*.rego`` under ``policy_dir`` except tests, keyed by its relative path."""
    if not policy_dir.is_dir():
        raise PolicyLoadError(f"{policy_dir}: the policies directory does not exist")
    modules = {
        str(p.relative_to(policy_dir)): p.read_text()
        for p in sorted(policy_dir.rglob("*.rego"))
        if not p.name.endswith("_test.rego")
    }
    if not modules:
        raise PolicyLoadError(f"{policy_dir}: no .rego policy files found")
    return modules


def read_data(path: Path | None) -> Mapping[str, Any]:
    """The data document (a JSON object), or an empty one."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise PolicyLoadError(f"{path}: cannot read the data document: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise PolicyLoadError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise PolicyLoadError(f"{path}: the data document must be a JSON object, got {type(data).__name__}")
    return data
