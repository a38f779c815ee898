"""A small metrics registry rendered in the Prometheus text exposition format."""

from __future__ import annotations

from collections import defaultdict

__all__ = ["Metrics"]

_LabelKey = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counters and gauges with labels. Not thread-safe: used from the reactor thread only."""

    def __init__(self) -> None:
        self._values: dict[str, dict[_LabelKey, float]] = defaultdict(dict)
        self._help: dict[str, tuple[str, str]] = {}

    def describe(self, name: str, kind: str, text: str) -> None:
        self._help[name] = (kind, text)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        series = self._values[name]
        series[key] = series.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        self._values[name][tuple(sorted(labels.items()))] = value

    def observe(self, name: str, value: float, buckets: tuple[float, ...], **labels: str) -> None:
        """A histogram sample: cumulative ``_bucket{le=…}``, ``_sum`` and ``_count`` series."""
        for le in buckets:
            if value <= le:
                self._add(f"{name}_bucket", 1.0, {**labels, "le": f"{le:g}"})
        self._add(f"{name}_bucket", 1.0, {**labels, "le": "+Inf"})
        self._add(f"{name}_sum", value, labels)
        self._add(f"{name}_count", 1.0, labels)

    def _add(self, name: str, amount: float, labels: dict[str, str]) -> None:
        key = tuple(sorted(labels.items()))
        series = self._values[name]
        series[key] = series.get(key, 0.0) + amount

    def get(self, name: str, **labels: str) -> float:
        return self._values.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        lines = []
        for name in sorted(set(self._values) | set(self._help)):
            kind, text = self._help.get(name, ("untyped", ""))
            if text:
                lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            for key, value in sorted(self._values.get(name, {}).items()):
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
                lines.append(f"{name}{{{labels}}} {value:g}" if labels else f"{name} {value:g}")
        return "\n".join(lines) + "\n"


def gateway_metrics() -> Metrics:
    m = Metrics()
    m.describe("gatekeeper_connections_total", "counter", "Client connections accepted.")
    m.describe("gatekeeper_connections_active", "gauge", "Client connections open now.")
    m.describe("gatekeeper_requests_total", "counter", "Requests decoded, by API.")
    m.describe("gatekeeper_rejected_total", "counter", "Connections closed for bad input, by reason.")
    m.describe("gatekeeper_upstream_errors_total", "counter", "Upstream connect failures and losses.")
    m.describe("gatekeeper_upstream_connections_total", "counter", "Broker connections opened for clients.")
    m.describe("gatekeeper_decisions_total", "counter", "Policy decisions, by action and operation.")
    m.describe("gatekeeper_bytes_total", "counter", "Bytes relayed, by direction.")
    m.describe("gatekeeper_decision_cache_total", "counter", "Decision cache lookups, by result (hit/miss; off when the policies in force read the time and do not declare ttl_covers_time).")
    m.describe("gatekeeper_engine_errors_total", "counter", "Policy engine failures, by engine and kind.")
    m.describe("gatekeeper_engine_latency_seconds_bucket", "counter", "Policy engine round trip, histogram buckets.")
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
