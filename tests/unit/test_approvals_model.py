"""The approval rules as pure functions: segregation of duties, the two-person rule, expiry,
grants and who may revoke them."""

from __future__ import annotations

import attrs
import pytest

from gatekeeper.api import Principal, Resource
from gatekeeper.approvals.model import (
    APPROVED,
    DENIED,
    EXPIRED,
    PENDING,
    ApprovalRequest,
    ApprovalSpec,
    Grant,
    Refused,
    approver_matches,
    expire,
    from_rfc3339,
    is_live,
    may_decide,
    may_revoke,
    new_grant_id,
    new_request_id,
    open_request,
    revoke,
    rfc3339,
    vote,
)

T0 = 1_800_000_000.0
TOPIC = Resource("topic", "payments")
ALICE = Principal("alice", "https://idp", ("payments-leads", "dev"), {"email": "a@x"}, "OAUTHBEARER")
BOB = Principal("bob", "https://idp", ("payments-leads",))
CAROL = Principal("carol", "https://idp", ("payments-leads",))
MALLORY = Principal("mallory", "https://idp", ("dev",))


def spec(**kw: object) -> ApprovalSpec:
    raw = {"approvers": ["group:payments-leads"], "grant_ttl": "30m", **kw}
    return ApprovalSpec.from_decision(raw, default_grant_ttl=900, max_grant_ttl=86400, max_wait=20)


def request(requester: Principal = ALICE, **kw: object) -> ApprovalRequest:
    return open_request(id="apr_test", requester=requester, client={"id": "app", "address": "10.0.0.1"},
                        operation="produce", resource=TOPIC, summary={"record_count": 3}, reason="needs approval",
                        spec=spec(**kw), now=T0, request_ttl=3600)


def test_ids_are_prefixed_and_unguessable() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("apr_") and len(i) == 20 for i in ids)
    assert new_grant_id().startswith("grt_")


def test_spec_defaults_and_caps() -> None:
    s = ApprovalSpec.from_decision({"approvers": ["user:bob"]}, default_grant_ttl=900, max_grant_ttl=3600, max_wait=20)
    assert (s.grant_ttl, s.wait, s.approvals_required) == (900, 20, 1)
    s = ApprovalSpec.from_decision({"approvers": ["user:bob"], "grant_ttl": "48h", "wait": "5m", "approvals_required": 2},
                                   default_grant_ttl=900, max_grant_ttl=3600, max_wait=20)
    assert (s.grant_ttl, s.wait, s.approvals_required) == (3600, 20, 2)
    assert spec(wait="5s").wait == 5
    with pytest.raises(ValueError):
        ApprovalSpec.from_decision({"approvers": []}, default_grant_ttl=1, max_grant_ttl=1, max_wait=1)


def test_a_request_records_the_requester_without_token_claims() -> None:
    r = request()
    assert r.requester == Principal("alice", "https://idp", ("payments-leads", "dev"), {}, "OAUTHBEARER")
    assert (r.client_id, r.client_address, r.status, r.expires_at) == ("app", "10.0.0.1", PENDING, T0 + 3600)
    assert "email" not in str(r.to_json())


def test_approver_matching() -> None:
    assert approver_matches(["group:payments-leads"], BOB)
    assert approver_matches(["user:mallory"], MALLORY)
    assert not approver_matches(["group:payments-leads"], MALLORY)
    assert not approver_matches(["user:payments-leads"], BOB)  # a user entry is not a group
    assert not approver_matches(["group:", "user:", "payments-leads", "role:payments-leads"], BOB)


def test_the_requester_can_never_decide_their_own_request_even_in_the_approvers_group() -> None:
    r = request()
    refused = may_decide(r, ALICE)
    assert refused is not None and refused.status == 403 and "segregation of duties" in refused.reason
    # Same subject and issuer, whatever the token's groups now say.
    refused = may_decide(r, Principal("alice", "https://idp", ("payments-leads", "admins")))
    assert refused is not None and refused.status == 403
    with pytest.raises(Refused) as e:
        vote(r, ALICE, "approve", "me", T0 + 1, "grt_x")
    assert e.value.status == 403
    # Nor through the user: entry naming them.
    refused = may_decide(request(approvers=["user:alice", "group:payments-leads"]), ALICE)
    assert refused is not None and refused.status == 403


def test_same_subject_from_another_issuer_is_another_person() -> None:
    other = Principal("alice", "https://other-idp", ("payments-leads",))
    assert may_decide(request(), other) is None


def test_same_subject_without_an_issuer_on_either_side_counts_as_the_same_person() -> None:
    by_client_id = Principal("alice", None, ("payments-leads",), mechanism="CLIENT_ID")
    refused = may_decide(request(requester=by_client_id), ALICE)
    assert refused is not None and refused.status == 403
    refused = may_decide(request(), by_client_id)
    assert refused is not None and refused.status == 403


def test_an_outsider_is_refused() -> None:
    refused = may_decide(request(), MALLORY)
    assert refused is not None and refused.status == 403 and "not among the approvers" in refused.reason


