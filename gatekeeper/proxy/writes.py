"""Writing to a peer: straight to the socket when nothing is queued for it.

Twisted's ``writeSequence`` queues the chunks, asks epoll to watch the socket for writability,
and sends them on a later reactor iteration, then stops watching: two ``epoll_ctl`` calls, a
poll round and a join of the chunks for every Kafka request and response Gatekeeper passes on.
When a plain TCP transport has nothing queued, ``write_through`` hands the chunks to the kernel
at once with one ``sendmsg`` (no join); whatever the kernel does not take is queued as usual,
behind nothing, so the order on the wire is kept. TLS (a started TLS connection or a TLS wrapper protocol),
anything that is not a TCP connection, a transport with queued data, one being closed, and any
socket error go Twisted's way (which also reports the error).
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Any

from twisted.internet import tcp

__all__ = ["nothing_queued", "write_through"]

_RETRY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EINTR)
_MAX_CHUNKS = 512  # stay well below the kernel's IOV_MAX (1024)


def write_through(transport: Any, chunks: Sequence[bytes]) -> None:
    # Only a TCP connection itself: a TLS wrapper protocol (listener TLS) forwards attribute
    # reads to the TCP transport beneath it, so its ``socket`` would be the raw one.
    sock = transport.socket if isinstance(transport, tcp.Connection) else None
    if (sock is None or transport.TLS or not nothing_queued(transport)
            or not chunks or len(chunks) > _MAX_CHUNKS):
        transport.writeSequence(chunks)
        return
    try:
        sent = sock.sendmsg(chunks)
    except OSError as e:
        if e.errno not in _RETRY:
            transport.writeSequence(chunks)  # Twisted meets the error on its own send and closes
            return
        sent = 0
    rest: list[bytes] = []
    for chunk in chunks:
        if sent >= len(chunk):
            sent -= len(chunk)
            continue
        rest.append(chunk[sent:] if sent else chunk)
        sent = 0
    if rest:
        transport.writeSequence(rest)


def nothing_queued(transport: tcp.Connection) -> bool:
    """True when bytes written to this connection's socket now are next on the wire: it is
    open for writing and Twisted holds nothing queued for it."""
    return bool(transport.connected and not transport.disconnecting and not transport._writeDisconnected
                and not transport._tempDataBuffer and len(transport.dataBuffer) == transport.offset)
