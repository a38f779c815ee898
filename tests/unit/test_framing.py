import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


class _Model:
    """The decoder's contract over one plain bytes buffer: what the decoder must return."""

    def __init__(self) -> None:
        self.buf = b""

    def frame(self) -> bytes | None:
        if len(self.buf) < 4:
            return None
        size = struct.unpack_from(">i", self.buf)[0]
        if len(self.buf) < 4 + size:
            return None
        out, self.buf = self.buf[4 : 4 + size], self.buf[4 + size :]
        return out

    def take(self, n: int) -> bytes:
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


@given(payloads=st.lists(st.binary(max_size=300), max_size=8), cuts=st.lists(st.integers(0, 3000), max_size=12),
       kinds=st.lists(st.sampled_from(["bytes", "bytearray", "memoryview"]), min_size=1, max_size=4),
       actions=st.lists(st.sampled_from(["frame", "frames", "take", "peek"]), min_size=1, max_size=6),
       splits=st.lists(st.integers(0, 400), min_size=1, max_size=4))
def test_any_split_of_reads_gives_what_one_buffer_gives(payloads: list[bytes], cuts: list[int], kinds: list[str],
                                                       actions: list[str], splits: list[int]) -> None:
    """Reads cut anywhere, of any buffer type, with frames, takes and peeks in any order between
    them: the decoder returns what a single buffer of everything would, and a caller's mutable
    buffer changed after ``receive_data`` changes nothing already received."""
    wire = b"".join(frame(p) for p in payloads)
    points = sorted({0, len(wire), *(c for c in cuts if c <= len(wire))})
    decoder, model = FrameDecoder(1 << 20), _Model()
    for i, (a, b) in enumerate(zip(points, points[1:], strict=False)):
        kind = kinds[i % len(kinds)]
        chunk: bytes | bytearray | memoryview = wire[a:b]
        if kind == "bytearray":
            chunk = bytearray(chunk)
        elif kind == "memoryview":
            chunk = memoryview(bytearray(chunk))
        decoder.receive_data(chunk)  # type: ignore[arg-type]
        model.buf += wire[a:b]
        if isinstance(chunk, (bytearray, memoryview)) and len(chunk):
            chunk[0] ^= 0xFF  # the caller reuses its buffer
        action = actions[i % len(actions)]
        if action == "frame":
            assert decoder.next_frame() == model.frame()
        elif action == "frames":
            while (f := model.frame()) is not None:
                assert decoder.next_frame() == f
            assert decoder.next_frame() is None
        elif action == "take":  # as the response side takes: a whole answer, at once or in two parts
            whole = 4 + struct.unpack_from(">i", model.buf)[0] if len(model.buf) >= 4 else 0
            if whole and len(model.buf) >= whole:
                first = min(splits[i % len(splits)], whole)
                assert decoder.take(first) == model.take(first)
                assert decoder.take(whole - first) == model.take(whole - first)
        else:
            want = struct.unpack_from(">ii", model.buf) if len(model.buf) >= 8 else None
            assert decoder.peek_ids() == want
        assert decoder.buffered == len(model.buf)
    while (f := model.frame()) is not None:
        assert decoder.next_frame() == f
    assert decoder.next_frame() is None
    assert decoder.take(len(model.buf)) == model.buf


def test_a_read_holding_whole_frames_is_not_gathered() -> None:
    """The common case, kept as it came: a take of all of it is the same object (no copy)."""
    d = FrameDecoder(1 << 20)
    read = frame(b"x" * 1000) + frame(b"y")
    d.receive_data(read)
    assert d.peek_ids() == (1000, struct.unpack(">i", b"xxxx")[0])
    assert d.take(len(read)) is read
    d.receive_data(read)
    assert frames_of(d) == [b"x" * 1000, b"y"]


def test_a_read_handed_out_is_not_held() -> None:
    """Once a read's frames are handed out, the decoder keeps no reference to it; of a read that
    ends in part of a frame it keeps only that part (an idle connection holds no read)."""
    import sys

    d = FrameDecoder(1 << 20)
    read = frame(b"x" * 46000)
    held = sys.getrefcount(read)
    d.receive_data(read)
    assert frames_of(d) == [b"x" * 46000]
    assert sys.getrefcount(read) == held and d.buffered == 0

    tailed = frame(b"y" * 65000) + b"\x00\x00"
    held = sys.getrefcount(tailed)
    d.receive_data(tailed)
    assert frames_of(d) == [b"y" * 65000]
    assert sys.getrefcount(tailed) == held and d.buffered == 2
    d.receive_data(b"\x00\x03abc")
    assert frames_of(d) == [b"abc"]

    whole = frame(b"z")
    held = sys.getrefcount(whole)
    d.receive_data(whole)
    assert d.take(len(whole)) is whole
    assert sys.getrefcount(whole) == held and d.buffered == 0
