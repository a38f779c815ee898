"""The Approvals service on a task.Clock with the in-memory store: open and join, holds that
are released or abandoned, votes, grants in policy inputs, revoke, expiry, restart, events,
notifiers and metrics. No running reactor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.python.failure import Failure

from gatekeeper.api import Principal, Resource
from gatekeeper.approvals import Approvals, ConfiguredNotifier, MemoryStore, Refused, StoreError
from gatekeeper.approvals.model import APPROVED, DENIED, EXPIRED, PENDING, ApprovalRequest, Grant
from gatekeeper.config import ApprovalsConfig
from gatekeeper.metrics import Metrics

T0 = 1_800_000_000.0
TOPIC = Resource("topic", "payments")
ALICE = Principal("alice", "https://idp", ("payments-leads",), {}, "OAUTHBEARER")
BOB = Principal("bob", "https://idp", ("payments-leads",))
CAROL = Principal("carol", "https://idp", ("payments-leads",))
MALLORY = Principal("mallory", "https://idp", ("dev",))
APPROVAL = {"approvers": ["group:payments-leads"], "grant_ttl": "30m", "wait": "20s"}


def config(**kw: Any) -> ApprovalsConfig:
    return ApprovalsConfig(store=Path("/unused.db"), **kw)


class Harness:
    def __init__(self, store: MemoryStore | None = None, clock: task.Clock | None = None, **cfg: Any) -> None:
        self.clock = clock or task.Clock()
        if clock is None:
            self.clock.advance(T0)
        self.store = store or MemoryStore()
        self.metrics = Metrics()
        self.notified: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        notifier = ConfiguredNotifier("fake", self, events=("request_opened", "request_decided", "grant_revoked"))
        self.approvals = Approvals(config(**cfg), reactor=self.clock, metrics=self.metrics, store=self.store,
                                   notifiers=[notifier])
        self.approvals.subscribe(self.events.append)
        done(self.approvals.start())

    def notify(self, event: dict[str, Any]) -> None:
        self.notified.append(event)

    def open(self, principal: Principal = ALICE, resource: Resource = TOPIC, operation: str = "produce",
             **approval: Any) -> ApprovalRequest:
        return self.approvals.open(principal=principal, client={"id": "app", "address": "10.0.0.1"},
                                   operation=operation, resource=resource, summary={"record_count": 3},
                                   reason="payments need a lead's approval", approval={**APPROVAL, **approval})


def done(d: defer.Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def refused(d: defer.Deferred[Any]) -> Refused:
    with pytest.raises(Refused) as e:
        done(d)
    return e.value


def test_open_records_what_an_approver_needs() -> None:
    h = Harness()
    r = h.open()
    assert r.status == PENDING and r.id.startswith("apr_")
    assert (r.requester.sub, r.requester.issuer, r.requester.groups, r.requester.mechanism) == \
        ("alice", "https://idp", ("payments-leads",), "OAUTHBEARER")
    assert (r.client_id, r.client_address, r.operation, r.resource) == ("app", "10.0.0.1", "produce", TOPIC)
    assert r.summary == {"record_count": 3} and r.reason == "payments need a lead's approval"
    assert r.created_at == T0 and r.grant_ttl == 1800
    assert h.store.requests[r.id]["status"] == PENDING
    assert h.approvals.requests() == [r] and h.approvals.request(r.id) == r
    assert [e["type"] for e in h.notified] == ["request_opened"]
    assert h.metrics.get("gatekeeper_approval_requests_total", result="opened") == 1
    assert h.metrics.get("gatekeeper_approval_requests_pending") == 1


def test_the_same_triple_joins_the_pending_request_and_notifies_once() -> None:
    h = Harness()
    first = h.open()
    again = h.open(grant_ttl="5m")  # a later decision's parameters do not change it
    assert again == first
    assert len(h.approvals.requests()) == 1
    assert [e["type"] for e in h.notified] == ["request_opened"]
    assert h.metrics.get("gatekeeper_approval_requests_total", result="joined") == 1
    # Another resource, operation or person is another request.
    assert h.open(resource=Resource("topic", "other")).id != first.id
    assert h.open(operation="consume").id != first.id
    assert h.open(principal=Principal("alice", "https://other-idp")).id != first.id
    assert len(h.approvals.requests(status=PENDING, requester=ALICE)) == 3


def test_after_a_decision_the_triple_opens_a_new_request() -> None:
    h = Harness()
    first = h.open()
    done(h.approvals.deny(first.id, BOB, "no"))
    assert h.open().id != first.id


def test_pending_requests_per_principal_are_bounded() -> None:
    h = Harness(max_pending_per_principal=2)
    h.open(resource=Resource("topic", "a"))
    h.open(resource=Resource("topic", "b"))
    h.open(resource=Resource("topic", "a"))  # joining is fine
    with pytest.raises(Refused) as e:
        h.open(resource=Resource("topic", "c"))
    assert e.value.status == 429
    assert h.open(principal=BOB, resource=Resource("topic", "c")).pending  # someone else may


def test_an_anonymous_client_cannot_open_a_request() -> None:
    from gatekeeper.api import ANONYMOUS

    h = Harness()
    with pytest.raises(Refused) as e:
        h.open(principal=ANONYMOUS)
    assert e.value.status == 403 and h.approvals.requests() == []


def test_a_malformed_approval_is_refused() -> None:
    h = Harness()
    with pytest.raises(Refused) as e:
        h.approvals.open(principal=ALICE, client=None, operation="produce", resource=TOPIC, summary={}, reason="",
                         approval={"approvers": []})
    assert e.value.status == 400


def test_hold_seconds_is_capped_by_max_wait() -> None:
    h = Harness(max_wait=20.0)
    assert h.approvals.hold_seconds({"approvers": ["user:x"], "wait": "5s"}) == 5
    assert h.approvals.hold_seconds({"approvers": ["user:x"], "wait": "10m"}) == 20
    assert h.approvals.hold_seconds({"approvers": ["user:x"]}) == 20


def test_wait_fires_on_approve_with_the_grant_in_force() -> None:
    h = Harness()
    r = h.open()
    holds = [h.approvals.wait(r.id), h.approvals.wait(r.id, timeout=20)]
    got: list[Any] = []
    for d in holds:
        d.addBoth(got.append)
    h.clock.advance(3)
    decided = done(h.approvals.approve(r.id, BOB, "fine"))
    assert decided.status == APPROVED
    assert [g.status for g in got] == [APPROVED, APPROVED]
    assert h.approvals.grants_for(ALICE) == [h.approvals.grant(decided.grant_id).to_input()]
    h.clock.advance(30)  # the timeout's timer was cancelled: nothing fires twice
    assert len(got) == 2


def test_wait_fires_on_deny() -> None:
    h = Harness()
    r = h.open()
    d = h.approvals.wait(r.id)
    done(h.approvals.deny(r.id, BOB, "not today"))
    assert done(d).status == DENIED
    assert h.approvals.grants_for(ALICE) == []


def test_wait_times_out_with_the_request_still_pending() -> None:
    h = Harness()
    r = h.open()
    d = h.approvals.wait(r.id, timeout=20)
    h.clock.advance(19.9)
    assert not d.called
    h.clock.advance(0.1)
    assert done(d).status == PENDING
    assert h.approvals.request(r.id).pending  # the request outlives the hold


def test_cancelling_a_wait_leaves_the_request_and_other_holders_alone() -> None:
    h = Harness()
    r = h.open()
    gone = h.approvals.wait(r.id, timeout=20)
    gone.addErrback(lambda f: f.trap(defer.CancelledError))
    stays = h.approvals.wait(r.id)
    gone.cancel()
    assert h.approvals.request(r.id).pending
    h.clock.advance(30)
    assert not stays.called
    done(h.approvals.approve(r.id, BOB))
    assert done(stays).status == APPROVED
    assert h.approvals.grants_for(ALICE)  # the client that left still gets its grant


def test_wait_on_a_decided_or_unknown_request() -> None:
    h = Harness()
    r = h.open()
    done(h.approvals.deny(r.id, BOB))
    assert done(h.approvals.wait(r.id)).status == DENIED
    assert refused(h.approvals.wait("apr_nope")).status == 404


def test_segregation_of_duties_through_the_service() -> None:
    h = Harness()
    r = h.open()
    e = refused(h.approvals.approve(r.id, ALICE, "me"))
    assert e.status == 403 and "segregation of duties" in e.reason
    assert refused(h.approvals.deny(r.id, ALICE)).status == 403
    assert refused(h.approvals.approve(r.id, MALLORY)).status == 403
    assert refused(h.approvals.approve("apr_unknown", BOB)).status == 404
    assert h.approvals.request(r.id).pending and h.approvals.request(r.id).votes == ()
    done(h.approvals.approve(r.id, BOB))
    assert refused(h.approvals.approve(r.id, CAROL)).status == 409


def test_two_person_rule_through_the_service() -> None:
    h = Harness()
    r = h.open(approvals_required=2)
    d = h.approvals.wait(r.id)
    once = done(h.approvals.approve(r.id, BOB))
    assert once.status == PENDING and not d.called and h.approvals.grants_for(ALICE) == []
    assert refused(h.approvals.approve(r.id, BOB)).status == 409
    assert [e["type"] for e in h.events][-1] == "request_voted"
    twice = done(h.approvals.approve(r.id, CAROL))
    assert twice.status == APPROVED and done(d).status == APPROVED
    assert h.approvals.grant(twice.grant_id).approved_by == ("bob", "carol")


def test_decidable_by_lists_what_an_approver_may_vote_on() -> None:
    h = Harness()
    mine = h.open()
    theirs = h.open(principal=CAROL)
    assert h.approvals.decidable_by(ALICE) == [theirs]
    assert h.approvals.decidable_by(BOB) == [mine, theirs]
    assert h.approvals.decidable_by(MALLORY) == []


def test_grants_for_gives_only_live_grants_of_that_principal_until_exactly_their_expiry() -> None:
    h = Harness()
    r = h.open()
    h.clock.advance(10)
    decided = done(h.approvals.approve(r.id, BOB))
    g = h.approvals.grant(decided.grant_id)
    assert g.expires_at == T0 + 10 + 1800
    entry = h.approvals.grants_for(ALICE)[0]
    assert entry["operation"] == "produce" and entry["resource"] == {"type": "topic", "name": "payments"}
    assert entry["expires_at"] == "2027-01-15T08:30:10.000Z"
    assert h.approvals.grants_for(Principal("alice", "https://other-idp")) == []
    assert h.approvals.grants_for(BOB) == []
    assert h.approvals.grants_for(ALICE, now=g.expires_at - 0.001)
    assert h.approvals.grants_for(ALICE, now=g.expires_at) == []
    version = h.approvals.grants_version
    h.clock.advance(1800)  # the expiry timer
    assert h.approvals.grants_for(ALICE) == []
    assert h.approvals.grants_version > version
    assert h.metrics.get("gatekeeper_approval_grants_active") == 0
    assert [e["type"] for e in h.events][-1] == "grant_expired"
    assert h.approvals.grants() == [] and h.approvals.grants(live=False) == [g]  # kept


def test_grants_for_orders_the_longest_lasting_first() -> None:
    h = Harness()
    short = done(h.approvals.approve(h.open(grant_ttl="1m").id, BOB))
    long = done(h.approvals.approve(h.open(operation="consume", grant_ttl="2h").id, BOB))
    assert [e["approval_id"] for e in h.approvals.grants_for(ALICE)] == [long.id, short.id]


def test_revoke_stops_a_grant_at_once() -> None:
    h = Harness()
    decided = done(h.approvals.approve(h.open().id, BOB))
    version = h.approvals.grants_version
    assert refused(h.approvals.revoke(decided.grant_id, MALLORY, "x")).status == 403
    assert refused(h.approvals.revoke("grt_nope", BOB, "x")).status == 404
    revoked = done(h.approvals.revoke(decided.grant_id, CAROL, "misuse"))
    assert (revoked.revoked_by, revoked.revoke_reason, revoked.revoked_at) == ("carol", "misuse", T0)
    assert h.approvals.grants_for(ALICE) == []  # no waiting for any timer
    assert h.approvals.grants_version > version
    assert h.store.grants[decided.grant_id]["revoked_by"] == "carol"
    assert refused(h.approvals.revoke(decided.grant_id, CAROL, "again")).status == 409
    assert h.notified[-1]["type"] == "grant_revoked"
    assert h.metrics.get("gatekeeper_approval_grants_revoked_total") == 1


def test_the_grantee_may_give_up_their_grant() -> None:
    h = Harness()
    decided = done(h.approvals.approve(h.open().id, BOB))
    done(h.approvals.revoke(decided.grant_id, ALICE, "done with it"))
    assert h.approvals.grants_for(ALICE) == []


def test_a_pending_request_expires_after_request_ttl() -> None:
    h = Harness(request_ttl=3600.0)
    r = h.open()
    d = h.approvals.wait(r.id)
    h.clock.advance(3599)
    assert h.approvals.request(r.id).pending
    h.clock.advance(1)
    assert done(d).status == EXPIRED
    assert h.approvals.request(r.id).status == EXPIRED
    assert h.store.requests[r.id]["status"] == EXPIRED
    assert refused(h.approvals.approve(r.id, BOB)).status == 409
    assert h.notified[-1]["type"] == "request_decided" and h.notified[-1]["request"]["status"] == EXPIRED
    assert h.metrics.get("gatekeeper_approval_decisions_total", status="expired") == 1
    assert h.open().id != r.id


def test_a_restart_brings_back_pending_requests_and_live_grants_and_keeps_decided_ones() -> None:
    h = Harness()
    pending = h.open(resource=Resource("topic", "a"))
    approved = done(h.approvals.approve(h.open(resource=Resource("topic", "b")).id, BOB))
    denied = done(h.approvals.deny(h.open(resource=Resource("topic", "c")).id, BOB))
    done(h.approvals.stop())
    h.clock.advance(60)
    again = Harness(store=h.store, clock=h.clock)
    a = again.approvals
    assert a.request(pending.id).pending
    assert a.request(approved.id).status == APPROVED and a.request(denied.id).status == DENIED
    assert [g["approval_id"] for g in a.grants_for(ALICE)] == [approved.id]
    assert again.open(resource=Resource("topic", "a")).id == pending.id  # still joinable
    assert again.metrics.get("gatekeeper_approval_grants_active") == 1
    # ... and its timers run again: the grant ends, the pending request expires.
    again.clock.advance(1800)
    assert a.grants_for(ALICE) == []
    again.clock.advance(24 * 3600)
    assert a.request(pending.id).status == EXPIRED


def test_a_request_that_ran_out_while_down_expires_at_start() -> None:
    h = Harness(request_ttl=60.0)
    r = h.open()
    done(h.approvals.stop())
    h.clock.advance(120)
    again = Harness(store=h.store, clock=h.clock, request_ttl=60.0)
    assert again.approvals.request(r.id).status == EXPIRED
    assert again.store.requests[r.id]["status"] == EXPIRED


def test_old_history_is_pruned_from_memory_but_kept_in_the_store() -> None:
    h = Harness(history=3600.0)
    decided = done(h.approvals.deny(h.open().id, BOB))
    h.clock.advance(3600 + 61)  # past history, and a sweep ran
    assert h.approvals.request(decided.id) is None
    assert h.store.requests[decided.id]["status"] == DENIED


def test_stop_releases_holders_with_the_request_still_pending() -> None:
    h = Harness()
    r = h.open()
    d = h.approvals.wait(r.id)
    done(h.approvals.stop())
    assert done(d).status == PENDING
    with pytest.raises(RuntimeError):
        h.open()


def test_events_carry_json_and_the_page_link() -> None:
    h = Harness(page_url="https://gk.example/approvals")
    r = h.open()
    done(h.approvals.approve(r.id, BOB))
    kinds = [e["type"] for e in h.events]
    assert kinds == ["request_opened", "grant_created", "request_decided"]
    assert h.events[0]["request"]["id"] == r.id
    assert h.events[0]["url"] == f"https://gk.example/approvals?request={r.id}"
    assert h.events[2]["grant"]["approval_id"] == r.id
    assert r.id in h.approvals.client_message(r) and "https://gk.example/approvals" in h.approvals.client_message(r)


def test_unsubscribe_and_a_failing_subscriber() -> None:
    h = Harness()

    def boom(event: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    h.approvals.subscribe(boom)
    seen: list[Any] = []
    unsubscribe = h.approvals.subscribe(seen.append)
    h.open()  # the failing subscriber does not stop the others, nor the open
    assert len(seen) == 1
    unsubscribe()
    h.open(resource=Resource("topic", "x"))
    assert len(seen) == 1


class FailingNotifier:
    def __init__(self) -> None:
        self.calls = 0

    def notify(self, event: dict[str, Any]) -> defer.Deferred[None]:
        self.calls += 1
        return defer.fail(RuntimeError("smtp down"))


class RaisingNotifier:
    def notify(self, event: dict[str, Any]) -> None:
        raise RuntimeError("plugin bug")


def test_a_failing_notifier_is_counted_and_holds_nothing_up() -> None:
    clock = task.Clock()
    clock.advance(T0)
    metrics = Metrics()
    failing = FailingNotifier()
    a = Approvals(config(), reactor=clock, metrics=metrics, store=MemoryStore(),
                  notifiers=[ConfiguredNotifier("mail", failing), ConfiguredNotifier("bug", RaisingNotifier()),
                             ConfiguredNotifier("quiet", failing, events=("grant_revoked",))])
    done(a.start())
    r = a.open(principal=ALICE, client=None, operation="produce", resource=TOPIC, summary={}, reason="",
               approval=APPROVAL)
    assert r.pending and failing.calls == 1
    assert metrics.get("gatekeeper_approval_notifier_failures_total", notifier="mail") == 1
    assert metrics.get("gatekeeper_approval_notifier_failures_total", notifier="bug") == 1
    assert done(a.approve(r.id, BOB)).status == APPROVED


def test_a_slow_notifier_is_cancelled_at_stop_and_not_counted() -> None:
    clock = task.Clock()
    metrics = Metrics()

    class Slow:
        def notify(self, event: dict[str, Any]) -> defer.Deferred[None]:
            return task.deferLater(clock, 3600, lambda: None)

    a = Approvals(config(), reactor=clock, metrics=metrics, store=MemoryStore(), notifiers=[Slow()])
    done(a.start())
    a.open(principal=ALICE, client=None, operation="produce", resource=TOPIC, summary={}, reason="", approval=APPROVAL)
    done(a.stop())
    assert metrics.get("gatekeeper_approval_notifier_failures_total", notifier="Slow") == 0
    assert clock.getDelayedCalls() == []


class BrokenStore(MemoryStore):
    def put_grant(self, grant: Grant) -> defer.Deferred[None]:
        return defer.fail(StoreError("disk full"))


def test_a_failed_write_is_reported_to_the_approver_and_counted() -> None:
    h = Harness(store=BrokenStore())
    r = h.open()
    with pytest.raises(StoreError, match="not saved"):
        done(h.approvals.approve(r.id, BOB))
    assert h.approvals.request(r.id).status == APPROVED  # in force until a restart
    assert h.metrics.get("gatekeeper_approval_store_errors_total") == 1


def test_no_timers_left_after_stop() -> None:
    h = Harness()
    h.open()
    done(h.approvals.approve(h.open(resource=Resource("topic", "b")).id, BOB))
    done(h.approvals.stop())
    assert h.clock.getDelayedCalls() == []


def test_grants_for_fills_a_policy_input_that_matches_the_contract() -> None:
    import json
    from importlib import resources

    import jsonschema

    from gatekeeper.api import Operation
    from gatekeeper.policy.input import SessionInfo, build_input

    h = Harness()
    done(h.approvals.approve(h.open().id, BOB))
    schema = json.loads(resources.files("gatekeeper").joinpath("schemas/policy-input.schema.json").read_text())
    session = SessionInfo("01JTESTSESSION0000000000000", T0, "127.0.0.1", principal=ALICE)
    doc = build_input(Operation("produce", TOPIC, {"acks": -1}), api_key=0, api_name="Produce", api_version=9,
                      client_id="app", session=session, now=T0 + 1, grants=h.approvals.grants_for(ALICE))
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)
    assert doc["grants"][0]["resource"] == {"type": "topic", "name": "payments"}
