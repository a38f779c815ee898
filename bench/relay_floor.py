"""What relaying one Kafka-sized request and its answer costs in Python, before any Kafka logic.

    ~/.cache/gatekeeper/venv/bin/python bench/relay_floor.py [--requests N] [--size BYTES] [--rounds R]

A client process sends length-prefixed frames of ``--size`` bytes (default 46,000: a Produce
request of Kafka's Java producer with its defaults, about 45 records of 1 KiB) with up to 5 in
flight (the producer's ``max.in.flight.requests.per.connection``); a server process answers each
with a 100-byte frame. Between them runs a relay process, one of:

- ``twisted``: Gatekeeper's shell without the connection core: Twisted's epoll reactor with
  ``gatekeeper.proxy.dispatch``'s direct event dispatch, its TCP transports,
  ``gatekeeper.kafka.framing.FrameDecoder`` cutting the client's bytes into frames and
  ``gatekeeper.proxy.writes.write_through`` sending them (as ``twistd gatekeeper`` does);
- ``twisted-logged``: the same with Twisted's own dispatch (a legacy log context per event);
- ``twisted-bytes``: Twisted's own reactor and transports passing bytes on as they arrive,
  unframed;
- ``epoll``: a plain ``select.epoll`` loop in Python, ``recv_into`` a preallocated buffer and
  ``send``: the least Python a relay can run per request.

Each relay's CPU time (user + system, from ``/proc``) is divided by the requests relayed. The
variants run alternately, ``--rounds`` times each; the table gives each one's median and its
ratio to the ``epoll`` floor. The client and server are not measured.

This bounds what any change to Gatekeeper's per-request Python can win: the ``twisted`` row is
what the shell costs with no policy, decoding or audit at all. Compare it with
``bench/connection_micro.py`` (the core alone) and ``bench/throughput.py`` (the whole process).
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LOOPBACK = "127.0.0.1"
IN_FLIGHT = 5
ANSWER = 100
VARIANTS = ("epoll", "twisted-bytes", "twisted-logged", "twisted")


def process_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def read_exact(sock: socket.socket, n: int) -> bytes:
    parts, left = [], n
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise ConnectionError("closed")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


# -- the server: answers each frame with a 100-byte frame ----------------------------------------

def serve(port_file: str) -> None:
    lsock = socket.socket()
    lsock.bind((LOOPBACK, 0))
    lsock.listen(1)
    Path(port_file).write_text(str(lsock.getsockname()[1]))
    conn, _ = lsock.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    answer = struct.pack(">i", ANSWER - 4) + b"a" * (ANSWER - 4)
    try:
        while True:
            size = struct.unpack(">i", read_exact(conn, 4))[0]
            read_exact(conn, size)
            conn.sendall(answer)
    except (ConnectionError, OSError):
        pass


# -- the client: N frames, up to 5 in flight -----------------------------------------------------

def drive(port: int, requests: int, size: int) -> float:
    sock = socket.create_connection((LOOPBACK, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frame = struct.pack(">i", size - 4) + os.urandom(size - 4)
    sent = answered = 0
    start = time.perf_counter()
    while answered < requests:
        while sent < requests and sent - answered < IN_FLIGHT:
            sock.sendall(frame)
            sent += 1
        read_exact(sock, ANSWER)
        answered += 1
    elapsed = time.perf_counter() - start
    sock.close()
    return elapsed


# -- the relays ---------------------------------------------------------------------------------

def relay_epoll(listen_port_file: str, target: int) -> None:
    lsock = socket.socket()
    lsock.bind((LOOPBACK, 0))
    lsock.listen(1)
    Path(listen_port_file).write_text(str(lsock.getsockname()[1]))
    client, _ = lsock.accept()
    upstream = socket.create_connection((LOOPBACK, target))
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
    peer = {client.fileno(): upstream, upstream.fileno(): client}
    socks = {client.fileno(): client, upstream.fileno(): upstream}
    ep = select.epoll()
    for fd in socks:
        ep.register(fd, select.EPOLLIN)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while True:
        for fd, _ in ep.poll():
            n = socks[fd].recv_into(buf)
            if not n:
                return
            out, done = peer[fd], 0
            while done < n:  # loopback: the peer's buffer is large enough; block briefly if not
                try:
                    done += out.send(view[done:n])
                except BlockingIOError:
                    select.select([], [out], [])


def relay_twisted(listen_port_file: str, target: int, framed: bool, direct: bool) -> None:
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import protocol, reactor

    from gatekeeper.proxy.dispatch import dispatch_directly

    if direct and not dispatch_directly(reactor):
        raise SystemExit("the direct dispatch did not install")

    from gatekeeper.kafka.framing import FrameDecoder
    from gatekeeper.proxy.upstream import no_delay
    from gatekeeper.proxy.writes import write_through

    class Upstream(protocol.Protocol):
        transport: Any

        def __init__(self, client: Any) -> None:
            self.client = client

        def connectionMade(self) -> None:
            no_delay(self.transport)
            self.client.upstream = self
            self.client.transport.resumeProducing()

        def dataReceived(self, data: bytes) -> None:
            write_through(self.client.transport, [data])

    class Client(protocol.Protocol):
        transport: Any
        upstream: Upstream | None = None

        def connectionMade(self) -> None:
            no_delay(self.transport)
            self.transport.pauseProducing()
            self.decoder = FrameDecoder(1 << 24) if framed else None
            protocol.ClientCreator(reactor, Upstream, self).connectTCP(LOOPBACK, target)

        def dataReceived(self, data: bytes) -> None:
            assert self.upstream is not None
            if self.decoder is None:
                write_through(self.upstream.transport, [data])
                return
            self.decoder.receive_data(data)
            while (frame := self.decoder.next_frame()) is not None:
                write_through(self.upstream.transport, [struct.pack(">i", len(frame)), frame])

        def connectionLost(self, reason: object = None) -> None:
            reactor.stop()

    factory: Any = protocol.Factory.forProtocol(Client)
    port = reactor.listenTCP(0, factory, interface=LOOPBACK)  # type: ignore[attr-defined]
    Path(listen_port_file).write_text(str(port.getHost().port))  # type: ignore[attr-defined]
    reactor.run()


# -- one measured run ----------------------------------------------------------------------------

def spawn(*args: str) -> subprocess.Popen[bytes]:
    """This script in a process of its own (``--serve`` or ``--relay``)."""
    return subprocess.Popen([sys.executable, __file__, *args])


def wait_for_port(path: Path, proc: subprocess.Popen[bytes]) -> int:
    """The port ``proc`` wrote to ``path`` once it listened."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return int(path.read_text())
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        time.sleep(0.02)
    raise RuntimeError(f"{proc.args!r} did not listen")


