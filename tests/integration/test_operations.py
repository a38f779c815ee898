"""Operations with a real ``twistd gatekeeper``: Prometheus metrics parsed by prometheus-client,
readiness against a broker and an OPA server that go away and come back, JSON logs with capped
rotation, and a graceful SIGTERM under a producer that must lose nothing acknowledged."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from harness.broker import KafkaBroker
from harness.gateway import TwistdGateway
from harness.opa import OpaServer
from harness.ports import LOOPBACK
from harness.waiting import wait_for

pytestmark = pytest.mark.integration

OPEN_POLICY = Path(__file__).parent / "policy_open"


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    return status, json.loads(body)


def _readyz(gw: TwistdGateway) -> tuple[int, Any]:
    return _get(f"http://{LOOPBACK}:{gw.ports.admin_port}/readyz")


def test_metrics_parse_as_prometheus_with_the_right_types(twistd_gateway, kafka_broker) -> None:
    kafka_broker.create_topic("ops-metrics")
    p = KafkaProducer(bootstrap_servers=twistd_gateway.bootstrap)
    p.send("ops-metrics", b"x").get(30)
    p.close()
    url = f"http://{LOOPBACK}:{twistd_gateway.ports.admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    latency = families["gatekeeper_engine_latency_seconds"]
    assert latency.type == "histogram"
    names = {s.name for s in latency.samples}
    assert names == {f"gatekeeper_engine_latency_seconds_{k}" for k in ("bucket", "sum", "count")}
    count = [s.value for s in latency.samples if s.name.endswith("_count")]
    inf = [s.value for s in latency.samples if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"]
    assert count and count == inf and count[0] >= 1
    for counter in ("gatekeeper_requests", "gatekeeper_decisions", "gatekeeper_bytes", "gatekeeper_connections"):
        assert families[counter].type == "counter", counter
    produced = [s.value for s in families["gatekeeper_requests"].samples if s.labels.get("api") == "Produce"]
    assert produced and produced[0] >= 1
    assert families["gatekeeper_connections_active"].type == "gauge"
    assert twistd_gateway.metric('gatekeeper_requests_total{api="Produce"}') >= 1  # what the harness reads


def test_ready_follows_the_broker_going_away_and_coming_back(tmp_path) -> None:
    extra = {"admin": {"readiness_interval": "500ms"}}
    with KafkaBroker(heap="512m") as broker, TwistdGateway(tmp_path, broker.bootstrap, extra=extra) as gw:
        admin = f"http://{LOOPBACK}:{gw.ports.admin_port}"
        status, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(_readyz(gw)), 15, "ready")
        assert body["status"] == "ready" and body["checks"]["upstream"]["ok"]
        assert _get(admin + "/livez")[0] == 200
        broker.stop_process()
        down = time.monotonic()
        status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(_readyz(gw)), 10,
                                "not ready once the broker is gone", detail=gw.log_tail)
        assert time.monotonic() - down < 10
        assert not body["checks"]["upstream"]["ok"] and any(r.startswith("upstream:") for r in body["reasons"])
        assert body["checks"]["policy_engine"]["ok"]
        assert _get(admin + "/livez")[0] == 200  # alive: a supervisor must not restart it
        assert _get(admin + "/healthz")[0] == 200  # as before /readyz existed
        assert gw.metric("gatekeeper_upstream_reachable") == 0
        broker.start_process()
        wait_for(lambda: _readyz(gw)[0] == 200, 30, "ready again once the broker is back", detail=gw.log_tail)
        assert gw.metric("gatekeeper_upstream_reachable") == 1
        assert "readiness: upstream failing" in gw.log_path.read_text()


def test_not_ready_while_the_opa_server_is_down(tmp_path, kafka_broker) -> None:
    with OpaServer() as opa:
        extra = {"admin": {"readiness_interval": "500ms"},
                 "policy": {"engine": "opa", "url": opa.url, "policies": str(OPEN_POLICY), "timeout": "500ms"}}
        with TwistdGateway(tmp_path, kafka_broker.bootstrap, extra=extra) as gw:
            wait_for(lambda: _readyz(gw)[0] == 200, 15, "ready with OPA up", detail=gw.log_tail)
            opa.kill()
            status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(_readyz(gw)), 10,
                                    "not ready once OPA is gone", detail=gw.log_tail)
            assert not body["checks"]["policy_engine"]["ok"] and opa.url in body["checks"]["policy_engine"]["detail"]
            assert body["checks"]["upstream"]["ok"]
            assert gw.metric("gatekeeper_engine_reachable") == 0
            opa.start()  # same port
            wait_for(lambda: _readyz(gw)[0] == 200, 15, "ready again once OPA is back", detail=gw.log_tail)


def _cut_frame(port: int) -> None:
    """A connection that ends inside a request frame: one warning naming the session."""
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(struct.pack(">i", 100) + b"abc")


def test_json_logs_one_object_per_line_and_rotated_files_capped(tmp_path, kafka_broker) -> None:
    extra = {"logging": {"level": "info", "format": "json", "max_files": 2, "max_file_bytes": 10000}}
    with TwistdGateway(tmp_path, kafka_broker.bootstrap, extra=extra) as gw:
        for _ in range(120):  # ~40 KB of warnings: several rotations
            _cut_frame(gw.ports.bootstrap_port)
        wait_for(lambda: len(list(tmp_path.glob("gatekeeper.log*"))) >= 3 and "ended inside a frame" in gw.log_path.read_text(),
                 20, "the log to rotate")
        time.sleep(0.5)
    files = sorted(p.name for p in tmp_path.glob("gatekeeper.log*"))
    assert files == ["gatekeeper.log", "gatekeeper.log.1", "gatekeeper.log.2"], files
    records = [json.loads(line) for f in files for line in (tmp_path / f).read_text().splitlines()]
    assert records and all({"time", "level", "namespace", "message"} <= r.keys() for r in records)
    cut = [r for r in records if "ended inside a frame" in r["message"]]
    assert cut and all(r["level"] == "warn" and r["listener"] == "default" and r["session"] and r["peer"] for r in cut)
    assert cut[0]["namespace"] == "gatekeeper.proxy.client"
    assert all(r["time"].endswith("Z") for r in records)


def _produce_until_stopped(bootstrap: str, topic: str, stop: threading.Event, acked: list[bytes],
                           failed: list[str]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "message.timeout.ms": 8000, "retry.backoff.ms": 100})

    def report(err: Any, msg: Any) -> None:
        (failed.append(str(err)) if err else acked.append(msg.value()))

    i = 0
    while not stop.is_set():
        try:
            p.produce(topic, b"record-%08d" % i, on_delivery=report)
            i += 1
        except BufferError:
            pass
        p.poll(0.001 if i % 50 else 0.01)
    p.flush(20)


def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ops-{time.time()}", "enable.partition.eof": True,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[bytes] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                break
            raise RuntimeError(str(m.error()))
        out.append(m.value())
    c.close()
    return out


def test_sigterm_drains_in_flight_produce_and_loses_nothing_acknowledged(tmp_path, kafka_broker) -> None:
    topic = f"ops-drain-{int(time.time())}"
    kafka_broker.create_topic(topic)
    grace = 5.0
    gw = TwistdGateway(tmp_path, kafka_broker.bootstrap, extra={"shutdown": {"grace": f"{grace:g}s"}}).start()
    stop, acked, failed = threading.Event(), [], []  # type: ignore[var-annotated]
    producer = threading.Thread(target=_produce_until_stopped, args=(gw.bootstrap, topic, stop, acked, failed))
    producer.start()
    try:
        wait_for(lambda: len(acked) > 2000, 60, "the producer to get going")
        assert gw.proc is not None
        sent = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        code = gw.proc.wait(grace + 10)
        took = time.monotonic() - sent
        gw.proc = None
    finally:
        stop.set()
        producer.join(60)
        gw.stop()
    assert code == 0, gw.log_tail()
    assert took < grace + 5, f"exited {took:.1f}s after SIGTERM"
    log = gw.log_path.read_text()
    assert "shutting down:" in log, gw.log_tail()
    stored = _read_all(kafka_broker.bootstrap, topic)
    assert len(set(acked)) == len(acked), "the producer saw no record acknowledged twice"
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged records are not in the broker"
    duplicates = len(stored) - len(set(stored))
    assert duplicates == 0
    digest = hashlib.sha256(b"".join(sorted(acked))).hexdigest()
    assert digest == hashlib.sha256(b"".join(sorted(set(stored) & set(acked)))).hexdigest()
    print(f"\nSIGTERM drain: {len(acked)} acknowledged, {len(stored)} stored, {duplicates} duplicates, "
          f"{len(failed)} failed (never acknowledged), exit {code} after {took:.2f}s")
