"""Gatekeeper's metrics, kept and exposed by prometheus-client.

Each gateway has its own :class:`Metrics` with its own ``CollectorRegistry`` (never the global
one), so several gateways in one process (the in-process tests) do not share counters.

The data path increments several counters per request, so the labelled children are cached per
(metric, labels) on first use: ``Counter.labels(...)`` costs about as much again as the increment
itself (``bench/metrics_micro.py`` measures both). Counters' ``_created`` series are turned off:
they double the number of series and Gatekeeper's counters all start with the process.

The counters the data path binds with :meth:`Metrics.counters` (requests, bytes, decisions and
decision-cache lookups: four or five increments per request) are kept in plain :class:`Tally`
cells instead of prometheus-client's values, whose increment takes a lock and two checks (about
300 ns a call against 76 here). A :class:`TallyFamily` is a collector in the same registry: it
reads the cells when the registry is scraped, so the exposition is prometheus-client's own, the
same series as a ``Counter``'s. Such a counter is counted on one thread (the reactor's, where
every connection runs); everything else keeps prometheus-client's values and may be counted from
any thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric

__all__ = ["CONTENT_TYPE", "Children", "Metrics", "Tally", "TallyFamily", "gateway_metrics"]

# generate_latest writes the classic text format; say so (newer clients' default names 1.0.0).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

prometheus_client.disable_created_metrics()

_KINDS = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}
_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Tally:
    """One series of a :class:`TallyFamily`: a counter's value, counted on one thread."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class TallyFamily:
    """A counter whose series are :class:`Tally` cells, exposed by prometheus-client as a
    ``Counter``'s would be (a collector in the registry, read at each scrape)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(sorted(labelnames))
        self._series: dict[tuple[str, ...], Tally] = {}
        registry.register(self)

    def labels(self, **labels: str) -> Tally:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"metric {self.name}: labels {sorted(labels)}, not {list(self.labelnames)}")
        values = tuple(str(labels[n]) for n in self.labelnames)
        tally = self._series.get(values)
        if tally is None:
            tally = self._series[values] = Tally()
        return tally

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, tally in list(self._series.items()):
            family.add_metric(values, tally.value)
        yield family


class Metrics:
    """Counters, gauges and histograms with labels, by name.

    A metric is created when it is first used, with the label names of that first use (a later
    use with other label names is a bug, and raises); its kind and help text come from
    :meth:`describe`, else from the first use (``inc``: counter, ``set``: gauge, ``observe``:
    histogram). Safe from any thread (prometheus-client's values hold a lock), except the counters
    first bound with :meth:`counters`: those are counted on one thread (module doc)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._described: dict[str, tuple[str, str, Sequence[float] | None]] = {}
        self._families: dict[str, Any] = {}
        self._children: dict[Any, Any] = {}  # (name, *label items) or name -> child
        self._counter_totals: dict[Any, float] = {}  # counters given by set(): the last total

    def describe(self, name: str, kind: str, text: str, buckets: Sequence[float] | None = None) -> None:
        if kind not in _KINDS:
            raise ValueError(f"metric {name}: kind {kind!r} is not one of {sorted(_KINDS)}")
        self._described[name] = (kind, text, buckets)

    def _child(self, key: Any, name: str, kind: str, labels: dict[str, str], buckets: Sequence[float] | None = None,
               tally: bool = False) -> Any:
        family = self._families.get(name)
        if family is None:
            kind, text, described_buckets = self._described.get(name, (kind, "", buckets))
            if tally and kind == "counter":
                family = TallyFamily(name, text, list(labels), self.registry)
            else:
                options: dict[str, Any] = {}
                if kind == "histogram":
                    options["buckets"] = tuple(described_buckets or buckets or _DEFAULT_BUCKETS)
                family = _KINDS[kind](name, text, sorted(labels), registry=self.registry, **options)
            self._families[name] = family
        child = family.labels(**labels) if labels else family
        self._children[key] = child
        return child

    def counters(self, name: str, *labels: str) -> Children:
        """The counter ``name``'s children by the values of ``labels``, bound on first use: for
        a call site that counts per request, ``counters(...)[value].inc(n)`` (a tuple of values
        for several labels) costs a dict lookup where ``inc`` builds its labels each time. A
        counter not used before is kept in :class:`Tally` cells: count it on one thread only."""
        if not labels:
            raise ValueError(f"metric {name}: counters() binds children by label values; name at least one label")
        return Children(self, name, labels)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = (name, *labels.items()) if labels else name
        try:
            child = self._children[key]
        except KeyError:
            child = self._child(key, name, "counter", labels)
        child.inc(amount)

    def set(self, name: str, value: float, **labels: str) -> None:
        """A gauge's value; for a counter, its new total (it never goes down)."""
        key = (name, *labels.items()) if labels else name
        try:
            child = self._children[key]
        except KeyError:
            child = self._child(key, name, "gauge", labels)
        if isinstance(child, Gauge):
            child.set(value)
            return
        before = self._counter_totals.get(key, 0.0)
        if value > before:
            child.inc(value - before)
            self._counter_totals[key] = value

    def observe(self, name: str, value: float, buckets: Sequence[float] | None = None, **labels: str) -> None:
        """A histogram sample (``_bucket{le=…}``, ``_sum`` and ``_count`` series)."""
        key = (name, *labels.items()) if labels else name
        try:
            child = self._children[key]
        except KeyError:
            child = self._child(key, name, "histogram", labels, buckets)
        child.observe(value)

    def get(self, name: str, **labels: str) -> float:
        """A sample's value by its exposed name (a counter's ends in ``_total``); 0 if absent."""
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else float(value)

    def render(self) -> str:
        """The Prometheus text exposition format (0.0.4)."""
        return generate_latest(self.registry).decode()


class Children(dict[Any, Any]):
    """One counter's children by label values (``Metrics.counters``)."""

    def __init__(self, metrics: Metrics, name: str, labels: tuple[str, ...]) -> None:
        super().__init__()
        self._metrics, self._name, self._labels = metrics, name, labels

    def __missing__(self, values: Any) -> Any:
        names = self._labels
        labels = dict(zip(names, values if len(names) > 1 else (values,), strict=True))
        key = (self._name, *labels.items())  # as ``inc`` keys it (labels in this order)
        child = self._metrics._children.get(key)
        if child is None:
            child = self._metrics._child(key, self._name, "counter", labels, tally=True)
        self[values] = child
        return child


def gateway_metrics() -> Metrics:
    from gatekeeper.policy.engine import LATENCY_BUCKETS

    m = Metrics()
    m.describe("gatekeeper_connections_total", "counter", "Client connections accepted.")
    m.describe("gatekeeper_connections_active", "gauge", "Client connections open now.")
    m.describe("gatekeeper_requests_total", "counter", "Requests decoded, by API.")
    m.describe("gatekeeper_trailing_bytes_total", "counter", "Bytes after a request body, tolerated as the broker does, by API.")
    m.describe("gatekeeper_rejected_total", "counter", "Connections closed for bad input, by reason.")
    m.describe("gatekeeper_authentications_total", "counter", "Client logins, by result (ok, reauthenticated, refused).")
    m.describe("gatekeeper_upstream_errors_total", "counter", "Upstream connect failures and losses.")
    m.describe("gatekeeper_upstream_connections_total", "counter", "Broker connections opened for clients.")
    m.describe("gatekeeper_upstream_reachable", "gauge", "1 while the readiness probe reaches a bootstrap broker, else 0.")
    m.describe("gatekeeper_engine_reachable", "gauge", "1 while the readiness probe finds the policy engine healthy, else 0.")
    m.describe("gatekeeper_ready", "gauge", "1 while /readyz says ready, else 0.")
    m.describe("gatekeeper_draining", "gauge", "1 while Gatekeeper is shutting down: no new connections, in-flight requests finishing.")
    m.describe("gatekeeper_reactor_lag_seconds", "gauge", "The longest the reactor thread was held (how late a 50 ms timer ran) over the last 10-20 s: every connection waited that long.")
    m.describe("gatekeeper_reactor_lag_max_seconds", "gauge", "The longest the reactor thread was held (how late a 50 ms timer ran) since start.")
    m.describe("gatekeeper_decisions_total", "counter", "Policy decisions, by action and operation.")
    m.describe("gatekeeper_held_requests_total", "counter", "Requests held for approval, by outcome.")
    m.describe("gatekeeper_bytes_total", "counter", "Bytes relayed, by direction.")
    m.describe("gatekeeper_spliced_bytes_total", "counter", "Bytes of broker answers passed to the client without passing through Gatekeeper's reads and writes (also counted in gatekeeper_bytes_total; an answer the audit trail reads is copied for it first), by where they went: to=socket moved inside the kernel (splice), to=queue read back and queued because the client's socket was full.")
    m.describe("gatekeeper_decision_cache_total", "counter", "Decision cache lookups, by result (hit/miss; off when the policies in force read the time and do not declare ttl_covers_time).")
    m.describe("gatekeeper_engine_errors_total", "counter", "Policy engine failures, by engine and kind.")
    m.describe("gatekeeper_engine_latency_seconds", "histogram", "Policy engine round trip, by engine.", LATENCY_BUCKETS)
    m.describe("gatekeeper_policy_reloads_total", "counter", "Policy reloads, by result.")
    m.describe("gatekeeper_denials_throttled_total", "counter", "Denials that repeated the previous one on a connection and asked the client to wait (throttle_time_ms), by API.")
    m.describe("gatekeeper_masked_records_total", "counter", "Records masked, by topic and direction (produce: before the broker stores them; consume: before the client reads them).")
    m.describe("gatekeeper_masked_fields_total", "counter", "Fields and text spans masked, by topic and masker.")
    m.describe("gatekeeper_mask_errors_total", "counter", "Records or batches that could not be masked as the policy asked, by kind (record_refused, legacy_format, corrupt_batch, bad_decision); none of them was forwarded raw.")
    m.describe("gatekeeper_masked_truncated_batches_total", "counter", "Incomplete trailing batches dropped from masked Fetch partitions (the client fetches them again).")
    m.describe("gatekeeper_audit_records_total", "counter", "Audit records written to the sink, by kind.")
    m.describe("gatekeeper_audit_refused_total", "counter", "Audit records the trail could not accept (the operation was failed closed), by kind and reason (queue_full, sink_failing, stopped).")
    m.describe("gatekeeper_audit_write_failures_total", "counter", "Failed attempts to write to the audit sink (each is retried).")
    m.describe("gatekeeper_audit_queue_depth", "gauge", "Audit records accepted and not yet written, and reserved places.")
    m.describe("gatekeeper_audit_available", "gauge", "1 while the audit trail takes records, else 0.")
    m.describe("gatekeeper_audit_unavailable_seconds_total", "counter", "Seconds the audit trail was unavailable.")
    m.describe("gatekeeper_audit_lost_total", "counter", "Accepted audit records given up at stop because the sink still failed.")
    return m
