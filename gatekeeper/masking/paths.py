"""JSONPath field rules: compiled once per policy revision, evaluated per record.

The subset a mask rule needs, with RFC 9535 meanings: ``$`` (the whole document), ``.name`` and
``['name']`` / ``["name"]`` (a member; shorthand names are letters, digits, ``_`` and ``-``, not
starting with a digit), ``[0]`` / ``[-1]`` (an array element), ``.*`` / ``[*]`` (every member or
element), unions ``['a','b']`` / ``[0,2]``, and ``..`` before any of them (that selection at any
depth: ``$..ssn``, ``$..[0]``). Filters (``[?…]``) and slices (``[1:3]``) are refused when the
rule is compiled. A path evaluates to *slots*, ``(container, key)`` pairs, so a masker can
replace or remove the value in place. A descendant selection does not look inside what it has
already selected: that is masked whole.

Why not a JSONPath library: ``bench/masking_paths.py`` on a 1 KiB document, find plus in-place
update of three rules per record, µs on one core of the development machine (compile time is
per policy revision and not counted)::

                          $.customer.card, $.items[*].sku, $..ssn   three plain member paths
    this module                            5.5                           1.6
    jsonpath-rfc9535 1.0.1                32.5                           8.5
    python-jsonpath 2.2.2                198                            18.8
    jsonpath-ng 1.16.0                   160                            20.1

The whole per-record budget is about 20 µs (50 MB/s of 1 KiB records on one core, including
decompression, parsing, serializing and compression), and ``Plan.apply`` with three field
rules costs 11.5 µs (plain paths) to 16 µs (mixed) there, orjson parse and dump included; with a
library the paths alone would take most or all of it. So the subset is evaluated here.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

__all__ = ["WILDCARD", "FieldPath", "PathError", "Slot", "compile_path"]


class _Wildcard:
    def __repr__(self) -> str:
        return "*"


WILDCARD: Any = _Wildcard()
Selector = str | int | _Wildcard
Segment = tuple[bool, tuple[Selector, ...]]  # (descendant, selectors)
Slot = tuple[Any, Any]  # (dict or list, key or index); (None, None) is the whole document


class PathError(ValueError):
    """A field path that is not JSONPath or uses what is not supported (the policy's bug)."""


@attrs.frozen
class FieldPath:
    text: str
    segments: tuple[Segment, ...]
    _steps: tuple[Any, ...] = attrs.field(alias="steps", eq=False, repr=False)  # node lists -> node lists
    _last: Any = attrs.field(alias="last", eq=False, repr=False)  # node list -> slots
    _dedupe: bool = attrs.field(default=False, alias="dedupe")
    _names: tuple[str, ...] | None = attrs.field(default=None, alias="names")  # only plain members

    @property
    def final_names(self) -> tuple[str, ...] | None:
        """The member names the last segment selects, if it selects only names: a document
        without any of them written as a key cannot hold the path (``Plan`` skips parsing)."""
        if not self.segments:
            return None
        selectors = self.segments[-1][1]
        return tuple(selectors) if all(type(s) is str for s in selectors) else None  # type: ignore[arg-type]

    @property
    def is_root(self) -> bool:
        return not self.segments

    def slots(self, doc: Any) -> list[Slot]:
        """Where the path points in ``doc``, in document order; an absent path is ``[]``."""
        names = self._names
        if names is not None:
            node = doc
            for name in names[:-1]:
                if type(node) is not dict:
                    return []
                node = node.get(name)
            return [(node, names[-1])] if type(node) is dict and names[-1] in node else []
        if self._last is None:
            return [(None, None)]
        nodes = [doc]
        for step in self._steps:
            nodes = step(nodes)
            if not nodes:
                return []
        out: list[Slot] = self._last(nodes)
        if self._dedupe and len(out) > 1:
            seen: set[tuple[int, Any]] = set()
            unique = []
            for slot in out:
                mark = (id(slot[0]), slot[1])
                if mark not in seen:
                    seen.add(mark)
                    unique.append(slot)
            out = unique
        return out


# Each segment compiles to a function over the list of nodes the previous one selected. Documents
# come from a JSON parser, so ``type(x) is dict`` (faster than isinstance) is exact.


def _keys(node: Any, selectors: tuple[Selector, ...]) -> list[Any]:
    t = type(node)
    if t is dict:
        keys: list[Any] = []
        for s in selectors:
            if s is WILDCARD:
                keys.extend(node)
            elif type(s) is str and s in node:
                keys.append(s)
        return keys
    if t is list:
        n = len(node)
        keys = []
        for s in selectors:
            if s is WILDCARD:
                keys.extend(range(n))
            elif type(s) is int:
                i = s if s >= 0 else n + s
                if 0 <= i < n:
                    keys.append(i)
        return keys
    return []


def _child_step(selectors: tuple[Selector, ...], slots: bool) -> Any:
    if len(selectors) == 1 and type(selectors[0]) is str:
        name = selectors[0]
        if slots:
            return lambda nodes: [(n, name) for n in nodes if type(n) is dict and name in n]
        return lambda nodes: [n[name] for n in nodes if type(n) is dict and name in n]
    if selectors == (WILDCARD,) and not slots:

        def every(nodes: list[Any]) -> list[Any]:
            out: list[Any] = []
            for n in nodes:
                t = type(n)
                if t is dict:
                    out.extend(n.values())
                elif t is list:
                    out.extend(n)
            return out

        return every
    if slots:
        return lambda nodes: [(n, k) for n in nodes for k in _keys(n, selectors)]
    return lambda nodes: [n[k] for n in nodes for k in _keys(n, selectors)]


def _descendant_step(selectors: tuple[Selector, ...], slots: bool) -> Any:
    """Every container at any depth below (and including) each node, ``selectors`` applied to
    each. Selecting slots, it does not descend into what it selected (masked whole)."""
    if len(selectors) == 1 and type(selectors[0]) is str:
        return _descendant_name(selectors[0], slots)

    def walk(node: Any, out: list[Any]) -> None:
        keys = _keys(node, selectors)
        if keys:
            out.extend((node, k) for k in keys) if slots else out.extend(node[k] for k in keys)
        children = node.items() if type(node) is dict else enumerate(node)
        for k, v in children:
            t = type(v)
            if (t is dict or t is list) and not (slots and k in keys):
                walk(v, out)

    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for n in nodes:
            t = type(n)
            if t is dict or t is list:
                walk(n, out)
        return out

    return step


def _descendant_name(name: str, slots: bool) -> Any:
    """``..name``, the common case, without the general selector machinery."""

    def walk(node: Any, out: list[Any]) -> None:
        if type(node) is dict:
            if name in node:
                out.append((node, name) if slots else node[name])
                children = [v for k, v in node.items() if (type(v) is dict or type(v) is list) and not (slots and k == name)]
            else:
                children = [v for v in node.values() if type(v) is dict or type(v) is list]
        else:
            children = [v for v in node if type(v) is dict or type(v) is list]
        for child in children:
            walk(child, out)

    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for n in nodes:
            if type(n) is dict or type(n) is list:
                walk(n, out)
        return out

    return step


# -- parsing ---------------------------------------------------------------------------------------

_NAME = re.compile(r"[^\W\d][\w-]*")
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "/": "/", "\\": "\\", "'": "'", '"': '"'}


