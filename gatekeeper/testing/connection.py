"""A fake shell for driving a sans-I/O connection core directly, without transports or a reactor.

- ``RecordingIO``: a :class:`gatekeeper.api.ConnectionIO` that records what the core does
  (bytes to the client and to the broker, broker connects, closes, pauses, held approvals,
  offloaded work, decisions asked) for a test to look at and answer. Options cover the other
  users: count the bytes instead of keeping them (a benchmark, a fuzz run), answer decisions
  from a policy engine's ``decide_many``, run offloaded work at once, and make ``close`` or
  ``hold`` end the run (``SystemExit``) where the core must never call them.
- ``split_frames(data)``: the frames of a stream of size-prefixed frames (a 4-byte big-endian
  size, as Kafka and Pulsar frame theirs), without their size.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import task

from gatekeeper.api import ConnectionIO

__all__ = ["RecordingIO", "split_frames"]


def split_frames(data: bytes) -> list[bytes]:
    """The frames in ``data``, each without its 4-byte size."""
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">i", data, pos)
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


class RecordingIO(ConnectionIO):
    """The shell of one connection core, recorded.

    What the core did: ``client`` and ``upstream``, the bytes of each write (while ``keep``;
    ``client_bytes`` and ``upstream_bytes`` count them always), ``targets`` (broker connects),
    ``closed`` (one ``abort_upstream`` per close), ``paused``, ``holds`` (``(token, requests,
    wait)``, for the test to answer with ``core.held``), ``offloaded`` (``(work, done)``, run by
    ``run_offloaded``) and ``asked`` (``(token, inputs)``, for the test to answer with
    ``core.decided``). Timers run on ``clock``.

    Options: ``keep=False`` counts the bytes written without keeping them (settable later, e.g.
    after a first request was checked); ``engine`` (a ``PolicyEngine``) answers every decision
    through its ``decide_now`` (to ``core``, which must then be set) instead of keeping it in ``asked``;
    ``offload_inline`` runs offloaded work at once; ``close_raises`` and ``hold_raises``, when
    given, make that call raise ``SystemExit`` with the message (a ``BaseException``: the core
    does not catch it as its own error) instead of being recorded; ``principal`` is what
    ``peer_principal`` returns (a verified client certificate's principal).
    """

    def __init__(self, clock: task.Clock | None = None, *, keep: bool = True, engine: Any = None,
                 offload_inline: bool = False, close_raises: str | None = None,
                 hold_raises: str | None = None, principal: Any = None) -> None:
        self.clock = task.Clock() if clock is None else clock
        self.keep = keep
        self.engine = engine
        self.offload_inline = offload_inline
        self.close_raises = close_raises
        self.hold_raises = hold_raises
        self.principal = principal
        self.core: Any = None  # the connection core that ``engine``'s decisions go to
        self.client: list[bytes] = []
        self.upstream: list[bytes] = []
        self.client_bytes = 0
        self.upstream_bytes = 0
        self.targets: list[Any] = []
        self.asked: list[tuple[int, list[dict[str, Any]]]] = []
        self.closed: list[bool] = []
        self.paused = False
        self.offloaded: list[tuple[Callable[[], Any], Callable[[Any], None]]] = []
        self.holds: list[tuple[int, list[dict[str, Any]], float]] = []

    # -- the ConnectionIO calls -------------------------------------------------------------------

    def to_client(self, data: Sequence[bytes]) -> None:
        if self.keep:
            self.client.append(b"".join(data))
        self.client_bytes += sum(map(len, data))

    def to_upstream(self, data: Sequence[bytes]) -> None:
        if self.keep:
            self.upstream.append(b"".join(data))
        self.upstream_bytes += sum(map(len, data))

    def connect_upstream(self, target: Any) -> None:
        self.targets.append(target)

    def decide(self, token: int, inputs: list[dict[str, Any]]) -> None:
        if self.engine is None:
            self.asked.append((token, inputs))
            return
        core = self.core
        d = self.engine.decide_now(inputs)
        if type(d) is list:  # as the gateway's shell: cached decisions answered now
            core.decided(token, d)
            return
        d.addCallbacks(lambda decisions: core.decided(token, decisions),
                       lambda f: core.decision_failed(token, f.getErrorMessage()))

    def close(self, abort_upstream: bool = False) -> None:
        if self.close_raises is not None:
            raise SystemExit(self.close_raises)
        self.closed.append(abort_upstream)

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Any:
        return self.clock.callLater(seconds, fn)

    def pause_client(self) -> None:
        self.paused = True

    def resume_client(self) -> None:
        self.paused = False

    def peer_principal(self) -> Any:
        return self.principal

    def hold(self, token: int, requests: list[dict[str, Any]], wait: float) -> None:
        if self.hold_raises is not None:
            raise SystemExit(self.hold_raises)
        self.holds.append((token, requests, wait))

    def offload(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        if self.offload_inline:
            _run(work, done)
        else:
            self.offloaded.append((work, done))

    # -- for the test ------------------------------------------------------------------------------

    def run_offloaded(self) -> None:
        """Run the work offloaded so far, in order, as the shell's worker threads would: ``done``
        gets the exception if ``work`` raised one."""
        jobs, self.offloaded = self.offloaded, []
        for work, done in jobs:
            _run(work, done)

    def client_frames(self) -> list[bytes]:
        """The frames written to the client (kept ones), each without its size."""
        return split_frames(b"".join(self.client))

    def upstream_frames(self) -> list[bytes]:
        """The frames written to the broker (kept ones), each without its size."""
        return split_frames(b"".join(self.upstream))


def _run(work: Callable[[], Any], done: Callable[[Any], None]) -> None:
    try:
        result = work()
    except Exception as e:  # handed to ``done``, as the shell's deferToThread hands a failure over
        result = e
    done(result)
