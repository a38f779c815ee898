"""What a client connection's Twisted shell needs from the gateway: a narrow, frozen value."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = ["ProxyContext"]


@attrs.frozen
class ProxyContext:
    adapters: Mapping[str, Any]  # protocol name -> loaded adapter (``listeners[].protocol``)
    engine: Any  # the policy engine (PolicyEngine): decide_now(inputs) -> decisions, or a Deferred of them
    clock: Any  # IReactorTime: callLater for the connection core's timers
    connect: Callable[[Any, Any], Any]  # (target, protocol) -> Deferred[protocol], connected
    opened: Callable[[Any], str | None]  # a client connection was accepted: a reason to refuse it, or None
    closed: Callable[[Any], None]  # a client connection ended
    offload: Callable[[Callable[[], Any]], Any]  # fn -> Deferred of fn() run on a worker thread
    approvals: Any = None  # gatekeeper.approvals.Approvals, or None when approvals are off
