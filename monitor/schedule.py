"""Pure decisions on when a feed is polled next (intervals, server hints, backoff, jitter)."""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.settings import ScheduleSettings


def after_success(
    now: datetime,
    interval_s: float,
    settings: ScheduleSettings,
    *,
    ttl_min: int | None = None,
    max_age_s: int | None = None,
    spread: float = 0.0,
) -> datetime:
    """Next poll after a good fetch: the feed's interval, stretched by RSS <ttl> or
    Cache-Control/Expires, within [min_interval, max_interval], plus jitter (`spread` in [0, 1))."""
    wait = max(interval_s, settings.min_interval)
    hints = [h for h in ((ttl_min or 0) * 60, max_age_s or 0) if h > 0]
    if hints:
        wait = max(wait, min(max(hints), settings.max_interval))
    wait = min(wait, max(settings.max_interval, settings.min_interval))
    return now + timedelta(seconds=wait * (1 + settings.jitter * spread))


def after_failure(
    now: datetime,
    interval_s: float,
    error_count: int,
    settings: ScheduleSettings,
    *,
    retry_after_s: int | None = None,
    spread: float = 0.0,
) -> datetime:
    """Next poll after the `error_count`-th consecutive failure: exponential backoff from the
    interval up to max_backoff (a failing feed is retried at the cap, never dropped); a server's
    Retry-After is honoured up to max_interval."""
    base = max(interval_s, settings.min_interval)
    exponent = max(error_count - 1, 0)
    wait = base * 2.0**exponent if exponent < 32 else settings.max_backoff
    wait = min(wait, settings.max_backoff)
    if retry_after_s:
        wait = max(wait, min(float(retry_after_s), settings.max_interval))
    return now + timedelta(seconds=wait * (1 + settings.jitter * spread))
