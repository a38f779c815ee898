"""A candidate policy for ``whatif``: the policies and data behind one of Gatekeeper's engines.

- ``EmbeddedCandidate``: the embedded engine's evaluator (``EmbeddedEvaluator``, the same
  loading and checks as the gateway's ``embedded`` backend), with coverage on, so that each
  evaluation says which volatile fields it read (``reach``). In-process, synchronous.
- ``OpaCandidate``: the ``opa`` backend (``OpaBackend``): the candidate's policies and data are
  pushed to the OPA server at ``url`` — a scratch server, never the one a gateway decides with —
  and decided in batches through the same generated batch module. OPA cannot say what an
  evaluation read, so inputs are told apart by every volatile field the policies may read.
  Its ``evaluate_many`` blocks, so call it from a thread other than the reactor's (the CLI
  runs the replay in one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gatekeeper.policy.loading import read_data
from gatekeeper.policy.reach import ReadSites
from gatekeeper.policy.reads import scan
from gatekeeper.policy.whatif import Evaluation

__all__ = ["EmbeddedCandidate", "OpaCandidate"]


class EmbeddedCandidate:
    """The candidate on the embedded engine. ``load`` raises PolicyLoadError as the gateway
    would refuse the policies (the message names the file)."""

    def __init__(self, evaluator: Any) -> None:
        self.evaluator = evaluator
        self.sites = ReadSites.of(scan(evaluator.modules))

    @classmethod
    def load(cls, policy_dir: Path, data_path: Path | None, decision_path: str) -> EmbeddedCandidate:
        from gatekeeper.policy.embedded import EmbeddedEvaluator

        return cls(EmbeddedEvaluator.load(policy_dir, read_data(data_path), decision_path, coverage=True))

    @property
    def modules(self) -> Mapping[str, str]:
        return self.evaluator.modules  # type: ignore[no-any-return]

    @property
    def may_read(self) -> frozenset[str]:
        return self.sites.fields

    def evaluate_many(self, inputs: Sequence[Mapping[str, Any]]) -> list[Evaluation]:
        from gatekeeper.policy.embedded import EvaluationError

        out = []
        evaluate, lines_reached, reached = self.evaluator.evaluate, self.evaluator.lines_reached, self.sites.reached
        for policy_input in inputs:
            try:
                raw: Any = evaluate(policy_input)
            except EvaluationError as e:
                raw = e  # as the embedded backend hands it to the engine: a deny naming the error
            out.append(Evaluation(raw, reached(lines_reached()) if self.sites.sites else frozenset()))
        return out


class OpaCandidate:
    """The candidate on an OPA server, through the ``opa`` backend. Build it with ``start``
    (from a thread other than the reactor's: it waits for the push)."""

    BATCH = 200  # inputs per round trip
    IN_FLIGHT = 8  # round trips at once

    def __init__(self, backend: Any, reactor: Any) -> None:
        self.backend = backend
        self.reactor = reactor
        sources = backend.sources
        self.modules: Mapping[str, str] = dict(sources or {})
        self.sites = ReadSites.of(scan(self.modules))

    @classmethod
    def start(cls, url: str, policy_dir: Path, data_path: Path | None, decision_path: str, reactor: Any) -> OpaCandidate:
        from twisted.internet import threads

        from gatekeeper.policy.opa import OpaBackend

        backend = OpaBackend(url, decision_path, policy_dir, data_path, reactor)
        start: Any = backend.start
        threads.blockingCallFromThread(reactor, start)
        return cls(backend, reactor)

    @property
    def may_read(self) -> frozenset[str]:
        return self.sites.fields

    def evaluate_many(self, inputs: Sequence[Mapping[str, Any]]) -> list[Evaluation]:
        from twisted.internet import defer, threads

        inputs = list(inputs)
        batches = [inputs[i : i + self.BATCH] for i in range(0, len(inputs), self.BATCH)]
        raws: list[Any] = []
        for start in range(0, len(batches), self.IN_FLIGHT):
            chunk = batches[start : start + self.IN_FLIGHT]

            def ask(chunk: list[list[Mapping[str, Any]]] = chunk) -> Any:
                return defer.gatherResults([self.backend.evaluate_many(b) for b in chunk], consumeErrors=True)

            for answer in threads.blockingCallFromThread(self.reactor, ask):
                raws.extend(answer)
        return [Evaluation(raw, None) for raw in raws]

    def stop(self) -> None:
        from twisted.internet import threads

        stop: Any = self.backend.stop
        threads.blockingCallFromThread(self.reactor, stop)
