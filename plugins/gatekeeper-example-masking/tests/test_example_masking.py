"""The example plugins, alone and through Gatekeeper's rules engine (gatekeeper.testing)."""

from __future__ import annotations

import json

import pytest
from gatekeeper_example_masking import EmployeeId, Initials

from gatekeeper.api import MaskingContext
from gatekeeper.masking import MaskingError
from gatekeeper.testing.masking import masking_with

CONTEXT = MaskingContext(name="test")


def test_initials() -> None:
    assert Initials({}, CONTEXT).mask_value("Ada Lovelace") == "A. L."
    assert Initials({}, CONTEXT).mask_value("  grace   brewster hopper ") == "G. B. H."
    assert Initials({"dots": False}, CONTEXT).mask_value("Ada Lovelace") == "AL"
    assert Initials({}, CONTEXT).mask_value(42) == "?"
    assert Initials({}, CONTEXT).mask_value(None) is None


def test_employee_id() -> None:
    text = "EMP-004217 and EMP-123456, not XEMP-123456 nor EMP-1234567 nor EMP-12345"
    assert [text[s:e] for s, e in EmployeeId({}, CONTEXT).find(text)] == ["EMP-004217", "EMP-123456"]


def test_through_the_rules_engine() -> None:
    masking = masking_with(maskers={"initials": Initials}, detectors={"employee_id": EmployeeId})
    plan = masking.plan([{"field": "$.employee.name", "masker": "initials"},
                         {"detector": "employee_id", "masker": "redact"}], "produce")
    value = json.dumps({"employee": {"name": "Ada Lovelace", "id": "EMP-004217"}, "note": "ask EMP-123456"}).encode()
    out = plan.apply(None, value, [])
    assert json.loads(out.value) == {"employee": {"name": "A. L.", "id": "****"}, "note": "ask ****"}
    assert out.fields == {"initials": 1, "redact": 2}


def test_options_are_checked_against_the_schema() -> None:
    masking = masking_with(maskers={"initials": Initials})
    with pytest.raises(MaskingError, match="masker 'initials': options.dots: 'yes' is not of type 'boolean'"):
        masking.plan([{"field": "$.name", "masker": "initials", "options": {"dots": "yes"}}], "produce")
