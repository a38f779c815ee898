"""Searching a trail, as pure functions: a ``Query`` picks records (and, in ``request``
records, the decided operations) by principal, resource, operation, action, session, kind and
time; ``rows`` turns matches into table rows.

A request record matches when one of its operations matches every operation filter
(operation, resource, action) and the principal; each such operation is one row. Approval and
grant records match on their operation, resource and people; other kinds only when no
operation filter is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from gatekeeper.audit.records import parse_time

__all__ = ["Query", "Row", "format_table", "rows"]


@attrs.frozen
class Row:
    time: str
    session: str
    kind: str
    principal: str
    operation: str
    resource: str
    action: str
    detail: str
    record: Mapping[str, Any] = attrs.field(eq=False, repr=False)


def _sub(p: Any) -> str | None:
    return p.get("sub") if isinstance(p, Mapping) else None


def _res(r: Any) -> str:
    return f"{r.get('type')}:{r.get('name')}" if isinstance(r, Mapping) else "-"


@attrs.frozen
class Query:
    principal: str | None = None
    resource_type: str | None = None
    resource_name: str | None = None
    operation: str | None = None
    action: str | None = None
    session: str | None = None
    kinds: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None

    @property
    def about_operations(self) -> bool:
        return any(v is not None for v in (self.resource_type, self.resource_name, self.operation, self.action))

    def _resource_ok(self, r: Any) -> bool:
        if not isinstance(r, Mapping):
            return self.resource_type is None and self.resource_name is None
        return ((self.resource_type is None or r.get("type") == self.resource_type)
                and (self.resource_name is None or r.get("name") == self.resource_name))

    def _time_ok(self, record: Mapping[str, Any]) -> bool:
        if self.since is None and self.until is None:
            return True
        try:
            t = parse_time(record["time"])
        except (KeyError, TypeError, ValueError):
            return False
        return (self.since is None or t >= self.since) and (self.until is None or t <= self.until)

    def rows(self, record: Mapping[str, Any]) -> list[Row]:
        """The rows of ``record`` that match (none: it does not)."""
        kind = str(record.get("kind"))
        if self.kinds and kind not in self.kinds:
            return []
        if self.session is not None and record.get("session") != self.session:
            return []
        if not self._time_ok(record):
            return []
        base: dict[str, Any] = {"time": str(record.get("time", "-")), "session": str(record.get("session") or "-"), "kind": kind,
                "record": record}
        if kind == "request":
            return self._request_rows(record, base)
        if kind in ("approval", "grant"):
            return self._approval_rows(record, base)
        if self.about_operations:
            return []
        people = [_sub(record.get("principal"))]
        if self.principal is not None and self.principal not in people:
            return []
        return [Row(principal=people[0] or "-", operation="-", resource="-", action=_outcome_of(record),
                    detail=_detail(record), **base)]

    def _request_rows(self, record: Mapping[str, Any], base: dict[str, Any]) -> list[Row]:
        out = []
        for op in record.get("operations") or ():
            inp = op.get("input") or {}
            decision = op.get("decision") or {}
            sub = _sub(inp.get("principal")) or _sub(record.get("principal"))
            if self.principal is not None and sub != self.principal:
                continue
            if self.operation is not None and inp.get("operation") != self.operation:
                continue
            if self.action is not None and decision.get("action") != self.action:
                continue
            if not self._resource_ok(inp.get("resource")):
                continue
            out.append(Row(principal=sub or "-", operation=str(inp.get("operation", "-")),
                           resource=_res(inp.get("resource")), action=str(decision.get("action", "-")),
                           detail=_enforced(op.get("enforced") or {}, decision), **base))
        if not out and not record.get("operations") and not self.about_operations:
            sub = _sub(record.get("principal"))
            if self.principal is None or sub == self.principal:
                api = record.get("api") or {}
                out.append(Row(principal=sub or "-", operation=str(api.get("name", "-")), resource="-", action="-",
                               detail="no decided operation", **base))
        return out

    def _approval_rows(self, record: Mapping[str, Any], base: dict[str, Any]) -> list[Row]:
        item = record.get("request") if record.get("kind") == "approval" else record.get("grant")
        item = item if isinstance(item, Mapping) else {}
        owner = _sub(item.get("requester") if record.get("kind") == "approval" else item.get("principal"))
        people = [owner, _sub(record.get("by"))]
        if self.principal is not None and self.principal not in people:
            return []
        if self.operation is not None and item.get("operation") != self.operation:
            return []
        if self.action is not None:
            return []
        if not self._resource_ok(item.get("resource")):
            return []
        by = _sub(record.get("by"))
        return [Row(principal=owner or "-", operation=str(item.get("operation", "-")), resource=_res(item.get("resource")),
                    action=str(record.get("event", "-")),
                    detail=f"{item.get('id', '?')}{f' by {by}' if by else ''}: {record.get('reason') or '-'}", **base)]


def _enforced(enforced: Mapping[str, Any], decision: Mapping[str, Any]) -> str:
    result = str(enforced.get("result", "-"))
    if "error_code" in enforced:
        result += f" ({enforced['error_code']})"
    if "masked_fields" in enforced:
        result += f" ({enforced['masked_fields']} fields)"
    approval = enforced.get("approval")
    if isinstance(approval, Mapping):
        result += f" (approval {approval.get('id')}: {approval.get('status')})"
    reason = decision.get("reason")
    return f"{result}: {reason}" if reason else result


def _outcome_of(record: Mapping[str, Any]) -> str:
    return str(record.get("result") or record.get("event") or "-")


def _detail(record: Mapping[str, Any]) -> str:
    kind = record.get("kind")
    if kind == "session_start":
        client = record.get("client") or {}
        return f"listener {record.get('listener')} from {client.get('address')}:{client.get('port')}"
    if kind == "session_end":
        b = record.get("bytes") or {}
        return (f"{record.get('reason')} ({record.get('ended_by')}) after {record.get('duration_ms')}ms, "
                f"{record.get('requests')} requests, {b.get('from_client')}B in / {b.get('to_client')}B out")
    if kind == "authentication":
        token = record.get("token") or {}
        extra = f" jti {token.get('jti')}" if token.get("jti") else ""
        return f"{record.get('mechanism')}{extra}{': ' + str(record['reason']) if record.get('reason') else ''}"
    if kind == "policy_reload":
        return f"{record.get('old_revision')} -> {record.get('new_revision')}"
    if kind == "checkpoint":
        return f"{record.get('reason')} (seq {record.get('seq')})"
    if kind == "unavailable":
        return f"{record.get('since')} .. {record.get('until')}: {record.get('reason')}; refused {record.get('refused')}"
    if kind == "config_reload":
        return ", ".join(record.get("changed") or ()) or "-"
    if kind == "secret_reload":
        return ", ".join(f"{s.get('name')} {s.get('result')}" for s in record.get("secrets") or ())
    return "-"


def rows(query: Query, records: Iterable[Mapping[str, Any]], limit: int | None = None) -> Iterator[Row]:
    n = 0
    for record in records:
        for row in query.rows(record):
            yield row
            n += 1
            if limit is not None and n >= limit:
                return


def _clean(value: Any) -> str:
    """A value for a terminal: control characters (escape sequences) shown, not obeyed."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(value))


def format_table(found: Iterable[Row], *, width: int = 60) -> list[str]:
    header = ["TIME", "SESSION", "KIND", "PRINCIPAL", "OPERATION", "RESOURCE", "ACTION", "DETAIL"]
    table = [[_clean(v)[:width] for v in (r.time, r.session, r.kind, r.principal, r.operation, r.resource, r.action,
                                          r.detail)] for r in found]
    widths = [max([len(h), *(len(row[i]) for row in table)]) for i, h in enumerate(header)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *table]]
