"""Strict decision parsing (gatekeeper/policy/decision.py): mask items and approvals per the decision schema."""

from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.policy.decision import DecisionError, parse_decision


def masked(*items: Any) -> dict[str, Any]:
    return {"action": "mask", "reason": "PII on orders is masked for non-owners", "mask": list(items), "ttl": "5s"}


VALID_ITEMS = [
    {"field": "$.card", "masker": "last4"},
    {"field": "$.customer.card", "masker": "last4"},
    {"field": "$.items[*].card", "masker": "last4"},
    {"field": "$.items[0].card", "masker": "last4"},
    {"field": "$..ssn", "masker": "redact"},
    {"field": "$", "masker": "redact", "in": "key"},
    {"detector": "email", "masker": "hash"},
    {"detector": "credit_card", "masker": "last4", "options": {"keep": 4}, "in": "value", "on_error": "deny"},
    {"detector": "email", "masker": "hash", "in": "header:customer-*", "on_error": "redact_value"},
    {"field": "$.note", "masker": "redact", "in": "header:x-note", "on_error": "pass"},
]


@pytest.mark.parametrize("item", VALID_ITEMS, ids=lambda i: f"{i.get('field') or i.get('detector')}-{i.get('in', 'value')}")
def test_valid_mask_items_are_kept_as_they_are(item: dict[str, Any]) -> None:
    d = parse_decision(masked(item))
    assert d.action == "mask" and d.mask == (item,) and d.ttl == 5.0


def test_mask_items_keep_their_order() -> None:
    d = parse_decision(masked(*VALID_ITEMS))
    assert d.mask == tuple(VALID_ITEMS)


INVALID = [
    ({"field": "$.card", "detector": "credit_card", "masker": "last4"}, "mask/0", "exactly one of field or detector, this one names field and detector"),
    ({"masker": "last4"}, "mask/0", "exactly one of field or detector, this one names neither"),
    ({"field": "$.card"}, "mask/0", "'masker' is a required property"),
    ({"field": "card", "masker": "last4"}, "mask/0/field", "does not match"),
    ({"field": "", "masker": "last4"}, "mask/0/field", "does not match"),
    ({"field": ".card", "masker": "last4"}, "mask/0/field", "does not match"),
    ({"detector": "", "masker": "hash"}, "mask/0/detector", "should be non-empty"),
    ({"detector": "email", "masker": ""}, "mask/0/masker", "should be non-empty"),
    ({"detector": "email", "masker": 7}, "mask/0/masker", "not of type 'string'"),
    ({"detector": "email", "masker": "hash", "options": ["salt"]}, "mask/0/options", "not of type 'object'"),
    ({"detector": "email", "masker": "hash", "in": "values"}, "mask/0/in", "does not match"),
    ({"detector": "email", "masker": "hash", "in": "header:"}, "mask/0/in", "does not match"),
    ({"detector": "email", "masker": "hash", "in": "headers:x"}, "mask/0/in", "does not match"),
    ({"detector": "email", "masker": "hash", "on_error": "ignore"}, "mask/0/on_error", "is not one of"),
    ({"detector": "email", "masker": "hash", "on_error": None}, "mask/0/on_error", "is not one of"),
    ({"detector": "email", "masker": "hash", "where": "value"}, "mask/0", "'where' was unexpected"),
    ("$.card", "mask/0", "not of type 'object'"),
]


@pytest.mark.parametrize(("item", "where", "words"), INVALID, ids=[w for _, _, w in INVALID])
def test_invalid_mask_items_are_refused_saying_what_is_wrong(item: Any, where: str, words: str) -> None:
    with pytest.raises(DecisionError) as e:
        parse_decision(masked(item))
    assert f"malformed decision at {where}: " in str(e.value) and words in str(e.value), str(e.value)


def test_an_invalid_item_after_valid_ones_is_named_by_its_index() -> None:
    with pytest.raises(DecisionError, match=r"at mask/2/in: "):
        parse_decision(masked(VALID_ITEMS[0], VALID_ITEMS[1], {"detector": "email", "masker": "hash", "in": "body"}))


