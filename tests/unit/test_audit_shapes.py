"""The field builders produce records the schema accepts, with no token or claims."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema

from gatekeeper.api import Decision, Principal
from gatekeeper.audit.records import GENESIS, make_record
from gatekeeper.audit.shapes import (
    enforced_fields,
    fetched_partition,
    operation_entry,
    principal_fields,
    produced_partition,
    token_fields,
)
from gatekeeper.testing.audit import POLICY_INPUT, sample_fields

ALICE = Principal("alice", "https://idp", ("team",), {"email": "a@example.com"}, "OAUTHBEARER")


def validator() -> jsonschema.Draft202012Validator:
    text = resources.files("gatekeeper").joinpath("schemas/audit-record.schema.json").read_text()
    return jsonschema.Draft202012Validator(json.loads(text))


def test_principal_fields_leave_claims_out() -> None:
    assert principal_fields(ALICE) == {"sub": "alice", "issuer": "https://idp", "groups": ["team"],
                                       "mechanism": "OAUTHBEARER"}
    assert principal_fields({"sub": "bob", "claims": {"x": 1}}) == {"sub": "bob", "issuer": None, "groups": [],
                                                                    "mechanism": "NONE"}
    assert principal_fields(None) is None


def test_token_fields_keep_the_id_and_expiry_only() -> None:
    claims = {"jti": "abc", "exp": 1_800_000_000, "iss": "https://idp", "sub": "alice", "secret": "x"}
    assert token_fields(claims) == {"jti": "abc", "exp": "2027-01-15T08:00:00.000000Z", "issuer": "https://idp"}
    assert token_fields({}) == {"jti": None, "exp": None, "issuer": None}


def test_a_request_built_from_values_validates() -> None:
    ops = [
        operation_entry(POLICY_INPUT, Decision("allow", "ok", ttl=5.0), "sha256:" + "a" * 64,
                        enforced_fields("forwarded"), cached=True),
        operation_entry(POLICY_INPUT, Decision("deny", "no", error="policy_violation"), "sha256:" + "a" * 64,
                        enforced_fields("denied", error_code=44)),
        operation_entry(POLICY_INPUT, Decision("mask", "pii", mask=({"field": "$.card", "masker": "last4"},)), None,
                        enforced_fields("masked", masked_fields=3, masked_records=2)),
        operation_entry(POLICY_INPUT, Decision("approve", "ask", approval={"approvers": ["group:x"]}), None,
                        enforced_fields("denied", error_code=29,
                                        approval={"id": "apr_1", "status": "pending", "waited_ms": 20000})),
    ]
    assert ops[0]["decision"]["error"] is None and ops[1]["decision"]["error"] == "policy_violation"
    fields = {**sample_fields("request"), "operations": ops, "principal": principal_fields(ALICE),
              "outcome": {"from": "broker", "partitions": [produced_partition("orders", 0, 0, 10, 3),
                                                           fetched_partition("orders", 1, 0, [5, 6, 9]),
                                                           fetched_partition("orders", 2, 1, [])]}}
    record = make_record("request", fields, instance="gk1", chain="gk1", seq=0, prev=GENESIS,
                         time="2026-11-22T10:00:00.000000Z")
    assert [e.message for e in validator().iter_errors(record)] == []
    assert fields["outcome"]["partitions"][1] == {"topic": "orders", "partition": 1, "error_code": 0,
                                                  "first_offset": 5, "last_offset": 9, "record_count": 3}
