"""Which input fields that the decision cache leaves out of its key can the policies read?

The decision cache keys a decision on the policy input without the fields that change with
every request or connection (``VOLATILE_FIELDS``: ``time``, ``session``, ``request.bytes``,
``request.record_count``). That is only right if no policy reads them: a size rule ("deny a
produce over 1 MB") keyed without ``request.bytes`` would answer a big produce with the cached
decision of a small one. ``scan(modules)`` reads the Rego source of one policy revision and
says which of those fields it may read, and where, so the cache keeps them in the key.

The scan is conservative: it finds every use of the root document ``input`` (outside comments
and string literals; inside template strings' ``{...}`` too) and follows the reference only as
far as it is written out with names (``input.request.bytes``, ``input["time"]``). Anything it
cannot follow counts as reading everything below that point: ``input`` alone (``with input as``,
``walk(input, ...)``, ``import input``) reads every volatile field, ``input.request`` alone or
``input.request[k]`` reads both sizes. So it can say a field is read when no rule really reads
it (the key is then finer than it needs to be) but never the opposite. Calls of
``time.now_ns`` and ``io.jwt.decode_verify`` (which checks expiry against the clock) count as
reading ``time``.

A module may declare, in its package's METADATA, that the ttl of every decision it shapes ends
before its reading of the time could change the answer::

    # METADATA
    # custom:
    #   gatekeeper:
    #     ttl_covers_time: true

Its reads of ``time`` are then reported as ``covered`` and the cache leaves time out of the key.
Nothing can make a size or session read safe to leave out: those are always kept.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import yaml

from gatekeeper.policy.cache import VOLATILE_FIELDS

__all__ = ["PolicyReads", "Read", "scan"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9][0-9A-Za-z_.]*")
_PACKAGE = re.compile(r"\s*package\s")
_SIZES = ("request.bytes", "request.record_count")
# Builtin calls whose result depends on the clock: they read the time as input.time does.
_CLOCK_CALLS = {("time", "now_ns"): "time.now_ns()", ("io", "jwt", "decode_verify"): "io.jwt.decode_verify()"}
_ROOTS = frozenset({"input", *(call[0] for call in _CLOCK_CALLS)})


@attrs.frozen
class Read:
    """One place a policy may read a volatile field: ``field`` as VOLATILE_FIELDS names it."""

    field: str
    where: str  # file:line
    what: str  # the reference as written (input.request, input.time, time.now_ns(), ...)

    def __str__(self) -> str:
        return f"{self.what} at {self.where}"


@attrs.frozen
class PolicyReads:
    """What one policy revision may read of the fields the cache key leaves out."""

    reads: tuple[Read, ...] = ()  # the cache key must keep these fields
    covered: tuple[Read, ...] = ()  # reads of time in modules that declare ttl_covers_time

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(r.field for r in self.reads)

    def first(self, field: str) -> Read | None:
        return next((r for r in self.reads if r.field == field), None)


def scan(modules: Mapping[str, str]) -> PolicyReads:
    """The volatile fields the given modules (file name -> Rego source) may read."""
    reads: list[Read] = []
    covered: list[Read] = []
    for name, source in sorted(modules.items()):
        declared = _declares_ttl_covers_time(source)
        for read in _module_reads(name, source):
            (covered if declared and read.field == "time" else reads).append(read)
    return PolicyReads(reads=tuple(reads), covered=tuple(covered))


# -- the reads of one module -------------------------------------------------------------------


@attrs.frozen
class _Token:
    kind: str  # ident, string, number, punct
    value: Any
    start: int
    end: int


def _module_reads(name: str, source: str) -> Iterator[Read]:
    tokens = _Lexer(source).tokens()
    newlines = [n for n, c in enumerate(source) if c == "\n"]
    for k, tok in enumerate(tokens):
        if tok.kind != "ident" or tok.value not in _ROOTS or _after_dot(tokens, k):
            continue
        where = f"{name}:{bisect.bisect_left(newlines, tok.start) + 1}"
        segments = _path(tokens, k)
        if tok.value == "input":
            what = "input" + "".join(f".{s}" if s is not None else "[...]" for s in segments)
            for field in _fields_read(segments):
                yield Read(field, where, what)
        for call, what in _CLOCK_CALLS.items():
            if (tok.value, *segments[: len(call) - 1]) == call:
                yield Read("time", where, what)


def _fields_read(segments: list[str | None]) -> tuple[str, ...]:
    """The volatile fields reached by input.<segments> (None: a segment that is not a name)."""
    if not segments or segments[0] is None:
        return VOLATILE_FIELDS  # the whole input
    head = segments[0]
    if head in ("time", "session", "client"):
        return (head,)
    if head != "request":
        return ()
    if len(segments) == 1 or segments[1] is None:
        return _SIZES  # the whole request, or a key computed at run time
    return (f"request.{segments[1]}",) if f"request.{segments[1]}" in _SIZES else ()


def _after_dot(tokens: list[_Token], k: int) -> bool:
    """tokens[k] is a field of something (x.input), not a root document."""
    if k == 0:
        return False
    prev = tokens[k - 1]
    return prev.kind == "punct" and prev.value == "." and prev.end == tokens[k].start


def _path(tokens: list[_Token], k: int) -> list[str | None]:
    """The names after the reference at tokens[k], as far as they are written out: ``.name`` or
    ``["name"]``, nothing in between; a bracket holding anything else ends it with None."""
    segments: list[str | None] = []
    end = tokens[k].end
    j = k + 1
    while j < len(tokens) and tokens[j].start == end and tokens[j].kind == "punct":
        t = tokens[j]
        if t.value == ".":
            nxt = tokens[j + 1] if j + 1 < len(tokens) else None
            if nxt is None or nxt.kind != "ident" or nxt.start != t.end:
                break
            segments.append(nxt.value)
            end, j = nxt.end, j + 2
        elif t.value == "[":
            inner = tokens[j + 1 : j + 3]
            if (
                len(inner) == 2
                and inner[0].kind == "string"
                and isinstance(inner[0].value, str)
                and (inner[1].kind, inner[1].value) == ("punct", "]")
            ):
                segments.append(inner[0].value)
                end, j = inner[1].end, j + 3
            else:
                segments.append(None)
                break
        else:
            break
    return segments


class _Lexer:
    """Rego source -> identifiers, string literals (decoded), numbers and punctuation; comments
    dropped; the ``{...}`` expressions of template strings (``$"..."``, ``$`...` ``) lexed as code."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.i = 0
        self.out: list[_Token] = []

    def tokens(self) -> list[_Token]:
        self._code(in_template=False)
        return self.out

    def _emit(self, kind: str, value: Any, start: int, end: int) -> None:
        self.out.append(_Token(kind, value, start, end))

    def _code(self, in_template: bool) -> None:
        src, depth = self.src, 0
        while self.i < len(src):
            c, start = src[self.i], self.i
            if c.isspace():
                self.i += 1
            elif c == "#":
                newline = src.find("\n", self.i)
                self.i = len(src) if newline < 0 else newline
            elif c == '"':
                self._string()
            elif c == "`":
                close = src.find("`", self.i + 1)
                self.i = len(src) if close < 0 else close + 1
                self._emit("string", src[start + 1 : self.i - 1], start, self.i)
            elif c == "$" and src[self.i + 1 : self.i + 2] in ('"', "`"):
                self._template(src[self.i + 1])
            elif (m := _IDENT.match(src, self.i)) is not None:
                self.i = m.end()
                self._emit("ident", m.group(), start, self.i)
            elif (m := _NUMBER.match(src, self.i)) is not None:
                self.i = m.end()
                self._emit("number", m.group(), start, self.i)
            else:
                if in_template and c == "}" and depth == 0:
                    self.i += 1
                    return
                depth += {"{": 1, "}": -1}.get(c, 0)
                self.i += 1
                self._emit("punct", c, start, self.i)

    def _string(self) -> None:
        src, start = self.src, self.i
        j = start + 1
        while j < len(src) and src[j] not in '"\n':
            j += 2 if src[j] == "\\" else 1
        self.i = min(j + 1, len(src))
        try:
            value: Any = json.loads(src[start : self.i])
        except ValueError:
            value = None
        self._emit("string", value, start, self.i)

    def _template(self, quote: str) -> None:
        src, start = self.src, self.i
        self.i += 2
        while self.i < len(src):
            c = src[self.i]
            if c == quote:
                self.i += 1
                break
            if c == "\\" and quote == '"':
                self.i += 2
            elif c == "{":
                self.i += 1
                self._code(in_template=True)
            else:
                self.i += 1
        # A token of its own, so that nothing before and after it reads as one reference.
        self._emit("template", None, start, self.i)


# -- the declaration ---------------------------------------------------------------------------


def _declares_ttl_covers_time(source: str) -> bool:
    """The METADATA block just above ``package`` says custom.gatekeeper.ttl_covers_time: true."""
    lines = source.splitlines()
    package = next((n for n, line in enumerate(lines) if _PACKAGE.match(line)), None)
    if package is None:
        return False
    first = package
    while first > 0 and lines[first - 1].lstrip().startswith("#"):
        first -= 1
    block = [line.lstrip()[1:] for line in lines[first:package]]
    starts = [n for n, text in enumerate(block) if text.strip() == "METADATA"]
    if not starts:
        return False
    body = [text[1:] if text.startswith(" ") else text for text in block[starts[-1] + 1 :]]
    try:
        meta = yaml.safe_load("\n".join(body))
    except yaml.YAMLError:
        return False
    custom = meta.get("custom") if isinstance(meta, dict) else None
    gatekeeper = custom.get("gatekeeper") if isinstance(custom, dict) else None
    return isinstance(gatekeeper, dict) and gatekeeper.get("ttl_covers_time") is True
