"""Wires one poll cycle together: config reload, feed sync, the pipeline, cycle records, digests."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from alerts.service import deliver, retry_due
from monitor.errors import ConfigError, MonitorError, StorageError, WatchlistError
from monitor.fetch import Fetcher
from monitor.match import Matcher, MatcherCache
from monitor.parsejob import MatcherHandoff, WatchlistRef, start_worker
from monitor.pipeline import CycleDeps, CycleReport, FeedOutcome, run_cycle
from monitor.settings import Config, load_config
from monitor.similarity import load_seed_index
from monitor.store import Storage
from monitor.store.items import CycleSummary
from monitor.types import FeedForUpdate

log = logging.getLogger(__name__)


@dataclass
class Monitor:
    """The long-lived state of a running monitor: config, storage and the current watchlist."""

    config: Config
    storage: Storage
    clock: Callable[[], datetime]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    matchers: MatcherCache = field(init=False)
    _pool: Executor | None = field(default=None, init=False)
    _handoff: MatcherHandoff = field(default_factory=MatcherHandoff, init=False)
    _feeds_stamp: tuple[int, int] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        corpus = Path(self.config.settings.matching.corpus)
        try:
            seeds = load_seed_index(corpus)
        except ConfigError as e:
            log.warning("no seed similarity in scores: %s", e)
            seeds = None
        self.matchers = MatcherCache(seeds)

    def reload(self) -> None:
        """Pick up edits of feeds.yaml (re-read only when the file changed); a bad edit keeps
        what was in force."""
        stamp = _stamp(self.config.directory / "feeds.yaml")
        if stamp == self._feeds_stamp and stamp is not None:
            return
        try:
            fresh = load_config(self.config.directory, self.env)
        except ConfigError as e:
            log.error("configuration not reloaded, the previous one stays in force: %s", e)
            for problem in e.problems:
                log.error("  %s", problem)
        else:
            self.config = Config(self.config.directory, self.config.settings, fresh.feeds)
        self.storage.sync_feeds(self.config.feeds, self.clock())
        self._feeds_stamp = stamp

    def matcher(self) -> Matcher | None:
        """The watchlist in force, recompiled when the file changed."""
        path = self.config.watchlist_path
        try:
            return self.matchers.reload(path)
        except WatchlistError as e:
            log.error("watchlist not reloaded, the previous one stays in force: %s", e)
            for problem in e.problems:
                log.error("  %s", problem)
            return self.matchers.matcher

    def poll(
        self,
        urls: Sequence[str] | None = None,
        *,
        due_only: bool = True,
        on_start: Callable[[int], None] | None = None,
        on_feed: Callable[[FeedOutcome], None] | None = None,
    ) -> CycleReport:
        """Run one cycle over the due feeds (or the named or all enabled ones), then deliver
        immediate digests."""
        self.reload()
        matcher = self.matcher()
        now = self.clock()
        settings = self.config.settings
        if urls or not due_only:
            feeds = self.storage.selected_feeds(urls)
        else:
            feeds = self.storage.due_feeds(now, settings.schedule.batch_size)
        if on_start:
            on_start(len(feeds))
        version = matcher.watchlist.version if matcher else None
        cycle_id = self.storage.start_cycle(now, version)
        with self.storage.checkpointing():
            report = asyncio.run(self._run(feeds, matcher, version, on_feed))
        self.storage.finish_cycle(cycle_id, _summary(report))
        if report.new_matches:
            self.deliver("immediate")
        self._settle_log()
        return report

    def _settle_log(self) -> None:
        """A large cycle's writes copied into the database file (SQLite), after its digests
        went out (`Storage.settle_log`); a failure is logged (the log keeps every write)."""
        try:
            self.storage.settle_log()
        except StorageError as e:
            log.warning("%s", e)

    async def _run(
        self,
        feeds: Sequence[FeedForUpdate],
        matcher: Matcher | None,
        version: str | None,
        on_feed: Callable[[FeedOutcome], None] | None,
    ) -> CycleReport:
        async with Fetcher(self.config.settings.http) as fetcher:
            deps = CycleDeps(
                storage=self.storage,
                fetcher=fetcher,
                matcher=matcher,
                settings=self.config.settings,
                clock=self.clock,
                parse_pool=self._parse_pool,
                parse_pool_broken=self._discard_pool,
                parallel_from=self.config.settings.schedule.parallel_from,
                on_feed=on_feed,
                watchlist_version=version,
                watchlist=self._watchlist_ref(version),
            )
            return await run_cycle(deps, feeds)

    def _watchlist_ref(self, version: str | None) -> WatchlistRef | None:
        if version is None:
            return None
        corpus = Path(self.config.settings.matching.corpus)
        return WatchlistRef(
            str(self.config.watchlist_path.resolve()),
            version,
            str(corpus.resolve()) if corpus.is_dir() else None,
        )

    def _parse_pool(self) -> Executor | None:
        """Worker processes for parsing and matching, started on first demand and kept."""
        workers = self.config.settings.schedule.parse_workers
        if workers < 0:
            cores = os.cpu_count() or 1
            workers = cores if cores > 1 else 0
        if self._pool is None and workers > 0:
            # spawn: no fork server process (14 MB) beside the workers, and safe with threads
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                workers,
                mp_context=context,
                initializer=start_worker,
                initargs=(os.getpid(), self._handoff.path_for(self.matchers.matcher)),
            )
        return self._pool

    def _discard_pool(self) -> None:
        """Drop a pool whose worker died; the next cycle that needs one starts a fresh one."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._handoff.close()

    def close(self) -> None:
        """Stop the parsing processes, if any were started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._handoff.close()

    def deliver(
        self, trigger: Literal["immediate", "schedule", "retry"], channel: str | None = None
    ) -> None:
        """Send the digests due on `trigger` ("retry": only re-sends whose time has come);
        a failing channel is logged and retried later, never raised."""
        settings = self.config.settings
        templates = (
            self.config.directory / settings.digest.templates if settings.digest.templates else None
        )
        try:
            if trigger == "retry":
                reports = retry_due(
                    self.storage.engine,
                    settings,
                    now=self.clock(),
                    env=self.env,
                    templates=templates,
                )
            else:
                reports = deliver(
                    self.storage.engine,
                    settings,
                    now=self.clock(),
                    trigger=trigger,
                    channel=channel,
                    env=self.env,
                    templates=templates,
                )
        except MonitorError as e:
            log.error("digest delivery failed: %s", e)
            return
        for report in reports:
            log.info("%s", report)


def _stamp(path: Path) -> tuple[int, int] | None:
    """(modification time, size) of a file, to tell whether it changed; None if absent."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _summary(report: CycleReport) -> CycleSummary:
    return CycleSummary(
        started_at=report.started_at,
        finished_at=report.finished_at,
        feeds_fetched=report.count("fetched"),
        feeds_not_modified=report.count("not_modified"),
        feeds_failed=report.count("failed"),
        new_items=report.new_items,
        new_matches=report.new_matches,
    )
