from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.masking.jsondoc import ExactFloat, NotJson, dump, parse, risky
from gatekeeper.masking.paths import PathError, compile_path

DOC: dict[str, Any] = {
    "card": "c0",
    "customer": {"card": "c1", "ssn": "s1", "odd key": "o1"},
    "items": [{"card": "c2", "ssn": "s2"}, {"card": "c3"}, "scalar", {"nested": {"ssn": "s3"}}],
    "ssn": {"ssn": "inner"},
    "odd key": "o0",
    "quote'key": "q0",
}


def values(path: str, doc: Any = DOC) -> list[Any]:
    return [doc if parent is None else parent[key] for parent, key in compile_path(path).slots(doc)]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.card", ["c0"]),
        ("$.customer.card", ["c1"]),
        ("$.items[*].card", ["c2", "c3"]),
        ("$.items[0].card", ["c2"]),
        ("$.items[-3].card", ["c3"]),
        ("$.items[9].card", []),
        ("$['odd key']", ["o0"]),
        ('$["customer"]["odd key"]', ["o1"]),
        ("$['quote\\'key']", ["q0"]),
        ("$.customer['card','ssn']", ["c1", "s1"]),
        ("$.items[0, 1].card", ["c2", "c3"]),
        ("$.customer.*", ["c1", "s1", "o1"]),
        ("$.absent.card", []),
        ("$.card.deeper", []),
        ("$.items.card", []),  # a name on an array selects nothing
        ("$.customer[0]", []),  # an index on an object selects nothing
    ],
)
def test_path_forms(path: str, expected: list[Any]) -> None:
    assert values(path) == expected


def test_recursive_descent_finds_every_depth_but_not_inside_what_it_selected() -> None:
    found = values("$..ssn")
    assert sorted(map(str, found)) == sorted(["s1", "s2", "s3", str({"ssn": "inner"})])
    assert "inner" not in found  # masked with its container, not twice
    assert sorted(values("$..card")) == ["c0", "c1", "c2", "c3"]
    assert values("$..nested.ssn") == ["s3"]
    assert sorted(values("$..['odd key']")) == ["o0", "o1"]


def test_root_is_the_whole_document() -> None:
    assert compile_path("$").is_root
    assert compile_path("$").slots(DOC) == [(None, None)]


def test_slots_allow_in_place_update() -> None:
    doc = {"items": [{"card": "1"}, {"card": "2"}]}
    for parent, key in compile_path("$.items[*].card").slots(doc):
        parent[key] = "****"
    assert doc == {"items": [{"card": "****"}, {"card": "****"}]}


def test_unions_select_a_slot_once() -> None:
    assert values("$.customer['card','card']") == ["c1"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("card", "starts with '\\$'"),
        ("$.", "expected a member name"),
        ("$.items[?@.card]", "filter selectors"),
        ("$.items[0:2]", "slices"),
        ("$['unclosed", "unclosed string"),
        ("$.items[0", "expected ',' or ']'"),
        ("$.a b", "unexpected ' '"),
        ("$.1abc", "expected a member name"),
        ("$[01]", "expected ',' or ']'"),
    ],
)
def test_bad_paths_are_refused_when_compiled(path: str, message: str) -> None:
    with pytest.raises(PathError, match=message):
        compile_path(path)


def test_final_names_for_the_parse_free_precheck() -> None:
    assert compile_path("$.customer.card").final_names == ("card",)
    assert compile_path("$..['a','b']").final_names == ("a", "b")
    assert compile_path("$.items[*]").final_names is None
    assert compile_path("$").final_names is None


# -- jsondoc ---------------------------------------------------------------------------------------


def test_numbers_are_kept_exactly() -> None:
    raw = b'{"big": 123456789012345678901234567890, "f": 0.1000000000000000055511151231257827, "e": 1e400, "x": "y"}'
    assert risky(raw)
    doc, exact = parse(raw)
    assert exact and doc["big"] == 123456789012345678901234567890
    assert isinstance(doc["f"], ExactFloat)
    doc["x"] = "****"
    assert dump(doc) == b'{"big":123456789012345678901234567890,"f":0.1000000000000000055511151231257827,"e":1e400,"x":"****"}'


def test_ordinary_documents_take_orjson() -> None:
    raw = b'{"a": 1.5, "b": [1, 2, 3], "c": "\xc3\xa9"}'
    assert not risky(raw)
    doc, _ = parse(raw)
    assert dump(doc) == b'{"a":1.5,"b":[1,2,3],"c":"\xc3\xa9"}'


@pytest.mark.parametrize(("raw", "kind"), [(b"\xff{}", "not UTF-8"), (b"{", "not JSON"), (b"NaN", "not JSON"),
                                           (b"plain text", "not JSON"), (b"", "not JSON")])
def test_not_json(raw: bytes, kind: str) -> None:
    with pytest.raises(NotJson) as e:
        parse(raw)
    assert e.value.kind == kind
    assert str(e.value) == kind  # never the bytes


def test_lone_surrogates_survive_a_round_trip() -> None:
    doc, _ = parse(b'{"a": "\\ud800", "b": "x"}')
    doc["b"] = "y"
    assert parse(dump(doc))[0] == {"a": "\ud800", "b": "y"}
