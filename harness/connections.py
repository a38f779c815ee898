"""Which processes connect to given TCP ports, watched while a test runs (Linux ``/proc``).

    with ConnectionWatch({broker.port}, allowed={gateway_pid, broker.pid}) as watch:
        ...  # clients run
    assert watch.offenders == {}

A client that should reach a broker only through a proxy, and follows an address the proxy
leaked, shows up as a process other than the proxy holding a connection to the broker's port.
Sampled (every 0.1 s and once at the end): a connection opened and closed between two samples
is missed, a client that keeps one open is not.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["ConnectionWatch"]


class ConnectionWatch:
    """In a thread, every 0.1 s: which processes hold established TCP connections to ``ports``.
    ``offenders`` maps each process not in ``allowed`` to its command line and the ports it
    reached. A context manager."""

    def __init__(self, ports: set[int], allowed: set[int]) -> None:
        self.ports, self.allowed = ports, allowed
        self.offenders: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="connection-watch", daemon=True)

    def __enter__(self) -> ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._check()  # a last look: a connection opened since the previous sample

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._check()

    def _check(self) -> None:
        sockets = _sockets_to(self.ports)
        if not sockets:
            return
        for pid in self.allowed:  # usually every socket is theirs: no need to look further
            for inode in _socket_inodes(pid):
                sockets.pop(inode, None)
        if not sockets:
            return
        for pid in (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()):
            if pid in self.allowed:
                continue
            reached = {sockets[inode] for inode in _socket_inodes(pid) if inode in sockets}
            if reached:
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    command = b"?"
                self.offenders[pid] = f"{command.decode(errors='replace')[:200]} -> ports {sorted(reached)}"


def _sockets_to(ports: set[int]) -> dict[int, int]:
    """{socket inode: remote port} of this namespace's established TCP connections to ``ports``
    (IPv4 and IPv6: a Java client's socket is often an IPv6 one to ::ffff:127.0.0.1)."""
    out: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if fields[3] == "01" and remote_port in ports:  # 01: ESTABLISHED
                out[int(fields[9])] = remote_port
    return out


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # gone, or not ours to read
        return inodes
    for fd in fds:
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return inodes
