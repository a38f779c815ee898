"""The SQLite store on the real reactor (its calls run on the store's own thread): schema made
on open, WAL mode, upserts, what ``load`` returns, and the service restarted on the same file."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor

from gatekeeper.api import Principal, Resource
from gatekeeper.approvals import Approvals, SqliteStore, StoreError
from gatekeeper.approvals.model import (
    APPROVED,
    DENIED,
    PENDING,
    ApprovalRequest,
    ApprovalSpec,
    Grant,
    open_request,
    vote,
)
from gatekeeper.config import ApprovalsConfig

T0 = 1_800_000_000.0
ALICE = Principal("alice", "https://idp", ("payments-leads",))
BOB = Principal("bob", "https://idp", ("payments-leads",))
SPEC = ApprovalSpec(approvers=("group:payments-leads",), grant_ttl=1800.0, wait=20.0)


def request(id: str, name: str = "payments", now: float = T0) -> ApprovalRequest:
    return open_request(id=id, requester=ALICE, client={"id": "app", "address": "10.0.0.1"}, operation="produce",
                        resource=Resource("topic", name), summary={"partitions": [0, 1]}, reason="r", spec=SPEC,
                        now=now, request_ttl=3600.0)


@pytest_twisted.inlineCallbacks
def test_open_creates_the_schema_in_wal_mode_with_a_private_file(tmp_path: Path) -> Any:
    path = tmp_path / "approvals.db"
    store = SqliteStore(path, reactor)
    yield store.open()
    yield store.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"approval_requests", "grants"} <= tables
    db.close()


@pytest_twisted.inlineCallbacks
def test_calls_run_off_the_reactor_thread(tmp_path: Path) -> Any:
    store = SqliteStore(tmp_path / "a.db", reactor)
    yield store.open()
    seen: list[str] = []
    original = store._put_request

    def spy(r: ApprovalRequest) -> None:
        seen.append(threading.current_thread().name)
        original(r)

    store._put_request = spy  # type: ignore[method-assign]
    yield store.put_request(request("apr_1"))
    yield store.close()
    assert seen and seen[0] != threading.main_thread().name


@pytest_twisted.inlineCallbacks
def test_upserts_and_load_keep_everything_and_return_what_is_recent(tmp_path: Path) -> Any:
    path = tmp_path / "a.db"
    store = SqliteStore(path, reactor)
    yield store.open()
    pending = request("apr_pending", "a")
    old = request("apr_old", "b", now=T0 - 10 * 86400)
    old_decided, _ = vote(old, BOB, "deny", "no", T0 - 10 * 86400 + 5, "grt_unused")
    approved, grant = vote(request("apr_approved", "c"), BOB, "approve", "ok", T0 + 1, "grt_1")
    assert grant is not None
    old_grant = attrs.evolve(grant, id="grt_old", granted_at=T0 - 9 * 86400, expires_at=T0 - 9 * 86400 + 60)
    for r in (pending, old, old_decided, request("apr_approved", "c"), approved):  # upserts: last wins
        yield store.put_request(r)
    for g in (grant, old_grant):
        yield store.put_grant(g)
    loaded = yield store.load(T0 - 86400)
    assert {r.id: r for r in loaded.requests} == {"apr_pending": pending, "apr_approved": approved}
    assert list(loaded.grants) == [grant]
    everything = yield store.load(0.0)
    assert {r.id for r in everything.requests} == {"apr_pending", "apr_old", "apr_approved"}
    assert {g.id for g in everything.grants} == {"grt_1", "grt_old"}
    yield store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT status FROM approval_requests WHERE id = 'apr_old'").fetchone()[0] == DENIED
    db.close()


@pytest_twisted.inlineCallbacks
def test_a_file_that_is_not_a_store_is_refused_with_its_path(tmp_path: Path) -> Any:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    store = SqliteStore(path, reactor)
    with pytest.raises(StoreError, match="junk.db"):
        yield store.open()
    with pytest.raises(StoreError, match="cannot create"):
        yield SqliteStore(tmp_path / "missing-dir" / "a.db", reactor).open()


@pytest_twisted.inlineCallbacks
def test_a_newer_schema_is_refused(tmp_path: Path) -> Any:
    path = tmp_path / "a.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="newer Gatekeeper"):
        yield SqliteStore(path, reactor).open()


@pytest_twisted.inlineCallbacks
def test_the_service_survives_a_restart_on_the_same_file(tmp_path: Path) -> Any:
    cfg = ApprovalsConfig(store=tmp_path / "approvals.db")
    first = Approvals(cfg, reactor=reactor)
    yield first.start()
    client = {"id": "app", "address": "10.0.0.1"}
    approval = {"approvers": ["group:payments-leads"], "grant_ttl": "30m"}

    def open_(name: str) -> ApprovalRequest:
        return first.open(principal=ALICE, client=client, operation="produce", resource=Resource("topic", name),
                          summary={"record_count": 1}, reason="needs a lead", approval=approval)

    pending = open_("a")
    approved = yield first.approve(open_("b").id, BOB, "ok")
    denied = yield first.deny(open_("c").id, BOB, "no")
    revoked = yield first.approve(open_("d").id, BOB, "ok")
    yield first.revoke(revoked.grant_id, BOB, "changed my mind")
    yield first.stop()

    second = Approvals(cfg, reactor=reactor)
    yield second.start()
    try:
        assert second.request(pending.id).status == PENDING
        assert second.request(pending.id).summary == {"record_count": 1}
        assert second.request(approved.id).status == APPROVED
        assert second.request(denied.id).status == DENIED
        live = second.grants_for(ALICE)
        assert [g["approval_id"] for g in live] == [approved.id]
        assert second.grant(revoked.grant_id).revoked_by == "bob"
        assert {g.id for g in second.grants(live=False)} == {approved.grant_id, revoked.grant_id}
        joined = second.open(principal=ALICE, client=client, operation="produce", resource=Resource("topic", "a"),
                             summary={}, reason="", approval=approval)
        assert joined.id == pending.id
        # And a decision made after the restart is saved too.
        yield second.approve(pending.id, BOB, "ok")
    finally:
        yield second.stop()
    third = Approvals(cfg, reactor=reactor)
    yield third.start()
    assert third.request(pending.id).status == APPROVED
    assert len(third.grants_for(ALICE)) == 2
    yield third.stop()


@pytest_twisted.inlineCallbacks
def test_grants_from_the_store_are_the_policy_input_shape(tmp_path: Path) -> Any:
    store = SqliteStore(tmp_path / "a.db", reactor)
    yield store.open()
    _, grant = vote(request("apr_1"), BOB, "approve", "", T0, "grt_1")
    assert isinstance(grant, Grant)
    yield store.put_grant(grant)
    loaded = yield store.load(0.0)
    yield store.close()
    assert loaded.grants[0].to_input() == grant.to_input()
    assert loaded.grants[0].to_input()["expires_at"] == "2027-01-15T08:30:00.000Z"


@pytest_twisted.inlineCallbacks
def test_calls_after_the_store_thread_stopped_fail_instead_of_hanging(tmp_path: Path) -> Any:
    store = SqliteStore(tmp_path / "a.db", reactor)
    yield store.open()
    store._reactor_stopping()  # what the reactor's shutdown trigger does
    with pytest.raises(StoreError, match="not open"):
        yield store.put_request(request("apr_1"))
    yield store.close()  # nothing left to close: returns at once
