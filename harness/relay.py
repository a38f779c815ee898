"""A TCP relay for fault tests: a stretch of network whose stalls and delays the test controls.

    with Relay(listen_port, "127.0.0.1:9092") as relay:
        relay.stall(True)            # nothing is forwarded, either way, until stall(False)
        relay.delay("response", 2)   # every chunk the target sends is held 2 s before it goes on

It runs its own asyncio loop in a daemon thread, outside whatever it sits in front of; the
control methods are thread-safe and take effect at once. Directions: ``"request"`` (from the
connecting side to the target) and ``"response"`` (back).

- A **stall** holds every byte already read and every new connection's connect to the target; the
  connections stay open (as on a network that drops packets, TCP keeps them), and when the stall
  ends everything held is delivered in order. Nothing is lost or reordered by the relay itself.
- A **delay** holds each chunk for that many seconds after it was read, keeping order; chunks
  that arrive together leave together (a delay, not a bandwidth limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from harness.ports import LOOPBACK

__all__ = ["DIRECTIONS", "Relay"]

DIRECTIONS = ("request", "response")
_CHUNK = 256 * 1024


class Relay:
    """A controllable TCP relay from ``LOOPBACK:listen_port`` to ``target`` (``host:port``)."""

    def __init__(self, listen_port: int, target: str) -> None:
        self.listen_port = listen_port
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self._delays = dict.fromkeys(DIRECTIONS, 0.0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._flowing: asyncio.Event | None = None  # set when not stalled
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0  # accepted so far
        self.bytes = dict.fromkeys(DIRECTIONS, 0)  # forwarded so far

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.listen_port}"

    # -- control (any thread) ----------------------------------------------------------------

    def start(self) -> Relay:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._listen())
            except BaseException as e:  # reported to start()'s caller
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"relay-{self.listen_port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close the listener and every connection; the thread ends."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def stall(self, on: bool) -> None:
        """Stop (True) or resume (False) forwarding, in both directions."""
        self._call(lambda: self._flowing.clear() if on else self._flowing.set())  # type: ignore[union-attr]

    def delay(self, direction: str, seconds: float) -> None:
        """Hold every chunk going ``direction`` for ``seconds`` (0: none)."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        self._delays[direction] = float(seconds)

    def cut(self) -> None:
        """Abort every open connection (both sides); new ones are accepted as before."""
        self._call(self._abort_all)

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        self.stall(True)
        try:
            yield
        finally:
            self.stall(False)

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the loop's side -------------------------------------------------------------------------

    def _call(self, fn: Any) -> None:
        if self._loop is None:
            raise RuntimeError("relay not started")
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accepted, LOOPBACK, self.listen_port,
                                                  reuse_address=True)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self._abort_all()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accepted(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(client_w)
        assert self._flowing is not None
        try:
            await self._flowing.wait()
            target_r, target_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            self._writers.discard(client_w)
            return
        self._writers.add(target_w)
        await asyncio.gather(self._pipe(client_r, target_w, "request", client_w),
                             self._pipe(target_r, client_w, "response", target_w))
        self._writers.discard(client_w)
        self._writers.discard(target_w)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, direction: str,
                    src_w: asyncio.StreamWriter) -> None:
        """Read from one side into a queue; a second task writes it out when due and flowing."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        writer = asyncio.create_task(self._drain(queue, dst, direction))
        try:
            while True:
                data = await src.read(_CHUNK)
                await queue.put((time.monotonic(), data))
                if not data:
                    break
        except OSError:
            await queue.put((time.monotonic(), b""))
        with contextlib.suppress(OSError):
            await writer

    async def _drain(self, queue: asyncio.Queue[tuple[float, bytes]], dst: asyncio.StreamWriter,
                     direction: str) -> None:
        assert self._flowing is not None
        while True:
            read_at, data = await queue.get()
            due = read_at + self._delays[direction]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._flowing.wait()
            if not data:  # the source closed: pass the close on
                dst.close()
                return
            self.bytes[direction] += len(data)  # counted before it can arrive: a reader never sees more than counted
            dst.write(data)
            await dst.drain()