def measure(variant: str, requests: int, size: int, tmp: Path) -> tuple[float, float, float]:
    """(relay user and system CPU µs per request, client's requests per second) for one run."""
    for f in ("server.port", "relay.port"):
        (tmp / f).unlink(missing_ok=True)
    server = spawn("--serve", str(tmp / "server.port"))
    relay = None
    try:
        target = wait_for_port(tmp / "server.port", server)
        relay = spawn("--relay", variant, str(tmp / "relay.port"), str(target))
        port = wait_for_port(tmp / "relay.port", relay)
        time.sleep(0.2)  # the interpreter's start-up is not the relay's per-request cost
        user, system = process_cpu(relay.pid)
        elapsed = drive(port, requests, size)
        user_after, system_after = process_cpu(relay.pid)
        return 1e6 * (user_after - user) / requests, 1e6 * (system_after - system) / requests, requests / elapsed
    finally:
        for p in (relay, server):
            if p is not None:
                p.kill()
                p.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--size", type=int, default=46000, help="request frame size in bytes")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--relay", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if args.relay:
        variant, port_file, target = args.relay
        if variant == "epoll":
            relay_epoll(port_file, int(target))
        else:
            relay_twisted(port_file, int(target), framed=variant != "twisted-bytes", direct=variant == "twisted")
        return 0
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="relay-floor-"))
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    user: dict[str, list[float]] = {v: [] for v in VARIANTS}
    rate: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for rnd in range(args.rounds):
        order = VARIANTS if rnd % 2 == 0 else tuple(reversed(VARIANTS))
        for v in order:
            us_user, us_system, rps = measure(v, args.requests, args.size, tmp)
            cpu[v].append(us_user + us_system)
            user[v].append(us_user)
            rate[v].append(rps)
            print(f"round {rnd + 1} {v:14} {us_user + us_system:7.1f} µs CPU per request ({us_user:.1f} user)"
                  f"  {rps:8.0f} requests/s", flush=True)
    floor = statistics.median(cpu["epoll"])
    print(f"\n{args.requests} requests of {args.size:,} bytes, {IN_FLIGHT} in flight, answers of {ANSWER} bytes;"
          f" median of {args.rounds} rounds")
    print("| relay | CPU per request (user+system) | of which user | ratio to epoll | requests/s |")
    print("|---|---|---|---|---|")
    for v in VARIANTS:
        med = statistics.median(cpu[v])
        print(f"| {v} | {med:.1f} µs | {statistics.median(user[v]):.1f} µs | {med / floor:.2f} |"
              f" {statistics.median(rate[v]):,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
