"""The cost of one metric increment on the data path (each request increments several).

    python -m bench.metrics_micro

Prints nanoseconds per call (best of 7 runs) for Gatekeeper's ``Metrics.inc`` (cached
prometheus-client children) and the data path's bound counters (``Metrics.counters``: plain
``Tally`` cells), beside prometheus-client's own ``Counter.labels(...).inc()`` and a bare
child's ``inc()``. Run it on a quiet machine: the figures are per-call CPU.
"""

from __future__ import annotations

import timeit

from prometheus_client import CollectorRegistry, Counter

from gatekeeper.metrics import gateway_metrics

_N = 200_000


def _best(fn: object) -> float:
    return min(timeit.repeat(fn, number=_N, repeat=7)) / _N * 1e9  # type: ignore[arg-type]


def main() -> None:
    m = gateway_metrics()
    registry = CollectorRegistry()
    raw = Counter("raw_requests_total", "", ["api"], registry=registry)
    raw2 = Counter("raw_decisions_total", "", ["action", "operation"], registry=registry)
    child = raw.labels(api="Produce")
    bound = m.counters("gatekeeper_decision_cache_total", "result")
    rows = [
        ("Metrics.inc, 1 label", lambda: m.inc("gatekeeper_requests_total", api="Produce")),
        ("Metrics.inc, 2 labels", lambda: m.inc("gatekeeper_decisions_total", action="allow", operation="produce")),
        ("Metrics.inc by an amount, 1 label", lambda: m.inc("gatekeeper_bytes_total", 512, direction="from_client")),
        ("Metrics.inc, no label", lambda: m.inc("gatekeeper_upstream_connections_total")),
        ("Counter.labels(api=...).inc()", lambda: raw.labels(api="Produce").inc()),
        ("Counter.labels(a, b).inc()", lambda: raw2.labels("allow", "produce").inc()),
        ("child.inc() (cached child)", lambda: child.inc()),
        ("Metrics.counters(...)[value].inc() (a Tally)", lambda: bound["hit"].inc()),
        ("an empty lambda (the call overhead)", lambda: None),
    ]
    for name, fn in rows:
        print(f"  {name:<46} {_best(fn):7.0f} ns")


if __name__ == "__main__":
    main()
