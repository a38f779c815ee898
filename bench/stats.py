"""How far a benchmark's median ratio can be trusted: a distribution-free confidence interval.

Single rounds of the throughput benchmarks scatter by ±15-25% on a shared 2-core machine, so a
median over a few rounds says little on its own. ``median_interval`` gives the interval that
holds the true median with at least the asked confidence, from the order statistics alone (no
assumption about how rounds scatter): with n rounds, the k-th smallest and the k-th largest,
where k is the largest rank such that a fair coin gives fewer than k heads in n tosses with
probability at most (1 - confidence) / 2. Fewer than 6 rounds cannot give a 95% interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

__all__ = ["median_interval"]


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """(low, high) holding the median of the population ``values`` were drawn from with at
    least ``confidence``; None when there are too few values for it."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    n = len(values)
    tail = (1 - confidence) / 2
    k, below = 0, 0.0  # below: P(fewer than k + 1 heads) as k grows
    while k < n // 2:
        below += comb(n, k) / 2**n
        if below > tail:
            break
        k += 1
    if k == 0:
        return None
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k]
