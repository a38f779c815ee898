"""An example Gatekeeper masking plugin: what a third party writes, importing ``gatekeeper.api``
only (docs/plugins.md in Gatekeeper is the guide).

- ``initials`` masker: ``"Ada Lovelace"`` becomes ``"A. L."``.
- ``employee_id`` detector: ``EMP-`` and six digits, as a token of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from gatekeeper.api import Drop, JsonValue, MaskingContext, MaskPluginError, Span

__all__ = ["EmployeeId", "Initials"]


class Initials:
    """A name becomes its initials: each word's first letter and a dot (``"Ada Lovelace"`` ->
    ``"A. L."``). Option ``dots: false`` leaves the dots out (``"AL"``). A value that is not a
    string (a number, a boolean) is replaced by ``"?"``: it is no name; a null stays null."""

    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"dots": {"type": "boolean"}},
    }
    masks_containers: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        self._dots = options.get("dots", True)

    def mask_text(self, text: str) -> str:
        initials = [word[0].upper() for word in text.split()]
        return " ".join(f"{i}." for i in initials) if self._dots else "".join(initials)

    def mask_value(self, value: JsonValue) -> JsonValue | Drop:
        if value is None:
            return None
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, dict | list):
            raise MaskPluginError("cannot take initials of an object or array")  # never reached: masks_containers is False
        return "?"


_EMPLOYEE_ID = re.compile(r"E(?<![A-Za-z0-9]E)MP-[0-9]{6}(?![0-9])")


class EmployeeId:
    """Employee ids: ``EMP-`` and six digits (``EMP-004217``), not inside a longer token."""

    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object", "additionalProperties": False}
    accepts_joined_text: ClassVar[bool] = True  # no ^ or $: may scan a document's strings at once

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        pass

    def find(self, text: str) -> Iterator[Span]:
        if "EMP-" not in text:
            return
        for m in _EMPLOYEE_ID.finditer(text):
            yield m.span()
