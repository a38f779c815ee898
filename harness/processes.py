"""Stopping the child processes the harness starts (broker, OPA, twistd)."""

from __future__ import annotations

import signal
import subprocess

__all__ = ["terminate"]


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` (SIGTERM), wait up to ``timeout`` seconds, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
