"""Retry backoff: full jitter under a capped exponential ceiling, never earlier than the provider asked."""

from __future__ import annotations

import random

import pytest

from orchestrator.runtime.retry import MAX_DELAY, MAX_RETRY_AFTER, backoff_delay


class Fixed(random.Random):
    """A random source that always draws ``value`` (so bounds can be checked exactly)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, MAX_DELAY), (80, MAX_DELAY)]
)
def test_ceiling_doubles_per_attempt_up_to_the_cap(attempt: int, ceiling: float) -> None:
    """The top of the jitter range is base * 2^(attempt-1), capped; the bottom is 0."""
    assert backoff_delay(attempt, rng=Fixed(1.0)) == ceiling
    assert backoff_delay(attempt, rng=Fixed(0.0)) == 0.0


def test_delays_are_spread_not_synchronised() -> None:
    """A thousand sends failing together come back at many different times (full jitter)."""
    rng = random.Random(7)
    delays = [backoff_delay(5, rng=rng) for _ in range(1000)]
    assert min(delays) < 1.0 and max(delays) > 15.0
    assert len({round(delay, 3) for delay in delays}) > 900


def test_retry_after_is_a_floor_with_bounded_jitter() -> None:
    """With Retry-After the wait is at least that, plus at most a quarter of it in jitter."""
    assert backoff_delay(1, 30.0, rng=Fixed(0.0)) == 30.0
    assert backoff_delay(10, 30.0, rng=Fixed(1.0)) == 37.5
    assert 30.0 <= backoff_delay(2, 30.0) <= 37.5


def test_absurd_retry_after_is_clamped() -> None:
    """A Retry-After of days is treated as an hour, so a bad header cannot park a send for good."""
    assert backoff_delay(1, 10 * 86400.0, rng=Fixed(0.0)) == MAX_RETRY_AFTER


def test_zero_or_missing_retry_after_falls_back_to_backoff() -> None:
    """Retry-After: 0 means 'no opinion': the normal jittered backoff applies."""
    assert backoff_delay(3, 0.0, rng=Fixed(0.5)) == 2.0
    assert backoff_delay(3, None, rng=Fixed(0.5)) == 2.0


def test_attempt_numbers_start_at_one() -> None:
    """Attempt 0 is a caller bug, reported as such."""
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(0)
