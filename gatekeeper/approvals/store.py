"""Where approval requests and grants are kept: the ``Store`` interface, SQLite behind it.

The service keeps what is in force in memory and writes every change through a store; the
store is read once, at start. Nothing is ever deleted: a decided request and an ended grant
are the audit trail. ``load(since)`` returns the pending requests, and the requests decided and
grants ended at or after ``since`` (older ones stay in the store, unread).

``SqliteStore`` runs every SQLite call on one dedicated thread (so writes apply in the order
they were asked for, and the reactor never waits on the disk); ``MemoryStore`` is the same
contract in memory, for tests. A store shared by several instances (events on a compacted
Kafka topic, DESIGN.md) would implement the same four calls.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Protocol

import attrs
from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

from gatekeeper.approvals.model import PENDING, ApprovalRequest, Grant

__all__ = ["Loaded", "MemoryStore", "SqliteStore", "Store", "StoreError"]

SCHEMA_VERSION = 1


class StoreError(Exception):
    """The store cannot be opened, read or written (the operator's disk or file)."""


@attrs.frozen
class Loaded:
    requests: tuple[ApprovalRequest, ...] = ()
    grants: tuple[Grant, ...] = ()


class Store(Protocol):
    """Every call returns a Deferred and never blocks the reactor. Writes are applied in the
    order they were called."""

    def open(self) -> defer.Deferred[None]: ...

    def load(self, since: float) -> defer.Deferred[Loaded]: ...

    def put_request(self, request: ApprovalRequest) -> defer.Deferred[None]: ...

    def put_grant(self, grant: Grant) -> defer.Deferred[None]: ...

    def close(self) -> defer.Deferred[None]: ...


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _kept(request: ApprovalRequest, since: float) -> bool:
    return request.status == PENDING or (request.decided_at is not None and request.decided_at >= since)


def _grant_kept(grant: Grant, since: float) -> bool:
    return grant.expires_at >= since or (grant.revoked_at is not None and grant.revoked_at >= since)


class MemoryStore:
    """The store contract in memory (JSON round trip included, as SQLite does): for tests, and
    for a service restarted in a test by handing the same store to a new one."""

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, Any]] = {}
        self.grants: dict[str, dict[str, Any]] = {}
        self.writes = 0

    def open(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    def load(self, since: float) -> defer.Deferred[Loaded]:
        requests = [ApprovalRequest.from_json(json.loads(_dumps(r))) for r in self.requests.values()]
        grants = [Grant.from_json(json.loads(_dumps(g))) for g in self.grants.values()]
        return defer.succeed(Loaded(tuple(r for r in requests if _kept(r, since)),
                                    tuple(g for g in grants if _grant_kept(g, since))))

    def put_request(self, request: ApprovalRequest) -> defer.Deferred[None]:
        self.requests[request.id] = request.to_json()
        self.writes += 1
        return defer.succeed(None)

    def put_grant(self, grant: Grant) -> defer.Deferred[None]:
        self.grants[grant.id] = grant.to_json()
        self.writes += 1
        return defer.succeed(None)

    def close(self) -> defer.Deferred[None]:
        return defer.succeed(None)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS approval_requests (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    sub TEXT NOT NULL,
    issuer TEXT,
    created_at REAL NOT NULL,
    decided_at REAL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approval_requests_by_status ON approval_requests (status, decided_at);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY,
    sub TEXT NOT NULL,
    issuer TEXT,
    approval_id TEXT NOT NULL,
    granted_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_by_expiry ON grants (expires_at);
CREATE INDEX IF NOT EXISTS grants_by_revocation ON grants (revoked_at);
"""


class SqliteStore:
    """Approval requests and grants in a SQLite file (WAL mode, synchronous FULL: a decision
    acknowledged to an approver survives a crash). Created, with mode 0600, if missing."""

    def __init__(self, path: Path | str, reactor: Any) -> None:
        self.path = Path(path)
        self.reactor = reactor
        self._db: sqlite3.Connection | None = None
        self._pool: ThreadPool | None = None
        self._shutdown_trigger: Any = None

    # -- the reactor side --------------------------------------------------------------------

    def _call(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        if self._pool is None:
            return defer.fail(StoreError(f"approvals store {self.path} is not open"))
        return threads.deferToThreadPool(self.reactor, self._pool, fn, *args)

    def open(self) -> defer.Deferred[None]:
        if self._pool is not None:
            return defer.succeed(None)
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="gatekeeper-approvals-store")
        self._pool.start()
        # If the reactor stops without close(), the worker thread must not keep the process alive
        # (SQLite's WAL makes an unclosed connection safe: the next open recovers).
        self._shutdown_trigger = self.reactor.addSystemEventTrigger("during", "shutdown", self._reactor_stopping)
        d = self._call(self._open)
        d.addErrback(self._open_failed)
        return d

    def _open_failed(self, failure: Any) -> Any:
        self._stop_pool()
        return failure

    def load(self, since: float) -> defer.Deferred[Loaded]:
        return self._call(self._load, since)

    def put_request(self, request: ApprovalRequest) -> defer.Deferred[None]:
        return self._call(self._put_request, request)

    def put_grant(self, grant: Grant) -> defer.Deferred[None]:
        return self._call(self._put_grant, grant)

    def close(self) -> defer.Deferred[None]:
        """Close after every write asked for so far."""
        if self._pool is None:
            return defer.succeed(None)
        d = self._call(self._close)
        d.addBoth(self._closed)
        return d

    def _closed(self, result: Any) -> Any:
        self._stop_pool()
        return result

    def _reactor_stopping(self) -> None:
        self._shutdown_trigger = None
        self._stop_pool()

    def _stop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if self._shutdown_trigger is not None:
            self.reactor.removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        if pool is not None:
            pool.stop()  # the one worker is idle now: joins at once

    # -- the store thread --------------------------------------------------------------------

    def _open(self) -> None:
        where = f"approvals.store {self.path}"
        try:
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            db = sqlite3.connect(str(self.path), isolation_level=None)
        except OSError as e:
            raise StoreError(f"{where}: cannot create the file: {e.strerror}") from e
        except sqlite3.Error as e:
            raise StoreError(f"{where}: cannot open: {e}") from e
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{where}: written by a newer Gatekeeper (schema {version}, this one "
                                 f"knows {SCHEMA_VERSION}); upgrade, or point approvals.store elsewhere")
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{where}: cannot switch to WAL mode (got {mode})")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as e:
            db.close()
            raise StoreError(f"{where}: not a usable approvals store: {e}") from e
        except StoreError:
            db.close()
            raise
        self._db = db

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"approvals store {self.path} is not open")
        return self._db

    def _load(self, since: float) -> Loaded:
        db = self._conn()
        try:
            rows = db.execute(
                "SELECT body FROM approval_requests WHERE status = ? OR decided_at >= ? ORDER BY created_at",
                (PENDING, since)).fetchall()
            requests = tuple(ApprovalRequest.from_json(json.loads(body)) for (body,) in rows)
            rows = db.execute(
                "SELECT body FROM grants WHERE expires_at >= ? OR revoked_at >= ? ORDER BY granted_at",
                (since, since)).fetchall()
            grants = tuple(Grant.from_json(json.loads(body)) for (body,) in rows)
        except (sqlite3.Error, ValueError, KeyError) as e:
            raise StoreError(f"approvals.store {self.path}: cannot read: {type(e).__name__}: {e}") from e
        return Loaded(requests, grants)

    def _put_request(self, r: ApprovalRequest) -> None:
        self._write(
            "INSERT INTO approval_requests (id, status, sub, issuer, created_at, decided_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
            "decided_at = excluded.decided_at, body = excluded.body",
            (r.id, r.status, r.requester.sub, r.requester.issuer, r.created_at, r.decided_at, _dumps(r.to_json())))

    def _put_grant(self, g: Grant) -> None:
        self._write(
            "INSERT INTO grants (id, sub, issuer, approval_id, granted_at, expires_at, revoked_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, "
            "revoked_at = excluded.revoked_at, body = excluded.body",
            (g.id, g.sub, g.issuer, g.approval_id, g.granted_at, g.expires_at, g.revoked_at, _dumps(g.to_json())))

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        try:
            self._conn().execute(sql, params)
        except sqlite3.Error as e:
            raise StoreError(f"approvals.store {self.path}: cannot write: {e}") from e

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()
