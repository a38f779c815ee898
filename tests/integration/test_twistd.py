"""The real ``twistd gatekeeper`` process: admin endpoint, config errors, daemon mode."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaProducer

from harness.gateway import TwistdGateway
from harness.ports import port_open
from harness.waiting import wait_for

pytestmark = pytest.mark.integration

TWISTD = str(Path(sys.executable).with_name("twistd"))


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode()


def test_healthz_and_metrics(twistd_gateway, kafka_broker) -> None:
    admin = f"http://127.0.0.1:{twistd_gateway.ports.admin_port}"
    status, body = _get(admin + "/healthz")
    assert status == 200 and '"status": "ok"' in body
    kafka_broker.create_topic("metrics-topic")
    p = KafkaProducer(bootstrap_servers=twistd_gateway.bootstrap)
    p.send("metrics-topic", b"x").get(30)
    p.close()
    status, text = _get(admin + "/metrics")
    assert status == 200
    assert "# TYPE gatekeeper_requests_total counter" in text
    produced = [ln for ln in text.splitlines() if ln.startswith('gatekeeper_requests_total{api="Produce"}')]
    assert produced and float(produced[0].split()[-1]) >= 1
    assert 'gatekeeper_decisions_total{action="allow",operation="produce"}' in text


def test_bad_config_exits_nonzero_with_one_line_per_error(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "listeners:\n  - name: default\n    bind: nohost\n    broker_ports: 9199-9193\n"
        "upstream:\n  bootstrap_servers: []\nbogus: 1\n"
    )
    proc = subprocess.run([TWISTD, "-n", "--pidfile=", "gatekeeper", "--config", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("gatekeeper: config error:")]
    assert any("listeners[0].bind" in ln for ln in errors), proc.stderr
    assert any("upstream.bootstrap_servers" in ln for ln in errors), proc.stderr
    assert any("'bogus'" in ln for ln in errors), proc.stderr
    assert any(ln.endswith("policy: required; choose an engine (opa, embedded) or say `engine: allow-all` explicitly")
               for ln in errors), proc.stderr  # no policy section is refused, never allow-all
    check = subprocess.run([str(Path(sys.executable).with_name("gatekeeper")), "check-config", str(bad)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 2 and check.stderr.count("config error") == len(errors)


def test_twistd_daemonizes_and_stops_on_sigterm(tmp_path, kafka_broker) -> None:
    gw = TwistdGateway(tmp_path, kafka_broker.bootstrap)  # only for the config it writes
    pidfile = tmp_path / "gk.pid"
    proc = subprocess.run([TWISTD, f"--pidfile={pidfile}", f"--logfile={tmp_path / 'd.log'}",
                           "gatekeeper", "--config", str(gw.config_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr  # the parent returns once the daemon is forked
    log = tmp_path / "d.log"
    wait_for(lambda: port_open(gw.ports.bootstrap_port), 30, "the daemon to listen",
             detail=lambda: log.read_text() if log.is_file() else "(no log)")
    assert port_open(gw.ports.bootstrap_port)
    pid = int(pidfile.read_text())
    subprocess.run(["kill", str(pid)], check=True)
    wait_for(lambda: not port_open(gw.ports.bootstrap_port), 30, "the daemon to stop listening after SIGTERM")
    assert not port_open(gw.ports.bootstrap_port)
