"""Maskers and detectors by name: loaded through ``gatekeeper.plugins`` (built-ins and third
parties alike), their options checked against their schema, each built once per distinct options.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema

from gatekeeper import plugins
from gatekeeper.api import MaskingContext, MaskPluginError

__all__ = ["Built", "MaskingError", "Registry"]

KINDS = {"masker": plugins.MASKERS, "detector": plugins.DETECTORS}
_METHODS = {"masker": ("mask_value", "mask_text"), "detector": ("find",)}


class MaskingError(Exception):
    """A decision's mask rules cannot be used: an unknown or broken masker or detector, options
    its schema refuses, a bad path or rule, a setting missing from the config. The decision's
    request is then refused (fail closed). Names the rule and the plugin; holds no record data."""


class Built:
    """A plugin instance with what the engine needs to know of its class."""

    __slots__ = ("instance", "joined", "masks_containers", "name")

    def __init__(self, name: str, instance: Any, cls: type[Any]) -> None:
        self.name = name
        self.instance = instance
        self.masks_containers = bool(getattr(cls, "masks_containers", False))
        self.joined = bool(getattr(cls, "accepts_joined_text", False))


class Registry:
    """Resolves ``(kind, name, options)`` to a :class:`Built`, caching classes for the process and
    instances (least recently used first out) so that each distinct options is built once."""

    def __init__(
        self,
        hash_key: bytes | None,
        *,
        load: Callable[[str, str], Any] = plugins.load,
        available: Callable[[str], list[str]] = plugins.available,
        max_instances: int = 4096,
    ) -> None:
        self._hash_key = hash_key
        self._load = load
        self._available = available
        self._classes: dict[tuple[str, str], tuple[type[Any], jsonschema.protocols.Validator]] = {}
        self._instances: OrderedDict[tuple[str, str, str], Built] = OrderedDict()
        self._max_instances = max_instances

    def get(self, kind: str, name: str, options: Mapping[str, Any]) -> Built:
        try:
            options_key = json.dumps(options, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            raise MaskingError(f"{kind} {name!r}: options are not JSON: {e}") from None
        key = (kind, name, options_key)
        built = self._instances.get(key)
        if built is not None:
            self._instances.move_to_end(key)
            return built
        cls, validator = self._class(kind, name)
        errors = sorted(validator.iter_errors(options), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            raise MaskingError("; ".join(f"{kind} {name!r}: {_where(e)}: {e.message}" for e in errors))
        context = MaskingContext(name=name, hash_key=self._hash_key)
        try:
            instance = cls(copy.deepcopy(dict(options)), context)
        except MaskPluginError as e:
            raise MaskingError(f"{kind} {name!r}: {e}") from None
        except Exception as e:
            raise MaskingError(f"{kind} {name!r} failed to start (the plugin's bug): {type(e).__name__}: {e}") from None
        built = Built(name, instance, cls)
        self._instances[key] = built
        if len(self._instances) > self._max_instances:
            self._instances.popitem(last=False)
        return built

    def _class(self, kind: str, name: str) -> tuple[type[Any], jsonschema.protocols.Validator]:
        found = self._classes.get((kind, name))
        if found is not None:
            return found
        group = KINDS[kind]
        if name not in self._available(group):
            installed = ", ".join(self._available(group)) or "none"
            raise MaskingError(f"unknown {kind} {name!r} (installed: {installed}); "
                               "install the distribution that provides it or fix the policy")
        try:
            cls = self._load(group, name)
        except plugins.PluginError as e:
            raise MaskingError(f"{kind} {name!r}: {e}") from None
        schema = getattr(cls, "options_schema", None)
        if not isinstance(cls, type) or not isinstance(schema, Mapping):
            raise MaskingError(f"{kind} {name!r} is not a {kind} plugin: a class with an options_schema is expected (docs/plugins.md)")
        missing = [m for m in _METHODS[kind] if not callable(getattr(cls, m, None))]
        if missing:
            raise MaskingError(f"{kind} {name!r} is not a {kind} plugin: it has no {', '.join(missing)}")
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            raise MaskingError(f"{kind} {name!r}: its options_schema is not a valid JSON Schema: {e.message}") from None
        found = (cls, jsonschema.Draft202012Validator(schema))
        self._classes[(kind, name)] = found
        return found


def _where(err: jsonschema.ValidationError) -> str:
    return "options" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
