"""The built-in maskers: redact, hash, keep, last4, email, null, drop.

Each is a class as a third party would write it against ``gatekeeper.api`` (see
``docs/plugins.md``), registered as an entry point in ``gatekeeper.maskers``. Type-aware: a null
stays null (it hides nothing), a number or a boolean is masked as its JSON text and the result
is a JSON string, so the masked document is valid JSON whatever was masked.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, ClassVar

from gatekeeper import api
from gatekeeper.api import DROP, JsonValue, MaskingContext, MaskPluginError

__all__ = ["Drop", "Email", "Hash", "Keep", "Last4", "Null", "Redact", "scalar_text"]

_CHAR = {"type": "string", "minLength": 1, "maxLength": 1}


def scalar_text(value: Any) -> str:
    """A JSON scalar as the text a masker works on: a string as is, a number or a boolean as its
    JSON text (``true``, ``42``, ``1.5``)."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    text = getattr(value, "json_text", None)  # a number kept exactly as written (jsondoc.py)
    return text if isinstance(text, str) else repr(value)


class Redact:
    """Any value (or span) becomes a fixed ``replacement`` (default ``"****"``)."""

    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"replacement": {"type": "string", "maxLength": 256}},
    }
    masks_containers: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        self.replacement: str = options.get("replacement", "****")

    def mask_value(self, value: JsonValue) -> JsonValue | api.Drop:
        return None if value is None else self.replacement

    def mask_text(self, text: str) -> str:
        return self.replacement


class Hash:
    """``"h:" + hex(HMAC-SHA256(masking key, text))``, cut to ``length`` hex digits: the same value
    always gives the same result (joins and counts still work), and without the key nobody can
    test a guess. A number is hashed as its JSON text, so ``42`` and ``"42"`` hash alike."""

    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"length": {"type": "integer", "minimum": 8, "maximum": 64}},
    }
    masks_containers: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        if not context.hash_key:
            raise MaskPluginError("needs masking.hash_key_file or masking.hash_key_env")
        # The keyed state is computed once; each value hashes on a copy of it (never updated
        # itself, so worker threads may share it).
        self._keyed = hmac.new(context.hash_key, digestmod=hashlib.sha256)
        self._length: int = options.get("length", 64)

    def mask_text(self, text: str) -> str:
        mac = self._keyed.copy()
        mac.update(text.encode("utf-8", "surrogatepass"))
        digest = mac.hexdigest()
        return "h:" + digest[: self._length]

    def mask_value(self, value: JsonValue) -> JsonValue | api.Drop:
        return None if value is None else self.mask_text(scalar_text(value))


class Keep:
    """Keeps the ``first`` and ``last`` N characters and replaces each one between with ``char``
    (default ``*``): ``keep {last: 4}`` makes ``4111111111111111`` ``************1111``. A text
    no longer than ``first + last`` is masked whole: keep never reveals a whole value."""

    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "first": {"type": "integer", "minimum": 0, "maximum": 64},
            "last": {"type": "integer", "minimum": 0, "maximum": 64},
            "char": _CHAR,
        },
    }
    masks_containers: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        self.first: int = options.get("first", 0)
        self.last: int = options.get("last", 0)
        self.char: str = options.get("char", "*")

    def mask_text(self, text: str) -> str:
        n = len(text)
        if n <= self.first + self.last:
            return self.char * n
        return text[: self.first] + self.char * (n - self.first - self.last) + text[n - self.last :]

    def mask_value(self, value: JsonValue) -> JsonValue | api.Drop:
        if value is None:
            return None
        if isinstance(value, bool):
            return self.char * 4  # two values only: keeping any of "true" would tell which
        return self.mask_text(scalar_text(value))


class Last4(Keep):
    """``keep`` with ``last: 4``: ``4111111111111111`` becomes ``************1111``."""

    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"char": _CHAR},
    }

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        super().__init__({"last": 4, **options}, context)


class Email:
    """Keeps an address's domain: ``ada@example.com`` becomes ``****@example.com`` (the local
    part's length is not kept). A value with no ``@`` is replaced whole."""

    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"replacement": {"type": "string", "maxLength": 256}},
    }
    masks_containers: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        self.replacement: str = options.get("replacement", "****")

    def mask_text(self, text: str) -> str:
        _, at, domain = text.rpartition("@")
        return f"{self.replacement}@{domain}" if at and domain else self.replacement

    def mask_value(self, value: JsonValue) -> JsonValue | api.Drop:
        if value is None:
            return None
        return self.mask_text(value) if isinstance(value, str) else self.replacement


class Null:
    """The value becomes JSON ``null`` (an object or array selected by a rule too); a span of
    text found by a detector is removed (text has no null)."""

    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object", "additionalProperties": False}
    masks_containers: ClassVar[bool] = True

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        pass

    def mask_value(self, value: JsonValue) -> JsonValue | api.Drop:
        return None

    def mask_text(self, text: str) -> str:
        return ""


class Drop:
    """The field is removed from its object (an element from its array; an object or array
    selected by a rule goes whole); a span of text found by a detector is removed. A whole
    record value or key dropped becomes JSON ``null`` (never a Kafka null: that would be a
    tombstone); a whole header dropped is removed."""

    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object", "additionalProperties": False}
    masks_containers: ClassVar[bool] = True

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        pass

    def mask_value(self, value: JsonValue) -> JsonValue | api.Drop:
        return DROP

    def mask_text(self, text: str) -> str:
        return ""
