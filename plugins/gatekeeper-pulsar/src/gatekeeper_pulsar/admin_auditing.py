"""What the audit trail records of the Pulsar admin REST API: pure builders over an HTTP session.

A client's HTTP connection is a session (keep-alive: every call on it belongs to it):
``session_start`` when it opens, ``session_end`` when it closes, an ``authentication`` record
for each distinct bearer token it presents (``jti``/``exp``, never the token) or refuses, and
one ``request`` record per call: ``api`` is the endpoint template (key 0, version 2), each
operation the call was decided as with its policy input, decision and what was enforced
(``forwarded``, or ``denied`` with the HTTP status answered), and the outcome: the broker's HTTP
status (``{"from": "broker", "status"}``) or Gatekeeper's own answer (``{"from": "gatekeeper",
"status", "error"}``). The names a listing's answer is filtered by are decided but not recorded
one by one: the listing operation's decision is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from gatekeeper.api import Decision, Principal
from gatekeeper.audit.shapes import enforced_fields, operation_entry, principal_fields, token_fields
from gatekeeper.logsafe import printable

__all__ = [
    "API_KEY",
    "API_VERSION",
    "HttpSession",
    "authentication_failure",
    "authentication_success",
    "broker_outcome",
    "gatekeeper_outcome",
    "operation_entries",
    "request_fields",
    "session_end",
    "session_start",
]

API_KEY = 0
API_VERSION = 2  # /admin/v2


class HttpSession:
    """One client HTTP connection of a ``pulsar-admin`` listener (mutable: the proxy counts in it)."""

    def __init__(self, session_id: str, started_at: float, address: str, port: int) -> None:
        self.id = session_id
        self.started_at = started_at
        self.address = address
        self.port = port
        self.principal: Principal | None = None  # the last one authenticated
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.reason: str | None = None  # why Gatekeeper closed it (None: the client did)
        self.ended = False
        self._token_digest: bytes | None = None

    def closed_by_gatekeeper(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def new_token(self, token: str) -> bool:
        """True the first time this token is seen in a row on this session: its login is recorded
        once, not on every call of a keep-alive connection (only a digest is kept)."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        if digest == self._token_digest:
            return False
        self._token_digest = digest
        return True


def session_start(session: HttpSession, listener: str) -> dict[str, Any]:
    return {"session": session.id, "listener": listener, "client": {"address": session.address, "port": session.port},
            "tls": None}


def session_end(session: HttpSession, now: float) -> dict[str, Any]:
    """``bytes.to_client`` counts the response bodies written, not the status lines and headers."""
    return {"session": session.id, "duration_ms": max(0, int(1000 * (now - session.started_at))),
            "requests": session.requests, "bytes": {"from_client": session.bytes_in, "to_client": session.bytes_out},
            "reason": session.reason or "the client closed the connection",
            "ended_by": "gatekeeper" if session.reason is not None else "client",
            "principal": principal_fields(session.principal)}


def authentication_success(session_id: str, principal: Principal) -> dict[str, Any]:
    return {"session": session_id, "result": "success", "mechanism": principal.mechanism,
            "principal": principal_fields(principal), "token": token_fields(principal.claims)}


def authentication_failure(session_id: str, scheme: str, reason: str) -> dict[str, Any]:
    """A refused ``Authorization`` header: the scheme it named (``none`` without one), never its value."""
    return {"session": session_id, "result": "failure", "mechanism": printable(scheme or "none", 64).lower(),
            "principal": None, "token": None, "reason": printable(reason, 1024)}


def operation_entries(policy_inputs: Sequence[Mapping[str, Any]], decisions: Sequence[Decision], revision: str | None,
                      *, forwarded: bool, status: int | None = None) -> list[dict[str, Any]]:
    """One entry per operation the call was decided as, each with its own decision; what was
    enforced is the call's, as every operation must be allowed for it to be forwarded: else it
    is ``denied`` with the HTTP status Gatekeeper answered (403)."""
    done = enforced_fields("forwarded") if forwarded else enforced_fields("denied", error_code=status)
    return [operation_entry(policy_input, decision, revision, done)
            for policy_input, decision in zip(policy_inputs, decisions, strict=True)]


def broker_outcome(status: int, error: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"from": "broker", "status": int(status)}
    if error is not None:
        out["error"] = printable(error, 1024)
    return out


def gatekeeper_outcome(status: int | None, error: str) -> dict[str, Any]:
    """Gatekeeper's own answer (``status``), or none at all (None: the connection closed first)."""
    if status is None:
        return {"from": "none", "error": printable(error, 1024)}
    return {"from": "gatekeeper", "status": int(status), "error": printable(error, 1024)}


def request_fields(session: HttpSession, principal: Principal | None, api_name: str,
                   operations: list[dict[str, Any]], outcome: Mapping[str, Any], latency_s: float) -> dict[str, Any]:
    return {"session": session.id, "principal": principal_fields(principal),
            "client": {"id": None, "address": session.address},
            "api": {"key": API_KEY, "name": printable(api_name, 512), "version": API_VERSION},
            "operations": operations, "outcome": dict(outcome), "latency_ms": round(1000 * max(0.0, latency_s), 3)}
