"""A compiled set of mask rules applied to one record: ``Plan.apply(key, value, headers)``.

Each part of the record a rule is ``in`` (the value, the key, each header whose name matches
the rule's glob) is masked on its own, field rules first, then detectors, each in the
decision's order:

- A field rule parses the part as JSON (:mod:`jsondoc`); a path absent from it is no error.
- A detector scans every string value, object key and integer of a JSON object, array or
  string, or the whole part as text otherwise. A match that is a whole string value or integer
  is masked as a value (so ``null`` and ``drop`` work on it), other matches as text spans;
  overlapping matches of several detectors are merged and masked by the first rule's masker.
  A masked object key that collides with another key gets ``#2``, ``#3``… appended.
- A part nothing matched in is returned as the same bytes object: no re-serialization.
- A null (a tombstone, a null key, a null header value) or an empty part has nothing to mask.
- A part a rule cannot be applied to (not JSON for a field rule, not UTF-8, a masker or detector
  that failed) follows the rule's ``on_error``: ``deny`` raises :class:`RecordRefused`,
  ``redact_value`` replaces the whole part with a marker such as ``[masked: not JSON]``,
  ``pass`` leaves it (that rule) be. When several rules fail, the strictest wins.

No reason or error ever holds any of the record's bytes, nor a plugin's own message about them.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from itertools import accumulate
from typing import Any

import attrs

from gatekeeper.api import DROP
from gatekeeper.masking import jsondoc
from gatekeeper.masking.registry import Built
from gatekeeper.masking.rules import Rule

__all__ = ["MARKERS", "MaskedRecord", "Plan", "RecordRefused"]

Headers = list[tuple[str, bytes | None]]

MARKERS = {
    "not JSON": b"[masked: not JSON]",
    "not UTF-8": b"[masked: not UTF-8]",
    "failed": b"[masked: masking failed]",
}
_STRICTNESS = {"pass": 0, "redact_value": 1, "deny": 2}
_JSON_TYPES = frozenset({str, int, float, bool, type(None), dict, list, jsondoc.ExactFloat})
_SEP = "\x00"
_MAX_HEADER_NAMES = 256


class RecordRefused(Exception):
    """A rule with ``on_error: deny`` could not be applied to a record. ``reason`` says which rule,
    which part and why, never with the record's content."""

    def __init__(self, reason: str, rule: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rule = rule


@attrs.frozen
class MaskedRecord:
    key: bytes | None
    value: bytes | None
    headers: Headers
    changed: bool  # False: key, value and headers are the objects given
    fields: Mapping[str, int]  # masker name -> values or spans it masked


class _Failed(Exception):
    """A rule could not be applied (internal: becomes the rule's on_error)."""

    def __init__(self, rule: Rule, problem: str, marker: str) -> None:
        self.rule = rule
        self.problem = problem
        self.marker = marker


_REMOVED = object()  # a whole part dropped


class _Part:
    """The rules for one part of a record (the value, the key, headers of one name)."""

    __slots__ = ("detectors", "fields", "needles")

    def __init__(self, rules: list[Rule]) -> None:
        self.fields = tuple(r for r in rules if r.path is not None)
        self.detectors = tuple(r for r in rules if r.detector is not None)
        # A path ending in member names can only be in a document that has one of them written
        # as a key: literally, "name", or with an escape (then the bytes hold a backslash).
        self.needles = tuple(_needles(r) for r in self.fields)

    def mask(self, data: bytes, what: str, counts: dict[str, int]) -> Any:
        """``data`` itself when nothing matched, else the masked bytes or _REMOVED."""
        mine: dict[str, int] = {}
        try:
            try:
                # Field rules only need the document's shape: parse it fast, and only when it is
                # to be written back check that no number could have changed (else mask it again,
                # exactly). Detectors read the integers too: they always parse exactly.
                out = self._mask(data, mine, exact=bool(self.detectors))
                if out is _RETRY_EXACT:
                    mine.clear()
                    out = self._mask(data, mine, exact=True)
            except RecursionError:
                _give_up(self.fields + self.detectors, "nested too deeply to mask", "failed")
                return data  # every rule passes
        except _Failed as failed:
            rule = failed.rule
            if rule.on_error == "deny":
                raise RecordRefused(f"{rule.describe} on the record {what}: {failed.problem}", rule.index) from None
            if rule.on_error == "redact_value":
                counts[rule.masker.name] = counts.get(rule.masker.name, 0) + 1
                return MARKERS[failed.marker]
            raise AssertionError("on_error pass is handled where it happens") from None  # our bug
        for name, n in mine.items():
            counts[name] = counts.get(name, 0) + n
        return out

    def _mask(self, data: bytes, counts: dict[str, int], exact: bool) -> Any:
        doc: Any = _UNPARSED
        changed = False
        if self.fields:
            try:
                doc, exact = jsondoc.parse(data, exact=exact)
            except jsondoc.NotJson as e:
                _give_up(self.fields, e.kind, e.kind)
            else:
                escaped = b"\\" in data
                for rule, needles in zip(self.fields, self.needles, strict=True):
                    if needles is not None and not escaped:
                        for needle in needles:
                            if needle in data:
                                break
                        else:
                            continue  # the path's last name is not a key anywhere in the document
                    doc, hit = _mask_field(rule, doc, counts)
                    changed |= hit
                    if doc is _REMOVED:
                        return _REMOVED
        if self.detectors:
            if doc is _UNPARSED and data.lstrip()[:1] in (b"{", b"[", b'"'):
                try:
                    doc, exact = jsondoc.parse(data)
                except jsondoc.NotJson:
                    pass  # not JSON after all: scanned as text
            if doc is _UNPARSED or (not changed and not isinstance(doc, dict | list | str)):
                return _detect_text(self.detectors, data, counts)  # text, or a bare number or word
            doc, hit = _detect_json(self.detectors, doc, counts)
            changed |= hit
        # Unchanged, the part goes on as its bytes, unless the document repeats a key: its rules
        # were checked against the value the parser kept (the last), and a consumer whose parser
        # keeps the first would read the other, unchecked. Written back as it was read, the
        # consumer reads what was checked.
        if not changed and (doc is _UNPARSED or not _may_repeat_keys(data, doc)):
            return data
        if doc is _REMOVED:
            return _REMOVED
        if not exact and jsondoc.risky(data):
            return _RETRY_EXACT
        try:
            return jsondoc.dump(doc)
        except (TypeError, ValueError, RecursionError):
            rules = self.fields or self.detectors
            _give_up(rules, "a masker returned a value that is not JSON", "failed")
            return data  # every rule passes: the part stays as it came


_KEY_END = re.compile(rb'"[ \t\r\n]*:')


def _may_repeat_keys(data: bytes, doc: Any) -> bool:
    """Whether the JSON text ``data`` may hold an object with a key twice. Each key in the text
    is a string followed by a colon, so the text has at least as many ``"…:`` as it has keys;
    parsed, repeated keys collapse. Fewer keys parsed than ``"…:`` in the text: maybe (a string
    holding ``":`` gives a false alarm, which only costs writing the document back)."""
    if data.count(b":") == 0:
        return False
    return len(_KEY_END.findall(data)) > _count_keys(doc)


def _count_keys(node: Any) -> int:
    if isinstance(node, dict):
        return len(node) + sum(_count_keys(v) for v in node.values() if isinstance(v, dict | list))
    if isinstance(node, list):
        return sum(_count_keys(v) for v in node if isinstance(v, dict | list))
    return 0


_UNPARSED = object()
_RETRY_EXACT = object()


def _needles(rule: Rule) -> tuple[bytes, ...] | None:
    names = rule.path.final_names  # type: ignore[union-attr]
    return None if names is None else tuple(b'"' + n.encode("utf-8", "surrogatepass") + b'"' for n in names)


def _give_up(rules: tuple[Rule, ...], problem: str, marker: str) -> None:
    """Raise _Failed for the strictest of ``rules`` unless all of them pass."""
    strictest = max(rules, key=lambda r: _STRICTNESS[r.on_error])
    if strictest.on_error != "pass":
        raise _Failed(strictest, problem, marker)


def _plugin_failed(rule: Rule, built: Built, kind: str, e: Exception) -> None:
    """A masker or detector raised: the rule's on_error (the plugin's message is not shown: it
    might quote the value)."""
    if rule.on_error != "pass":
        raise _Failed(rule, f"{kind} {built.name!r} failed ({type(e).__name__})", "failed") from None


def _mask_value(rule: Rule, value: Any) -> Any:
    result = rule.masker.instance.mask_value(value)
    if type(result) not in _JSON_TYPES and result is not DROP:
        raise TypeError(f"mask_value returned a {type(result).__name__}")
    return result


def _mask_text(rule: Rule, text: str) -> str:
    result = rule.masker.instance.mask_text(text)
    if not isinstance(result, str):
        raise TypeError(f"mask_text returned a {type(result).__name__}")
    return result


# -- field rules -----------------------------------------------------------------------------------


def _mask_field(rule: Rule, doc: Any, counts: dict[str, int]) -> tuple[Any, bool]:
    slots = rule.path.slots(doc)  # type: ignore[union-attr]
    if not slots:
        return doc, False
    n = 0
    drops: dict[int, tuple[list[Any], list[int]]] = {}
    mask_value = rule.masker.instance.mask_value
    whole = rule.masker.masks_containers
    try:
        for parent, key in slots:
            if parent is None:
                doc, k = _mask_node(rule, doc)
                n += k
                continue
            try:
                old = parent[key]
            except (KeyError, IndexError):
                continue  # removed by an earlier slot
            t = type(old)
            if (t is dict or t is list) and not whole:
                n += _mask_leaves(rule, old)
                continue
            new = mask_value(old)
            n += 1
            if type(new) not in _JSON_TYPES:
                if new is not DROP:
                    raise TypeError(f"mask_value returned a {type(new).__name__}")
                if type(parent) is dict:
                    del parent[key]
                else:
                    drops.setdefault(id(parent), (parent, []))[1].append(key)
            else:
                parent[key] = new
    except Exception as e:
        _plugin_failed(rule, rule.masker, "masker", e)
    for parent, indexes in drops.values():
        for i in sorted(set(indexes), reverse=True):
            del parent[i]
    if n:
        counts[rule.masker.name] = counts.get(rule.masker.name, 0) + n
    return doc, True


def _mask_node(rule: Rule, node: Any) -> tuple[Any, int]:
    """(the node masked, in place for a container masked leaf by leaf, or _REMOVED; values masked)."""
    if isinstance(node, dict | list) and not rule.masker.masks_containers:
        return node, _mask_leaves(rule, node)
    new = _mask_value(rule, node)
    return (_REMOVED if new is DROP else new), 1


def _mask_leaves(rule: Rule, node: Any) -> int:
    n = 0
    items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
    dropped = []
    for key, value in items:
        if isinstance(value, dict | list):
            n += _mask_leaves(rule, value)
            continue
        new = _mask_value(rule, value)
        n += 1
        if new is DROP:
            dropped.append(key)
        else:
            node[key] = new
    for key in reversed(dropped):
        del node[key]
    return n


# -- detectors -------------------------------------------------------------------------------------

_VALUE, _NUMBER, _KEY = 0, 1, 2


def _leaves(doc: Any) -> list[tuple[Any, Any, str, int]]:
    """(container, key, text, kind) of every string value, integer and object key; the container
    is None for a document that is one string."""
    if type(doc) is str:
        return [(None, None, doc, _VALUE)]
    out: list[tuple[Any, Any, str, int]] = []
    append = out.append
    stack = [doc]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            for k, v in node.items():
                append((node, k, k, _KEY))
                t = type(v)
                if t is str:
                    append((node, k, v, _VALUE))
                elif t is dict or t is list:
                    stack.append(v)
                elif t is int:  # not bool, whose type is bool
                    append((node, k, str(v), _NUMBER))
        else:
            for i, v in enumerate(node):
                t = type(v)
                if t is str:
                    append((node, i, v, _VALUE))
                elif t is dict or t is list:
                    stack.append(v)
                elif t is int:
                    append((node, i, str(v), _NUMBER))
    return out


def _find(rule: Rule, text: str) -> list[tuple[int, int]]:
    detector = rule.detector
    try:
        spans = [(int(s), int(e)) for s, e in detector.instance.find(text)]  # type: ignore[union-attr]
    except Exception as e:
        _plugin_failed(rule, detector, "detector", e)  # type: ignore[arg-type]
        return []
    return [(max(s, 0), min(e, len(text))) for s, e in spans if e > s]


def _detect_json(rules: tuple[Rule, ...], doc: Any, counts: dict[str, int]) -> tuple[Any, bool]:
    if not isinstance(doc, dict | list | str):
        return doc, False  # a number, true, false, null: scanned as text, unparsed
    leaves = _leaves(doc)
    if not leaves:
        return doc, False
    found: dict[int, list[tuple[int, int, Rule]]] = {}
    joined = starts = None
    for rule in rules:
        if rule.detector.joined:  # type: ignore[union-attr]
            if joined is None:
                texts = [leaf[2] for leaf in leaves]
                joined = _SEP.join(texts)
                starts = list(accumulate([len(t) + 1 for t in texts], initial=0))
            for s, e in _find(rule, joined):
                _spread(found, starts, leaves, s, e, rule)  # type: ignore[arg-type]
        else:
            for i, leaf in enumerate(leaves):
                for s, e in _find(rule, leaf[2]):
                    found.setdefault(i, []).append((s, e, rule))
    if not found:
        return doc, False
    renames: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}
    drops: dict[int, tuple[list[Any], list[int]]] = {}
    for i, spans in found.items():
        container, key, text, kind = leaves[i]
        merged = _merge(spans)
        for _, _, rule in merged:
            counts[rule.masker.name] = counts.get(rule.masker.name, 0) + 1
        if kind == _KEY:
            renames.setdefault(id(container), (container, {}))[1][key] = _masked_text(text, merged)
            continue
        first = merged[0][2]
        if kind == _NUMBER or (len(merged) == 1 and merged[0][0] == 0 and merged[0][1] == len(text)):
            original = text if container is None else container[key]
            new = _guarded(first, _mask_value, original)
            if new is _FAILED:
                continue
        else:
            new = _masked_text(text, merged)
        if container is None:
            return (_REMOVED if new is DROP else new), True
        if new is DROP:
            if isinstance(container, dict):
                del container[key]
            else:
                drops.setdefault(id(container), (container, []))[1].append(key)
        else:
            container[key] = new
    for container, indexes in drops.values():
        for j in sorted(indexes, reverse=True):
            del container[j]
    for container, names in renames.values():
        _rename_keys(container, names)
    return doc, True


