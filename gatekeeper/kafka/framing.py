"""Sans-I/O Kafka framing: a 4-byte big-endian length, then that many bytes.

``FrameDecoder`` takes bytes as they arrive (``receive_data``) and hands back whole frames
(``next_frame``), or ``None`` when it needs more data. It never touches a socket.
"""

from __future__ import annotations

import struct

__all__ = ["FrameDecoder", "FrameError", "frame"]

_LEN = struct.Struct(">i")
_LEN2 = struct.Struct(">ii")


class FrameError(Exception):
    """The peer's bytes cannot be framed: a negative or oversize length."""


def frame(payload: bytes | bytearray) -> bytes:
    """Prefix ``payload`` with its length."""
    return _LEN.pack(len(payload)) + bytes(payload)


class FrameDecoder:
    """Accumulates bytes and yields whole frames (without their length prefix).

    While nothing is pending, bytes that arrive are kept as they came (no copy): a request that
    arrives in one read, as most do, is copied once, into the frame returned. Only a frame split
    across reads is gathered in a ``bytearray``."""

    __slots__ = ("_buf", "_pos", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buf: bytes | bytearray = b""
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a frame."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes) -> None:
        buf, pos = self._buf, self._pos
        if pos == len(buf):  # nothing pending: keep the bytes as they came (a copy of any mutable buffer)
            self._buf, self._pos = (data if type(data) is bytes else bytearray(data)), 0
        elif type(buf) is bytearray:
            buf += data
        else:  # the rest of a kept read, and more: gather from here on
            gathered = bytearray(memoryview(buf)[pos:])
            gathered += data
            self._buf, self._pos = gathered, 0

    def next_frame(self) -> bytes | None:
        """The next whole frame, ``None`` if more bytes are needed; FrameError if the length is bad."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 4:
            self._compact()
            return None
        (size,) = _LEN.unpack_from(buf, pos)
        if size < 0:
            raise FrameError(f"negative frame length {size}")
        if size > self.max_frame_bytes:
            raise FrameError(f"frame length {size} exceeds the limit of {self.max_frame_bytes} bytes")
        end = pos + 4 + size
        if len(buf) < end:
            self._compact()
            return None
        out = bytes(memoryview(buf)[pos + 4 : end])
        self._consumed(end)
        return out

    def peek_ids(self) -> tuple[int, int] | None:
        """(frame length, first int32 of the payload) if 8 bytes are buffered: for a response,
        its size and correlation id, read without consuming anything."""
        if len(self._buf) - self._pos < 8:
            return None
        return _LEN2.unpack_from(self._buf, self._pos)  # type: ignore[return-value]

    def take(self, n: int) -> bytes:
        """Remove and return up to ``n`` buffered bytes (length prefix included, as on the wire)."""
        buf, pos = self._buf, self._pos
        end = min(pos + n, len(buf))
        out = buf if pos == 0 and end == len(buf) and type(buf) is bytes else bytes(memoryview(buf)[pos:end])
        self._consumed(end)
        return out

    def _consumed(self, end: int) -> None:
        if end == len(self._buf):  # all of it handed out: hold no memory for it
            self._buf, self._pos = b"", 0
        else:
            self._pos = end

    def _compact(self) -> None:
        """Drop what was returned. What is pending of a kept read is copied out, so the read
        itself is not held while the rest of its last frame arrives."""
        buf, pos = self._buf, self._pos
        if not pos:
            return
        if type(buf) is bytearray:
            del buf[:pos]
        else:
            self._buf = bytearray(memoryview(buf)[pos:])
        self._pos = 0
