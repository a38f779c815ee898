import struct

import pytest

from gatekeeper.kafka.framing import FrameDecoder, FrameError, frame


def frames_of(decoder: FrameDecoder) -> list[bytes]:
    out = []
    while (f := decoder.next_frame()) is not None:
        out.append(f)
    return out


@pytest.mark.parametrize("payloads", [[b""], [b"a"], [b"abc", b"", b"x" * 70000]])
def test_whole_bytewise_and_with_trailing_partial(payloads: list[bytes]) -> None:
    wire = b"".join(frame(p) for p in payloads)
    whole = FrameDecoder(1 << 20)
    whole.receive_data(wire)
    assert frames_of(whole) == payloads
    assert whole.buffered == 0

    bytewise = FrameDecoder(1 << 20)
    got = []
    for i in range(len(wire)):
        bytewise.receive_data(wire[i : i + 1])
        got += frames_of(bytewise)
    assert got == payloads

    trailing = FrameDecoder(1 << 20)
    trailing.receive_data(wire + b"\x00\x00")
    assert frames_of(trailing) == payloads
    assert trailing.buffered == 2


def test_oversize_and_negative_lengths_are_refused() -> None:
    d = FrameDecoder(1024)
    d.receive_data(struct.pack(">i", 2**31 - 1))
    with pytest.raises(FrameError, match="exceeds the limit"):
        d.next_frame()
    d = FrameDecoder(1024)
    d.receive_data(struct.pack(">i", -5))
    with pytest.raises(FrameError, match="negative"):
        d.next_frame()


def test_truncated_frame_waits_for_more() -> None:
    d = FrameDecoder(1024)
    d.receive_data(struct.pack(">i", 10) + b"12345")
    assert d.next_frame() is None
    d.receive_data(b"67890")
    assert d.next_frame() == b"1234567890"
