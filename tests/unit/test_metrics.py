from gatekeeper.metrics import Metrics


def test_render_prometheus_text() -> None:
    m = Metrics()
    m.describe("x_total", "counter", "Things.")
    m.inc("x_total", api="Produce")
    m.inc("x_total", 2, api="Produce")
    m.inc("x_total", api='we"ird')
    m.set("g", 3)
    text = m.render()
    assert "# HELP x_total Things.\n# TYPE x_total counter\n" in text
    assert 'x_total{api="Produce"} 3\n' in text
    assert 'x_total{api="we\\"ird"} 1\n' in text
    assert "g 3\n" in text
