"""The fuzz harnesses in the test command: every corpus input replayed (seeds from real
traffic and every finding so far), and a short coverage-guided run of each harness from a
fixed seed (about a minute in all) that fails on any finding. The long runs: fuzz/README.md."""

from __future__ import annotations

import importlib.util

import pytest

from fuzz import HARNESSES
from fuzz.runner import corpus_files, fuzz_once, replay

_SECONDS = 2  # per harness, after its start-up (instrumenting the imports takes a few seconds)


@pytest.mark.parametrize("harness", HARNESSES)
def test_every_corpus_input_is_handled(harness: str) -> None:
    assert list(corpus_files(harness)), f"fuzz/corpus/{harness}/ has no seeds"
    replay(harness)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed (the test extras)")
@pytest.mark.parametrize("harness", HARNESSES)
def test_a_short_fuzz_run_finds_nothing(harness: str) -> None:
    result = fuzz_once(harness, runs=200_000, seconds=_SECONDS, seed=1, timeout=30)
    assert result["returncode"] == 0 and not result["findings"], result["tail"]
    assert result["inputs"] > 0, result["tail"]
