"""In-process Rego evaluation with regorus (the ``embedded`` policy engine).

``EmbeddedEvaluator.load(policy_dir, data, "gatekeeper/decision")`` parses every ``*.rego`` under
``policy_dir`` (except ``*_test.rego``) and refuses, with ``PolicyLoadError`` naming the file, a
policy that does not parse, calls a builtin regorus does not implement (``io.jwt.*``,
``crypto.*``, ``http.send``, … — see ``docs/embedded-engine.md``), calls a function that no loaded
package defines, has an unsafe variable, or has no decision rule. A policy that loads is
never allowed to fail by a builtin quietly turning undefined.

``evaluate(input)`` is synchronous and returns the raw value of the decision rule as JSON
values (sets become arrays in Rego's order, as OPA serialises them), or raises
``EvaluationError`` (undefined, rule conflict, runtime error) with a message naming the rule
and, where regorus gives one, ``file:line:col``. Unlike OPA's default, a builtin that fails at
run time (``to_number("x")``, a malformed time) is an error, not undefined — as with OPA's
``--strict-builtin-errors``; Gatekeeper denies on it either way.

Threads: a regorus engine is *unsendable* — touching it from a thread other than the one that
made it raises a Rust panic — so an evaluator keeps one engine per thread, built on that
thread's first ``evaluate`` from the sources ``load`` already checked (about a millisecond for a
small policy library). An evaluator may therefore be shared by several threads; each engine
is only ever used by its own thread. ``load`` builds the calling thread's engine.

Coverage: an evaluator loaded with ``coverage=True`` records which source lines each
``evaluate`` reached (regorus's coverage: the line each evaluated expression starts on is
marked); ``lines_reached()`` then says so, file by file. ``gatekeeper policy what-if`` uses it
to tell whether a decision read the time (``gatekeeper.policy.reach``).

Importing this module sets ``RUST_LIB_BACKTRACE=0`` unless already set: with
``RUST_BACKTRACE=1`` every Rego runtime error would capture and print a native stack trace.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from gatekeeper.policy.loading import PolicyLoadError, read_modules

os.environ.setdefault("RUST_LIB_BACKTRACE", "0")

import regorus  # noqa: E402  (after the environment tweak above)

__all__ = ["EmbeddedEvaluator", "EvaluationError", "LinesReached", "PolicyLoadError", "supported_builtins"]

# Builtins regorus registers without implementing them: they evaluate to undefined, silently.
STUB_BUILTINS = {"http.send": "regorus only has a stub that always evaluates to undefined"}
# Builtins regorus implements but does not list in opa.runtime().builtins.
_UNLISTED_BUILTINS = frozenset({"print"})
_DECISION_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")
# What eval_rule_as_json returns for an undefined rule.
_UNDEFINED = '"<undefined>"'
# Errors of a smoke evaluation that say the policy is wrong whatever the input.
# Errors regorus only reports on evaluation that mean the policies can never work: refused at load.
_STATIC_ERRORS = ("is unsafe", "could not find function", "used before definition", "recursion detected")


@attrs.frozen
class LinesReached:
    """Lines of one file an evaluation reached (``covered``) and did not (``not_covered``).
    regorus's report lists the lines that start an expression of a rule body or a rule's value;
    a line in neither list starts none of those (only, say, a comprehension's head, an ``else``
    value or an import): the report does not say whether it was reached."""

    covered: frozenset[int]
    not_covered: frozenset[int]


class EvaluationError(Exception):
    """No decision for this input: undefined, a rule conflict or a runtime error in the policy."""


@functools.cache
def supported_builtins() -> frozenset[str]:
    """The builtins this regorus build implements (its own list, less the stubs)."""
    engine = regorus.Engine()
    engine.add_policy("probe.rego", "package gatekeeper_probe\n\nbuiltins := opa.runtime().builtins\n")
    listed = engine.eval_rule("data.gatekeeper_probe.builtins")
    return (frozenset(listed) | _UNLISTED_BUILTINS) - STUB_BUILTINS.keys()


class EmbeddedEvaluator:
    """One policy set and data document, evaluated in-process. Build it with ``load``."""

    def __init__(self, modules: Mapping[str, str], data: Mapping[str, Any], rule: str, coverage: bool = False) -> None:
        self.modules = dict(modules)  # file name (as errors show it) -> source; checked by load()
        self.data = data
        self.rule = rule  # "data.gatekeeper.decision"
        self.coverage = coverage  # record the lines each evaluation reaches (lines_reached)

    @classmethod
    def load(
        cls, policy_dir: Path, data: Mapping[str, Any] | None, decision_path: str, *, coverage: bool = False
    ) -> EmbeddedEvaluator:
        path = decision_path.strip("/")
        if not _DECISION_PATH.fullmatch(path):
            raise PolicyLoadError(
                f"decision path {decision_path!r}: expected names separated by '/', like gatekeeper/decision"
            )
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise PolicyLoadError(f"the data document must be a JSON object, got {type(data).__name__}")
        modules = {str(policy_dir / rel): text for rel, text in read_modules(policy_dir).items()}
        evaluator = cls(modules, data, "data." + path.replace("/", "."), coverage)
        problem = evaluator._check(policy_dir)
        if problem is not None:
            _engines().pop(id(evaluator), None)
            raise PolicyLoadError(problem)
        return evaluator

    def evaluate(self, policy_input: Mapping[str, Any]) -> Any:
        # The error is raised outside the except clauses so that no traceback (whose frames
        # hold the engine) outlives this call: an exception may be freed on another thread,
        # and a regorus engine must be dropped on its own.
        try:
            value = self._eval(policy_input)
        except Exception as e:
            problem = f"{self.rule}: {_describe(e)}"
        except BaseException as e:  # a Rust panic arrives as pyo3's PanicException
            if type(e).__name__ != "PanicException":
                raise
            _engines().pop(id(self), None)  # do not trust that engine again
            problem = f"{self.rule}: the Rego engine panicked: {e}"
        else:
            if value is None:
                raise EvaluationError(f"{self.rule} is undefined (or null) for this input: no default?")
            return value
        raise EvaluationError(problem)

    def lines_reached(self) -> Mapping[str, LinesReached]:
        """What the last ``evaluate`` on this thread reached, by file (an evaluator loaded with
        ``coverage=True``). A file left out had no line reached at all."""
        if not self.coverage:
            raise RuntimeError("lines_reached() needs an evaluator loaded with coverage=True")
        report = json.loads(self._engine().get_coverage_report_as_json())
        return {
            f["path"]: LinesReached(frozenset(f["covered"]), frozenset(f["not_covered"])) for f in report["files"]
        }

    # -- internals -------------------------------------------------------------------------

    def _eval(self, policy_input: Mapping[str, Any]) -> Any:
        engine = self._engine()
        if self.coverage:
            engine.clear_coverage_data()
        engine.set_input(policy_input if isinstance(policy_input, dict) else dict(policy_input))
        # As JSON, not eval_rule(): that builds Python sets, which cannot hold objects.
        # regorus writes sets as arrays in Rego's order, as OPA does.
        raw = engine.eval_rule_as_json(self.rule)
        return None if raw == _UNDEFINED else json.loads(raw)

    def _engine(self) -> Any:
        """This thread's engine for this evaluator, built on first use."""
        engines = _engines()
        entry = engines.get(id(self))
        if entry is not None and entry[0]() is self:
            return entry[1]
        # Engines of evaluators that are gone are dropped here, on the thread that made them.
        for key in [key for key, (ref, _) in engines.items() if ref() is None]:
            del engines[key]
        engine = self._build()
        engines[id(self)] = (weakref.ref(self), engine)
        return engine

    def _build(self) -> Any:
        engine = regorus.Engine()
        if self.coverage:
            engine.set_enable_coverage(True)
        for name, text in self.modules.items():
            try:
                engine.add_policy(name, text)
            except Exception as e:
                raise PolicyLoadError(_describe(e, name)) from None
        try:
            engine.add_data(dict(self.data))
        except Exception as e:
            raise PolicyLoadError(f"the data document cannot be loaded: {_describe(e)}") from None
        return engine

    def _check(self, policy_dir: Path) -> str | None:
        """Why the policies cannot be used, or None. Returns rather than raises, so that no
        traceback holding this thread's engine outlives the call (see ``evaluate``)."""
        try:
            engine = self._engine()
            _check_calls(json.loads(engine.get_ast_as_json()))
            self._smoke_test(engine, policy_dir)
        except PolicyLoadError as e:
            return str(e)
        return None

    def _smoke_test(self, engine: Any, policy_dir: Path) -> None:
        """Evaluate the decision once with an empty input: catches what regorus checks lazily."""
        engine.set_input({})
        try:
            engine.eval_rule(self.rule)
        except Exception as e:
            message = _describe(e)
            if "not a valid rule path" in message:
                raise PolicyLoadError(f"{policy_dir}: no rule {self.rule} in the policies") from None
            if any(s in message for s in _STATIC_ERRORS):
                raise PolicyLoadError(message) from None


