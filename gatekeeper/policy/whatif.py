"""What-if: recorded policy inputs replayed against a candidate policy (``gatekeeper policy what-if``).

``WhatIf(candidate).add(input, decision, session)`` for every decided operation of the audit
trail, then ``run()``: the ``Report`` of every decision the candidate would make differently
(``whatif_report``), compared as ``verdicts`` says.

**Distinct inputs.** A trail repeats itself: the same principal produces to the same topic
thousands of times, and the inputs differ only in the volatile fields (``cache.VOLATILE_FIELDS``:
time, session, client, request sizes). Each input is evaluated once per distinct value of the
volatile fields *its evaluation read*. ``reads.scan`` says which of them the candidate may read
at all (``Candidate.may_read``). Inputs equal in everything else form a node, evaluated once
(the first input recorded); the candidate says which of those fields that evaluation read
(``Evaluation.reached``; ``reach`` explains how the embedded engine tells). If it read none the
node is decided: every input of it is evaluated step for step alike. Otherwise its inputs are
told apart by the fields read, each part a node of its own — the part that agrees with the
input evaluated is decided by that evaluation, the others are evaluated in turn — and so on
until every node is decided by an evaluation that read nothing its inputs differ in. The
default library reads ``input.time`` only to check a time-boxed grant, so an input without
one is evaluated once however many times it was recorded.

Streaming: nodes are evaluated in batches as they come (``BATCH``), and a decided node keeps
only counts and a few example sessions per recorded outcome, so memory follows the distinct
inputs, not the length of the trail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs
import orjson

from gatekeeper.policy.cache import cache_key
from gatekeeper.policy.verdicts import Outcome, candidate_outcome, recorded_outcome, terms
from gatekeeper.policy.whatif_report import Report, ReportBuilder

__all__ = ["BATCH", "Candidate", "Evaluation", "WhatIf", "stable_key"]

EXAMPLE_SESSIONS = 3
BATCH = 256  # inputs evaluated together
MAX_WAITING = 50_000  # recorded inputs held while the inputs they wait on are not evaluated yet


@attrs.frozen
class Evaluation:
    """The candidate's raw value for one input (an Exception where evaluating it failed), and
    the volatile fields evaluating it read; None: it cannot tell (assume all it may read)."""

    raw: Any
    reached: frozenset[str] | None = None


class Candidate(Protocol):
    """The candidate policy behind an engine (``gatekeeper.policy.candidate``)."""

    @property
    def may_read(self) -> frozenset[str]:
        """The volatile fields the candidate may read at all (``reads.scan``)."""

    def evaluate_many(self, inputs: Sequence[Mapping[str, Any]]) -> list[Evaluation]:
        """One Evaluation per input, in order."""


# (values of the fields the candidate may read, recorded outcome index, session, the input)
_Member = tuple[tuple[Any, ...], int, "str | None", Mapping[str, Any]]


class _Node:
    """Recorded inputs equal in all but the volatile fields outside ``told_apart``."""

    __slots__ = ("apart", "children", "input", "outcome", "split", "tallies", "told_apart", "values", "waiting")

    def __init__(self, policy_input: Mapping[str, Any], values: tuple[Any, ...], told_apart: frozenset[str]) -> None:
        self.input = policy_input  # the one evaluated: the first recorded
        self.values = values
        self.told_apart = told_apart
        self.outcome: Outcome | None = None
        self.waiting: list[_Member] | None = []  # None once evaluated
        # Evaluated and told apart further: children by their values at ``split``.
        self.split: tuple[int, ...] | None = None
        self.apart: frozenset[str] = told_apart
        self.children: dict[tuple[Any, ...], _Node] = {}
        # Decided: recorded outcome index -> [count, example sessions].
        self.tallies: dict[int, list[Any]] = {}


class WhatIf:
    """Feed it recorded decisions with ``add``, then ``run`` once."""

    def __init__(self, candidate: Candidate, *, details: bool = False, examples: int = EXAMPLE_SESSIONS) -> None:
        self.candidate = candidate
        self.details = details
        self.examples = examples
        self.evaluations = 0
        self._may_read = frozenset(candidate.may_read)
        self._fields = tuple(sorted(self._may_read))  # the order of each member's values
        self._paths = [(f.partition(".")[0], f.partition(".")[2] or None) for f in self._fields]
        self._roots: dict[bytes, _Node] = {}
        self._queue: list[_Node] = []
        self._waiting = 0
        self._recorded: dict[tuple[Any, ...], int] = {}  # recorded decision -> outcome index (-1: not compared)
        self._outcomes: list[Outcome] = []
        self._decided: dict[bytes, Outcome] = {}  # candidate's raw value -> outcome
        self._revisions: Counter[str] = Counter()
        self._inputs = 0
        self._not_compared = 0

    def add(self, policy_input: Mapping[str, Any], decision: Mapping[str, Any], session: str | None = None) -> None:
        """One recorded decision: the policy input and the decision made then (action, reason,
        error, mask/approval; ``revision`` if recorded). Raises ValueError for a decision
        without an action."""
        self._inputs += 1
        revision = decision.get("revision")
        if revision:
            self._revisions[revision] += 1
        memo = (decision.get("action"), decision.get("error"), decision.get("reason"),
                terms(decision) if "mask" in decision or "approval" in decision else None)
        index = self._recorded.get(memo)
        if index is None:
            outcome = recorded_outcome(decision)
            index = -1 if outcome is None else len(self._outcomes)
            if outcome is not None:
                self._outcomes.append(outcome)
            self._recorded[memo] = index
        if index < 0:
            self._not_compared += 1
            return
        values: tuple[Any, ...] = ()
        if self._paths:
            read = []
            for head, rest in self._paths:
                value = policy_input.get(head, _MISSING)
                if rest is not None:
                    value = value.get(rest, _MISSING) if isinstance(value, Mapping) else _MISSING
                read.append(value if type(value) in _SCALARS else _hashable(value))
            values = tuple(read)
        key = stable_key(policy_input)
        node = self._roots.get(key)
        if node is None:
            node = self._roots[key] = self._new(policy_input, values, frozenset())
        self._place(node, (values, index, session, policy_input))
        if len(self._queue) >= BATCH or self._waiting >= MAX_WAITING:
            self._evaluate()

    def run(self) -> Report:
        """Evaluate what is left and compare."""
        while self._queue:
            self._evaluate()
        builder = ReportBuilder(details=self.details, examples=self.examples)
        stack = list(reversed(self._roots.values()))  # depth first, in the order recorded
        while stack:
            node = stack.pop()
            if node.split is not None:
                stack.extend(reversed(node.children.values()))
                continue
            if not node.tallies or node.outcome is None:
                continue
            recorded: dict[Outcome, tuple[int, list[str]]] = {}
            for index, (count, sessions) in node.tallies.items():
                before = self._outcomes[index]
                if before in recorded:  # two ways of recording one outcome (error null or left out)
                    n, s = recorded[before]
                    count, sessions = n + count, (s + [x for x in sessions if x not in s])[: self.examples]
                recorded[before] = (count, sessions)
            builder.add(node.input, node.outcome, recorded)
        return builder.build(inputs=self._inputs, not_compared=self._not_compared, evaluations=self.evaluations,
                             revisions=self._revisions)

    # -- internals -------------------------------------------------------------------------

    def _new(self, policy_input: Mapping[str, Any], values: tuple[Any, ...], told_apart: frozenset[str]) -> _Node:
        node = _Node(policy_input, values, told_apart)
        self._queue.append(node)
        return node

    def _place(self, node: _Node, member: _Member) -> None:
        """File a recorded input under the node it belongs to, from ``node`` down."""
        while True:
            if node.waiting is not None:
                node.waiting.append(member)
                self._waiting += 1
                return
            if node.split is None:
                tally = node.tallies.get(member[1])
                if tally is None:
                    tally = node.tallies[member[1]] = [0, []]
                tally[0] += 1
                session = member[2]
                if session and len(tally[1]) < self.examples and session not in tally[1]:
                    tally[1].append(session)
                return
            key = tuple(member[0][i] for i in node.split)
            child = node.children.get(key)
            if child is None:
                child = node.children[key] = self._new(member[3], member[0], node.apart)
            node = child

    def _evaluate(self) -> None:
        """Evaluate the nodes waiting (one batch at a time), then file their inputs."""
        nodes, self._queue = self._queue, []
        for start in range(0, len(nodes), BATCH):
            batch = nodes[start : start + BATCH]
            answers = self.candidate.evaluate_many([n.input for n in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"the candidate answered {len(answers)} evaluations for {len(batch)} inputs")
            self.evaluations += len(batch)
            for node, answer in zip(batch, answers, strict=True):
                self._decide(node, answer)

    def _decide(self, node: _Node, answer: Evaluation) -> None:
        node.outcome = outcome = self._outcome(answer.raw)
        reached = self._may_read if answer.reached is None else answer.reached & self._may_read
        waiting, node.waiting = node.waiting or [], None
        self._waiting -= len(waiting)
        if not reached <= node.told_apart:
            node.apart = node.told_apart | reached
            node.split = tuple(i for i, f in enumerate(self._fields) if f in node.apart)
            # The input just evaluated read nothing outside ``apart``: whatever agrees with it
            # there is decided by this evaluation.
            own = _Node(node.input, node.values, node.apart)
            own.outcome, own.waiting = outcome, None
            node.children = {tuple(node.values[i] for i in node.split): own}
        for member in waiting:
            self._place(node, member)

    def _outcome(self, raw: Any) -> Outcome:
        """``candidate_outcome``, once per distinct raw value (strict parsing is not cheap)."""
        if isinstance(raw, Exception):
            return candidate_outcome(raw)
        try:
            key = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return candidate_outcome(raw)
        outcome = self._decided.get(key)
        if outcome is None:
            outcome = self._decided[key] = candidate_outcome(raw)
        return outcome


def stable_key(policy_input: Mapping[str, Any]) -> bytes:
    """The input without the volatile fields, as bytes (the decision cache's key, nothing kept)."""
    return cache_key(policy_input)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()
_SCALARS = frozenset({str, int, float, bool, type(None), _Missing})


def _hashable(value: Any) -> Any:
    """A volatile field's value as a dict key: objects and arrays as their canonical JSON."""
    if type(value) in _SCALARS:
        return value
    return ("json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS))
