"""The README's quickstart: a broker and Gatekeeper (embedded engine, default policy) in front."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kafka import KafkaProducer
from kafka.errors import TopicAuthorizationFailedError

from harness.gateway import free_port_range
from harness.ports import free_port, port_open

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_serves_the_demo_topic_and_denies_the_rest(tmp_path) -> None:
    raw = yaml.safe_load((ROOT / "config" / "example.yaml").read_text())
    ports = free_port_range(3)
    bootstrap = free_port()
    raw["listeners"][0].update(bind=f"127.0.0.1:{bootstrap}", broker_ports=f"{ports[0]}-{ports[-1]}")
    raw["admin"]["bind"] = f"127.0.0.1:{free_port()}"
    for key in ("policies", "data"):  # keep the example's relative paths meaningful from tmp_path
        raw["policy"][key] = str((ROOT / "config" / raw["policy"][key]).resolve())
    config = tmp_path / "quickstart.yaml"
    config.write_text(yaml.safe_dump(raw))
    proc = subprocess.Popen([sys.executable, "-m", "harness.quickstart", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while not port_open(bootstrap) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
        assert port_open(bootstrap), "quickstart did not start Gatekeeper"
        p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{bootstrap}", max_block_ms=20000)
        assert p.send("demo", b"hello").get(30).offset >= 0
        with pytest.raises(TopicAuthorizationFailedError):
            p.send("not-in-the-demo", b"x").get(30)
        p.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "Gatekeeper bootstrap:" in out and f"127.0.0.1:{bootstrap}" in out