_FAILED = object()


def _guarded(rule: Rule, fn: Any, arg: Any) -> Any:
    try:
        return fn(rule, arg)
    except Exception as e:
        _plugin_failed(rule, rule.masker, "masker", e)
        return _FAILED


def _spread(found: dict[int, list[tuple[int, int, Rule]]], starts: list[int],
            leaves: list[Any], s: int, e: int, rule: Rule) -> None:
    """A span of the joined text onto the leaves it covers (a span crossing a separator masks
    its part of each)."""
    i = bisect.bisect_right(starts, s) - 1
    while i < len(leaves) and starts[i] < e:
        lo = max(s - starts[i], 0)
        hi = min(e - starts[i], len(leaves[i][2]))
        if hi > lo:
            found.setdefault(i, []).append((lo, hi, rule))
        i += 1


def _merge(spans: list[tuple[int, int, Rule]]) -> list[tuple[int, int, Rule]]:
    spans.sort(key=lambda t: (t[0], t[2].index))
    out: list[tuple[int, int, Rule]] = []
    for s, e, rule in spans:
        if out and s < out[-1][1]:
            ps, pe, prule = out[-1]
            out[-1] = (ps, max(pe, e), prule)
        else:
            out.append((s, e, rule))
    return out


def _masked_text(text: str, merged: list[tuple[int, int, Rule]]) -> str:
    parts, pos = [], 0
    for s, e, rule in merged:
        parts.append(text[pos:s])
        replacement = _guarded(rule, _mask_text, text[s:e])
        parts.append(text[s:e] if replacement is _FAILED else replacement)
        pos = e
    parts.append(text[pos:])
    return "".join(parts)


