"""Build policy input documents (the contract in ``schemas/policy-input.schema.json``)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import attrs

from gatekeeper.api import ANONYMOUS, Operation, Principal

__all__ = ["SessionInfo", "build_input", "new_session_id", "rfc3339"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_session_id(now: float | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, Crockford base32 (sortable by time)."""
    ms = int((time.time() if now is None else now) * 1000)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


_last_second: list[Any] = [None, ""]


def rfc3339(ts: float) -> str:
    """``2026-11-23T10:00:03.125Z``; the date-time part is formatted once per second (hot path)."""
    second = int(ts)
    if _last_second[0] != second:
        _last_second[0] = second
        _last_second[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_last_second[1]}.{int((ts - second) * 1000):03d}Z"


@attrs.frozen
class SessionInfo:
    """What is fixed for one client connection."""

    id: str
    started_at: float
    client_address: str
    principal: Principal = ANONYMOUS
    protocol: str = "kafka"
    started_at_text: str = attrs.field(init=False)

    @started_at_text.default
    def _started_at_text(self) -> str:
        return rfc3339(self.started_at)


def build_input(
    op: Operation,
    *,
    api_key: int,
    api_name: str,
    api_version: int,
    client_id: str | None,
    session: SessionInfo,
    now: float,
    grants: list[Any] | None = None,
) -> dict[str, Any]:
    """The policy input document for one operation of one request."""
    principal = session.principal
    return {
        "version": 1,
        "protocol": session.protocol,
        "operation": op.name,
        "api": {"key": api_key, "name": api_name, "version": api_version},
        "principal": principal.to_json(),
        "resource": op.resource.to_json(),
        "client": {"id": client_id, "address": session.client_address},
        "session": {"id": session.id, "started_at": session.started_at_text},
        "request": dict(op.request),
        "grants": list(grants or ()),
        "time": rfc3339(now),
    }
