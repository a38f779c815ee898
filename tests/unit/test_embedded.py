"""The embedded (regorus) Rego evaluator: decisions, errors, refused policies, threads, corpus."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from gatekeeper.policy.embedded import (
    EmbeddedEvaluator,
    EvaluationError,
    PolicyLoadError,
    supported_builtins,
)
from gatekeeper.policy.loading import read_data

REPO = Path(__file__).resolve().parents[2]

POLICY = """\
package gatekeeper

import data.lib.topics

default decision := {"action": "deny", "reason": "no grant matches", "error": "authorization"}

decision := deny_immutable if {
	immutable
} else := mask if {
	count(granted) > 0
	count(maskers) > 0
} else := allow if {
	count(granted) > 0
}

now_ns := time.parse_rfc3339_ns(input.time)

immutable if {
	input.operation in {"delete_topic", "delete_records"}
	topics.immutable(input.resource.name)
}

deny_immutable := {
	"action": "deny",
	"error": "policy_violation",
	"reason": sprintf("topic %q is immutable", [input.resource.name]),
}

groups contains g if some g in input.principal.groups

groups contains "everyone"

granted contains g.id if {
	some g in data.gatekeeper.grants
	input.operation in g.operations
	g.group in groups
	glob.match(g.pattern, [], input.resource.name)
	now_ns < time.parse_rfc3339_ns(object.get(g, "not_after", "2200-01-01T00:00:00Z"))
}

maskers contains m if {
	some g in data.gatekeeper.grants
	g.id in granted
	some m in object.get(g, "mask", [])
}

mask := {"action": "mask", "reason": sprintf("granted by %s", [concat(",", granted)]), "mask": maskers}

allow := {"action": "allow", "reason": sprintf("granted by %s", [concat(",", granted)]), "ttl": "30s"}
"""

LIB = """\
package lib.topics

immutable(name) if glob.match("audit.*", ["."], name)