_thread = threading.local()


def _engines() -> dict[int, tuple[weakref.ref[EmbeddedEvaluator], Any]]:
    """This thread's engines, by evaluator (cleared by CPython on this thread when it ends)."""
    engines = getattr(_thread, "engines", None)
    if engines is None:
        engines = _thread.engines = {}
    return engines


def _describe(error: BaseException, default_file: str | None = None) -> str:
    """regorus's "--> file:line:col / source / error: message" as one line."""
    text = str(error).split("Stack backtrace:")[0]
    where = re.search(r"-->\s*(\S+:\d+:\d+)", text)
    what = re.findall(r"^error: (.*)$", text, re.MULTILINE)
    if where and what:
        return f"{where.group(1)}: {what[-1].strip()}"
    message = " ".join(text.split()) or type(error).__name__
    return f"{default_file}: {message}" if default_file else message


def _check_calls(asts: list[dict[str, Any]]) -> None:
    """Refuse calls of builtins regorus lacks and of functions no loaded package defines."""
    local: dict[str, set[str]] = {}  # package -> first names of its rules and functions
    functions: set[str] = set()  # data.pkg.f for every function defined
    for module in asts:
        package = _ref(module["ast"]["package"]["refr"]) or ""
        for kind, head in _heads(module["ast"]):
            first = _first_var(head["refr"])
            if first:
                local.setdefault(package, set()).add(first)
            name = _ref(head["refr"])
            if name and (kind == "Func" or (kind == "Default" and head.get("args"))):
                functions.add(f"data.{package}.{name}")
    problems = []
    supported = supported_builtins()
    for module in asts:
        source = module["source"]
        package = _ref(module["ast"]["package"]["refr"]) or ""
        aliases = _data_imports(module)
        for fcn in _calls(module["ast"]):
            name = _ref(fcn)
            if name is None:
                continue
            first, _, rest = name.partition(".")
            line, col = _position(fcn)
            where = f"{source['file']}:{line}:{col}"
            if first == "data" or first in aliases or first in local.get(package, ()):
                if first == "data":
                    target = name
                elif first in aliases:
                    target = f"{aliases[first]}.{rest}".rstrip(".")
                else:
                    target = f"data.{package}.{name}"
                if target not in functions:
                    problems.append(f"{where}: calls {name}, a function no loaded policy defines")
            elif name in STUB_BUILTINS:
                why = STUB_BUILTINS[name]
                problems.append(f"{where}: builtin {name} is not supported by the embedded engine ({why})")
            elif name not in supported:
                problems.append(f"{where}: builtin {name} is not supported by the embedded engine (regorus)")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        hint = "; use the opa engine for policies that need them"
        raise PolicyLoadError("; ".join(problems[:5]) + more + hint)


