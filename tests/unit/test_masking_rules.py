from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.api import DROP, MaskingContext, MaskPluginError
from gatekeeper.config.values import MaskingConfig
from gatekeeper.masking import MARKERS, Masking, MaskingError, RecordRefused
from gatekeeper.testing.masking import masking_with

KEY = b"0123456789abcdef0123456789abcdef"
CARD = "4111111111111111"
RECORD = json.dumps({"customer": {"card": CARD, "name": "Ada", "email": "ada@example.com"},
                     "items": [{"card": "5500000000000004", "qty": 1}], "note": "hi"}).encode()


def masking(**table: type) -> Masking:
    """The real registry, plus plugin classes from ``table`` (name -> class) as if installed."""
    maskers = {n: c for n, c in table.items() if not hasattr(c, "find")}
    detectors = {n: c for n, c in table.items() if hasattr(c, "find")}
    return masking_with(maskers, detectors, hash_key=KEY)


def apply(items: list[dict[str, Any]], value: bytes | None, direction: str = "consume",
          key: bytes | None = None, headers: list[tuple[str, bytes | None]] | None = None, m: Masking | None = None):
    return (m or masking()).plan(items, direction).apply(key, value, headers or [])


# -- field rules -----------------------------------------------------------------------------------


def test_field_rules_mask_in_place_and_count() -> None:
    out = apply([{"field": "$.customer.card", "masker": "last4"}, {"field": "$.items[*].card", "masker": "redact"},
                 {"field": "$..email", "masker": "email"}], RECORD)
    doc = json.loads(out.value)
    assert doc["customer"] == {"card": "************1111", "name": "Ada", "email": "****@example.com"}
    assert doc["items"] == [{"card": "****", "qty": 1}]
    assert out.changed and out.fields == {"last4": 1, "redact": 1, "email": 1}


def test_nothing_to_mask_returns_the_very_same_bytes() -> None:
    headers = [("h", b"v")]
    key = b"k"
    for items in ([{"field": "$.absent", "masker": "redact"}], [{"field": "$..nothing", "masker": "redact"}],
                  [{"detector": "iban", "masker": "redact"}], [{"field": "$.items[5]", "masker": "redact"}]):
        out = apply(items, RECORD, key=key, headers=headers)
        assert out.value is RECORD and out.key is key and out.headers is headers
        assert not out.changed and out.fields == {}


def test_a_tombstone_or_an_empty_part_has_nothing_to_mask() -> None:
    rules = [{"field": "$.a", "masker": "redact", "in": where} for where in ("value", "key", "header:*")]
    out = apply(rules, None, direction="produce", key=None, headers=[("h", None), ("e", b"")])
    assert out.value is None and out.key is None and not out.changed
    out = apply(rules, b"", direction="produce", key=b"")
    assert out.value == b"" and not out.changed


def test_whole_value_rules() -> None:
    assert apply([{"field": "$", "masker": "redact"}], b'"secret"').value == b'"****"'
    assert apply([{"field": "$", "masker": "redact"}], b'{"a": "x", "b": [1]}').value == b'{"a":"****","b":["****"]}'
    # a dropped value becomes JSON null, never a Kafka null (a tombstone); a key likewise
    out = apply([{"field": "$", "masker": "drop"}, {"field": "$", "masker": "drop", "in": "key"}], b'{"a": 1}', key=b'"k"')
    assert out.value == b"null" and out.key == b"null"


def test_numbers_stay_exact_around_a_mask() -> None:
    raw = b'{"card": "4111111111111111", "id": 123456789012345678901234567890, "amount": 19.990000000000000001}'
    assert apply([{"field": "$.card", "masker": "last4"}], raw).value == (
        b'{"card":"************1111","id":123456789012345678901234567890,"amount":19.990000000000000001}')


