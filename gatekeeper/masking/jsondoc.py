"""Record bytes to a JSON document and back, fast and without changing a number.

orjson parses and serializes (a 1 KiB record in about 2 µs each way), but it reads an integer
beyond 64 bits as a float and a float as an IEEE double, silently. So a document that holds a
number orjson could change — an integer of 19 or more digits, a decimal of 16 or more significant
digits, an exponent of three digits — is read by the standard library instead, with such numbers
kept exactly as written (:class:`ExactFloat`), and written back by :func:`dump` as they came.
Everything else about the output is canonical: compact, UTF-8, keys in their order, a repeated
key once (its last value, as most JSON parsers read it).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["ExactFloat", "NotJson", "dump", "parse", "parse_text", "risky"]

# Numbers orjson might not keep exactly (see the module docstring) show, in the bytes mapped by
# _NUMERIC (digits and '.' to '0', 'e' and 'E' to 'e', signs to 's', the rest to ' '), as 17 '0'
# in a row or an exponent of three digits. A match inside a string only sends the document the
# slower, equally exact way. Two C-speed passes: far cheaper than a regex over the document.
_NUMERIC = bytes(
    ord("0") if chr(b) in "0123456789." else ord("e") if chr(b) in "eE" else ord("s") if chr(b) in "+-" else ord(" ")
    for b in range(256)
)
_LONG_DIGITS = b"0" * 17


def risky(data: bytes) -> bool:
    """Whether ``data`` may hold a number orjson would not keep exactly."""
    mapped = data.translate(_NUMERIC)
    return _LONG_DIGITS in mapped or b"0e000" in mapped or b"0es000" in mapped


class NotJson(Exception):
    """The bytes are not a JSON document; ``kind`` is ``not UTF-8`` or ``not JSON``. Never holds
    the bytes."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class ExactFloat(float):
    """A JSON number with a fraction or exponent, as a float, that remembers the text it was
    written as; :func:`dump` writes that text back."""

    json_text: str

    def __new__(cls, text: str) -> ExactFloat:
        self = super().__new__(cls, text)
        self.json_text = text
        return self


def _refuse_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def parse_text(text: str) -> Any:
    """A JSON document from text, numbers kept exactly; raises NotJson."""
    try:
        return json.loads(text, parse_float=ExactFloat, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise NotJson("not JSON") from None


def parse(data: bytes, *, exact: bool = True) -> tuple[Any, bool]:
    """A JSON document from UTF-8 bytes and whether its numbers are certainly as written; raises
    NotJson. ``exact=False`` skips the check for numbers orjson might change (for a caller that
    only needs the document's shape, and calls :func:`risky` before it writes it back)."""
    if not exact or not risky(data):
        try:
            return orjson.loads(data), exact
        except orjson.JSONDecodeError:
            pass  # not JSON, not UTF-8, or something orjson refuses that the standard library reads
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotJson("not UTF-8") from None
    return parse_text(text), True


def dump(doc: Any) -> bytes:
    """Compact UTF-8 JSON; exact numbers as they were written."""
    try:
        return orjson.dumps(doc)
    except TypeError:  # an ExactFloat, an integer beyond 64 bits, a lone surrogate, a plugin's odd type
        pass
    return _dump_exact(doc).encode("utf-8")


def _dump_exact(doc: Any) -> str:
    parts: list[str] = []
    _write(doc, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=_has_surrogate(value)))
    elif value is None or value is True or value is False:
        out.append("null" if value is None else ("true" if value else "false"))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, ExactFloat):
        out.append(value.json_text)
    elif isinstance(value, float):
        out.append(repr(float(value)) if value == value and value not in (float("inf"), float("-inf")) else "null")
    elif isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(",")
            _write(str(k), out)
            out.append(":")
            _write(v, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _write(v, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON type")


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