def _heads(ast: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, head) of every rule: kind is Compr, Set, Func, … or Default."""
    for rule in ast.get("rules", []):
        if "Spec" in rule:
            yield from rule["Spec"]["head"].items()
        elif "Default" in rule:
            yield "Default", rule["Default"]


def _calls(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Call":
                yield value["fcn"]
            yield from _calls(value)
    elif isinstance(node, list):
        for value in node:
            yield from _calls(value)


def _ref(node: dict[str, Any]) -> str | None:
    """``a.b.c`` for a chain of names; None for anything with brackets or other terms."""
    parts = []
    while "RefDot" in node:
        parts.append(node["RefDot"]["field"][1])
        node = node["RefDot"]["refr"]
    if "Var" not in node:
        return None
    parts.append(node["Var"]["value"])
    return ".".join(reversed(parts))


def _first_var(node: dict[str, Any]) -> str | None:
    while True:
        if "Var" in node:
            return str(node["Var"]["value"])
        inner = next(iter(node.values()), None)
        if not isinstance(inner, dict) or "refr" not in inner:
            return None
        node = inner["refr"]


def _position(node: dict[str, Any]) -> tuple[int, int]:
    while "Var" not in node and isinstance(next(iter(node.values()), None), dict):
        node = next(iter(node.values()))["refr"]
    span = next(iter(node.values()))["span"]
    return span["line"], span["col"]


def _data_imports(module: dict[str, Any]) -> dict[str, str]:
    """alias -> ``data.…`` path for ``import data.x.y [as z]``."""
    raw = module["source"]["contents"].encode()
    aliases = {}
    for imp in module["ast"].get("imports", []):
        path = _ref(imp["refr"])
        if not path or not path.startswith("data."):
            continue
        alias = path.rsplit(".", 1)[-1]
        if imp.get("as"):
            alias = raw[imp["as"]["start"] : imp["as"]["end"]].decode()
        aliases[alias] = path
    return aliases

