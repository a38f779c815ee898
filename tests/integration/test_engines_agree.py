"""The same policies give the same decisions on the OPA server and the embedded engine, over
the whole decision corpus in ``policies/corpus/`` (and match the corpus's expected decisions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor

from gatekeeper.policy.decision import parse_decision
from gatekeeper.policy.embedded_backend import EmbeddedBackend
from gatekeeper.policy.opa import OpaBackend

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# The generated corpus (tests/policy_corpus) and the hand-written one beside the policies
# (policies/corpus/<name>/cases.json: one directory each, since opa merges JSON per directory).
CORPUS = sorted((ROOT / "tests" / "policy_corpus").glob("*.json")) + sorted((ROOT / "policies" / "corpus").glob("*/cases.json"))


def _data_file(spec: Any, tmp: Path) -> Path | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        return ROOT / spec
    path = tmp / "data.json"
    path.write_text(json.dumps(spec))
    return path


def test_corpus_exists() -> None:
    assert CORPUS, "tests/policy_corpus/*.json is the cross-engine decision corpus"
    assert sum(len(json.loads(p.read_text())["cases"]) for p in CORPUS) >= 500


@pytest.mark.parametrize("corpus", CORPUS, ids=[p.stem if p.stem != "cases" else p.parent.name for p in CORPUS])
@pytest_twisted.inlineCallbacks
def test_opa_and_embedded_agree_on_the_corpus(corpus, opa_server, tmp_path):
    doc = json.loads(corpus.read_text())
    data = _data_file(doc.get("data"), tmp_path)
    decision = doc["policy"]
    inputs = [case["input"] for case in doc["cases"]]
    opa_server.restart()  # a clean OPA: this corpus's policies and data only
    opa = OpaBackend(opa_server.url, decision, ROOT / "policies", data, _reactor)
    embedded = EmbeddedBackend(ROOT / "policies", data, decision, _reactor)
    yield opa.start()
    yield embedded.start()
    try:
        from_opa = yield opa.evaluate_many(inputs)
        from_embedded = yield embedded.evaluate_many(inputs)
    finally:
        yield opa.stop()
        yield embedded.stop()
    mismatches = []
    for case, a, b in zip(doc["cases"], from_opa, from_embedded, strict=True):
        if parse_decision(a) != parse_decision(b) or a != case["expected"]:
            mismatches.append((case["name"], case["expected"], a, b))
    assert mismatches == [], mismatches[:3]