@pytest.mark.parametrize("value", [b"plain text", b"\xff\xfe binary", b'{"truncated": '])
def test_field_rule_on_a_value_that_is_not_json_follows_on_error(value: bytes) -> None:
    rule = {"field": "$.card", "masker": "redact"}
    with pytest.raises(RecordRefused) as e:
        apply([rule], value, direction="produce")  # produce defaults to deny
    assert e.value.rule == 1 and "mask rule 1 (field $.card, masker redact) on the record value: not" in e.value.reason
    out = apply([rule], value, direction="consume")  # consume defaults to redact_value
    assert out.value in (MARKERS["not JSON"], MARKERS["not UTF-8"]) and out.changed
    out = apply([{**rule, "on_error": "pass"}], value, direction="produce")
    assert out.value is value and not out.changed
    out = apply([{**rule, "on_error": "redact_value"}], value, direction="produce")
    assert out.value.startswith(b"[masked: not")


def test_the_strictest_on_error_wins() -> None:
    rules = [{"field": "$.a", "masker": "redact", "on_error": "pass"},
             {"field": "$.b", "masker": "redact", "on_error": "deny"}]
    with pytest.raises(RecordRefused, match="mask rule 2"):
        apply(rules, b"text", direction="consume")


def test_refusals_and_errors_never_hold_the_value() -> None:
    secret = b"SECRET-4111111111111111"
    for value in (secret, secret + b"\xff"):
        with pytest.raises(RecordRefused) as e:
            apply([{"field": "$.a", "masker": "redact"}, {"detector": "credit_card", "masker": "redact"}], value, "produce")
        assert "SECRET" not in str(e.value) and "4111" not in str(e.value)
    with pytest.raises(RecordRefused) as e:
        apply([{"detector": "email", "masker": "blabbing"}], b'{"a": "ada@example.com"}', "produce",
              m=masking(blabbing=Blabbing))
    assert "ada" not in str(e.value) and "masker 'blabbing' failed (MaskPluginError)" in str(e.value)


class Blabbing:
    """A masker whose error message quotes the value (which Gatekeeper must not show)."""

    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object"}

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        pass

    def mask_value(self, value: Any) -> Any:
        raise MaskPluginError(f"cannot mask {value}")

    def mask_text(self, text: str) -> str:
        raise MaskPluginError(f"cannot mask {text}")


class NotJsonResult(Blabbing):
    def mask_value(self, value: Any) -> Any:
        return object()


def test_a_failing_masker_follows_on_error() -> None:
    m = masking(blabbing=Blabbing, odd=NotJsonResult)
    assert apply([{"field": "$.note", "masker": "blabbing"}], RECORD, m=m).value == MARKERS["failed"]
    out = apply([{"field": "$.note", "masker": "blabbing", "on_error": "pass"}], RECORD, m=m)
    assert json.loads(out.value) == json.loads(RECORD)
    with pytest.raises(RecordRefused, match="masker 'odd' failed \\(TypeError\\)"):
        apply([{"field": "$.note", "masker": "odd"}], RECORD, "produce", m=m)


# -- keys and headers ------------------------------------------------------------------------------


def test_key_rules() -> None:
    out = apply([{"field": "$.user", "masker": "hash", "options": {"length": 8}, "in": "key"}], b"v", key=b'{"user": "ada"}')
    assert out.key.startswith(b'{"user":"h:') and out.value == b"v"
    out = apply([{"detector": "email", "masker": "redact", "in": "key"}], b"v", key=b"ada@example.com")
    assert out.key == b"****"


def test_header_globs_mask_matching_headers_in_order() -> None:
    headers = [("trace", b"ada@example.com"), ("x-user", b"ada@example.com"), ("x-null", None),
               ("x-json", b'{"card": "4111111111111111"}'), ("X-UPPER", b"ada@example.com")]
    out = apply([{"detector": "email", "masker": "email", "in": "header:x-*"},
                 {"field": "$.card", "masker": "last4", "in": "header:x-json"}], None, headers=headers)
    assert out.headers == [("trace", b"ada@example.com"), ("x-user", b"****@example.com"), ("x-null", None),
                           ("x-json", b'{"card":"************1111"}'), ("X-UPPER", b"ada@example.com")]
    assert out.value is None and out.changed


def test_a_dropped_header_is_removed() -> None:
    headers = [("a", b"1"), ("secret", b'"x"'), ("b", b"2")]
    out = apply([{"field": "$", "masker": "drop", "in": "header:secret"}], b"v", headers=headers)
    assert out.headers == [("a", b"1"), ("b", b"2")]


