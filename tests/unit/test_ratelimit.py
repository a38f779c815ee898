"""The pure rate-limiting values, driven with a hand-held clock."""

from __future__ import annotations

from gatekeeper.ratelimit import LogSampler, RepeatBackoff, TokenBucket


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert not bucket.take(0.05)  # half a token back
    assert bucket.take(0.1)  # one token back
    assert not bucket.take(0.1)
    assert [bucket.take(10.0) for _ in range(6)] == [True] * 5 + [False]  # refills to the burst only


def test_token_bucket_rate_zero_is_no_limit() -> None:
    bucket = TokenBucket(rate=0, burst=1)
    assert all(bucket.take(0.0) for _ in range(1000))


def test_repeat_backoff_doubles_for_repeats_and_resets_on_a_new_key_or_a_pause() -> None:
    b = RepeatBackoff(base=0.05, cap=1.0, window=1.0)
    assert [b.delay("x", t / 10) for t in range(8)] == [0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.delay("y", 0.8) == 0.0  # another denial: no penalty for the first of it
    assert b.delay("y", 0.9) == 0.05
    assert b.delay("y", 5.0) == 0.0  # the client paused longer than the window


def test_repeat_backoff_with_cap_zero_is_off() -> None:
    b = RepeatBackoff(base=0.05, cap=0.0, window=1.0)
    assert [b.delay("x", 0.0) for _ in range(5)] == [0.0] * 5


def test_log_sampler_admits_one_line_per_interval_and_counts_the_rest() -> None:
    s = LogSampler(interval=10.0)
    assert s.admit("a", 0.0) == 0
    assert [s.admit("a", t) for t in (1.0, 2.0, 3.0)] == [None, None, None]
    assert s.admit("b", 3.0) == 0  # keys are independent
    assert s.admit("a", 10.5) == 3  # the next line says how many were held back
    assert s.admit("a", 11.0) is None


def test_log_sampler_forgets_the_oldest_keys_beyond_its_bound() -> None:
    s = LogSampler(interval=10.0, max_keys=2)
    s.admit("a", 0.0)
    s.admit("b", 0.0)
    s.admit("c", 0.0)  # "a" is forgotten
    assert s.admit("a", 1.0) == 0
    assert s.admit("c", 1.0) is None
