"""bench.stats.median_interval: the order-statistic confidence interval of a median."""

from __future__ import annotations

import random
from math import comb

import pytest

from bench.stats import median_interval


def _coverage(n: int, k: int) -> float:
    """P(the k-th smallest <= median <= the k-th largest) for n draws of a continuous variable."""
    return 1 - 2 * sum(comb(n, i) for i in range(k)) / 2**n


def test_too_few_rounds_give_no_95_percent_interval() -> None:
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # min..max covers only 93.75%
    assert median_interval([]) is None


def test_six_rounds_give_the_extremes() -> None:
    assert median_interval([0.9, 0.7, 1.1, 0.8, 1.0, 0.95]) == (0.7, 1.1)  # covers 96.9%


@pytest.mark.parametrize("n", [6, 9, 15, 30, 45, 100])
def test_ranks_are_the_tightest_that_keep_the_confidence(n: int) -> None:
    values = [float(i) for i in range(1, n + 1)]
    interval = median_interval(values)
    assert interval is not None
    k = int(interval[0])  # the rank of the low end
    assert interval[1] == n + 1 - k  # symmetric ranks
    assert _coverage(n, k) >= 0.95
    assert k + 1 > n // 2 or _coverage(n, k + 1) < 0.95  # one rank tighter would not hold


def test_the_interval_holds_the_median_as_often_as_it_says() -> None:
    rng = random.Random(7)
    held = 0
    trials = 2000
    for _ in range(trials):
        rounds = [rng.gauss(0.9, 0.1) for _ in range(30)]
        low, high = median_interval(rounds) or (0.0, 0.0)
        held += low <= 0.9 <= high
    assert held / trials >= 0.93  # 95% nominal (at least 95.7% for n = 30), with sampling slack


def test_confidence_must_be_a_probability() -> None:
    with pytest.raises(ValueError):
        median_interval([1.0] * 10, confidence=1.0)
