"""Sans-I/O SASL client for Gatekeeper's own connection to the broker (PLAIN, SCRAM-SHA-256/512).

``UpstreamAuthenticator.start()`` gives the first request frames to send; each response frame
goes to ``receive()``, which returns the next frames or ``[]`` when authenticated, and raises
UpstreamAuthError when the broker refuses. The secret never appears in any error or log.
"""

from __future__ import annotations

import struct
from typing import Any

from kafka.net.sasl.scram import ScramClient

from gatekeeper.kafka import codec
from gatekeeper.kafka.codec import API_TABLE

__all__ = ["UpstreamAuthError", "UpstreamAuthenticator"]

_CID_BASE = -(2**31) + 1_000_000  # internal correlation ids, apart from clients' and probes'
HANDSHAKE, AUTHENTICATE = 17, 36


class UpstreamAuthError(Exception):
    """The broker refused Gatekeeper's own credentials (the operator's config or secret)."""


def _frame(api_key: int, version: int, cid: int, **fields: Any) -> bytes:
    msg = API_TABLE[api_key].request[version](**fields)
    msg.with_header(correlation_id=cid, client_id="gatekeeper")
    body = bytes(msg.encode(header=True))
    return struct.pack(">i", len(body)) + body


class UpstreamAuthenticator:
    def __init__(self, mechanism: str, username: str, password: str) -> None:
        self.mechanism = mechanism
        self.username = username
        self._password = password
        self._cid = _CID_BASE
        self._step = 0
        self._scram: ScramClient | None = None

    def start(self) -> list[bytes]:
        self._step = 1
        return [_frame(HANDSHAKE, 1, self._cid, mechanism=self.mechanism)]

    def _authenticate(self, auth_bytes: bytes) -> list[bytes]:
        self._cid += 1
        return [_frame(AUTHENTICATE, 2, self._cid, auth_bytes=auth_bytes)]

    def receive(self, frame: bytes) -> list[bytes]:
        (cid,) = struct.unpack_from(">i", frame, 0)
        if cid != self._cid:
            raise UpstreamAuthError(f"broker answered correlation id {cid} during authentication, expected {self._cid}")
        if self._step == 1:
            _, body = codec.decode_response_body(frame, API_TABLE[HANDSHAKE], 1)
            if body.error_code:
                raise UpstreamAuthError(
                    f"broker does not offer SASL {self.mechanism} (error {body.error_code}; offers {', '.join(body.mechanisms)})"
                )
            self._step = 2
            if self.mechanism == "PLAIN":
                return self._authenticate(b"\x00" + self.username.encode() + b"\x00" + self._password.encode())
            self._scram = ScramClient(self.username, self._password, self.mechanism)
            return self._authenticate(self._scram.first_message())
        _, body = codec.decode_response_body(frame, API_TABLE[AUTHENTICATE], 2)
        if body.error_code:
            raise UpstreamAuthError(
                f"broker refused Gatekeeper's {self.mechanism} credentials for user {self.username!r}: "
                f"{body.error_message or body.error_code}"
            )
        if self.mechanism == "PLAIN" or self._step == 4:
            if self._scram is not None:
                try:
                    self._scram.process_server_final_message(bytes(body.auth_bytes))
                except Exception as e:
                    raise UpstreamAuthError(f"broker's SCRAM final message did not verify: {e}") from e
            self._step = 5
            return []
        assert self._scram is not None
        try:
            self._scram.process_server_first_message(bytes(body.auth_bytes))
        except Exception as e:
            raise UpstreamAuthError(f"broker's SCRAM first message is unusable: {e}") from e
        self._step = 4
        return self._authenticate(self._scram.final_message())

    @property
    def done(self) -> bool:
        return self._step == 5
