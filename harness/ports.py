"""Free TCP ports on the loopback interface, picked at run time."""

from __future__ import annotations

import random
import socket

LOOPBACK = "127.0.0.1"


# Every port handed out by this process: never handed out twice, so ports picked one by one
# (a listener's bind, its broker_ports range, the admin port) cannot collide with each other.
_GIVEN: set[int] = set()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now and that this process
    has not handed out before.

    The port is found by binding to port 0 and closing the socket, so another process could
    take it before the caller binds it; on a test machine that race is rare enough.
    """
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free ports (all held open until every one is chosen), none
    handed out by this process before."""
    socks = []
    try:
        chosen: list[int] = []
        for _ in range(count + 100):
            if len(chosen) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)  # held bound: the kernel gives the next one another port
            sock.bind((LOOPBACK, 0))
            port: int = sock.getsockname()[1]
            if port not in _GIVEN:
                chosen.append(port)
        if len(chosen) < count:
            raise RuntimeError(f"no {count} free ports found on {LOOPBACK}")
        _GIVEN.update(chosen)
        return chosen
    finally:
        for sock in socks:
            sock.close()


def free_port_range(count: int, attempts: int = 200) -> list[int]:
    """``count`` consecutive free loopback ports (for a listener's broker_ports)."""
    rng = random.Random()
    for _ in range(attempts):
        base = rng.randrange(20000, 60000 - count)
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((LOOPBACK, port))
            if not given(list(range(base, base + count))):  # a port this process handed out already
                continue
            return list(range(base, base + count))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports found on {LOOPBACK}")


def given(ports: list[int]) -> bool:
    """Mark ``ports`` handed out (False, marking none, when any of them was already)."""
    if _GIVEN.intersection(ports):
        return False
    _GIVEN.update(ports)
    return True


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Return True if a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
