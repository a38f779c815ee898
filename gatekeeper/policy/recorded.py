"""The decisions an audit trail recorded: ``request`` records → one ``Recorded`` per decided operation.

A ``request`` record (``schemas/audit-record.schema.json``) carries, for each operation the
policy decided, the policy input exactly as decided and the decision made then (action,
reason, error, mask/approval, and the policy ``revision``), with the session id at the top.
Other kinds are skipped. A request record whose operations are not in that shape is counted
in ``RecordedDecisions.malformed`` and skipped, so one damaged line does not end a replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

__all__ = ["Recorded", "RecordedDecisions"]


@attrs.frozen
class Recorded:
    input: Mapping[str, Any]
    decision: Mapping[str, Any]
    session: str | None
    time: str | None  # the record's time

    @property
    def revision(self) -> str | None:
        revision = self.decision.get("revision")
        return revision if isinstance(revision, str) else None


class RecordedDecisions:
    """Iterate over the decided operations of ``records``; counts what it skipped."""

    def __init__(self, records: Iterable[Mapping[str, Any]]) -> None:
        self.records = records
        self.requests = 0
        self.malformed = 0

    def __iter__(self) -> Iterator[Recorded]:
        for record in self.records:
            if record.get("kind") != "request":
                continue
            self.requests += 1
            operations = record.get("operations")
            if not isinstance(operations, list):
                self.malformed += 1
                continue
            session = record.get("session")
            session = session if isinstance(session, str) else None
            time = record.get("time")
            time = time if isinstance(time, str) else None
            for op in operations:
                policy_input = op.get("input") if isinstance(op, Mapping) else None
                decision = op.get("decision") if isinstance(op, Mapping) else None
                if (
                    not isinstance(policy_input, Mapping)
                    or not isinstance(decision, Mapping)
                    or not isinstance(decision.get("action"), str)
                ):
                    self.malformed += 1
                    continue
                yield Recorded(policy_input, decision, session, time)
