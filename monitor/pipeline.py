"""The orchestrator of one poll cycle: the only place where fetching, parsing, matching and
storage meet.

Read as a shell pipeline, a cycle is::

    due_feeds                                    # storage: feeds whose next poll time has come
      | xargs -P 20 conditional_get              # fetch: ETag/Last-Modified, limits, SSRF guard
      | parse | normalise                        # pure; in a worker process when there is one
      | drop_known                               # storage: identities this feed already has
      | match                                    # pure: the compiled watchlist
      | store_items_and_matches                  # storage: one transaction per feed (+ stories)
      | advance_validators                       # storage: only after the items are committed
    deliver immediate digests                    # alerts: after the cycle

A feed's failure (network, HTTP, parse) is recorded on the feed and the cycle goes on; an
unexpected exception surfaces. Nothing here reads the clock or settings from globals: both
come in through `CycleDeps`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Literal, Protocol

from monitor import schedule
from monitor.errors import FeedError, FetchError, ParseError
from monitor.settings import MonitorSettings
from monitor.types import FeedForUpdate, FeedUpdateIntent, FetchResult, Item, MatchResult

log = logging.getLogger(__name__)

FeedStatus = Literal["fetched", "not_modified", "failed"]


class Storage(Protocol):
    """What the pipeline needs from storage (monitor.store.Storage implements it)."""

    def known_identities(self, feed_id: int, identities: Sequence[str]) -> set[str]: ...

    def save_items(
        self,
        feed_id: int,
        items: Sequence[Item],
        results: Sequence[MatchResult | None],
        now: datetime,
    ) -> SaveReport: ...

    def update_feed(self, intent: FeedUpdateIntent) -> None: ...


class Fetcher(Protocol):
    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult: ...


class Matcher(Protocol):
    def match(self, item: Item) -> MatchResult: ...


@dataclass(frozen=True, slots=True)
class SaveReport:
    """What storage really added for one feed."""

    new_items: int
    new_matches: int


@dataclass(frozen=True, slots=True)
class ParseOutcome:
    """Result of parse + normalise, safe to send back from a worker process."""

    items: tuple[Item, ...] = ()
    title: str | None = None
    ttl_min: int | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None


def parse_and_normalise(
    body: bytes,
    url: str,
    headers: Mapping[str, str],
    now: datetime,
    max_items: int,
    feed_lang: str | None,
) -> ParseOutcome:
    """Bytes in, normalised items (or the reason the body is not a usable feed) out."""
    from monitor.normalize import normalize_entries
    from monitor.parse import parse_feed

    try:
        parsed = parse_feed(body, url=url, headers=headers)
    except ParseError as e:
        return ParseOutcome(error=e.reason)
    normalised = normalize_entries(parsed, now=now, max_items=max_items, feed_lang=feed_lang)
    warnings = (*((parsed.warning,) if parsed.warning else ()), *normalised.warnings)
    return ParseOutcome(
        items=normalised.items,
        title=parsed.title,
        ttl_min=parsed.ttl_min,
        warnings=tuple(warnings),
    )


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """How one feed's poll went."""

    feed_id: int
    url: str
    status: FeedStatus
    new_items: int = 0
    new_matches: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CycleReport:
    started_at: datetime
    finished_at: datetime
    outcomes: tuple[FeedOutcome, ...]
    watchlist_version: str | None

    def count(self, status: FeedStatus) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def new_items(self) -> int:
        return sum(o.new_items for o in self.outcomes)

    @property
    def new_matches(self) -> int:
        return sum(o.new_matches for o in self.outcomes)

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def line(self) -> str:
        """The one-line status of a cycle, as printed by `monitor run` and `monitor poll`."""
        return (
            f"{len(self.outcomes)} feeds: {self.count('fetched')} fetched, "
            f"{self.count('not_modified')} not modified, {self.count('failed')} failed; "
            f"{self.new_items} new items, {self.new_matches} new matches "
            f"in {self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class CycleDeps:
    """Everything a cycle works with, wired by the entry point."""

    storage: Storage
    fetcher: Fetcher
    matcher: Matcher | None
    settings: MonitorSettings
    clock: Callable[[], datetime]
    rand: random.Random = field(default_factory=random.Random)
    #: Parse in worker processes when given (parsing is the largest CPU cost of a cycle).
    executor: Executor | None = None
    #: Called after each feed, e.g. to advance a progress bar.
    on_feed: Callable[[FeedOutcome], None] | None = None
    #: Version of the watchlist the matcher was compiled from, recorded with the cycle.
    watchlist_version: str | None = None


async def run_cycle(deps: CycleDeps, feeds: Sequence[FeedForUpdate]) -> CycleReport:
    """Poll `feeds` concurrently (the fetcher enforces global and per-host limits).

    The event loop only does network I/O. Parsing runs in `deps.executor` (worker processes)
    or, without one, in the storage thread; matching and every database write run in one
    storage thread, so writes are serialised and a busy CPU never stalls fetches in flight
    (which would otherwise eat into their deadlines)."""
    started = deps.clock()
    with ThreadPoolExecutor(1, thread_name_prefix="monitor-store") as store:
        outcomes = await asyncio.gather(*(_poll_reported(deps, store, feed) for feed in feeds))
    return CycleReport(started, deps.clock(), tuple(outcomes), deps.watchlist_version)


async def _poll_reported(deps: CycleDeps, store: Executor, feed: FeedForUpdate) -> FeedOutcome:
    outcome = await poll_feed(deps, store, feed)
    if outcome.status == "failed":
        log.warning("feed %s failed: %s", feed.url, outcome.error)
    for warning in outcome.warnings:
        log.info("feed %s: %s", feed.url, warning)
    if deps.on_feed:
        deps.on_feed(outcome)
    return outcome


async def poll_feed(deps: CycleDeps, store: Executor, feed: FeedForUpdate) -> FeedOutcome:
    """Fetch, parse, match and store one feed; its failure is recorded, not raised."""
    loop = asyncio.get_running_loop()
    try:
        fetched = await deps.fetcher.fetch(
            feed.url, etag=feed.etag, last_modified=feed.last_modified
        )
    except FetchError as e:
        failure = partial(_record_failure, deps, feed, e.reason, e.status, e.retry_after_s)
        return await loop.run_in_executor(store, failure)
    now = deps.clock()
    if fetched.not_modified:
        intent = _success_intent(deps, feed, fetched, now, None, None)
        await loop.run_in_executor(store, deps.storage.update_feed, intent)
        return FeedOutcome(feed.id, feed.url, "not_modified")
    parsed = await loop.run_in_executor(
        deps.executor or store, _parse_job(deps, fetched, feed, now)
    )
    if parsed.error is not None:
        failure = partial(_record_failure, deps, feed, parsed.error, fetched.status, None)
        return await loop.run_in_executor(store, failure)
    return await loop.run_in_executor(store, partial(_store, deps, feed, fetched, parsed, now))


def _parse_job(
    deps: CycleDeps, fetched: FetchResult, feed: FeedForUpdate, now: datetime
) -> Callable[[], ParseOutcome]:
    """A picklable call of `parse_and_normalise`, for a worker process or a thread."""
    assert fetched.body is not None
    return partial(
        parse_and_normalise,
        fetched.body,
        fetched.url,
        dict(fetched.headers),
        now,
        deps.settings.http.max_items_per_feed,
        feed.lang,
    )


def _store(
    deps: CycleDeps, feed: FeedForUpdate, fetched: FetchResult, parsed: ParseOutcome, now: datetime
) -> FeedOutcome:
    """Keep the items this feed has not stored yet, match them, store items and matches in
    one transaction, and only then advance the feed's validators (a second transaction)."""
    items = parsed.items
    known = deps.storage.known_identities(feed.id, [i.identity for i in items])
    new = [i for i in items if i.identity not in known]
    report = SaveReport(0, 0)
    if new:
        matcher = deps.matcher
        results = [matcher.match(i) for i in new] if matcher else [None] * len(new)
        report = deps.storage.save_items(feed.id, new, results, now)
    intent = _success_intent(deps, feed, fetched, now, parsed.ttl_min, parsed.title)
    deps.storage.update_feed(intent)
    return FeedOutcome(
        feed.id, feed.url, "fetched", report.new_items, report.new_matches, None, parsed.warnings
    )


def _success_intent(
    deps: CycleDeps,
    feed: FeedForUpdate,
    fetched: FetchResult,
    now: datetime,
    ttl_min: int | None,
    title: str | None,
) -> FeedUpdateIntent:
    next_at = schedule.after_success(
        now,
        feed.interval_s,
        deps.settings.schedule,
        ttl_min=ttl_min,
        max_age_s=fetched.max_age_s,
        spread=deps.rand.random(),
    )
    return FeedUpdateIntent(
        feed_id=feed.id,
        fetched_at=now,
        next_fetch_at=next_at,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        ok=True,
        http_status=fetched.status,
        permanent_url=fetched.permanent_url,
        title=title,
        not_modified=fetched.not_modified,
    )


def _record_failure(
    deps: CycleDeps,
    feed: FeedForUpdate,
    reason: str,
    status: int | None,
    retry_after_s: int | None,
) -> FeedOutcome:
    now = deps.clock()
    next_at = schedule.after_failure(
        now,
        feed.interval_s,
        feed.error_count + 1,
        deps.settings.schedule,
        retry_after_s=retry_after_s,
        spread=deps.rand.random(),
    )
    deps.storage.update_feed(
        FeedUpdateIntent(
            feed_id=feed.id,
            fetched_at=now,
            next_fetch_at=next_at,
            ok=False,
            error=reason,
            http_status=status,
        )
    )
    return FeedOutcome(feed.id, feed.url, "failed", error=reason)


__all__ = [
    "CycleDeps",
    "CycleReport",
    "FeedError",
    "FeedOutcome",
    "ParseOutcome",
    "SaveReport",
    "parse_and_normalise",
    "poll_feed",
    "run_cycle",
]
