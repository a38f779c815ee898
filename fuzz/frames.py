"""Frame splitting and request headers: a client's raw byte stream, delivered in arbitrary
chunks, framed and each frame's request header parsed.

Input: the byte stream. The first byte picks how many chunks the stream arrives in (1 to 32:
a short stream byte by byte); the same frames must come out whichever way it arrives."""

from __future__ import annotations

from gatekeeper.kafka import codec
from gatekeeper.kafka.framing import FrameDecoder, FrameError

EXPECTED = (FrameError, codec.CodecError)
_MAX_FRAME = 1 << 16


def _frames(data: bytes, step: int) -> tuple[list[bytes], Exception | None]:
    decoder = FrameDecoder(_MAX_FRAME)
    out: list[bytes] = []
    try:
        for i in range(0, len(data), step):
            decoder.receive_data(data[i : i + step])
            while (f := decoder.next_frame()) is not None:
                out.append(f)
        decoder.peek_ids()
    except FrameError as e:
        return out, e
    return out, None


def one_input(data: bytes) -> None:
    if not data:
        return
    stream = data[1:]
    step = max(1, -(-len(stream) // (data[0] % 32 + 1)))
    whole, whole_err = _frames(stream, max(1, len(stream)))
    chunked, chunked_err = _frames(stream, step)
    if whole != chunked or type(whole_err) is not type(chunked_err):
        raise AssertionError(f"framing depends on chunking: {len(whole)} vs {len(chunked)} frames")
    for f in whole:
        codec.peek_ids(f)
        try:
            header, spec = codec.parse_request_header(f)
        except codec.CodecError:
            continue
        if not 8 <= header.size <= len(f):
            raise AssertionError(f"header size {header.size} outside the frame of {len(f)} bytes")
