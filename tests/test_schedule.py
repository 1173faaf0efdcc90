"""When feeds are polled next: intervals, server hints within caps, exponential backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.schedule import after_failure, after_success
from monitor.settings import ScheduleSettings

NOW = datetime(2025, 5, 16, 6, 0, tzinfo=UTC)
S = ScheduleSettings(jitter=0.1, min_interval=300, max_interval=86400, max_backoff=86400)


def minutes(dt: datetime) -> float:
    return (dt - NOW).total_seconds() / 60


@pytest.mark.parametrize(
    ("interval", "ttl", "max_age", "expected_min"),
    [
        (900, None, None, 15),  # the feed's own interval
        (60, None, None, 5),  # never below min_interval
        (900, 60, None, 60),  # RSS <ttl> stretches it
        (900, None, 7200, 120),  # Cache-Control max-age stretches it
        (900, 5, 60, 15),  # hints shorter than the interval do not shorten it
        (900, 100000, None, 1440),  # a huge <ttl> is capped at max_interval
    ],
)
def test_after_success(
    interval: int, ttl: int | None, max_age: int | None, expected_min: float
) -> None:
    assert minutes(after_success(NOW, interval, S, ttl_min=ttl, max_age_s=max_age)) == expected_min


def test_jitter_spreads_within_fraction() -> None:
    low = after_success(NOW, 900, S, spread=0.0)
    high = after_success(NOW, 900, S, spread=0.999)
    assert low < high <= NOW + timedelta(seconds=900 * 1.1)


@pytest.mark.parametrize(
    ("errors", "expected_min"),
    [
        (1, 15),
        (2, 30),
        (3, 60),
        (4, 120),
        (8, 1440),
        (50, 1440),
        (10_000, 1440),
    ],
)
def test_failures_back_off_exponentially_to_the_cap(errors: int, expected_min: float) -> None:
    assert minutes(after_failure(NOW, 900, errors, S)) == expected_min


def test_retry_after_is_honoured_within_cap() -> None:
    assert minutes(after_failure(NOW, 900, 1, S, retry_after_s=3600)) == 60
    assert minutes(after_failure(NOW, 900, 1, S, retry_after_s=10**9)) == 1440
    # a short Retry-After never makes us poll sooner than the backoff
    assert minutes(after_failure(NOW, 900, 3, S, retry_after_s=1)) == 60
