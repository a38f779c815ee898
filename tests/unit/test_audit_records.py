"""The pure record functions: canonical form, hashes, chaining, checkpoint signatures, the
policy revision, times; and the record schema against a record of every kind."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.audit.records import (
    CHECKPOINT,
    ENVELOPE,
    GENESIS,
    KINDS,
    canonical,
    checkpoint_mac,
    envelope,
    format_time,
    key_id,
    make_record,
    parse_time,
    policy_revision,
    record_hash,
    seal,
    seal_record,
    serialize,
    sign_checkpoint,
    verify_checkpoint,
)
from gatekeeper.testing.audit import REQUEST_FIELDS, sample_fields

KEY = b"k" * 32
T = "2026-11-22T10:00:03.000000Z"


def chain_of(kinds: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    prev = GENESIS
    for seq, kind in enumerate(kinds):
        if kind == CHECKPOINT:
            r = sign_checkpoint({"reason": "interval", "records": seq}, KEY, instance="gk1", chain="gk1", seq=seq,
                                prev=prev, time=T)
        else:
            r = make_record(kind, sample_fields(kind), instance="gk1", chain="gk1", seq=seq, prev=prev, time=T)
        out.append(r)
        prev = r["hash"]
    return out


def test_canonical_form_is_sorted_compact_utf8_without_the_hash() -> None:
    record = {"b": 1, "a": {"z": "é", "y": [1, 2.5]}, "hash": "x"}
    assert canonical(record) == '{"a":{"y":[1,2.5],"z":"é"},"b":1}'.encode()
    assert serialize(record) == '{"a":{"y":[1,2.5],"z":"é"},"b":1,"hash":"x"}\n'.encode()


def test_canonical_form_has_no_nan_and_matches_the_json_module() -> None:
    """NaN and infinities are written as null (the canonical form has none); everything else is
    byte for byte what json.dumps(sort_keys, compact, UTF-8) writes, so trails written either
    way verify alike."""
    assert canonical({"x": float("nan"), "y": float("inf")}) == b'{"x":null,"y":null}'
    record = make_record("request", REQUEST_FIELDS, instance="gk1", chain="gk1", seq=7, prev=GENESIS, time=T)
    body = {k: v for k, v in record.items() if k != "hash"}
    assert canonical(record) == json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    big = {"n": 2**70, "s": "ünï\u2028\x1f"}
    assert canonical(big) == json.dumps(big, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_a_stored_line_parses_back_to_a_record_with_the_same_hash() -> None:
    record = make_record("request", REQUEST_FIELDS, instance="gk1", chain="gk1", seq=7, prev=GENESIS, time=T)
    again = json.loads(serialize(record))
    assert again == record
    assert record_hash(again) == record["hash"]


def test_any_change_changes_the_hash() -> None:
    record = make_record("request", REQUEST_FIELDS, instance="gk1", chain="gk1", seq=7, prev=GENESIS, time=T)
    edited = json.loads(json.dumps(record))
    edited["operations"][0]["decision"]["action"] = "deny"
    assert record_hash(edited) != record["hash"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ENVELOPE), _JSON, max_size=6), st.sampled_from(KINDS))
def test_sealing_writes_what_serialize_writes_and_the_hash_record_hash_gives(fields: dict[str, Any], kind: str) -> None:
    """The writer's one-pass seal (two halves around "hash") against the two-pass definition,
    keys before and after "hash" and non-ASCII ones (the slow way) included."""
    record = envelope(kind, fields, instance="i", chain="c", seq=7, prev=GENESIS, time=T)
    line, digest = seal(record)
    assert digest == record_hash(record)
    assert line == serialize({**record, "hash": digest})
    assert record_hash(json.loads(line)) == digest


@given(st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ENVELOPE), _JSON, max_size=6), st.sampled_from(KINDS),
       st.integers(0, 2**63 - 1), st.sampled_from([GENESIS, "ab" * 32]))
def test_a_record_sealed_in_its_place_is_the_sealed_envelope(fields: dict[str, Any], kind: str, seq: int, prev: str) -> None:
    """The trail seals each record with its seq and prev on the reactor thread (``seal_record``):
    the same line and hash as sealing the whole envelope, and as the two-pass definition."""
    record = envelope(kind, fields, instance="i", chain="c", seq=seq, prev=prev, time=T)
    sealed = seal_record(kind, fields, instance="i", chain="c", seq=seq, prev=prev, time=T)
    assert sealed == seal(record)
    assert sealed == (serialize({**record, "hash": record_hash(record)}), record_hash(record))


def test_a_record_holding_the_hash_marker_is_sealed_the_two_pass_way() -> None:
    """Fields that happen to hold the marker standing for the hash (random per process) are
    sealed without it, to the same bytes."""
    from gatekeeper.audit import records

    mark = records._HASH_MARK
    for fields in ({"note": mark}, {"note": f"a{mark}b"}, {"zz": {"hash": mark}}, {"aa": {"hash": mark, "x": 1}}):
        fields = {**fields, **REQUEST_FIELDS}
        record = envelope("request", fields, instance="i", chain="c", seq=3, prev=GENESIS, time=T)
        assert records._seal_marked({**record, "hash": mark}) is None, fields
        line, digest = seal_record("request", fields, instance="i", chain="c", seq=3, prev=GENESIS, time=T)
        assert (line, digest) == (serialize({**record, "hash": record_hash(record)}), record_hash(record))
        assert json.loads(line)["hash"] == digest
    assert records._seal_marked({**envelope("request", REQUEST_FIELDS, instance="i", chain="c", seq=3, prev=GENESIS,
                                            time=T), "hash": mark}) is not None


def test_sealing_a_request_record_matches_make_record() -> None:
    fields = sample_fields("request")
    made = make_record("request", fields, instance="i", chain="c", seq=1, prev=GENESIS, time=T)
    line, digest = seal(envelope("request", fields, instance="i", chain="c", seq=1, prev=GENESIS, time=T))
    assert (line, digest) == (serialize(made), made["hash"])


def test_records_link_to_the_previous_hash() -> None:
    records = chain_of(["session_start", "authentication", "request", "session_end"])
    assert records[0]["prev"] == GENESIS
    for before, after in zip(records, records[1:], strict=False):
        assert after["prev"] == before["hash"]
        assert after["seq"] == before["seq"] + 1


def test_fields_may_not_set_envelope_keys() -> None:
    with pytest.raises(ValueError, match="envelope keys: seq"):
        make_record("request", {"seq": 3}, instance="gk1", chain="gk1", seq=0, prev=GENESIS, time=T)
    with pytest.raises(ValueError, match="envelope keys: hash, time"):
        seal_record("request", {"time": 1, "hash": "x", "note": 2}, instance="gk1", chain="gk1", seq=0, prev=GENESIS,
                    time=T)


def test_checkpoint_signature_verifies_with_its_key_only() -> None:
    cp = sign_checkpoint({"reason": "stop", "records": 3}, KEY, instance="gk1", chain="gk1", seq=4, prev="a" * 64,
                         time=T)
    assert cp["key_id"] == key_id(KEY)
    assert verify_checkpoint(cp, {key_id(KEY): KEY}) is None
    other = b"o" * 32
    assert "was not given" in str(verify_checkpoint(cp, {key_id(other): other}))
    forged = {**cp, "mac": checkpoint_mac(cp, other)}
    assert "does not verify" in str(verify_checkpoint(forged, {key_id(KEY): KEY}))
    moved = {**cp, "prev": "b" * 64}  # the chain behind it rewritten
    assert "does not verify" in str(verify_checkpoint(moved, {key_id(KEY): KEY}))
    assert "without key_id or mac" in str(verify_checkpoint({k: v for k, v in cp.items() if k != "mac"}, {}))


def test_key_id_names_the_key_without_revealing_it() -> None:
    assert key_id(KEY) == key_id(KEY) != key_id(b"x" * 32)
    assert len(key_id(KEY)) == 16


def test_policy_revision_is_stable_and_changes_with_policies_or_data() -> None:
    a = policy_revision({"a.rego": "package a", "b.rego": b"package b"}, {"x": 1})
    assert a.startswith("sha256:") and len(a) == 7 + 64
    assert a == policy_revision({"b.rego": "package b", "a.rego": "package a"}, {"x": 1})
    assert a != policy_revision({"a.rego": "package a", "b.rego": "package b "}, {"x": 1})
    assert a != policy_revision({"a.rego": "package a", "b.rego": "package b"}, {"x": 2})


def test_times_round_trip_and_sort_as_text() -> None:
    assert format_time(1_800_000_000.25) == "2027-01-15T08:00:00.250000Z"
    assert parse_time(format_time(1_800_000_000.25)) == 1_800_000_000.25
    assert parse_time("2026-11-22") == parse_time("2026-11-22T00:00:00Z")
    assert parse_time("2026-11-22T11:00:00+01:00") == parse_time("2026-11-22T10:00:00Z")
    assert format_time(1.5) < format_time(10.0) < format_time(1e9)


# -- the schema --------------------------------------------------------------------------------


def schema() -> Any:
    text = resources.files("gatekeeper").joinpath("schemas/audit-record.schema.json").read_text()
    return jsonschema.Draft202012Validator(json.loads(text))


@pytest.mark.parametrize("kind", [k for k in KINDS if k != CHECKPOINT])
def test_every_kind_validates(kind: str) -> None:
    record = make_record(kind, sample_fields(kind), instance="gk-1", chain="gk-1", seq=1, prev=GENESIS, time=T)
    errors = [e.message for e in schema().iter_errors(record)]
    assert errors == []


def test_checkpoints_validate() -> None:
    for fields in ({"reason": "start", "records": 0, "resumed": {"seq": 9, "hash": "a" * 64},
                    "writer": {"version": "0.1.0", "sink": "file"},
                    "repaired": {"segment": "audit-gk-1-000000000000.jsonl", "torn_bytes": 17, "sha256": "b" * 64}},
                   {"reason": "interval", "records": 12}, {"reason": "stop", "records": 0}):
        cp = sign_checkpoint(fields, KEY, instance="gk-1", chain="gk-1@20261122T100000Z-0a1b2c3d", seq=3,
                             prev="c" * 64, time=T)
        assert [e.message for e in schema().iter_errors(cp)] == []


def test_the_request_inputs_are_policy_inputs() -> None:
    text = resources.files("gatekeeper").joinpath("schemas/policy-input.schema.json").read_text()
    validator = jsonschema.Draft202012Validator(json.loads(text))
    for op in REQUEST_FIELDS["operations"]:
        assert [e.message for e in validator.iter_errors(op["input"])] == []


@pytest.mark.parametrize("change, expected", [
    (lambda r: r.update(kind="gossip"), "is not one of"),
    (lambda r: r.pop("session"), "'session' is a required property"),
    (lambda r: r.update(surprise=1), "Unevaluated properties are not allowed"),
    (lambda r: r["operations"][0]["decision"].update(action="maybe"), "is not one of"),
    (lambda r: r["operations"][0]["enforced"].update(result="ignored"), "is not one of"),
    (lambda r: r.update(prev="xyz"), "does not match"),
    (lambda r: r.update(seq=-1), "less than the minimum"),
    (lambda r: r["outcome"]["partitions"][0].pop("partition"), "'partition' is a required property"),
])
def test_the_schema_refuses_malformed_records(change: Any, expected: str) -> None:
    record = make_record("request", sample_fields("request"), instance="gk-1", chain="gk-1", seq=1, prev=GENESIS,
                         time=T)
    change(record)
    messages = " | ".join(e.message for e in schema().iter_errors(record))
    assert expected in messages


def test_envelope_keys_are_the_schema_required_ones() -> None:
    assert tuple(schema().schema["required"]) == ENVELOPE


@given(st.one_of(st.floats(min_value=0, max_value=4e9), st.floats(min_value=1.8e9, max_value=1.8e9 + 2)))
def test_times_match_datetime_formatting_to_the_microsecond(seconds: float) -> None:
    # format_time formats each whole second once; the microseconds (rounded as datetime
    # rounds them, carrying into the next second) must give datetime's text exactly.
    expected = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert format_time(seconds) == expected
