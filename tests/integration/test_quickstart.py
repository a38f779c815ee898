"""The README's quickstart: a broker and Gatekeeper (embedded engine, default policy) in front.

It runs from a directory that is not the checkout: nothing in it may depend on the working
directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kafka import KafkaProducer
from kafka.errors import TopicAuthorizationFailedError

from harness.ports import free_port, free_port_range, port_open
from harness.quickstart import DEFAULT_CONFIG
from harness.waiting import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_default_config_is_found_from_the_harness_location() -> None:
    assert DEFAULT_CONFIG == ROOT / "config" / "example.yaml" and DEFAULT_CONFIG.is_file()


def test_quickstart_serves_the_demo_topic_and_denies_the_rest(tmp_path) -> None:
    raw = yaml.safe_load((ROOT / "config" / "example.yaml").read_text())
    ports = free_port_range(3)
    bootstrap = free_port()
    raw["listeners"][0].update(bind=f"127.0.0.1:{bootstrap}", broker_ports=f"{ports[0]}-{ports[-1]}")
    raw["admin"]["bind"] = f"127.0.0.1:{free_port()}"
    for key in ("policies", "data"):  # still relative, now to the copy: the quickstart resolves them from there
        raw["policy"][key] = os.path.relpath(ROOT / "config" / raw["policy"][key], tmp_path)
    config = tmp_path / "quickstart.yaml"
    config.write_text(yaml.safe_dump(raw))
    # As scripts/quickstart.sh runs it: the checkout on PYTHONPATH, the caller's directory kept.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "harness.quickstart", config.name], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: port_open(bootstrap) or proc.poll() is not None, 90,
                 "the quickstart to start Gatekeeper (or to exit)", interval=0.3)
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