def test_the_mask_list_is_bounded_and_not_empty() -> None:
    assert len(parse_decision(masked(*[{"field": f"$.f{i}", "masker": "redact"} for i in range(64)])).mask) == 64
    with pytest.raises(DecisionError) as e:
        parse_decision(masked(*[{"field": f"$.f{i}", "masker": "redact"} for i in range(65)]))
    assert str(e.value) == "malformed decision at mask: 65 items, more than the 64 allowed"  # not the whole list
    with pytest.raises(DecisionError, match="mask: .*non-empty"):
        parse_decision(masked())
    with pytest.raises(DecisionError, match="'mask' is a required property"):
        parse_decision({"action": "mask", "reason": "r"})
    with pytest.raises(DecisionError, match="not of type 'array'"):
        parse_decision({"action": "mask", "mask": {"field": "$.card", "masker": "last4"}})


# -- approve -------------------------------------------------------------------------------------


def approve(approval: Any) -> dict[str, Any]:
    return {"action": "approve", "reason": "produce on topic \"payments.eu\" needs approval", "approval": approval, "ttl": "5s"}


VALID_APPROVALS = [
    {"approvers": ["group:payments-leads"]},
    {"approvers": ["group:payments-leads"], "grant_ttl": "30m", "wait": "20s"},
    {"approvers": ["group:security"], "approvals_required": 2, "grant_ttl": "15m", "wait": "25s"},
    {"approvers": ["user:alice", "user:bob"], "approvals_required": 2},
    {"approvers": ["user:alice", "group:security"], "approvals_required": 5},
    {"approvers": ["user:alice"], "approvals_required": 1, "grant_ttl": "1.5h", "wait": "500ms"},
    {"approvers": ["group:a:b", "user:svc@example.com"]},
]


@pytest.mark.parametrize("approval", VALID_APPROVALS, ids=lambda a: ",".join(a["approvers"]) + f"-{a.get('approvals_required', 1)}")
def test_valid_approvals_are_kept_as_they_are(approval: dict[str, Any]) -> None:
    d = parse_decision(approve(approval))
    assert d.action == "approve" and d.approval == approval and d.ttl == 5.0 and d.mask == ()


INVALID_APPROVALS = [
    ({}, "approval", "'approvers' is a required property"),
    ({"approvers": []}, "approval/approvers", "should be non-empty"),
    ({"approvers": "group:security"}, "approval/approvers", "not of type 'array'"),
    ({"approvers": ["security"]}, "approval/approvers/0", "does not match"),
    ({"approvers": ["group:"]}, "approval/approvers/0", "does not match"),
    ({"approvers": ["role:security"]}, "approval/approvers/0", "does not match"),
    ({"approvers": [f"user:u{i}" for i in range(65)]}, "approval/approvers", "65 items, more than the 64 allowed"),
    ({"approvers": ["group:security"], "approvals_required": 0}, "approval/approvals_required", "less than the minimum of 1"),
    ({"approvers": ["group:security"], "approvals_required": 6}, "approval/approvals_required", "greater than the maximum of 5"),
    ({"approvers": ["group:security"], "approvals_required": 1.5}, "approval/approvals_required", "not of type 'integer'"),
    ({"approvers": ["group:security"], "approvals_required": "2"}, "approval/approvals_required", "not of type 'integer'"),
    ({"approvers": ["group:security"], "grant_ttl": "30 minutes"}, "approval/grant_ttl", "does not match"),
    ({"approvers": ["group:security"], "wait": "1d"}, "approval/wait", "does not match"),
    ({"approvers": ["group:security"], "approvers_required": 2}, "approval", "'approvers_required' was unexpected"),
    ({"approvers": ["user:alice"], "approvals_required": 2}, "approval",
     "approvals_required is 2 but the approvers name 1 different user and no group, so it could never be approved"),
    ({"approvers": ["user:alice", "user:alice"], "approvals_required": 2}, "approval",
     "approvals_required is 2 but the approvers name 1 different user and no group"),
    ({"approvers": ["user:alice", "user:bob"], "approvals_required": 3}, "approval",
     "approvals_required is 3 but the approvers name 2 different users and no group"),
]


@pytest.mark.parametrize(("approval", "where", "words"), INVALID_APPROVALS, ids=[w for _, _, w in INVALID_APPROVALS])
def test_invalid_approvals_are_refused_saying_what_is_wrong(approval: Any, where: str, words: str) -> None:
    with pytest.raises(DecisionError) as e:
        parse_decision(approve(approval))
    assert f"malformed decision at {where}: " in str(e.value) and words in str(e.value), str(e.value)


def test_an_approve_needs_an_approval_object() -> None:
    with pytest.raises(DecisionError, match="'approval' is a required property"):
        parse_decision({"action": "approve", "reason": "r"})
    with pytest.raises(DecisionError, match="at approval: None is not of type 'object'"):
        parse_decision(approve(None))
