"""Pulsar frames, sans-I/O: bytes in, frames out; frames in, bytes out.

A frame on the wire::

    [total_size u32][command_size u32][BaseCommand]                         a simple command
    [total_size u32][command_size u32][BaseCommand][payload ...]            SEND and MESSAGE

``total_size`` counts everything after itself. The payload of SEND and MESSAGE is, in order:
optional broker entry metadata (magic ``0x0e02``, size u32, BrokerEntryMetadata; MESSAGE only),
magic ``0x0e01``, CRC32C u32 of what follows it, metadata size u32, MessageMetadata, then the
message (or batch of messages). :mod:`gatekeeper_pulsar.payload` reads the payload.

:class:`FrameDecoder` keeps the exact bytes of each frame: allowed traffic is forwarded as those
bytes, never re-encoded.
"""

from __future__ import annotations

import struct

import attrs

__all__ = ["DEFAULT_MAX_FRAME", "Frame", "FrameDecoder", "FrameError", "encode_frame"]

# The broker's default maxMessageSize (5 MiB) plus its frame padding, rounded up: a frame larger
# than this is refused before it is buffered.
DEFAULT_MAX_FRAME = 5 * 1024 * 1024 + 64 * 1024
_U32 = struct.Struct(">I")


class FrameError(Exception):
    """The peer's bytes are not a Pulsar frame (its fault): the connection is closed."""


@attrs.frozen
class Frame:
    """One frame: the serialized BaseCommand, the payload after it (b"" for a simple command),
    and the frame's exact bytes on the wire (size fields included)."""

    command: bytes
    payload: bytes
    raw: bytes


def encode_frame(command: bytes, payload: bytes = b"") -> bytes:
    """The wire bytes of a frame holding ``command`` (a serialized BaseCommand) and ``payload``."""
    return _U32.pack(4 + len(command) + len(payload)) + _U32.pack(len(command)) + command + payload


class FrameDecoder:
    """Feed bytes with :meth:`receive_data`; take whole frames with :meth:`next_frame` (None:
    more bytes are needed). Raises :class:`FrameError` for a frame it will not read."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> Frame | None:
        buf = self._buffer
        if len(buf) < 4:
            return None
        (total,) = _U32.unpack_from(buf, 0)
        if total < 4:
            raise FrameError(f"frame size {total} is smaller than its command size field: not a Pulsar frame")
        if total > self.max_frame:
            raise FrameError(f"frame of {total} bytes is over the {self.max_frame}-byte limit")
        if len(buf) < 4 + total:
            return None
        (command_size,) = _U32.unpack_from(buf, 4)
        if command_size > total - 4:
            raise FrameError(f"command size {command_size} exceeds the frame's {total - 4} bytes after it")
        raw = bytes(buf[: 4 + total])
        del buf[: 4 + total]
        return Frame(command=raw[8 : 8 + command_size], payload=raw[8 + command_size :], raw=raw)
