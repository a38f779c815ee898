"""Waiting for a condition in tests: poll it with a deadline instead of sleeping a guess."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["WaitTimeout", "wait_for"]

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition a test waited for never became true (a test failure, not a harness bug)."""


def wait_for(
    predicate: Callable[[], T], timeout: float, what: str, *, interval: float = 0.1,
    detail: Callable[[], str] | None = None,
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy; return that.

    After ``timeout`` seconds raise :class:`WaitTimeout` naming ``what`` was awaited, followed by
    ``detail()`` (e.g. a log tail) if given. Blocking: call it from a test or a thread, never from
    the reactor.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:g}s waiting for {what}"
            if detail is not None:
                message += "\n" + detail()
            raise WaitTimeout(message)
        time.sleep(interval)