def compile_path(text: str) -> FieldPath:
    """A field path compiled for :meth:`FieldPath.slots`, or PathError saying what is wrong."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise PathError(f"field {text!r}: a JSONPath starts with '$' (e.g. $.customer.card)")
    segments: list[Segment] = []
    i, n = 1, len(text)
    while i < n:
        descendant = text.startswith("..", i)
        if descendant or text[i] == ".":
            i += 2 if descendant else 1
            if i < n and text[i] == "*":
                segments.append((descendant, (WILDCARD,)))
                i += 1
            elif i < n and text[i] == "[" and descendant:
                selectors, i = _bracket(text, i)
                segments.append((True, selectors))
            else:
                m = _NAME.match(text, i)
                if m is None:
                    raise PathError(f"field {text!r}: expected a member name at position {i} (use ['…'] for other names)")
                segments.append((descendant, (m.group(),)))
                i = m.end()
        elif text[i] == "[":
            selectors, i = _bracket(text, i)
            segments.append((False, selectors))
        else:
            raise PathError(f"field {text!r}: unexpected {text[i]!r} at position {i}")
    compiled = [(_descendant_step if d else _child_step)(sel, i == len(segments) - 1)
                for i, (d, sel) in enumerate(segments)]
    dedupe = any(d or len(sel) > 1 for d, sel in segments)
    plain = bool(segments) and all(not d and len(sel) == 1 and type(sel[0]) is str for d, sel in segments)
    return FieldPath(text, tuple(segments), steps=tuple(compiled[:-1]),
                     last=compiled[-1] if compiled else None, dedupe=dedupe,
                     names=tuple(str(sel[0]) for _, sel in segments) if plain else None)


def _bracket(text: str, i: int) -> tuple[tuple[Selector, ...], int]:
    """The selectors of the bracket at ``text[i] == '['`` and the position after its ``]``."""
    selectors: list[Selector] = []
    i += 1
    while True:
        i = _skip_blank(text, i)
        if i >= len(text):
            raise PathError(f"field {text!r}: unclosed '['")
        c = text[i]
        if c in "'\"":
            name, i = _string(text, i)
            selectors.append(name)
        elif c == "*":
            selectors.append(WILDCARD)
            i += 1
        elif c == "?":
            raise PathError(f"field {text!r}: filter selectors ([?…]) are not supported in mask rules")
        else:
            m = _INT.match(text, i)
            if m is None:
                raise PathError(f"field {text!r}: expected a quoted name, an index or * at position {i}")
            selectors.append(int(m.group()))
            i = m.end()
        i = _skip_blank(text, i)
        if i < len(text) and text[i] == ":":
            raise PathError(f"field {text!r}: array slices ([a:b]) are not supported in mask rules")
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        if i < len(text) and text[i] == "]":
            return tuple(selectors), i + 1
        raise PathError(f"field {text!r}: expected ',' or ']' at position {i}")


def _skip_blank(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\n\r":
        i += 1
    return i


def _string(text: str, i: int) -> tuple[str, int]:
    quote = text[i]
    out: list[str] = []
    i += 1
    while i < len(text):
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            raise PathError(f"field {text!r}: bad escape at position {i}")
        out.append(c)
        i += 1
    raise PathError(f"field {text!r}: unclosed string at position {i}")
