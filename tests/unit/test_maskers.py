from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from gatekeeper.api import DROP, MaskingContext, MaskPluginError
from gatekeeper.config.values import MaskingConfig
from gatekeeper.masking import Masking, MaskingError
from gatekeeper.masking.jsondoc import ExactFloat
from gatekeeper.masking.maskers import Drop, Email, Hash, Keep, Last4, Null, Redact

KEY = b"0123456789abcdef0123456789abcdef"
CONTEXT = MaskingContext(name="test", hash_key=KEY)


def test_redact() -> None:
    m = Redact({}, CONTEXT)
    assert m.mask_value("secret") == "****"
    assert m.mask_value(42) == "****"
    assert m.mask_value(True) == "****"
    assert m.mask_value(None) is None  # a null hides nothing
    assert m.mask_text("secret") == "****"
    assert Redact({"replacement": "[x]"}, CONTEXT).mask_value("secret") == "[x]"


def test_hash_is_keyed_deterministic_and_truncatable() -> None:
    m = Hash({}, CONTEXT)
    expected = "h:" + hmac.new(KEY, b"ada@example.com", hashlib.sha256).hexdigest()
    assert m.mask_value("ada@example.com") == expected == m.mask_text("ada@example.com")
    assert m.mask_value("ada@example.com") == Hash({}, CONTEXT).mask_value("ada@example.com")
    other = Hash({}, MaskingContext(name="hash", hash_key=b"another key, 16 bytes or more"))
    assert other.mask_value("ada@example.com") != expected
    assert Hash({"length": 12}, CONTEXT).mask_value("ada@example.com") == expected[:14]
    assert m.mask_value(42) == m.mask_value("42")  # a number is hashed as its JSON text
    assert m.mask_value(True) == m.mask_value("true")
    assert m.mask_value(ExactFloat("1.10")) == m.mask_value("1.10")
    assert m.mask_value(None) is None


def test_hash_without_a_key_refuses_to_start() -> None:
    with pytest.raises(MaskPluginError, match="needs masking.hash_key_file or masking.hash_key_env"):
        Hash({}, MaskingContext(name="hash"))


def test_keep_and_last4() -> None:
    assert Keep({"first": 2, "last": 3}, CONTEXT).mask_value("abcdefghij") == "ab*****hij"
    assert Keep({"last": 4, "char": "#"}, CONTEXT).mask_text("4111111111111111") == "############1111"
    assert Keep({}, CONTEXT).mask_value("abc") == "***"
    assert Last4({}, CONTEXT).mask_value("4111111111111111") == "************1111"
    assert Last4({}, CONTEXT).mask_value(4111111111111111) == "************1111"
    assert Last4({"char": "x"}, CONTEXT).mask_value("12345") == "x2345"


def test_keep_never_reveals_a_whole_short_value() -> None:
    assert Last4({}, CONTEXT).mask_value("1234") == "****"
    assert Last4({}, CONTEXT).mask_value("12") == "**"
    assert Keep({"first": 3, "last": 3}, CONTEXT).mask_value("abcdef") == "******"
    assert Last4({}, CONTEXT).mask_value(True) == "****"


def test_email() -> None:
    m = Email({}, CONTEXT)
    assert m.mask_value("ada@example.com") == "****@example.com"
    assert m.mask_text("a.b+c@sub.example.org") == "****@sub.example.org"
    assert m.mask_value("not an address") == "****"
    assert m.mask_value("trailing@") == "****"
    assert m.mask_value(7) == "****"
    assert Email({"replacement": "x"}, CONTEXT).mask_value("ada@example.com") == "x@example.com"


def test_null_and_drop() -> None:
    assert Null({}, CONTEXT).mask_value("x") is None
    assert Null({}, CONTEXT).mask_value({"a": 1}) is None
    assert Null({}, CONTEXT).mask_text("x") == ""
    assert Drop({}, CONTEXT).mask_value("x") is DROP
    assert Drop({}, CONTEXT).mask_text("x") == ""
    assert Null.masks_containers and Drop.masks_containers and not Redact.masks_containers


# -- through the rules engine ---------------------------------------------------------------------

DOC = {"s": "4111111111111111", "n": 4111111111111111, "f": 12.5, "b": True, "z": None,
       "o": {"x": "ada@example.com", "y": 3}, "l": ["a", 1, False]}


def masking() -> Masking:
    return Masking(MaskingConfig(hash_key=KEY))


@pytest.mark.parametrize("masker", ["redact", "hash", "keep", "last4", "email", "null", "drop"])
def test_every_masker_on_every_json_type_keeps_valid_json(masker: str) -> None:
    plan = masking().plan([{"field": "$.*", "masker": masker}], "produce")
    out = plan.apply(None, json.dumps(DOC).encode(), [])
    assert out.changed
    doc = json.loads(out.value)  # valid JSON
    assert isinstance(doc, dict)
    text = json.dumps(doc)
    assert "4111111111111111" not in text and "ada@example.com" not in text
    if masker == "drop":
        assert doc == {}
    if masker == "null":
        assert set(doc.values()) == {None}


def test_objects_are_masked_leaf_by_leaf_unless_the_masker_takes_them_whole() -> None:
    raw = json.dumps(DOC).encode()
    redacted = json.loads(masking().plan([{"field": "$.o", "masker": "redact"}], "produce").apply(None, raw, []).value)
    assert redacted["o"] == {"x": "****", "y": "****"}
    nulled = json.loads(masking().plan([{"field": "$.o", "masker": "null"}], "produce").apply(None, raw, []).value)
    assert nulled["o"] is None
    dropped = json.loads(masking().plan([{"field": "$.l", "masker": "drop"}], "produce").apply(None, raw, []).value)
    assert "l" not in dropped


def test_options_are_validated_and_errors_name_the_plugin() -> None:
    with pytest.raises(MaskingError, match=r"masker 'keep': options.first: -1 is less than the minimum of 0"):
        masking().plan([{"field": "$.a", "masker": "keep", "options": {"first": -1}}], "produce")
    with pytest.raises(MaskingError, match=r"masker 'redact': options: Additional properties .*'colour'"):
        masking().plan([{"field": "$.a", "masker": "redact", "options": {"colour": "red"}}], "produce")
    with pytest.raises(MaskingError, match=r"masker 'hash': options.length: 4 is less than the minimum of 8"):
        masking().plan([{"field": "$.a", "masker": "hash", "options": {"length": 4}}], "produce")


def test_hash_with_no_key_configured_is_a_compile_error() -> None:
    with pytest.raises(MaskingError, match=r"^masker 'hash': needs masking.hash_key_file or masking.hash_key_env$"):
        Masking(MaskingConfig()).plan([{"detector": "email", "masker": "hash"}], "consume")