def test_header_field_rule_on_text_follows_on_error() -> None:
    with pytest.raises(RecordRefused, match="on the record header 'h': not JSON"):
        apply([{"field": "$.a", "masker": "redact", "in": "header:h"}], b"v", "produce", headers=[("h", b"text")])


# -- detectors -------------------------------------------------------------------------------------


def test_detectors_scan_strings_keys_and_integers_of_json() -> None:
    raw = json.dumps({"note": f"paid with {CARD} today", "n": 4111111111111111, "f": 4111111111111111.0,
                      "ada@example.com": {"list": ["123-45-6789", "ok"]}}).encode()
    out = apply([{"detector": "credit_card", "masker": "last4"}, {"detector": "email", "masker": "email"},
                 {"detector": "us_ssn", "masker": "null"}], raw)
    doc = json.loads(out.value)
    assert doc["note"] == "paid with ************1111 today"
    assert doc["n"] == "************1111"
    assert doc["****@example.com"] == {"list": [None, "ok"]}  # a whole-string match masked as a value
    assert out.fields == {"last4": 2, "email": 1, "null": 1}


def test_detectors_on_text_values() -> None:
    out = apply([{"detector": "email", "masker": "drop"}], b"from ada@example.com, hi")
    assert out.value == b"from , hi"
    out = apply([{"detector": "credit_card", "masker": "redact"}], b"4111111111111111")  # a bare number is text
    assert out.value == b"****"
    with pytest.raises(RecordRefused, match="not UTF-8"):
        apply([{"detector": "email", "masker": "redact"}], b"\xffada@example.com", "produce")
    assert apply([{"detector": "email", "masker": "redact"}], b"\xffada@example.com", "consume").value == MARKERS["not UTF-8"]


def test_whole_string_match_can_drop_the_field() -> None:
    out = apply([{"detector": "email", "masker": "drop"}], b'{"a": "ada@example.com", "b": ["ada@example.com", 1]}')
    assert json.loads(out.value) == {"b": [1]}


def test_overlapping_matches_are_merged() -> None:
    out = apply([{"detector": "email", "masker": "redact"}, {"detector": "phone", "masker": "last4"}],
                b"reach +14155552671@example.com now")
    assert b"4155552671" not in out.value and b"example.com" not in out.value


def test_masked_keys_that_collide_are_kept_apart() -> None:
    out = apply([{"detector": "email", "masker": "redact"}], b'{"a@example.com": 1, "b@example.com": 2}')
    assert json.loads(out.value) == {"****": 1, "****#2": 2}


class PerString:
    """A detector that anchors on the string's start and end: called once per string."""

    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object"}

    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        pass

    def find(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))] if text.startswith("EMP-") and len(text) == 10 else []


def test_a_detector_without_joined_text_sees_one_string_at_a_time() -> None:
    out = apply([{"detector": "anchored", "masker": "redact"}], b'{"a": "EMP-123456", "b": "x EMP-123456"}',
                m=masking(anchored=PerString))
    assert json.loads(out.value) == {"a": "****", "b": "x EMP-123456"}


# -- compiling -------------------------------------------------------------------------------------


def test_unknown_plugins_are_named_with_what_is_installed() -> None:
    with pytest.raises(MaskingError, match=r"unknown masker 'tokenize' \(installed: drop, email, hash, .*redact"):
        masking().plan([{"field": "$.a", "masker": "tokenize"}], "produce")
    with pytest.raises(MaskingError, match=r"unknown detector 'passport' \(installed: aws_access_key_id, credit_card"):
        masking().plan([{"detector": "passport", "masker": "redact"}], "produce")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"masker": "redact"}, "exactly one of 'field' and 'detector'"),
        ({"field": "$.a", "detector": "email", "masker": "redact"}, "exactly one of"),
        ({"field": "$.a"}, "'masker' must be a non-empty string"),
        ({"field": "$.a[?@.b]", "masker": "redact"}, r"mask rule 1: field '\$.a\[\?@.b\]': filter selectors"),
        ({"field": "$.a", "masker": "redact", "in": "body"}, "'in' must be value, key or header:<glob>"),
        ({"field": "$.a", "masker": "redact", "in": "header:"}, "'in' must be"),
        ({"field": "$.a", "masker": "redact", "on_error": "ignore"}, "on_error must be one of deny, redact_value, pass"),
        ({"field": "$.a", "masker": "redact", "options": []}, "'options' must be an object"),
        ({"field": "$.a", "masker": "redact", "colour": 1}, "unknown key"),
        ({"detector": "us_ssn", "masker": "redact", "detector_options": {"bare": "yes"}},
         "detector 'us_ssn': options.bare: 'yes' is not of type 'boolean'"),
        ({"field": "$.a", "masker": "redact", "detector_options": {}}, "detector_options without a detector"),
    ],
)
def test_bad_rules_are_refused_naming_what_is_wrong(item: dict[str, Any], message: str) -> None:
    with pytest.raises(MaskingError, match=message):
        masking().plan([item], "produce")


