"""Which volatile input fields a policy revision may read (what the decision cache must key on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.policy.cache import VOLATILE_FIELDS
from gatekeeper.policy.loading import read_modules
from gatekeeper.policy.reads import scan

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"request.bytes", "request.record_count"}


def fields(body: str) -> set[str]:
    return set(scan({"p.rego": f"package p\n\n{body}\n"}).fields)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("big if input.request.bytes > 1000000", {"request.bytes"}),
        ("many if input.request.record_count > 10", {"request.record_count"}),
        ('big if input["request"]["bytes"] > 1', {"request.bytes"}),
        ('big if input.request[ "bytes" ] > 1', {"request.bytes"}),
        ("late if time.parse_rfc3339_ns(input.time) > 0", {"time"}),
        ("mine if input.session.id == \"x\"", {"session"}),
        ('ci if startswith(input.client.id, "ci-")', {"client"}),
        # Other fields of the input and the request are in the key anyway.
        ('ok if { input.operation == "produce"; input.request.acks == -1; input.request.configs.x }', set()),
        ("ok if input.requests.bytes", set()),
        # What the scan cannot follow reads everything below it.
        ("r := input.request", SIZES),
        ("x := object.get(input.request, \"bytes\", 0)", SIZES),
        ("x if { some k; input.request[k] > 1 }", SIZES),
        ("x := input", set(VOLATILE_FIELDS)),
        ("x if { some k; input[k] }", set(VOLATILE_FIELDS)),
        ("x := json.marshal(input)", set(VOLATILE_FIELDS)),
        ("x := data.p.y with input as {}", set(VOLATILE_FIELDS)),
        ("x := input.request.bytes_total", set()),
        # A bracket on the next line is another expression, not part of the reference.
        ('x := input\n["operation"]', set(VOLATILE_FIELDS)),
        ('x := input.request\n["acks"]', SIZES),
        # Fields named input of other things are not the input.
        ("x := data.config.input.time", set()),
        ("x := y.input", set()),
        # Clock builtins read the time.
        ("x := time.now_ns()", {"time"}),
        ('x := io.jwt.decode_verify("t", {"secret": "s"})', {"time"}),
        ("x := time.parse_rfc3339_ns(\"2026-01-01T00:00:00Z\")", set()),
    ],
)
def test_references(body: str, expected: set[str]) -> None:
    assert fields(body) == expected


def test_imports_of_the_input_count_as_reads_of_what_they_import() -> None:
    assert fields("import input.request as r\n\nbig if r.bytes > 1") == SIZES
    assert fields("import input.time\n\nx := time") == {"time"}
    assert fields("import input\n\nx := 1") == set(VOLATILE_FIELDS)


def test_comments_and_strings_are_not_code() -> None:
    body = '''# input.request.bytes is what the old rule used
x := "input.time"
y := `input.session and input["time"]`
z := "a \\" input.request.record_count"  # input
'''
    assert fields(body) == set()


def test_template_strings_interpolate_code() -> None:
    assert fields('x := $"{input.resource.name} at {input.time}"') == {"time"}
    assert fields('x := $"no \\{input.time} here"') == set()
    assert fields('x := $"{ {"k": input.request.bytes}.k }"') == {"request.bytes"}
    assert fields("x := $`{input.session.id}`") == {"session"}
    assert fields('x := $"{concat(",", [input.operation])} and input.time"') == set()


def test_reads_name_the_file_and_line() -> None:
    reads = scan({"a.rego": "package a\n\n# input.time\nx := 1\n\ny := input.request\n"})
    assert [(r.field, r.where, r.what) for r in reads.reads] == [
        ("request.bytes", "a.rego:6", "input.request"),
        ("request.record_count", "a.rego:6", "input.request"),
    ]
    assert str(reads.first("request.bytes")) == "input.request at a.rego:6"


DECLARED = """\
# METADATA
# title: closing time
# custom:
#   gatekeeper:
#     ttl_covers_time: true
package a

open if time.parse_rfc3339_ns(input.time) < 0

big if input.request.bytes > 1
"""


def test_a_package_declaration_covers_that_modules_time_reads_only() -> None:
    reads = scan({"a.rego": DECLARED})
    assert reads.fields == {"request.bytes"}  # sizes cannot be covered by a ttl
    assert [str(r) for r in reads.covered] == ["input.time at a.rego:8"]
    other = "package b\n\nx := time.now_ns()\n"
    assert scan({"a.rego": DECLARED, "b.rego": other}).fields == {"request.bytes", "time"}


@pytest.mark.parametrize(
    "source",
    [
        DECLARED.replace("true", "false"),
        DECLARED.replace("ttl_covers_time", "ttl_covers_times"),
        DECLARED.replace("# METADATA", "# metadata"),
        DECLARED.replace("package a\n", "\npackage a\n"),  # not the package's METADATA
        DECLARED.replace("package a\n\nopen", "package a\n\n# METADATA\n# custom: {gatekeeper: {ttl_covers_time: true}}\nopen")
        .replace("#     ttl_covers_time: true\n", ""),  # a rule's METADATA
        DECLARED.replace("#   gatekeeper:", "#   gatekeeper: [").replace("true", "true]"),  # not YAML
    ],
)
def test_other_declarations_do_not_cover(source: str) -> None:
    assert "time" in scan({"a.rego": source}).fields


def test_the_shipped_policies_read_only_the_time_and_declare_their_ttls_cover_it() -> None:
    reads = scan(read_modules(ROOT / "policies"))
    assert reads.fields == frozenset()
    assert {(r.field, r.where.split(":")[0]) for r in reads.covered} == {
        ("time", "gatekeeper/decision.rego"),
        ("time", "examples/jit_approvals/jit_approvals.rego"),
    }