immutable(name) if endswith(name, ".ledger")
"""

DATA = {
    "gatekeeper": {
        "grants": [
            {"id": "payments-rw", "operations": ["produce", "consume"], "group": "team-payments", "pattern": "payments.*"},
            {"id": "admins", "operations": ["delete_topic", "produce"], "group": "kafka-admins", "pattern": "*"},
            {"id": "legacy", "operations": ["consume"], "group": "everyone", "pattern": "legacy.*", "not_after": "2026-01-01T00:00:00Z"},
            {
                "id": "pii",
                "operations": ["consume"],
                "group": "support",
                "pattern": "users.pii",
                "mask": [{"masker": "redact", "field": "ssn"}, {"masker": "hash", "field": "email"}],
            },
        ]
    }
}


def _input(operation: str, topic: str, groups: list[str] | None = None, time: str = "2026-11-23T07:24:49.689Z") -> dict[str, Any]:
    return {
        "version": 1,
        "operation": operation,
        "principal": {"sub": "alice", "groups": groups or [], "claims": {}},
        "resource": {"type": "topic", "name": topic},
        "time": time,
    }


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def evaluator(tmp_path: Path) -> EmbeddedEvaluator:
    _write(tmp_path, {"gatekeeper.rego": POLICY, "lib/topics.rego": LIB})
    return EmbeddedEvaluator.load(tmp_path, DATA, "gatekeeper/decision")


def _refusal(tmp_path: Path, files: dict[str, str], data: Any = None, decision: str = "gatekeeper/decision") -> str:
    _write(tmp_path, files)
    with pytest.raises(PolicyLoadError) as caught:
        EmbeddedEvaluator.load(tmp_path, data, decision)
    return str(caught.value)


# -- decisions ---------------------------------------------------------------------------------


def test_allow_from_a_data_grant(evaluator: EmbeddedEvaluator) -> None:
    assert evaluator.evaluate(_input("produce", "payments.tx", ["team-payments"])) == {
        "action": "allow",
        "reason": "granted by payments-rw",
        "ttl": "30s",
    }


def test_default_deny(evaluator: EmbeddedEvaluator) -> None:
    assert evaluator.evaluate(_input("produce", "payments.tx", ["analysts"])) == {
        "action": "deny",
        "reason": "no grant matches",
        "error": "authorization",
    }


def test_else_chain_and_imported_functions(evaluator: EmbeddedEvaluator) -> None:
    decision = evaluator.evaluate(_input("delete_topic", "audit.log", ["kafka-admins"]))
    assert decision == {"action": "deny", "error": "policy_violation", "reason": 'topic "audit.log" is immutable'}
    assert evaluator.evaluate(_input("delete_topic", "scratch", ["kafka-admins"]))["action"] == "allow"


def test_time_window_from_rfc3339(evaluator: EmbeddedEvaluator) -> None:
    assert evaluator.evaluate(_input("consume", "legacy.x", time="2025-06-01T00:00:00Z"))["action"] == "allow"
    assert evaluator.evaluate(_input("consume", "legacy.x", time="2026-06-01T00:00:00+02:00"))["action"] == "deny"


def test_sets_come_back_as_sorted_lists_like_opa(evaluator: EmbeddedEvaluator) -> None:
    decision = evaluator.evaluate(_input("consume", "users.pii", ["support"]))
    assert decision["action"] == "mask"
    # OPA serialises a set in Rego's order: objects by their sorted key/value pairs.
    assert decision["mask"] == [{"field": "email", "masker": "hash"}, {"field": "ssn", "masker": "redact"}]
    json.dumps(decision)


def test_any_mapping_is_accepted_as_input(evaluator: EmbeddedEvaluator) -> None:
    policy_input = MappingProxyType(_input("produce", "payments.tx", ["team-payments"]))
    assert evaluator.evaluate(policy_input)["action"] == "allow"


def test_data_none_means_an_empty_document(tmp_path: Path) -> None:
    _write(tmp_path, {"p.rego": 'package gatekeeper\n\ndecision := {"action": "allow", "n": count(object.get(data, "x", []))}\n'})
    assert EmbeddedEvaluator.load(tmp_path, None, "/gatekeeper/decision/").evaluate({}) == {"action": "allow", "n": 0}


# -- evaluation errors -------------------------------------------------------------------------


def test_undefined_decision_is_an_evaluation_error(tmp_path: Path) -> None:
    _write(tmp_path, {"p.rego": 'package gatekeeper\n\ndecision := {"action": "allow"} if input.ok\n'})
    evaluator = EmbeddedEvaluator.load(tmp_path, None, "gatekeeper/decision")
    assert evaluator.evaluate({"ok": True}) == {"action": "allow"}
    with pytest.raises(EvaluationError, match=r"data\.gatekeeper\.decision is undefined"):
        evaluator.evaluate({"ok": False})


def test_conflicting_complete_rules_are_an_evaluation_error(tmp_path: Path) -> None:
    _write(tmp_path, {"p.rego": 'package gatekeeper\n\ndecision := {"action": "allow"} if input.a\n\ndecision := {"action": "deny"} if input.b\n'})
    evaluator = EmbeddedEvaluator.load(tmp_path, None, "gatekeeper/decision")
    assert evaluator.evaluate({"a": True}) == {"action": "allow"}
    with pytest.raises(EvaluationError, match=r"p\.rego:5:1: rule conflicts"):
        evaluator.evaluate({"a": True, "b": True})


def test_runtime_error_names_the_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, {"p.rego": 'package gatekeeper\n\ndecision := {"action": "allow", "n": 10 / input.n}\n'})
    evaluator = EmbeddedEvaluator.load(tmp_path, None, "gatekeeper/decision")
    assert evaluator.evaluate({"n": 5}) == {"action": "allow", "n": 2}
    with pytest.raises(EvaluationError) as caught:
        evaluator.evaluate({"n": 0})
    assert f"{tmp_path / 'p.rego'}:3:" in str(caught.value)
    assert "divide by zero" in str(caught.value)
    assert "backtrace" not in str(caught.value).lower()


# -- refused policies --------------------------------------------------------------------------


def test_parse_error_names_the_file(tmp_path: Path) -> None:
    message = _refusal(tmp_path, {"gatekeeper.rego": POLICY, "lib/topics.rego": LIB, "lib/broken.rego": "package lib.broken\n\nx := {\n"})
    assert f"{tmp_path / 'lib' / 'broken.rego'}:4:1: expecting expression" in message


@pytest.mark.parametrize(
    "call",
    [
        'io.jwt.decode_verify(input.token, {"secret": "k"})',
        'crypto.x509.parse_certificates(input.pem)',
        'http.send({"method": "GET", "url": "http://127.0.0.1:1/"})',
        'crypto.sha256("x")',
        'strings.render_template("{{.a}}", {"a": 1})',
    ],
)
def test_unsupported_builtin_is_refused_even_where_never_reached(tmp_path: Path, call: str) -> None:
    builtin = call.split("(")[0]
    helper = f"package gatekeeper\n\nunused if {{\n\tx := {call}\n\tx\n}}\n"
    message = _refusal(tmp_path, {"gatekeeper.rego": POLICY, "lib/topics.rego": LIB, "helper.rego": helper}, DATA)
    assert f"builtin {builtin} is not supported" in message
    assert f"{tmp_path / 'helper.rego'}:4:" in message
    assert "opa engine" in message


def test_every_unsupported_call_is_listed(tmp_path: Path) -> None:
    helper = 'package gatekeeper\n\na := io.jwt.decode(input.t)\n\nb := crypto.md5("x")\n\nc := net.lookup_ip_addr("localhost")\n'
    message = _refusal(tmp_path, {"gatekeeper.rego": POLICY, "lib/topics.rego": LIB, "helper.rego": helper}, DATA)
    for name in ("io.jwt.decode", "crypto.md5", "net.lookup_ip_addr"):
        assert f"builtin {name} is not supported" in message


def test_names_in_comments_and_strings_are_not_calls(tmp_path: Path) -> None:
    policy = '# uses io.jwt.decode_verify(t, k) one day\npackage gatekeeper\n\ndecision := {"action": "allow", "reason": "no http.send(x) here"}\n'
    _write(tmp_path, {"p.rego": policy})
    assert EmbeddedEvaluator.load(tmp_path, None, "gatekeeper/decision").evaluate({})["action"] == "allow"


def test_undefined_function_is_refused(tmp_path: Path) -> None:
    policy = 'package gatekeeper\n\nimport data.lib.topics\n\ndecision := {"action": "allow"} if topics.nope(input.x)\n'
    message = _refusal(tmp_path, {"p.rego": policy, "lib/topics.rego": LIB})
    assert "calls topics.nope, a function no loaded policy defines" in message


def test_unsafe_variable_is_refused(tmp_path: Path) -> None:
    policy = 'package gatekeeper\n\ndefault decision := {"action": "deny"}\n\ndecision := {"action": "allow"} if {\n\tinput.a == 1\n\tz == 2\n}\n'
    message = _refusal(tmp_path, {"p.rego": policy})
    assert f"{tmp_path / 'p.rego'}:7:" in message and "unsafe" in message


def test_missing_decision_rule_is_refused(tmp_path: Path) -> None:
    message = _refusal(tmp_path, {"p.rego": "package gatekeeper\n\nallow := true\n"})
    assert "no rule data.gatekeeper.decision" in message
    assert "decision path" in _refusal(tmp_path, {"p.rego": "package gatekeeper\n\nallow := true\n"}, decision="gate-keeper/x")


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    assert "no .rego policy files" in _refusal(tmp_path, {"README.md": "nothing"})


def test_test_files_are_not_loaded(tmp_path: Path) -> None:
    _write(tmp_path, {"gatekeeper.rego": POLICY, "lib/topics.rego": LIB, "gatekeeper_test.rego": "package x\nnot rego {\n"})
    EmbeddedEvaluator.load(tmp_path, DATA, "gatekeeper/decision")


def test_supported_set_comes_from_the_engine() -> None:
    supported = supported_builtins()
    assert {"glob.match", "sprintf", "time.parse_rfc3339_ns", "net.cidr_contains", "print"} <= supported
    assert not {"io.jwt.decode_verify", "crypto.x509.parse_certificates", "http.send"} & supported


# -- threads -----------------------------------------------------------------------------------


def test_one_evaluator_serves_several_threads(evaluator: EmbeddedEvaluator) -> None:
    # A regorus engine panics if touched from another thread; the evaluator keeps one per thread.
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            groups = ["team-payments"] if n % 2 else []
            results[n] = [evaluator.evaluate(_input("produce", "payments.tx", groups))["action"] for _ in range(50)]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {n: ["allow" if n % 2 else "deny"] * 50 for n in range(4)}


def test_engines_never_outlive_their_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Errors travel to other threads (the reactor); the engines their tracebacks could hold
    # must not, or regorus complains (and leaks) when they are freed there.
    import gc
    import sys

    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(str(u.exc_value)))
    _write(tmp_path / "good", {"p.rego": 'package gatekeeper\n\ndecision := {"action": "allow", "n": 1 / input.n}\n'})
    _write(tmp_path / "bad", {"p.rego": 'package gatekeeper\n\ndecision := http.send({"url": input.u})\n'})
    caught: list[Exception] = []

    def worker() -> None:
        for name in ("good", "bad"):
            try:
                evaluator = EmbeddedEvaluator.load(tmp_path / name, None, "gatekeeper/decision")
                evaluator.evaluate({"n": 0})
            except (PolicyLoadError, EvaluationError) as e:
                caught.append(e)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert [type(e) for e in caught] == [EvaluationError, PolicyLoadError]
    caught.clear()
    gc.collect()
    assert unraisable == []


# -- the policy library's corpus ---------------------------------------------------------------

CORPUS = sorted((REPO / "tests" / "policy_corpus").glob("*.json")) + sorted((REPO / "policies" / "corpus").glob("*/cases.json"))


@pytest.mark.parametrize("corpus", CORPUS or [None], ids=lambda p: (p.parent.name if p.name == "cases.json" else p.name) if p else "absent")
def test_policy_corpus(corpus: Path | None) -> None:
    """Every case of tests/policy_corpus/*.json ({"policy", "data", "cases": [{name, input, expected}]})."""
    if corpus is None:
        pytest.skip("no tests/policy_corpus/*.json in this checkout: nothing to cross-check")
    spec = json.loads(corpus.read_text())
    data = spec.get("data")
    if isinstance(data, str):
        data = read_data(REPO / data)
    policy_dir = REPO / spec.get("policies", "policies")
    evaluator = EmbeddedEvaluator.load(policy_dir, data, spec.get("policy", "gatekeeper/decision"))
    failures = []
    for case in spec["cases"]:
        try:
            got: Any = evaluator.evaluate(case["input"])
        except EvaluationError as e:
            got = f"EvaluationError: {e}"
        expected = case["expected"]
        if expected is None and isinstance(got, str) and "is undefined" in got:
            continue
        if got != expected:
            failures.append(f"{case.get('name', '?')}: expected {json.dumps(expected)}, got {json.dumps(got)}")
    assert not failures, f"{corpus.name}: {len(failures)} of {len(spec['cases'])} cases differ:\n" + "\n".join(failures)


def test_a_recursive_policy_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        "package gatekeeper\n\ndecision := x if {\n\tx := data.gatekeeper.decision\n}\n"
    )
    with pytest.raises(PolicyLoadError):
        EmbeddedEvaluator.load(tmp_path, {}, "gatekeeper/decision")