def test_detector_options() -> None:
    out = apply([{"detector": "us_ssn", "detector_options": {"bare": True}, "masker": "redact"}], b"ssn 123456789")
    assert out.value == b"ssn ****"


class BadSchema(Blabbing):
    options_schema: ClassVar[Mapping[str, Any]] = {"type": "no-such-type"}


class Exploding(Blabbing):
    def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
        raise RuntimeError("boom")


def test_broken_plugins_are_compile_errors_naming_them() -> None:
    m = masking(bad=BadSchema, boom=Exploding, notaclass=object())  # type: ignore[arg-type]
    with pytest.raises(MaskingError, match="masker 'bad': its options_schema is not a valid JSON Schema"):
        m.plan([{"field": "$.a", "masker": "bad"}], "produce")
    with pytest.raises(MaskingError, match=r"masker 'boom' failed to start \(the plugin's bug\): RuntimeError: boom"):
        m.plan([{"field": "$.a", "masker": "boom"}], "produce")


def test_plans_are_cached_by_content_and_plugins_built_once() -> None:
    built = []

    class Counting(Blabbing):
        def __init__(self, options: Mapping[str, Any], context: MaskingContext) -> None:
            built.append(options)

        def mask_value(self, value: Any) -> Any:
            return DROP

    m = masking(counting=Counting)
    a = m.plan([{"field": "$.a", "masker": "counting", "options": {"x": 1, "y": 2}}], "produce")
    b = m.plan([{"options": {"y": 2, "x": 1}, "masker": "counting", "field": "$.a"}], "produce")
    assert a is b
    m.plan([{"field": "$.b", "masker": "counting", "options": {"x": 1, "y": 2}}], "produce")
    assert built == [{"x": 1, "y": 2}]  # one instance per distinct options
    assert m.plan([{"field": "$.a", "masker": "counting", "options": {"x": 1, "y": 2}}], "consume") is not a
    with pytest.raises(MaskingError):
        m.plan([{"field": "$.a", "masker": "nope"}], "produce")
    with pytest.raises(MaskingError):  # the error is cached too, and raised again
        m.plan([{"field": "$.a", "masker": "nope"}], "produce")


def test_plan_cache_is_bounded() -> None:
    m = Masking(MaskingConfig(plan_cache_entries=2))
    first = m.plan([{"field": "$.a", "masker": "redact"}], "produce")
    for f in ("$.b", "$.c"):
        m.plan([{"field": f, "masker": "redact"}], "produce")
    assert m.plan([{"field": "$.a", "masker": "redact"}], "produce") is not first


# -- property: nothing planted survives a detector plan --------------------------------------------

_FILLER = st.text(alphabet="abcdefghij XYZ,;:!", max_size=12)


def _luhn_complete(prefix: str) -> str:
    from gatekeeper.masking.checks import luhn_valid

    return next(prefix + d for d in "0123456789" if luhn_valid(prefix + d))


_CARDS = st.builds(lambda p: _luhn_complete("4" + p), st.text(alphabet="0123456789", min_size=14, max_size=14))
_SSNS = st.builds(lambda a, g, s: f"{a:03d}-{g:02d}-{s:04d}", st.integers(1, 665), st.integers(1, 99), st.integers(1, 9999))
_EMAILS = st.builds(lambda u, d: f"{u}@{d}.com", st.from_regex(r"[a-z][a-z0-9._]{0,8}[a-z0-9]", fullmatch=True),
                    st.from_regex(r"[a-z]{2,10}", fullmatch=True))


