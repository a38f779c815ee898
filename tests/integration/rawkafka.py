"""A blocking raw Kafka connection for tests: any request, at any version, with SASL PLAIN.

Stock clients choose their own versions and fields; a conformance or security test needs to send
exactly the request it means (an empty list, a version, a flag) and see the response as decoded
values. Requests are built from kafka-python's generated classes; responses are decoded with
Gatekeeper's codec, so both sides read the same schema.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from gatekeeper.kafka.codec import API_TABLE, decode_response_body

__all__ = ["RawKafka", "RawKafkaError"]

_SIZE = struct.Struct(">i")


class RawKafkaError(RuntimeError):
    """The connection or the SASL exchange failed."""


class RawKafka:
    """One TCP connection; ``request(key, version, **fields)`` -> decoded response body."""

    def __init__(self, address: str, *, user: str | None = None, password: str | None = None,
                 client_id: str = "raw-test", timeout: float = 15.0, recv_buffer: int | None = None) -> None:
        host, port = address.rsplit(":", 1)
        if recv_buffer is None:
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        else:  # set before connecting, so the window the peer is offered is small from the start
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
            self.sock.settimeout(timeout)
            self.sock.connect((host, int(port)))
        self.client_id = client_id
        self._cid = 0
        if user is not None:
            self._sasl_plain(user, password or "")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawKafka:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def encode(self, api_key: int, version: int, **fields: Any) -> tuple[int, bytes]:
        """(correlation id, request frame without its size prefix)."""
        self._cid += 1
        req = API_TABLE[api_key].request[version](**fields)
        req.with_header(correlation_id=self._cid, client_id=self.client_id)
        return self._cid, bytes(req.encode(header=True))

    def send_frame(self, frame: bytes) -> None:
        self.sock.sendall(_SIZE.pack(len(frame)) + frame)

    def read_frame(self) -> bytes:
        (size,) = _SIZE.unpack(self._read(4))
        return self._read(size)

    def request(self, api_key: int, version: int, **fields: Any) -> Any:
        """Send one request and return the decoded response body."""
        return self.decode(api_key, version, self.request_frame(api_key, version, **fields))

    def request_frame(self, api_key: int, version: int, **fields: Any) -> bytes:
        """Send one request and return the raw response frame (correlation id checked)."""
        cid, frame = self.encode(api_key, version, **fields)
        self.send_frame(frame)
        raw = self.read_frame()
        (got,) = _SIZE.unpack_from(raw, 0)
        if got != cid:
            raise RawKafkaError(f"response correlation id {got}, expected {cid}")
        return raw

    @staticmethod
    def decode(api_key: int, version: int, raw: bytes) -> Any:
        return decode_response_body(raw, API_TABLE[api_key], version)[1]

    def _read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise RawKafkaError(f"connection closed after {len(out)} of {n} bytes")
            out += chunk
        return bytes(out)

    def _sasl_plain(self, user: str, password: str) -> None:
        hs = self.request(17, 1, mechanism="PLAIN")
        if hs.error_code:
            raise RawKafkaError(f"SaslHandshake refused: error {hs.error_code}")
        auth = self.request(36, 2, auth_bytes=b"\0" + user.encode() + b"\0" + password.encode())
        if auth.error_code:
            raise RawKafkaError(f"SASL PLAIN refused for {user!r}: {auth.error_code} {auth.error_message}")
