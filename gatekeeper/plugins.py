"""Entry-point plugin loading: protocol adapters (and, later, maskers, detectors, notifiers)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

__all__ = ["PluginError", "available", "load"]

ADAPTERS = "gatekeeper.adapters"


class PluginError(Exception):
    """A configured plugin is not installed or does not load."""


def available(group: str) -> list[str]:
    return sorted(ep.name for ep in entry_points(group=group))


def load(group: str, name: str) -> Any:
    """The object registered as ``name`` in entry-point ``group``."""
    matches = [ep for ep in entry_points(group=group) if ep.name == name]
    if not matches:
        raise PluginError(
            f"no plugin {name!r} in entry-point group {group!r} "
            f"(installed: {', '.join(available(group)) or 'none'}); install the distribution that provides it"
        )
    try:
        return matches[0].load()
    except Exception as e:
        raise PluginError(f"plugin {name!r} in {group!r} failed to load: {type(e).__name__}: {e}") from e
