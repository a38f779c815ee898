"""What reading an audited Fetch answer costs the splicing relay, by how its bytes are read.

    ~/.cache/gatekeeper/venv/bin/python bench/fetch_copy.py [--answer-mib N] [--batch KIB ...] [--rounds R]

The audit trail records each Fetch answer's offsets (``gatekeeper/kafka/auditing.py``), read from
the answer's record batch headers; the relay splices the answer broker socket -> pipe -> client
(``gatekeeper/proxy/splicing.py``). A sender process writes answers of ``--answer-mib`` MiB
(default 3: what Kafka's ConsumerPerformance gets from a 3-partition topic) made of record batches
of ``--batch`` KiB (their v2 headers real, their bodies random), over loopback TCP. Once a whole
answer is in its socket, this process moves it to ``/dev/null`` through a pipe, one of three ways:

- ``splice``: spliced only, nothing read (what an unaudited answer costs);
- ``peek``: each step copied into a buffer without being taken (``MSG_PEEK``), then spliced: what
  the relay does for an audited answer, one copy of every byte out of memory the sender wrote;
- ``heads``: each batch's 61-byte header peeked, its length read, the batch spliced: two system
  calls a batch, and no copy of the bodies.

Prints the median microseconds per answer of each way (``--rounds`` answers each, the ways taking
turns) and each one's excess over ``splice``. The sender is not measured. This bounds what the
trail's read of a consumed answer can cost and save; ``bench/throughput.py --audit`` measures its
share of a real consume. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing
import os
import socket
import statistics
import struct
import sys
import termios
import time
from typing import Any

LOOPBACK = "127.0.0.1"
WAYS = ("splice", "peek", "heads")
_HEAD = 61  # a v2 record batch's header
_PIPE = 1 << 20
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)


def answer_bytes(size: int, batch: int) -> bytes:
    """``size`` bytes of v2 record batches of ``batch`` bytes (the last one shorter)."""
    out = bytearray()
    offset = 0
    while len(out) < size:
        n = min(batch, size - len(out))
        body = os.urandom(n)
        head = struct.pack(">qiib", offset, n - 12, 0, 2)  # base offset, length, leader epoch, magic
        out += head + body[len(head):]
        offset += 15
    return bytes(out)


def _send(address: tuple[str, int], data: bytes, answers: int) -> None:
    with socket.create_connection(address) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * len(data))
        for _ in range(answers):
            s.sendall(data)
            s.recv(1)  # the next one once this one was moved


def _wait_whole(sock: socket.socket, size: int) -> None:
    """Until ``size`` bytes are in the socket, none of them read (a read would warm the caches)."""
    while int.from_bytes(fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"), sys.byteorder) < size:
        time.sleep(0.0005)
    time.sleep(0.002)  # the sender's writes done: its cores' caches, not ours, hold the last bytes


def _move(way: str, sock: socket.socket, pipe: tuple[int, int], null: int, size: int, buf: bytearray) -> None:
    r, w = pipe
    fd = sock.fileno()
    got = 0
    if way == "heads":
        head = bytearray(_HEAD)
        in_pipe = 0
        while got < size:
            k = sock.recv_into(head, _HEAD, socket.MSG_PEEK)
            length = struct.unpack_from(">i", head, 8)[0] + 12 if k >= 12 else size - got
            moved = 0
            while moved < length:
                try:
                    k = os.splice(fd, w, length - moved, flags=_FLAGS)
                except BlockingIOError:  # the pipe is full (of bytes or of buffers): empty it
                    while in_pipe:
                        in_pipe -= os.splice(r, null, in_pipe)
                    continue
                if not k:
                    raise EOFError("the sender closed in the middle of an answer")
                moved += k
                in_pipe += k
            got += length
        while in_pipe:
            in_pipe -= os.splice(r, null, in_pipe)
        return
    while got < size:
        want = min(size - got, _PIPE)
        if way == "peek":
            want = sock.recv_into(memoryview(buf)[got:], want, socket.MSG_PEEK)
        n = os.splice(fd, w, want, flags=_FLAGS)
        left = n
        while left:
            left -= os.splice(r, null, left)
        got += n


def run(answer_mib: int, batch_kib: int, rounds: int) -> dict[str, float]:
    size = answer_mib << 20
    data = answer_bytes(size, batch_kib << 10)
    with socket.create_server((LOOPBACK, 0)) as server:
        sender = multiprocessing.Process(target=_send, args=(server.getsockname(), data, rounds * len(WAYS)))
        sender.start()
        sock, _ = server.accept()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * size)
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, _PIPE)
    null = os.open(os.devnull, os.O_WRONLY)
    buf = bytearray(size)
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    try:
        for i in range(rounds * len(WAYS)):
            way = WAYS[i % len(WAYS)]
            _wait_whole(sock, size)
            t0 = time.perf_counter()
            _move(way, sock, (r, w), null, size, buf)
            times[way].append(time.perf_counter() - t0)
            sock.send(b"n")
    finally:
        sock.close()
        for fd in (r, w, null):
            os.close(fd)
        sender.join(10)
    return {way: 1e6 * statistics.median(t) for way, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--answer-mib", type=int, default=3)
    ap.add_argument("--batch", type=int, action="append", metavar="KIB",
                    help="record batch size in KiB (repeatable; default 16 and 64: a producer's default batch.size, and a larger one)")
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args(argv)
    if not hasattr(os, "splice"):
        print("splice(2) is Linux-only", file=sys.stderr)
        return 2
    print(f"{args.answer_mib} MiB answers, {args.rounds} of each way; median us per answer (excess over splice)")
    for batch in args.batch or [16, 64]:
        us: dict[str, Any] = run(args.answer_mib, batch, args.rounds)
        cells = [f"{way} {us[way]:7.0f}" + ("" if way == "splice" else f" (+{us[way] - us['splice']:.0f})") for way in WAYS]
        print(f"  batches of {batch:4d} KiB:  " + "   ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
