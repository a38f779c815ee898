"""JSONPath evaluation cost for mask rules: this project's evaluator against maintained libraries.

    ~/.cache/gatekeeper/venv/bin/python bench/masking_paths.py

Per record: find the slots of three field rules in a parsed 1 KiB JSON document and replace
each value in place (what a mask does), for a mixed set (a wildcard and a recursive descent)
and a plain one. Each path is compiled once before timing, as the rules
engine compiles a policy revision's rules once. Libraries that are not installed are skipped
(``pip install python-jsonpath jsonpath-rfc9535 jsonpath-ng`` to compare). Also the whole
``Plan.apply`` of those rules on the record's bytes. A benchmark, not a test.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gatekeeper.config.values import MaskingConfig  # noqa: E402
from gatekeeper.masking import Masking  # noqa: E402
from gatekeeper.masking.paths import compile_path  # noqa: E402

PATHS = ["$.customer.card", "$.items[*].sku", "$..ssn"]


def document() -> dict[str, Any]:
    doc: dict[str, Any] = {
        "order_id": "ord-2026-11-22-000123",
        "created_at": "2026-11-22T10:00:03Z",
        "customer": {
            "id": 918273, "name": "Ada Lovelace", "email": "ada@example.com",
            "card": "4111111111111111", "ssn": "123-45-6789",
            "address": {"street": "12 Analytical Engine Row", "city": "London", "zip": "N1 9GU"},
        },
        "items": [
            {"sku": f"SKU-{i:05d}", "qty": i + 1, "price": 9.99 + i, "title": "Difference engine gear"}
            for i in range(6)
        ],
        "notes": "leave at the door; ring twice",
        "total": 123.45, "currency": "GBP", "paid": True, "coupon": None,
    }
    while len(orjson.dumps(doc)) < 1024:
        doc.setdefault("tags", []).append(f"tag-{len(doc.get('tags', []))}")
    return doc


def timeit(fn: Callable[[], Any], seconds: float = 1.0) -> float:
    """Microseconds per call: the best of five rounds (the machine is shared; noise only adds)."""
    best = float("inf")
    for _ in range(5):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            for _ in range(50):
                fn()
            n += 50
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def masked(value: Any) -> Any:
    return "****"


def ours() -> Callable[[dict[str, Any]], None]:
    compiled = [compile_path(p) for p in PATHS]

    def run(doc: dict[str, Any]) -> None:
        for path in compiled:
            for parent, key in path.slots(doc):
                parent[key] = masked(parent[key])

    return run


def python_jsonpath() -> Callable[[dict[str, Any]], None]:
    import jsonpath

    compiled = [jsonpath.compile(p) for p in PATHS]

    def run(doc: dict[str, Any]) -> None:
        for path in compiled:
            for match in list(path.finditer(doc)):
                parent = match.parent.obj if match.parent is not None else None
                parent[match.parts[-1]] = masked(match.obj)  # type: ignore[index]

    return run


def jsonpath_rfc9535() -> Callable[[dict[str, Any]], None]:
    import jsonpath_rfc9535

    compiled = [jsonpath_rfc9535.compile(p) for p in PATHS]

    def run(doc: dict[str, Any]) -> None:
        for path in compiled:
            for node in path.find(doc):
                container: Any = doc
                for part in node.location[:-1]:
                    container = container[part]
                container[node.location[-1]] = masked(node.value)

    return run


def jsonpath_ng() -> Callable[[dict[str, Any]], None]:
    import jsonpath_ng

    compiled = [jsonpath_ng.parse(p) for p in PATHS]

    def run(doc: dict[str, Any]) -> None:
        for path in compiled:
            for datum in path.find(doc):
                datum.full_path.update(doc, masked(datum.value))

    return run


SETS = {
    "mixed": ["$.customer.card", "$.items[*].sku", "$..ssn"],
    "plain": ["$.customer.card", "$.customer.email", "$.items[0].sku"],
}
LIBRARIES = [("this module", ours), ("python-jsonpath", python_jsonpath),
             ("jsonpath-rfc9535", jsonpath_rfc9535), ("jsonpath-ng", jsonpath_ng)]


def main() -> None:
    global PATHS
    base = document()
    raw = orjson.dumps(base)
    print(f"document: {len(raw)} bytes; µs per record (find + in-place update), best of 5")
    for label, paths in SETS.items():
        PATHS = paths
        print(f"{label}: {', '.join(paths)}")
        for name, make in LIBRARIES:
            try:
                run = make()
            except ImportError:
                print(f"  {name:20} not installed")
                continue
            check = copy.deepcopy(base)
            run(check)
            assert check["customer"]["card"] == "****", name
            doc = copy.deepcopy(base)
            print(f"  {name:20} {timeit(lambda run=run, doc=doc: run(doc)):8.1f}")
    print(f"{'orjson.loads':22} {timeit(lambda: orjson.loads(raw)):8.1f}")
    print(f"{'orjson.dumps':22} {timeit(lambda: orjson.dumps(base)):8.1f}")
    masking = Masking(MaskingConfig())
    headers = [("trace", b"abc")]
    for label, paths in SETS.items():
        rules = [{"field": p, "masker": m} for p, m in zip(paths, ["last4", "redact", "null"], strict=True)]
        plan = masking.plan(rules, direction="consume")
        print(f"{'Plan.apply ' + label:22} {timeit(lambda plan=plan: plan.apply(b'key', raw, headers)):8.1f}  (3 field rules)")
    untouched = orjson.dumps({**base, "customer": {"id": 1}, "items": []})
    plan = masking.plan([{"field": p, "masker": "redact"} for p in SETS["plain"]], direction="consume")
    print(f"{'Plan.apply absent':22} {timeit(lambda: plan.apply(b'key', untouched, headers)):8.1f}  (paths absent: same bytes back)")
    detect = masking.plan([{"detector": d, "masker": "redact"} for d in ("credit_card", "email", "us_ssn")], direction="consume")
    print(f"{'Plan.apply detectors':22} {timeit(lambda: detect.apply(b'key', raw, headers)):8.1f}  (credit_card, email, us_ssn)")


if __name__ == "__main__":
    main()