def test_one_approval_approves_and_makes_a_grant() -> None:
    r = request()
    decided, grant = vote(r, BOB, "approve", "ok", T0 + 10, "grt_1")
    assert decided.status == APPROVED and decided.decided_at == T0 + 10 and decided.grant_id == "grt_1"
    assert grant is not None
    assert (grant.sub, grant.issuer, grant.operation, grant.resource) == ("alice", "https://idp", "produce", TOPIC)
    assert grant.expires_at == T0 + 10 + 1800  # approval time + grant_ttl
    assert grant.approved_by == ("bob",) and grant.approval_id == "apr_test"
    assert grant.approvers == ("group:payments-leads",)
    assert decided.votes[0].sub == "bob" and decided.votes[0].verdict == "approve"


def test_two_person_rule_needs_two_distinct_approvers() -> None:
    r = request(approvals_required=2)
    once, grant = vote(r, BOB, "approve", "ok", T0 + 1, "grt_1")
    assert once.status == PENDING and grant is None
    refused = may_decide(once, BOB)
    assert refused is not None and refused.status == 409 and "already voted" in refused.reason
    with pytest.raises(Refused):
        vote(once, BOB, "approve", "again", T0 + 2, "grt_2")
    # Bob from another token with other groups is still Bob.
    with pytest.raises(Refused):
        vote(once, Principal("bob", "https://idp", ("payments-leads", "x")), "approve", "", T0 + 2, "grt_2")
    twice, grant = vote(once, CAROL, "approve", "ok", T0 + 3, "grt_3")
    assert twice.status == APPROVED and grant is not None and grant.approved_by == ("bob", "carol")
    assert grant.expires_at == T0 + 3 + 1800


def test_one_denial_denies_even_after_an_approval() -> None:
    once, _ = vote(request(approvals_required=2), BOB, "approve", "ok", T0 + 1, "grt_1")
    denied, grant = vote(once, CAROL, "deny", "no", T0 + 2, "grt_2")
    assert denied.status == DENIED and grant is None and denied.grant_id is None
    refused = may_decide(denied, Principal("dave", "https://idp", ("payments-leads",)))
    assert refused is not None and refused.status == 409


def test_a_decided_request_takes_no_more_votes() -> None:
    decided, _ = vote(request(), BOB, "approve", "", T0 + 1, "grt_1")
    refused = may_decide(decided, CAROL)
    assert refused is not None and refused.status == 409 and "approved" in refused.reason


def test_refusal_order_segregation_first() -> None:
    decided, _ = vote(request(), BOB, "approve", "", T0 + 1, "grt_1")
    refused = may_decide(decided, ALICE)
    assert refused is not None and refused.status == 403


def test_unknown_verdict() -> None:
    with pytest.raises(ValueError):
        vote(request(), BOB, "maybe", "", T0, "grt_1")


def test_expiry_of_a_pending_request() -> None:
    r = request()
    assert expire(r, T0 + 3599) is r
    expired = expire(r, T0 + 3600)
    assert expired.status == EXPIRED and expired.decided_at == T0 + 3600
    refused = may_decide(r, BOB, now=T0 + 3600)  # past its time even before the timer ran
    assert refused is not None and refused.status == 409 and "expired" in refused.reason
    decided, _ = vote(r, BOB, "deny", "", T0 + 1, "g")
    assert expire(decided, T0 + 99999) is decided


def grant(**kw: object) -> Grant:
    _, g = vote(request(), BOB, "approve", "", T0, "grt_1")
    assert g is not None
    return attrs.evolve(g, **kw)


def test_a_grant_is_live_until_exactly_its_expiry() -> None:
    g = grant()
    assert is_live(g, T0 + 1799.999)
    assert not is_live(g, T0 + 1800)
    assert not is_live(attrs.evolve(g, revoked_at=T0 + 5), T0 + 6)


def test_grant_input_shape_is_what_the_policy_reads() -> None:
    entry = grant().to_input()
    assert entry["operation"] == "produce"
    assert entry["resource"] == {"type": "topic", "name": "payments"}
    assert entry["expires_at"] == rfc3339(T0 + 1800) and entry["expires_at"].endswith("Z")
    assert from_rfc3339(entry["expires_at"]) == T0 + 1800


def test_who_may_revoke() -> None:
    g = grant()
    assert may_revoke(g, ALICE, T0 + 1) is None  # the grantee gives it up
    assert may_revoke(g, CAROL, T0 + 1) is None  # any approver of that approval
    refused = may_revoke(g, MALLORY, T0 + 1)
    assert refused is not None and refused.status == 403
    refused = may_revoke(g, BOB, T0 + 1800)
    assert refused is not None and refused.status == 409
    revoked = revoke(g, CAROL, "misuse", T0 + 60)
    assert (revoked.revoked_at, revoked.revoked_by, revoked.revoke_reason) == (T0 + 60, "carol", "misuse")
    assert not is_live(revoked, T0 + 61)
    with pytest.raises(Refused) as e:
        revoke(revoked, CAROL, "again", T0 + 70)
    assert e.value.status == 409


def test_json_round_trips() -> None:
    once, _ = vote(request(approvals_required=2), BOB, "approve", "ok", T0 + 1.5, "g")
    assert ApprovalRequest.from_json(once.to_json()) == once
    g = revoke(grant(), ALICE, "done", T0 + 2.25)
    assert Grant.from_json(g.to_json()) == g


def test_rfc3339_truncates_to_milliseconds_in_utc() -> None:
    assert rfc3339(0.0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1.9999) == "1970-01-01T00:00:01.999Z"
