"""Bad bytes close only the offending connection, with a log line; everyone else carries on.

Run against the real ``twistd -n gatekeeper`` process (its log file is checked) in front of the
real broker, with a kafka-python producer working before, during and after."""

from __future__ import annotations

import re
import socket
import struct

import pytest
from kafka import KafkaProducer

from harness.waiting import wait_for

pytestmark = pytest.mark.integration

BAD_INPUTS = {
    "garbage": b"\xde\xad\xbe\xef" * 16,
    "frame length 2^31-1": struct.pack(">i", 2**31 - 1) + b"\x00" * 64,
    "unknown api key": struct.pack(">i", 10) + struct.pack(">hhi", 1000, 0, 1) + b"\x00\x00",
    "unsupported version": struct.pack(">i", 10) + struct.pack(">hhi", 0, 99, 1) + b"\x00\x00",
    "valid length, garbage body": struct.pack(">i", 16) + struct.pack(">hhi", 3, 12, 1) + b"\xff" * 8,
}


def _closed_by_server(sock: socket.socket, timeout: float = 10.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _wait_for_log(gw, pattern: str, timeout: float = 10.0) -> list[str]:
    """The gateway log's lines matching ``pattern``, once there is one (fails after ``timeout``)."""
    def matching() -> list[str]:
        return [ln for ln in gw.log_path.read_text().splitlines() if re.search(pattern, ln)]

    return wait_for(matching, timeout, f"a gateway log line matching {pattern!r}", detail=gw.log_tail)


def test_each_bad_input_closes_only_its_connection(twistd_gateway, kafka_broker) -> None:
    # What follows runs on the direct event dispatch (gatekeeper/proxy/dispatch.py).
    assert _wait_for_log(twistd_gateway, r"reactor EPollReactor: events dispatched directly")
    kafka_broker.create_topic("bad-input-bystander", partitions=1)
    host, port = twistd_gateway.bootstrap.split(":")
    producer = KafkaProducer(bootstrap_servers=twistd_gateway.bootstrap, acks="all")
    producer.send("bad-input-bystander", b"before").get(30)
    for label, payload in BAD_INPUTS.items():
        with socket.create_connection((host, int(port))) as sock:
            local_port = sock.getsockname()[1]
            sock.sendall(payload)
            assert _closed_by_server(sock), f"{label}: connection was not closed"
        lines = _wait_for_log(twistd_gateway, rf"closing connection from 127\.0\.0\.1:{local_port}\b")
        assert lines, f"{label}: no log line naming the client\n{twistd_gateway.log_tail()}"
        # The bystander's connection is untouched and still works.
        producer.send("bad-input-bystander", label.encode()).get(30)

    with socket.create_connection((host, int(port))) as sock:
        local_port = sock.getsockname()[1]
        sock.sendall(struct.pack(">i", 100) + b"0123456789")
        sock.shutdown(socket.SHUT_WR)
        assert _closed_by_server(sock)
    assert _wait_for_log(twistd_gateway, rf"from 127\.0\.0\.1:{local_port} .*ended inside a frame"), twistd_gateway.log_tail()

    producer.send("bad-input-bystander", b"after").get(30)
    producer.close()
    assert twistd_gateway.proc is not None and twistd_gateway.proc.poll() is None, "gateway died"
