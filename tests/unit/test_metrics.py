import pytest
from prometheus_client.parser import text_string_to_metric_families

from gatekeeper.metrics import Metrics, Tally, gateway_metrics


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_render_prometheus_text() -> None:
    m = Metrics()
    m.describe("x_total", "counter", "Things.")
    m.inc("x_total", api="Produce")
    m.inc("x_total", 2, api="Produce")
    m.inc("x_total", api='we"ird')
    m.set("g", 3)
    text = m.render()
    assert "# HELP x_total Things.\n# TYPE x_total counter\n" in text
    assert 'x_total{api="Produce"} 3.0\n' in text
    assert 'x_total{api="we\\"ird"} 1.0\n' in text
    assert "g 3.0\n" in text
    assert "_created" not in text  # one series per counter, not two
    assert m.get("x_total", api="Produce") == 3 and m.get("x_total", api="other") == 0


def test_labels_are_sorted_whatever_the_call_order_and_share_one_series() -> None:
    m = Metrics()
    m.inc("d_total", action="allow", operation="produce")
    m.inc("d_total", operation="produce", action="allow")
    assert 'd_total{action="allow",operation="produce"} 2.0' in m.render()
    with pytest.raises(ValueError):
        m.inc("d_total", action="allow")  # other label names for the same metric: a bug


def test_histogram_is_a_histogram_with_buckets_sum_and_count() -> None:
    m = gateway_metrics()
    for seconds in (0.0002, 0.003, 0.2, 7.0):
        m.observe("gatekeeper_engine_latency_seconds", seconds, engine="opa")
    m.inc("gatekeeper_requests_total", api="Produce")
    m.set("gatekeeper_connections_active", 4)
    families = _families(m.render())
    hist = families["gatekeeper_engine_latency_seconds"]
    assert hist.type == "histogram"  # type: ignore[attr-defined]
    samples = {(s.name, s.labels.get("le")): s.value for s in hist.samples}  # type: ignore[attr-defined]
    assert samples[("gatekeeper_engine_latency_seconds_count", None)] == 4
    assert samples[("gatekeeper_engine_latency_seconds_sum", None)] == pytest.approx(7.2032)
    assert samples[("gatekeeper_engine_latency_seconds_bucket", "0.0005")] == 1
    assert samples[("gatekeeper_engine_latency_seconds_bucket", "0.005")] == 2
    assert samples[("gatekeeper_engine_latency_seconds_bucket", "+Inf")] == 4
    assert families["gatekeeper_requests"].type == "counter"  # type: ignore[attr-defined]
    assert families["gatekeeper_connections_active"].type == "gauge"  # type: ignore[attr-defined]


def test_a_counter_given_by_set_only_goes_up() -> None:
    m = gateway_metrics()
    m.set("gatekeeper_audit_unavailable_seconds_total", 3)
    m.set("gatekeeper_audit_unavailable_seconds_total", 5)
    m.set("gatekeeper_audit_unavailable_seconds_total", 4)
    assert m.get("gatekeeper_audit_unavailable_seconds_total") == 5


def test_two_gateways_keep_their_own_counts() -> None:
    a, b = gateway_metrics(), gateway_metrics()
    a.inc("gatekeeper_requests_total", api="Fetch")
    assert a.get("gatekeeper_requests_total", api="Fetch") == 1
    assert b.get("gatekeeper_requests_total", api="Fetch") == 0


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        Metrics().describe("x", "summary-ish", "")


def test_bound_children_count_into_the_same_series_as_inc() -> None:
    m = Metrics()
    m.inc("gatekeeper_decisions_total", action="allow", operation="produce")
    decisions = m.counters("gatekeeper_decisions_total", "action", "operation")
    decisions["allow", "produce"].inc()
    decisions["deny", "produce"].inc(2)
    by_api = m.counters("gatekeeper_requests_total", "api")
    by_api["Produce"].inc()
    m.inc("gatekeeper_requests_total", api="Produce")
    assert decisions["allow", "produce"] is decisions["allow", "produce"]  # bound once
    assert m.get("gatekeeper_decisions_total", action="allow", operation="produce") == 2
    assert m.get("gatekeeper_decisions_total", action="deny", operation="produce") == 2
    assert m.get("gatekeeper_requests_total", api="Produce") == 2
    text = m.render()
    assert 'gatekeeper_decisions_total{action="allow",operation="produce"} 2.0' in text
    with pytest.raises(ValueError, match="at least one label"):
        m.counters("gatekeeper_bytes_total")
    with pytest.raises(ValueError):  # one value for two labels
        decisions["allow"].inc()


def test_a_counter_bound_first_is_kept_in_tallies_and_exposed_as_a_counter_would_be() -> None:
    tallied, plain = gateway_metrics(), gateway_metrics()
    decisions = tallied.counters("gatekeeper_decisions_total", "operation", "action")  # not sorted: exposed sorted
    by_api = tallied.counters("gatekeeper_requests_total", "api")
    assert type(decisions["produce", "allow"]) is Tally and type(by_api["Produce"]) is Tally
    for counted in (
        lambda m: m.inc("gatekeeper_requests_total", api="Produce"),
        lambda m: m.inc("gatekeeper_decisions_total", 2, operation="produce", action="deny"),
        lambda m: m.inc("gatekeeper_decisions_total", operation='we"ird', action="allow"),
        lambda m: m.inc("gatekeeper_decisions_total", 0, operation="produce", action="allow"),
    ):
        counted(plain)
    by_api["Produce"].inc()
    decisions["produce", "deny"].inc(2)
    decisions['we"ird', "allow"].inc()
    for m in (tallied, plain):  # inc() on a tallied counter counts into the same cell
        m.inc("gatekeeper_requests_total", api="Fetch")
    # HELP, TYPE, the _total series, escaping, label order (the families in the order first used)
    assert sorted(tallied.render().splitlines()) == sorted(plain.render().splitlines())
    assert tallied.get("gatekeeper_decisions_total", action="deny", operation="produce") == 2
    assert tallied.get("gatekeeper_requests_total", api="Fetch") == 1
    families = _families(tallied.render())
    assert families["gatekeeper_requests"].type == "counter"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="only goes up"):
        by_api["Produce"].inc(-1)
    with pytest.raises(ValueError, match="labels"):
        tallied.inc("gatekeeper_requests_total", endpoint="x")
    assert tallied.get("gatekeeper_requests_total", api="Produce") == 1


def test_a_counter_used_before_it_is_bound_keeps_prometheus_client_values() -> None:
    m = gateway_metrics()
    m.inc("gatekeeper_bytes_total", 5, direction="to_client")  # from any thread: a locked value
    child = m.counters("gatekeeper_bytes_total", "direction")["to_client"]
    assert type(child) is not Tally
    child.inc(3)
    assert m.get("gatekeeper_bytes_total", direction="to_client") == 8
