"""The orchestrator of one poll cycle: the only place where fetching, parsing, matching and
storage meet.

Read as a shell pipeline, a cycle is::

    due_feeds                                    # storage: feeds whose next poll time has come
      | xargs -P 20 conditional_get              # fetch: ETag/Last-Modified, limits, SSRF guard
      | parse | normalise                        # pure; in a worker process when there is one
      | drop_known                               # storage: identities this feed already has
      | match                                    # pure: the compiled watchlist
      | store_items_and_matches                  # storage: one transaction for the feeds
                                                 #   waiting together (group commit)
      | advance_validators                       # storage: only after the items are committed
    assign_stories                               # storage: the cycle's new items, one batch
                                                 #   (every 50,000 in a huge backfill)
    deliver immediate digests                    # alerts: after the cycle

At most 2 × concurrency feeds are between request and storage at once (`feeds_in_flight`).
A feed's failure (network, HTTP, parse) is recorded on the feed and the cycle goes on; an
unexpected exception surfaces. Nothing here reads the clock or settings from globals: both
come in through `CycleDeps`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Literal, Protocol

from monitor import schedule
from monitor.errors import FetchError
from monitor.parsejob import ParseOutcome, WatchlistRef, parse_and_normalise
from monitor.settings import MonitorSettings
from monitor.types import (
    Admission,
    FeedForUpdate,
    FeedUpdateIntent,
    FetchResult,
    Item,
    MatchRecord,
    SaveReport,
)

log = logging.getLogger(__name__)

FeedStatus = Literal["fetched", "not_modified", "failed"]


class SaveUnit(Protocol):
    """Saves inside one open transaction (monitor.store.SaveBatch implements it)."""

    def known_identities(self, feed_id: int, identities: Sequence[str]) -> set[str]: ...

    def save_items(
        self,
        feed_id: int,
        items: Sequence[Item],
        matches: Sequence[MatchRecord | None],
        now: datetime,
        shingles: Sequence[bytes | str] | None = None,
    ) -> SaveReport: ...


class Storage(Protocol):
    """What the pipeline needs from storage (monitor.store.Storage implements it)."""

    def known_identities(self, feed_id: int, identities: Sequence[str]) -> set[str]: ...

    def saving(self) -> AbstractContextManager[SaveUnit]: ...

    def update_feeds(self, intents: Sequence[FeedUpdateIntent]) -> None: ...

    def prepare_stories(self, now: datetime) -> int: ...

    def assign_pending_stories(self, now: datetime) -> int: ...


class Fetcher(Protocol):
    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        admission: Admission | None = None,
    ) -> FetchResult: ...


class Matcher(Protocol):
    def record(self, item: Item) -> MatchRecord | None: ...


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
    #: Worker processes for parsing and matching, asked for once a cycle has
    #: `parallel_from` bodies to parse (a steady cycle of a few changed feeds never starts them).
    parse_pool: Callable[[], Executor | None] | None = None
    parallel_from: int = 50
    #: Called when a worker process died, so the owner can replace the pool.
    parse_pool_broken: Callable[[], None] | None = None
    #: Called after each feed, e.g. to advance a progress bar.
    on_feed: Callable[[FeedOutcome], None] | None = None
    #: Version of the watchlist the matcher was compiled from, recorded with the cycle.
    watchlist_version: str | None = None
    #: Lets worker processes match as they parse.
    watchlist: WatchlistRef | None = None
    #: New items after which stories are assigned while the cycle goes on (the rest at its
    #: end). Each assignment compares its batch with the whole window, so one batch per cycle
    #: is cheapest (measured for 30,000 new items: 1.4-2.0 s of assignment CPU in one batch
    #: against 3.3-3.9 s in batches of 10,000 or 15,000, with a longer cycle and a higher
    #: peak); the bound only keeps a huge backfill's batch, and its memory, in check.
    story_batch: int = 50_000


async def run_cycle(deps: CycleDeps, feeds: Sequence[FeedForUpdate]) -> CycleReport:
    """Poll `feeds` concurrently (the fetcher enforces global and per-host limits).

    The event loop only does network I/O. Parsing runs in worker processes (`deps.parse_pool`)
    or, for small cycles, in the storage thread; matching and every database write run in one
    storage thread, so writes are serialised and a busy CPU never stalls fetches in flight
    (which would otherwise eat into their deadlines)."""
    started = deps.clock()
    loop = asyncio.get_running_loop()
    first_polls = sum(not feed.fetched_before for feed in feeds)
    route = ParseRoute(deps.parse_pool, deps.parallel_from, deps.parse_pool_broken, first_polls)
    states = FeedStates(deps.storage, StoryBatches(deps.storage, deps.clock, deps.story_batch))
    places = asyncio.Semaphore(feeds_in_flight(deps.settings))
    with ThreadPoolExecutor(1, thread_name_prefix="monitor-store") as store:
        # The storage thread's first job: place the items a crash left without a story (the
        # thread runs jobs in order, so before any new one is saved) and load the story
        # window, while the first requests are out.
        prepared = loop.run_in_executor(store, deps.storage.prepare_stories, started)
        cycle = _Cycle(deps, store, states, route, places, SaveGroups(deps, store))
        try:
            outcomes = await asyncio.gather(*(_poll_reported(cycle, feed) for feed in feeds))
        finally:
            await asyncio.wait([prepared])
        prepared.result()  # a failed catch-up surfaces once the feeds are done
        await loop.run_in_executor(store, states.flush)
    return CycleReport(started, deps.clock(), tuple(outcomes), deps.watchlist_version)


def feeds_in_flight(settings: MonitorSettings) -> int:
    """How many feeds may be between their request and the end of their storage at once:
    the fetcher's own limit, and as many again fetched and waiting to be parsed or stored,
    so that neither the parse workers nor the storage thread run dry.

    Without a bound, fetches (fast on a near server) run far ahead of the storage thread,
    and every fetched body and parsed feed waits in memory: on the bench's cold cycle (500
    feeds, 29,550 items) that held 35 MB more in the parent at its peak."""
    return 2 * settings.http.concurrency


class FeedPlace:
    """One feed's place among the `feeds_in_flight` (an `Admission`): the fetcher enters it
    once a request has its host slot and leaves it while waiting for another host's (so a
    feed queued behind a busy host holds no place: it cannot starve other hosts' feeds, nor
    deadlock with feeds redirected to that host); the cycle leaves it when the feed is
    stored or has failed. A fetcher that never enters it is admitted when its fetch returns."""

    def __init__(self, places: asyncio.Semaphore) -> None:
        self._places = places
        self._held = False

    async def enter(self) -> None:
        if not self._held:
            await self._places.acquire()
            self._held = True

    def leave(self) -> None:
        if self._held:
            self._held = False
            self._places.release()


#: Share of parsed items that must be new before worker processes pay off (see ParseRoute).
NEW_SHARE_FOR_WORKERS = 0.2


class ParseRoute:
    """Where the cycle's next body is parsed: the storage thread for the first few, worker
    processes (started on demand) once there are enough to repay starting them, and the
    storage thread again for the rest of the cycle if a worker process dies.

    Workers match every item they parse, while the storage thread matches only the new ones,
    so workers pay off only when much of what is parsed is new: a first poll, not a steady
    cycle where changed feeds bring a few new items among many known ones. They are asked
    for once `threshold` bodies were parsed and at least NEW_SHARE_FOR_WORKERS of the items
    parsed in the storage thread so far were new, or from the first body when the cycle
    holds at least `threshold` feeds on their first poll (`first_polls`): then the storage
    thread does not parse and match `threshold` bodies itself while the workers idle."""

    def __init__(
        self,
        pool: Callable[[], Executor | None] | None,
        threshold: int,
        on_broken: Callable[[], None] | None = None,
        first_polls: int = 0,
    ) -> None:
        self._pool = pool
        self._threshold = threshold
        self._on_broken = on_broken
        self._from_start = first_polls >= threshold
        self._bodies = 0
        self._parsed_here = 0
        self._new_here = 0

    def next_executor(self) -> Executor | None:
        self._bodies += 1
        if self._pool is not None and self._from_start:
            return self._pool()
        if self._pool is None or self._bodies < self._threshold:
            return None
        if self._new_here < NEW_SHARE_FOR_WORKERS * self._parsed_here:
            return None
        return self._pool()

    def parsed_here(self, items: int, new: int) -> None:
        """Record a body parsed in the storage thread: its items, and how many were new."""
        self._parsed_here += items
        self._new_here += new

    def broken(self) -> None:
        """A worker died (killed, out of memory): stop using the pool; the owner replaces it."""
        if self._pool is not None:
            log.error("a parse worker process died; parsing in the storage thread for now")
            self._pool = None
            if self._on_broken:
                self._on_broken()


class StoryBatches:
    """Stored items waiting for story assignment, placed in batches of at least `batch`;
    used only from the storage thread.

    Waiting is safe: an item is stored before it waits here, and items left without a story
    by a crash are placed at the start of the next cycle."""

    def __init__(self, storage: Storage, clock: Callable[[], datetime], batch: int) -> None:
        self._storage = storage
        self._clock = clock
        self._batch = batch
        self._waiting = 0

    def add(self, new_items: int) -> None:
        self._waiting += new_items
        if self._waiting >= self._batch:
            self.flush()

    def flush(self) -> None:
        if self._waiting:
            self._storage.assign_pending_stories(self._clock())
            self._waiting = 0


#: Items saved in one transaction at most (`SaveGroups`): the write lock is held for well
#: under a second, and one group's rows stay a few megabytes.
GROUP_ITEMS = 5000


@dataclass(slots=True)
class _WaitingSave:
    """A parsed feed waiting for the storage thread, then what saving it gave."""

    feed: FeedForUpdate
    parsed: ParseOutcome
    now: datetime
    report: SaveReport | None = None
    error: Exception | None = None


class SaveGroups:
    """Parsed feeds waiting to be saved, saved in groups: the storage thread takes every feed
    waiting when it gets to them (up to GROUP_ITEMS items) and saves them in one transaction.

    A group commit: when the storage thread keeps up, each feed is its own group; when feeds
    queue behind it (a cold cycle), one commit serves many. On the bench's cold cycle, one
    transaction per feed spent more time committing than inserting. A feed's save still
    completes only once its group is committed, so its validators advance only after its
    items are stored; a failed group fails each of its feeds, and none of their rows stay."""

    def __init__(self, deps: CycleDeps, store: Executor, max_items: int = GROUP_ITEMS) -> None:
        self._deps = deps
        self._store = store
        self._max_items = max_items
        self._waiting: deque[_WaitingSave] = deque()
        self._lock = threading.Lock()

    async def save(self, feed: FeedForUpdate, parsed: ParseOutcome, now: datetime) -> SaveReport:
        """Save one feed's new items and matches, with whatever else waits (event loop side).

        Each call queues its feed, then one drain job: drain jobs run in order in the storage
        thread and each takes at least the oldest waiting feed, so by the time this call's
        job has run, its feed has been saved (by it or by an earlier one)."""
        waiting = _WaitingSave(feed, parsed, now)
        with self._lock:
            self._waiting.append(waiting)
        await asyncio.get_running_loop().run_in_executor(self._store, self._drain)
        if waiting.error is not None:
            raise waiting.error
        assert waiting.report is not None
        return waiting.report

    def _drain(self) -> None:
        group = self._take()
        if not group:
            return
        try:
            with self._deps.storage.saving() as unit:
                reports = [_store(self._deps, unit, w.feed, w.parsed, w.now) for w in group]
        except Exception as e:  # every feed of the group reports it; none of its rows stay
            for w in group:
                w.error = e
            return
        for w, report in zip(group, reports, strict=True):
            w.report = report

    def _take(self) -> list[_WaitingSave]:
        """The oldest waiting feed, and those after it while the group stays within
        `max_items` items."""
        group: list[_WaitingSave] = []
        count = 0
        with self._lock:
            while self._waiting:
                size = len(self._waiting[0].parsed.items)
                if group and count + size > self._max_items:
                    break
                group.append(self._waiting.popleft())
                count += size
        return group


class FeedStates:
    """What a cycle still has to write after each feed's items: feed state updates (next
    poll time, validators, errors), written in batches, and the story assignment of the new
    items (`StoryBatches`); used only from the storage thread.

    Batching is safe because a feed's items are committed before its new validators are
    even queued: losing queued updates in a crash only means those feeds are fetched again,
    and their items are already known."""

    def __init__(self, storage: Storage, stories: StoryBatches, batch: int = 200) -> None:
        self._storage = storage
        self._stories = stories
        self._batch = batch
        self._pending: list[FeedUpdateIntent] = []

    def add(self, intent: FeedUpdateIntent, new_items: int = 0) -> None:
        self._pending.append(intent)
        if len(self._pending) >= self._batch:
            self._write_intents()
        self._stories.add(new_items)

    def flush(self) -> None:
        self._write_intents()
        self._stories.flush()

    def _write_intents(self) -> None:
        if self._pending:
            self._storage.update_feeds(self._pending)
            self._pending = []


@dataclass(frozen=True, slots=True)
class _Cycle:
    """What the polls of one cycle share: the dependencies, the storage thread, the feed
    states still to write, where bodies are parsed, the places of `feeds_in_flight`, and
    the parsed feeds waiting to be saved."""

    deps: CycleDeps
    store: Executor
    states: FeedStates
    route: ParseRoute
    places: asyncio.Semaphore
    saves: SaveGroups


async def _poll_reported(cycle: _Cycle, feed: FeedForUpdate) -> FeedOutcome:
    place = FeedPlace(cycle.places)
    try:
        outcome = await _poll_feed(cycle, feed, place)
    finally:
        place.leave()
    if outcome.status == "failed":
        log.warning("feed %s failed: %s", feed.url, outcome.error)
    for warning in outcome.warnings:
        log.info("feed %s: %s", feed.url, warning)
    if cycle.deps.on_feed:
        cycle.deps.on_feed(outcome)
    return outcome


async def _poll_feed(cycle: _Cycle, feed: FeedForUpdate, place: FeedPlace) -> FeedOutcome:
    """Fetch, parse, match and store one feed; its failure is recorded, not raised."""
    deps, store, states, route = cycle.deps, cycle.store, cycle.states, cycle.route
    loop = asyncio.get_running_loop()
    try:
        fetched = await deps.fetcher.fetch(
            feed.url,
            etag=feed.etag,
            last_modified=feed.last_modified,
            admission=place,
        )
        await place.enter()  # a no-op when the fetcher holds the place already
    except FetchError as e:
        intent = _failure_intent(deps, feed, e.reason, e.status, e.retry_after_s)
        await loop.run_in_executor(store, states.add, intent)
        return FeedOutcome(feed.id, feed.url, "failed", error=e.reason)
    now = deps.clock()
    if fetched.not_modified:
        intent = _success_intent(deps, feed, fetched, now, None, None)
        await loop.run_in_executor(store, states.add, intent)
        return FeedOutcome(feed.id, feed.url, "not_modified")
    pool = route.next_executor()
    try:
        parsed = await loop.run_in_executor(
            pool or store, _parse_job(deps, fetched, feed, now, pool)
        )
    except BrokenProcessPool:
        route.broken()
        parsed = await loop.run_in_executor(store, _parse_job(deps, fetched, feed, now, None))
    if parsed.error is not None:
        intent = _failure_intent(deps, feed, parsed.error, fetched.status, None)
        await loop.run_in_executor(store, states.add, intent)
        return FeedOutcome(feed.id, feed.url, "failed", error=parsed.error)
    report = await cycle.saves.save(feed, parsed, now)
    if pool is None:
        route.parsed_here(len(parsed.items) + parsed.known_left_out, report.new_items)
    intent = _success_intent(deps, feed, fetched, now, parsed.ttl_min, parsed.title)
    await loop.run_in_executor(store, states.add, intent, report.new_items)
    return FeedOutcome(
        feed.id, feed.url, "fetched", report.new_items, report.new_matches, None, parsed.warnings
    )


def _parse_job(
    deps: CycleDeps,
    fetched: FetchResult,
    feed: FeedForUpdate,
    now: datetime,
    pool: Executor | None,
) -> Callable[[], ParseOutcome]:
    """A call of `parse_and_normalise`: picklable for a worker process; in the storage
    thread, it also asks storage which entries the feed has stored already."""
    assert fetched.body is not None
    return partial(
        parse_and_normalise,
        fetched.body,
        fetched.url,
        dict(fetched.headers),
        now,
        deps.settings.http.max_items_per_feed,
        feed.lang,
        deps.watchlist if pool is not None else None,
        pool is not None and deps.settings.stories.enabled,
        partial(deps.storage.known_identities, feed.id) if pool is None else None,
    )


def _store(
    deps: CycleDeps, unit: SaveUnit, feed: FeedForUpdate, parsed: ParseOutcome, now: datetime
) -> SaveReport:
    """Keep the items this feed has not stored yet, match them (unless a worker did), and
    store items and matches in `unit`'s transaction.

    A feed never fetched before is not asked about (its first poll, where every item is
    new: a cold cycle's 500 queries held the storage thread for 0.25 s). Should it have
    stored items all the same (a crash between saving them and recording the fetch), the
    insert skips those rows and reports only the ones it added."""
    identities = [i.identity for i in parsed.items]
    known = unit.known_identities(feed.id, identities) if feed.fetched_before else set()
    kept = [k for k, item in enumerate(parsed.items) if item.identity not in known]
    if not kept:
        return SaveReport(0, 0)
    new = [parsed.items[k] for k in kept]
    shingles = [parsed.shingles[k] for k in kept] if parsed.shingles else None
    return unit.save_items(feed.id, new, _matches(deps, parsed, kept, new), now, shingles)


def _matches(
    deps: CycleDeps, parsed: ParseOutcome, kept: Sequence[int], new: Sequence[Item]
) -> list[MatchRecord | None]:
    """What is stored of the `new` items' matches (positions `kept` of the parsed ones): the
    worker's, when it matched with the watchlist in force, else matched here."""
    if deps.matcher is None:
        return [None] * len(new)
    if parsed.matches is not None:
        return [parsed.matches[k] for k in kept]
    return [deps.matcher.record(item) for item in new]


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


def _failure_intent(
    deps: CycleDeps,
    feed: FeedForUpdate,
    reason: str,
    status: int | None,
    retry_after_s: int | None,
) -> FeedUpdateIntent:
    now = deps.clock()
    next_at = schedule.after_failure(
        now,
        feed.interval_s,
        feed.error_count + 1,
        deps.settings.schedule,
        retry_after_s=retry_after_s,
        spread=deps.rand.random(),
    )
    return FeedUpdateIntent(
        feed_id=feed.id,
        fetched_at=now,
        next_fetch_at=next_at,
        ok=False,
        error=reason,
        http_status=status,
    )
