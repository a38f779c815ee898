"""The ``embedded`` backend: Rego evaluated in-process, off the reactor thread.

The evaluator (``gatekeeper.policy.embedded``) is used from one dedicated worker thread, so it
never blocks the reactor and never needs to be thread-safe. A reload builds a new evaluator in
that thread and swaps it in only if the policies load; otherwise the old one stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from gatekeeper.policy.engine import IPolicyBackend
from gatekeeper.policy.loading import read_data

__all__ = ["EmbeddedBackend"]


@implementer(IPolicyBackend)
class EmbeddedBackend:
    name = "embedded"
    concurrency = 1  # one evaluator thread: the engine hands it one batch at a time

    def __init__(self, policy_dir: Path, data_path: Path | None, decision_path: str, reactor: Any) -> None:
        self.policy_dir = policy_dir
        self.data_path = data_path
        self.decision_path = decision_path.strip("/")
        self.reactor = reactor
        self.pool = ThreadPool(minthreads=1, maxthreads=1, name="gatekeeper-embedded-rego")
        self._evaluator: Any = None
        self._shutdown: Any = None

    def start(self) -> defer.Deferred[None]:
        self.pool.start()
        self._shutdown = self.reactor.addSystemEventTrigger("during", "shutdown", self._stop_pool)
        return self.reload()

    @property
    def sources(self) -> Mapping[str, str] | None:
        """The modules of the evaluator in force (what ``_load`` last loaded successfully)."""
        return None if self._evaluator is None else self._evaluator.modules

    @property
    def data(self) -> Any:
        """The data document of the evaluator in force."""
        return None if self._evaluator is None else self._evaluator.data

    def _stop_pool(self) -> None:
        if self.pool.started and not self.pool.joined:
            self.pool.stop()

    def reload(self) -> defer.Deferred[None]:
        return threads.deferToThreadPool(self.reactor, self.pool, self._load)

    def _load(self) -> None:
        from gatekeeper.policy.embedded import EmbeddedEvaluator

        data = read_data(self.data_path)
        self._evaluator = EmbeddedEvaluator.load(self.policy_dir, data, self.decision_path)

    def evaluate_many(self, inputs: Sequence[Mapping[str, Any]]) -> defer.Deferred[list[Any]]:
        return threads.deferToThreadPool(self.reactor, self.pool, self._evaluate, list(inputs))

    def _evaluate(self, inputs: list[Mapping[str, Any]]) -> list[Any]:
        from gatekeeper.policy.embedded import EvaluationError

        out = []
        for policy_input in inputs:
            try:
                out.append(self._evaluator.evaluate(policy_input))
            except EvaluationError as e:
                out.append(e)  # the engine turns it into a deny naming the error
        return out

    def stop(self) -> defer.Deferred[None]:
        if self._shutdown is not None:
            self.reactor.removeSystemEventTrigger(self._shutdown)
            self._shutdown = None
        self._stop_pool()
        return defer.succeed(None)