def _rename_keys(container: dict[str, Any], names: dict[str, str]) -> None:
    items = list(container.items())
    container.clear()
    for k, v in items:
        new = names.get(k, k)
        if new in container:
            n = 2
            while f"{new}#{n}" in container:
                n += 1
            new = f"{new}#{n}"
        container[new] = v


def _detect_text(rules: tuple[Rule, ...], data: bytes, counts: dict[str, int]) -> bytes:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _give_up(rules, "not UTF-8", "not UTF-8")
        return data
    spans = [(s, e, rule) for rule in rules for s, e in _find(rule, text)]
    if not spans:
        return data
    merged = _merge(spans)
    for _, _, rule in merged:
        counts[rule.masker.name] = counts.get(rule.masker.name, 0) + 1
    return _masked_text(text, merged).encode("utf-8", "replace")


# -- the plan --------------------------------------------------------------------------------------


@attrs.frozen
class Plan:
    """The rules of one decision's ``mask`` for one direction, ready to apply to records."""

    rules: tuple[Rule, ...]
    _value: _Part | None = attrs.field(init=False, eq=False)
    _key: _Part | None = attrs.field(init=False, eq=False)
    _header_rules: tuple[Rule, ...] = attrs.field(init=False, eq=False)
    _header_parts: dict[str, _Part | None] = attrs.field(init=False, eq=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        value = [r for r in self.rules if r.target == "value"]
        key = [r for r in self.rules if r.target == "key"]
        object.__setattr__(self, "_value", _Part(value) if value else None)
        object.__setattr__(self, "_key", _Part(key) if key else None)
        object.__setattr__(self, "_header_rules", tuple(r for r in self.rules if r.target == "header"))

    def apply(self, key: bytes | None, value: bytes | None, headers: Headers) -> MaskedRecord:
        """The record masked, or RecordRefused (a rule with ``on_error: deny`` could not apply)."""
        counts: dict[str, int] = {}
        new_value: Any = value
        if self._value is not None and value:
            new_value = self._value.mask(value, "value", counts)
            if new_value is _REMOVED:
                new_value = b"null"  # a Kafka null would be a tombstone
        new_key: Any = key
        if self._key is not None and key:
            new_key = self._key.mask(key, "key", counts)
            if new_key is _REMOVED:
                new_key = b"null"  # compacted topics refuse a null key
        new_headers = headers
        if self._header_rules and headers:
            new_headers = self._mask_headers(headers, counts)
        changed = new_value is not value or new_key is not key or new_headers is not headers
        return MaskedRecord(key=new_key, value=new_value, headers=new_headers, changed=changed, fields=counts)

    def _mask_headers(self, headers: Headers, counts: dict[str, int]) -> Headers:
        out: Headers = []
        changed = False
        for name, data in headers:
            part = self._header_part(name)
            if part is None or not data:
                out.append((name, data))
                continue
            new = part.mask(data, f"header {name!r}", counts)
            if new is _REMOVED:
                changed = True
                continue
            changed |= new is not data
            out.append((name, new))
        return out if changed else headers

    def _header_part(self, name: str) -> _Part | None:
        part = self._header_parts.get(name, _UNPARSED)
        if part is not _UNPARSED:
            return part  # type: ignore[return-value]
        rules = [r for r in self._header_rules if fnmatchcase(name, r.header_glob or "")]
        part = _Part(rules) if rules else None
        if len(self._header_parts) < _MAX_HEADER_NAMES:  # header names come from clients: bounded
            self._header_parts[name] = part
        return part
