"""A decision's mask items compiled to rules: path parsed, masker and detector built, defaults
filled in. Strict, like decision parsing: anything unexpected is a MaskingError naming the item.

An item (``docs/policy-input.md``, the decision's ``mask``)::

    {"field": "$.customer.card" | "detector": "email",      exactly one of the two
     "masker": "last4", "options": {...},                   options: the masker's
     "detector_options": {...},                             the detector's, if any
     "in": "value" | "key" | "header:<glob>",               default value
     "on_error": "deny" | "redact_value" | "pass"}          default by direction
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from gatekeeper.masking.paths import FieldPath, PathError, compile_path
from gatekeeper.masking.registry import Built, MaskingError, Registry

__all__ = ["DEFAULT_ON_ERROR", "ON_ERROR", "Rule", "compile_rules"]

ON_ERROR = ("deny", "redact_value", "pass")
# Fail closed where a client sends (produce: it is told, and can fix its record); on consume the
# data is already stored, so the reader gets a marker in place of what could not be masked.
DEFAULT_ON_ERROR = {"produce": "deny", "consume": "redact_value"}
_KEYS = {"field", "detector", "masker", "options", "detector_options", "in", "on_error"}


@attrs.frozen
class Rule:
    index: int  # 1-based, in the decision's order
    masker: Built
    on_error: str
    target: str  # value | key | header
    header_glob: str | None = None
    path: FieldPath | None = None
    detector: Built | None = None

    @property
    def describe(self) -> str:
        what = f"field {self.path.text}" if self.path is not None else f"detector {self.detector.name}"  # type: ignore[union-attr]
        return f"mask rule {self.index} ({what}, masker {self.masker.name})"


def compile_rules(items: Sequence[Any], direction: str, registry: Registry) -> tuple[Rule, ...]:
    if direction not in DEFAULT_ON_ERROR:
        raise ValueError(f"direction must be produce or consume, not {direction!r}")  # our bug
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise MaskingError(f"mask: expected a list of rules, got {type(items).__name__}")
    return tuple(_rule(i, item, direction, registry) for i, item in enumerate(items, start=1))


def _rule(index: int, item: Any, direction: str, registry: Registry) -> Rule:
    where = f"mask rule {index}"
    if not isinstance(item, Mapping):
        raise MaskingError(f"{where}: expected an object, got {type(item).__name__}")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise MaskingError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} (expected {', '.join(sorted(_KEYS))})")
    if ("field" in item) == ("detector" in item):
        raise MaskingError(f"{where}: exactly one of 'field' and 'detector' is expected")
    masker = _name(item, "masker", where)
    on_error = item.get("on_error", DEFAULT_ON_ERROR[direction])
    if on_error not in ON_ERROR:
        raise MaskingError(f"{where}: on_error must be one of {', '.join(ON_ERROR)}, not {on_error!r}")
    target, glob = _target(item.get("in", "value"), where)
    path = detector = None
    if "field" in item:
        if "detector_options" in item:
            raise MaskingError(f"{where}: detector_options without a detector")
        field = item["field"]
        try:
            path = compile_path(field)
        except PathError as e:
            raise MaskingError(f"{where}: {e}") from None
    else:
        detector = registry.get("detector", _name(item, "detector", where), _options(item, "detector_options", where))
    built = registry.get("masker", masker, _options(item, "options", where))
    return Rule(index=index, masker=built, on_error=on_error, target=target, header_glob=glob, path=path, detector=detector)


def _name(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise MaskingError(f"{where}: {key!r} must be a non-empty string")
    return value


def _options(item: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = item.get(key, {})
    if not isinstance(value, Mapping):
        raise MaskingError(f"{where}: {key!r} must be an object, got {type(value).__name__}")
    return value


def _target(spec: Any, where: str) -> tuple[str, str | None]:
    if spec in ("value", "key"):
        return spec, None
    if isinstance(spec, str) and spec.startswith("header:") and len(spec) > len("header:"):
        return "header", spec[len("header:") :]
    raise MaskingError(f"{where}: 'in' must be value, key or header:<glob>, not {spec!r}")
