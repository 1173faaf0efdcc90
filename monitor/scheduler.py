"""`monitor run`: APScheduler 3 jobs only — the polling tick and the digest channels' crons."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.pipeline import CycleReport
from monitor.service import Monitor

log = logging.getLogger(__name__)


def build_scheduler(
    monitor: Monitor,
    on_cycle: Callable[[CycleReport], None],
    first_run: datetime,
) -> BlockingScheduler:
    """A scheduler with one polling job every `tick` and one job per cron digest channel.

    Schedule state lives in the database (each feed's next_fetch_at), so the jobs themselves
    need no job store: a restart resumes where the last run stopped."""
    settings = monitor.config.settings
    scheduler = BlockingScheduler(
        executors={"default": ThreadPoolExecutor(2)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        timezone="UTC",
    )
    lock = threading.Lock()  # polls and digests never write at the same time

    def tick() -> None:
        with lock:
            on_cycle(monitor.poll())
            monitor.deliver("retry")

    scheduler.add_job(
        tick,
        IntervalTrigger(seconds=settings.schedule.tick, jitter=int(settings.schedule.tick * 0.1)),
        id="poll",
        next_run_time=first_run,
    )
    for name, channel in settings.channels.items():
        if not channel.enabled or channel.schedule == "immediate":
            continue

        def send(name: str = name) -> None:
            with lock:
                monitor.deliver("schedule", name)

        trigger = CronTrigger.from_crontab(channel.schedule, timezone=channel.timezone)
        scheduler.add_job(send, trigger, id=f"digest:{name}")
    return scheduler


def run_forever(monitor: Monitor, on_cycle: Callable[[CycleReport], None]) -> None:
    """Poll until SIGINT or SIGTERM; the cycle under way finishes (or is cut at its deadline)."""
    scheduler = build_scheduler(monitor, on_cycle, monitor.clock() + timedelta(seconds=0.1))

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping after the current cycle", signal.Signals(signum).name)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.start()
