"""Topic regular expressions as Kafka's group coordinator reads them, matched in linear time.

A consumer's server-side regex subscription (ConsumerGroupHeartbeat's ``SubscribedTopicRegex``,
KIP-848) is RE2J syntax, matched against whole topic names (``Matcher.matches()``). The broker
would resolve it with Gatekeeper's rights, so Gatekeeper resolves it itself. Python's ``re``
is not used: its syntax differs from RE2's in places (``[[:alpha:]]``, ``\\Q…\\E``, ``\\z``,
``{,n}``, possessive quantifiers, lookaround) and, above all, it backtracks: a client's pattern
could pin the reactor for hours on one topic name. This module parses the subset of RE2 syntax
topic patterns use into a Thompson NFA and matches it as a lazily built DFA, in time linear in
the name's length whatever the pattern. Anything outside the subset is refused
(:class:`UnsupportedRegex`), never guessed at:

- literals and escaped punctuation (``\\.``, ``\\-`` …), ``\\Q…\\E``, ``.``;
- classes ``[a-z0-9._-]``, ``[^…]``, and ``\\d \\D \\w \\W \\s \\S`` (ASCII, as RE2);
- groups ``(…)``, ``(?:…)``, ``(?P<name>…)``; alternation ``|``;
- repetition ``* + ? {n} {n,} {n,m}`` (n, m ≤ 1000), lazy or not (the same for a whole match);
- anchors ``^ $ \\A \\z``; flags ``(?i)``, ``(?s)``, ``(?m)``, ``(?U)`` and ``(?flags:…)``.

Refused: backreferences, lookaround, ``\\b``, ``\\p{…}``, POSIX classes, numeric escapes,
possessive quantifiers and anything RE2 itself rejects. Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["MAX_PATTERN_LENGTH", "TopicRegex", "UnsupportedRegex"]

MAX_PATTERN_LENGTH = 1024
_MAX_REPEAT = 1000  # RE2's own bound on {n,m}
_MAX_STATES = 5000  # NFA states: a pattern compiling to more is refused
_MAX_DFA_STATES = 2000  # cached DFA states before the cache starts over

_DIGITS = frozenset("0123456789")
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_SPACE = frozenset("\t\n\f\r ")
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_CLASS_ESCAPES = {"d": (_DIGITS, False), "D": (_DIGITS, True), "w": (_WORD, False), "W": (_WORD, True),
                  "s": (_SPACE, False), "S": (_SPACE, True)}


class UnsupportedRegex(ValueError):
    """A pattern that is not RE2 syntax, or not of the subset Gatekeeper matches itself."""


# -- character sets -----------------------------------------------------------------------------


class _CharSet:
    """A set of characters: explicit characters and ranges, possibly negated."""

    __slots__ = ("chars", "negated", "ranges")

    def __init__(self, chars: Iterable[str] = (), ranges: Iterable[tuple[str, str]] = (), negated: bool = False) -> None:
        self.chars = frozenset(chars)
        self.ranges = tuple(ranges)
        self.negated = negated

    def _has(self, c: str) -> bool:
        return c in self.chars or any(lo <= c <= hi for lo, hi in self.ranges)

    def matches(self, c: str, fold: bool) -> bool:
        found = self._has(c) or (fold and (self._has(c.lower()) or self._has(c.upper())))
        return found != self.negated


_ANY = _CharSet(negated=True)  # with (?s)
_ANY_BUT_NEWLINE = _CharSet("\n", negated=True)


# -- parsing into an NFA ------------------------------------------------------------------------
#
# A fragment is (start, ends): ``ends`` are the states whose ``out`` is still to be patched.
# A state is [kind, arg, out1, out2]: "char" (arg: (_CharSet, fold)), "split", "assert" (arg:
# "begin" | "end"), "match". Epsilon states ("split", "assert", "empty") are followed in closure.


class _Builder:
    def __init__(self) -> None:
        self.states: list[list[Any]] = []

    def new(self, kind: str, arg: Any = None) -> int:
        if len(self.states) >= _MAX_STATES:
            raise UnsupportedRegex(f"the pattern is too large (more than {_MAX_STATES} states)")
        self.states.append([kind, arg, None, None])
        return len(self.states) - 1


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.b = _Builder()
        self.fold = False
        self.dotall = False

    # Fragments are built as small trees first (so repetition can copy them), then compiled.

    def parse(self) -> Any:
        node = self._alternation()
        if self.i < len(self.p):
            raise UnsupportedRegex(f"unexpected {self.p[self.i]!r} at {self.i}")
        return node

    def _peek(self) -> str | None:
        return self.p[self.i] if self.i < len(self.p) else None

    def _alternation(self) -> Any:
        branches = [self._concatenation()]
        while self._peek() == "|":
            self.i += 1
            branches.append(self._concatenation())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def _concatenation(self) -> Any:
        items: list[Any] = []
        while (c := self._peek()) is not None and c not in "|)":
            atom = self._atom()
            if atom is None:  # a flag group: changes what follows
                continue
            items.append(self._repetition(atom))
        return ("cat", items)

    def _repetition(self, atom: Any) -> Any:
        c = self._peek()
        if c in ("*", "+", "?"):
            self.i += 1
            lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
        elif c == "{" and (rep := self._braces()) is not None:
            lo, hi = rep
        else:
            return atom
        nxt = self._peek()
        if nxt == "?":  # lazy: the same language
            self.i += 1
        elif nxt is not None and nxt in "*+{" and (nxt != "{" or self._looks_like_braces()):
            raise UnsupportedRegex(f"repetition of a repetition at {self.i} (possessive or nested quantifiers)")
        if atom[0] in ("begin", "end", "empty"):
            raise UnsupportedRegex(f"repetition of an empty match at {self.i}")
        return ("rep", atom, lo, hi)

    def _looks_like_braces(self) -> bool:
        saved = self.i
        try:
            return self._braces() is not None
        finally:
            self.i = saved

    def _braces(self) -> tuple[int, int | None] | None:
        """{n}, {n,}, {n,m} at ``self.i``; None (a literal "{" in RE2) if it is not one of those."""
        j = self.p.find("}", self.i)
        if j < 0:
            return None
        body = self.p[self.i + 1 : j]
        lo_text, comma, hi_text = body.partition(",")
        if not lo_text.isdigit() or (hi_text and not hi_text.isdigit()) or not lo_text.isascii() or not hi_text.isascii():
            if body.startswith(","):
                raise UnsupportedRegex(f"{{{body}}} at {self.i}: RE2 reads it as literal text, Python as a repetition")
            return None
        lo = int(lo_text)
        hi = (None if not hi_text else int(hi_text)) if comma else lo
        if lo > _MAX_REPEAT or (hi is not None and (hi > _MAX_REPEAT or hi < lo)):
            raise UnsupportedRegex(f"bad repetition {{{body}}} (at most {_MAX_REPEAT}, and min ≤ max)")
        self.i = j + 1
        return lo, hi

    def _atom(self) -> Any:
        c = self.p[self.i]
        if c == "(":
            return self._group()
        if c == "[":
            return ("set", self._class(), self.fold)
        if c == ".":
            self.i += 1
            return ("set", _ANY if self.dotall else _ANY_BUT_NEWLINE, False)
        if c == "^":
            self.i += 1
            return ("begin",)
        if c == "$":
            self.i += 1
            return ("end",)
        if c == "\\":
            return self._escape()
        if c in "*+?":
            raise UnsupportedRegex(f"missing argument to repetition operator {c!r} at {self.i}")
        if c == "{" and self._looks_like_braces():
            raise UnsupportedRegex(f"missing argument to repetition at {self.i}")
        self.i += 1
        return ("set", _CharSet(c), self.fold)

    def _group(self) -> Any:
        start = self.i
        self.i += 1
        if self.p.startswith("?", self.i):
            if self.p.startswith("?:", self.i):
                self.i += 2
            elif self.p.startswith("?P<", self.i):
                end = self.p.find(">", self.i)
                name = self.p[self.i + 3 : end] if end > 0 else ""
                if not name or not all(ch in _WORD for ch in name) or name[0].isdigit():
                    raise UnsupportedRegex(f"bad group name at {start}")
                self.i = end + 1
            else:
                return self._flags(start)
        outer = (self.fold, self.dotall)
        inner = self._alternation()
        self.fold, self.dotall = outer  # flags set inside end with the group
        if self._peek() != ")":
            raise UnsupportedRegex(f"missing closing ) for the group at {start}")
        self.i += 1
        return inner

    def _flags(self, start: int) -> Any:
        """(?flags) or (?flags:re) with flags from i, m, s, U (and - to clear)."""
        j = self.i + 1
        on = True
        fold, dotall = self.fold, self.dotall
        while j < len(self.p) and self.p[j] not in ":)":
            f = self.p[j]
            if f == "-" and on:
                on = False
            elif f == "i":
                fold = on
            elif f == "s":
                dotall = on
            elif f in "mU":  # line anchors and ungreediness: no effect on a whole-name match
                pass
            else:
                raise UnsupportedRegex(f"unsupported group syntax (?{self.p[self.i + 1 : j + 1]} at {start}")
            j += 1
        if j >= len(self.p):
            raise UnsupportedRegex(f"missing closing ) for the group at {start}")
        self.i = j + 1
        if self.p[j] == ")":
            self.fold, self.dotall = fold, dotall
            return None
        outer = (self.fold, self.dotall)
        self.fold, self.dotall = fold, dotall
        inner = self._alternation()
        self.fold, self.dotall = outer
        if self._peek() != ")":
            raise UnsupportedRegex(f"missing closing ) for the group at {start}")
        self.i += 1
        return inner

    def _escape(self) -> Any:
        if self.i + 1 >= len(self.p):
            raise UnsupportedRegex("trailing \\")
        e = self.p[self.i + 1]
        self.i += 2
        if e in _CLASS_ESCAPES:
            chars, negated = _CLASS_ESCAPES[e]
            return ("set", _CharSet(chars, negated=negated), False)
        if e == "A":
            return ("begin",)
        if e == "z":
            return ("end",)
        if e == "Q":
            end = self.p.find("\\E", self.i)
            text = self.p[self.i :] if end < 0 else self.p[self.i : end]
            self.i = len(self.p) if end < 0 else end + 2
            return ("cat", [("set", _CharSet(ch), self.fold) for ch in text])
        if e in _PUNCT:
            return ("set", _CharSet(e), self.fold)
        if e in "tnrfv":
            return ("set", _CharSet({"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v"}[e]), False)
        raise UnsupportedRegex(f"unsupported escape \\{e} at {self.i - 2}")

    def _class(self) -> _CharSet:
        start = self.i
        self.i += 1
        negated = self._peek() == "^"
        if negated:
            self.i += 1
        chars: set[str] = set()
        ranges: list[tuple[str, str]] = []
        first = True
        while True:
            c = self._peek()
            if c is None:
                raise UnsupportedRegex(f"missing closing ] for the class at {start}")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if self.p.startswith("[:", self.i):
                raise UnsupportedRegex(f"POSIX classes are not supported (at {self.i})")
            lo = self._class_char(chars, ranges)
            if lo is None:
                continue
            if self._peek() == "-" and self.i + 1 < len(self.p) and self.p[self.i + 1] != "]":
                self.i += 1
                hi = self._class_char(chars, ranges)
                if hi is None or hi < lo:
                    raise UnsupportedRegex(f"bad range in the class at {start}")
                ranges.append((lo, hi))
            else:
                chars.add(lo)
        return _CharSet(chars, ranges, negated)

    def _class_char(self, chars: set[str], ranges: list[tuple[str, str]]) -> str | None:
        """One character of a class (returned), or a class escape merged in (None)."""
        c = self.p[self.i]
        if c != "\\":
            self.i += 1
            return c
        if self.i + 1 >= len(self.p):
            raise UnsupportedRegex("trailing \\")
        e = self.p[self.i + 1]
        self.i += 2
        if e in ("d", "w", "s"):
            chars |= _CLASS_ESCAPES[e][0]
            return None
        if e in _PUNCT:
            return e
        if e in "tnrfv":
            return {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v"}[e]
        raise UnsupportedRegex(f"unsupported escape \\{e} in a class at {self.i - 2}")


def _compile(node: Any, b: _Builder) -> tuple[int, list[int]]:
    """(start state, dangling states) of an NFA fragment for ``node``."""
    kind = node[0]
    if kind == "set":
        s = b.new("char", (node[1], node[2]))
        return s, [s]
    if kind in ("begin", "end"):
        s = b.new("assert", kind)
        return s, [s]
    if kind == "cat":
        if not node[1]:
            s = b.new("empty")
            return s, [s]
        start, ends = _compile(node[1][0], b)
        for item in node[1][1:]:
            s2, e2 = _compile(item, b)
            _patch(b, ends, s2)
            ends = e2
        return start, ends
    if kind == "alt":
        frags = [_compile(n, b) for n in node[1]]
        start, ends = frags[0]
        for s2, e2 in frags[1:]:
            split = b.new("split")
            b.states[split][2], b.states[split][3] = start, s2
            start, ends = split, ends + e2
        return start, ends
    if kind == "rep":
        _, atom, lo, hi = node
        pieces: list[tuple[int, list[int]]] = [_compile(atom, b) for _ in range(lo)]
        if hi is None:
            s, e = _compile(atom, b)
            split = b.new("split")
            b.states[split][2] = s
            _patch(b, e, split)
            pieces.append((split, [split]))  # out2 of the split dangles: leave the loop
        else:
            tail_ends: list[int] = []
            optional = []
            for _ in range(hi - lo):
                s, e = _compile(atom, b)
                split = b.new("split")
                b.states[split][2] = s
                optional.append((split, e))
            # split -> atom -> next split ...; each split may also leave.
            for k, (split, e) in enumerate(optional):
                tail_ends.append(split)
                if k + 1 < len(optional):
                    _patch(b, e, optional[k + 1][0])
                else:
                    tail_ends += e
            if optional:
                pieces.append((optional[0][0], tail_ends))
        if not pieces:
            s = b.new("empty")
            return s, [s]
        start, ends = pieces[0]
        for s2, e2 in pieces[1:]:
            _patch(b, ends, s2)
            ends = e2
        return start, ends
    raise AssertionError(kind)


def _patch(b: _Builder, ends: list[int], target: int) -> None:
    for s in ends:
        st = b.states[s]
        if st[0] == "split":
            if st[2] is None:
                st[2] = target
            else:
                st[3] = target
        else:
            st[2] = target


class TopicRegex:
    """A compiled topic pattern; ``matches(name)`` is True if the whole name matches, as RE2J's
    ``Matcher.matches()``. Raises :class:`UnsupportedRegex` for patterns outside the subset."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise UnsupportedRegex(f"the pattern is longer than {MAX_PATTERN_LENGTH} characters")
        self.pattern = pattern
        parser = _Parser(pattern)
        tree = parser.parse()
        b = parser.b
        start, ends = _compile(tree, b)
        final = b.new("match")
        _patch(b, ends, final)
        self._states = b.states
        self._start = start
        self._dfa: dict[tuple[frozenset[int], str], frozenset[int]] = {}
        self._initial: frozenset[int] | None = None
        self._accepting: dict[frozenset[int], bool] = {}

    def _closure(self, seeds: Iterable[int], at_begin: bool) -> frozenset[int]:
        """The states reachable from ``seeds`` without reading a character ("end" assertions are
        kept as states and checked when the name ends)."""
        seen: set[int] = set()
        stack = list(seeds)
        while stack:
            s = stack.pop()
            if s is None or s in seen:
                continue
            seen.add(s)
            kind, arg, out1, out2 = self._states[s]
            if kind == "split":
                stack += (out1, out2)
            elif kind == "empty" or (kind == "assert" and arg == "begin" and at_begin):
                stack.append(out1)
        return frozenset(seen)

    def _accepts(self, states: frozenset[int]) -> bool:
        """Whether ``states`` reach the match at the end of the name (through "end" assertions)."""
        found = self._accepting.get(states)
        if found is None:
            stack, seen = list(states), set()
            found = False
            while stack:
                s = stack.pop()
                if s is None or s in seen:
                    continue
                seen.add(s)
                kind, arg, out1, out2 = self._states[s]
                if kind == "match":
                    found = True
                    break
                if kind == "split":
                    stack += (out1, out2)
                elif kind == "empty" or (kind == "assert" and arg == "end"):
                    stack.append(out1)
            self._accepting[states] = found
        return found

    def matches(self, name: str) -> bool:
        if self._initial is None:
            self._initial = self._closure([self._start], at_begin=True)
        current = self._initial
        dfa = self._dfa
        for c in name:
            key = (current, c)
            nxt = dfa.get(key)
            if nxt is None:
                seeds = []
                for s in current:
                    kind, arg, out1, _ = self._states[s]
                    if kind == "char" and arg[0].matches(c, arg[1]):
                        seeds.append(out1)
                nxt = self._closure(seeds, at_begin=False)
                if len(dfa) >= _MAX_DFA_STATES:
                    dfa.clear()
                    self._accepting.clear()
                dfa[key] = nxt
            current = nxt
            if not current:
                return False
        return self._accepts(current)

    def __repr__(self) -> str:
        return f"TopicRegex({self.pattern!r})"