def _formatted_card(card: str, style: int) -> str:
    if style == 1:
        return " ".join(card[i:i + 4] for i in range(0, 16, 4))
    if style == 2:
        return "-".join(card[i:i + 4] for i in range(0, 16, 4))
    return card


@st.composite
def planted_documents(draw: st.DrawFn) -> tuple[Any, list[str]]:
    planted: list[str] = []

    def secret() -> str:
        kind = draw(st.sampled_from(["card", "ssn", "email"]))
        value = {"card": _CARDS, "ssn": _SSNS, "email": _EMAILS}[kind]
        text = draw(value)
        if kind == "card":
            text = _formatted_card(text, draw(st.integers(0, 2)))
        planted.append(text)
        return text

    def leaf() -> Any:
        choice = draw(st.integers(0, 5))
        if choice == 0:
            return secret()
        if choice == 1:
            return f"{draw(_FILLER)} {secret()} {draw(_FILLER)}"
        if choice == 2 and draw(st.booleans()):
            card = draw(_CARDS)
            planted.append(card)
            return int(card)
        return draw(st.one_of(_FILLER, st.integers(-1000, 1000), st.booleans(), st.none()))

    def node(depth: int) -> Any:
        if depth > 2 or draw(st.integers(0, 2)) == 0:
            return leaf()
        if draw(st.booleans()):
            return [node(depth + 1) for _ in range(draw(st.integers(0, 4)))]
        out = {}
        for _ in range(draw(st.integers(0, 4))):
            k = secret() if draw(st.integers(0, 5)) == 0 else draw(_FILLER)
            if k in out:
                k = f"{k} #{len(out)}"  # a repeated key would overwrite what was planted
            out[k] = node(depth + 1)
        return out

    return {"root": node(0)}, planted


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planted_documents(), st.sampled_from(["redact", "hash", "last4", "null", "drop", "email"]))
def test_no_planted_value_survives_a_detector_plan(doc_and_planted: tuple[Any, list[str]], masker: str) -> None:
    doc, planted = doc_and_planted
    raw = json.dumps(doc).encode()
    rules = [{"detector": d, "masker": masker} for d in ("credit_card", "us_ssn", "email")]
    out = masking().plan(rules, "consume").apply(None, raw, [])
    text = out.value.decode()
    for value in planted:
        assert value not in text
        assert json.dumps(value)[1:-1] not in text
    json.loads(out.value)  # still JSON
    if planted:
        assert out.changed
    elif out.changed:  # a key-like ``":`` inside a string: written back, the same document
        assert json.loads(out.value) == doc
    else:
        assert out.value is raw


@pytest.mark.parametrize("rules", [[{"detector": "credit_card", "masker": "redact"}],
                                   [{"field": "$.c.card", "masker": "redact"}]])
def test_a_repeated_key_never_hides_a_value_from_the_rules(rules: list[dict[str, Any]]) -> None:
    """The parser keeps a repeated key's last value, and the rules see that one; a consumer
    whose parser keeps the first would read the other. The document is written back as it was
    read, so whatever the consumer's parser, it reads what the rules checked."""
    raw = b'{"c": {"card": "4111 1111 1111 1111"}, "c": {"card": null}, "n": 1}'
    out = masking().plan(rules, "consume").apply(None, raw, [])
    assert b"4111" not in out.value
    assert json.loads(out.value)["n"] == 1
    raw = b'{"c": {"x": "4111 1111 1111 1111"}, "c": {}}'
    out = masking().plan(rules, "consume").apply(None, raw, [])
    assert out.value == b'{"c":{}}'


@pytest.mark.parametrize("depth", [200, 990, 5000])
def test_deeply_nested_documents_are_masked_or_follow_on_error(depth: int) -> None:
    raw = b'{"a":' * depth + b'{"ssn": "123-45-6789", "card": "4111111111111111"}' + b"}" * depth
    for rules in ([{"field": "$..card", "masker": "redact"}], [{"detector": "us_ssn", "masker": "redact"},
                                                             {"detector": "credit_card", "masker": "redact"}]):
        for direction in ("consume", "produce"):
            try:
                out = apply(rules, raw, direction)
            except RecordRefused as e:
                assert direction == "produce" and "4111" not in e.reason
                continue
            assert out.changed and b"4111111111111111" not in out.value
