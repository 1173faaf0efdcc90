"""Storage: the only SQLAlchemy code; `Storage` is what the pipeline and commands talk to."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from monitor.collector import collection_paused
from monitor.settings import FeedSpec, StoriesSettings
from monitor.shingles import story_shingles
from monitor.store import feeds as feed_rows
from monitor.store import items as item_rows
from monitor.store.engine import make_engine
from monitor.store.migrate import require_current, upgrade
from monitor.store.stories import (
    Pending,
    StoryIndex,
    assign_pending,
    load_window,
    pending_records,
)
from monitor.store.wal import WalCheckpointer, checkpoint, keeps_a_log
from monitor.stories import STOP_LIKE, shingle_hashes
from monitor.types import FeedForUpdate, FeedUpdateIntent, Item, MatchRecord, SaveReport

__all__ = ["Storage", "make_engine", "match_row", "require_current", "upgrade"]


class Storage:
    """Transactions over one Engine; each method is one unit of work."""

    def __init__(self, engine: Engine, stories: StoriesSettings | None = None) -> None:
        self.engine = engine
        self.stories = stories
        self.story_index = StoryIndex(stories.stop_like if stories else STOP_LIKE)
        self._checkpointer: WalCheckpointer | None = None
        #: Items committed since the log was last copied, carried from cycle to cycle.
        self._log_items = 0
        #: Whether the last `checkpointing` block copied the log at least once.
        self._copied = False

    def sync_feeds(self, specs: Sequence[FeedSpec], now: datetime) -> feed_rows.SyncReport:
        with self.engine.begin() as conn:
            return feed_rows.sync_feeds(conn, specs, now)

    def due_feeds(self, now: datetime, limit: int) -> list[FeedForUpdate]:
        with self.engine.connect() as conn:
            return feed_rows.due_feeds(conn, now, limit)

    def selected_feeds(self, urls: Sequence[str] | None = None) -> list[FeedForUpdate]:
        with self.engine.connect() as conn:
            return feed_rows.selected_feeds(conn, urls)

    def known_identities(self, feed_id: int, identities: Sequence[str]) -> set[str]:
        with self.engine.connect() as conn:
            return item_rows.known_identities(conn, feed_id, identities)

    def save_items(
        self,
        feed_id: int,
        items: Sequence[Item],
        matches: Sequence[MatchRecord | None],
        now: datetime,
        shingles: Sequence[bytes | str] | None = None,
    ) -> SaveReport:
        """Store new items and their matches in one transaction (`SaveBatch.save_items`)."""
        with self.saving() as batch:
            return batch.save_items(feed_id, items, matches, now, shingles)

    @contextmanager
    def saving(self) -> Iterator[SaveBatch]:
        """One transaction for the saves of several feeds (a group commit): committed when the
        block ends, rolled back whole if it raises. The items' story hints are recorded only
        once the commit is done."""
        stories_on = self.stories is not None and self.stories.enabled
        with self.engine.begin() as conn:
            batch = SaveBatch(conn, stories_on)
            yield batch
        self.story_index.hint(batch.hints)
        if self._checkpointer is not None:
            self._checkpointer.committed(batch.saved)

    def prepare_stories(self, now: datetime) -> int:
        """At the start of a cycle: place the items a crash left without a story (as
        `assign_pending_stories`), and load the story window if this process has not yet,
        so the cycle's assignment finds it ready; returns how many were placed."""
        placed = self.assign_pending_stories(now)
        if self.stories is not None and self.stories.enabled:
            with self.engine.connect() as conn:
                load_window(conn, self.story_index, self.stories, now)
        return placed

    def assign_pending_stories(self, now: datetime) -> int:
        """Place every stored item that has no story yet (this cycle's, or ones a crash left
        behind) in a story, in one batch; returns how many were placed."""
        if self.stories is None or not self.stories.enabled:
            return 0
        # A burst of records and rows without reference cycles (`collection_paused`).
        with collection_paused(), self.engine.begin() as conn:
            return assign_pending(conn, self.story_index, self.stories, now)

    def update_feed(self, intent: FeedUpdateIntent) -> None:
        self.update_feeds([intent])

    def update_feeds(self, intents: Sequence[FeedUpdateIntent]) -> None:
        """Record the outcome of several polls in one transaction."""
        with self.engine.begin() as conn:
            feed_rows.apply_updates(conn, intents)

    def start_cycle(self, now: datetime, watchlist_version: str | None) -> int:
        with self.engine.begin() as conn:
            return item_rows.start_cycle(conn, now, watchlist_version)

    def finish_cycle(self, cycle_id: int, summary: item_rows.CycleSummary) -> None:
        with self.engine.begin() as conn:
            item_rows.finish_cycle(conn, cycle_id, summary)

    @contextmanager
    def checkpointing(self) -> Iterator[None]:
        """While the block runs (a cycle), the log of an SQLite file is copied by a thread of
        its own as saves commit (`wal.WalCheckpointer`), not by the commits themselves."""
        self._copied = False
        if not keeps_a_log(self.engine):
            yield
            return
        checkpointer = self._checkpointer = WalCheckpointer(self.engine, self._log_items)
        checkpointer.start()
        try:
            yield
        finally:
            checkpointer.stop()
            self._checkpointer = None
            self._log_items, self._copied = checkpointer.owed, checkpointer.done > 0

    def settle_log(self) -> None:
        """As a cycle ends: if its checkpoint thread had to copy the log (a large cycle),
        copy the rest too, so the cycle ends with its writes in the database file; a small
        cycle's few pages wait for a later copy."""
        if self._copied:
            checkpoint(self.engine)
            self._log_items, self._copied = 0, False


class SaveBatch:
    """Saves of new items and matches inside one open transaction (`Storage.saving`)."""

    def __init__(self, conn: Connection, stories_on: bool) -> None:
        self._conn = conn
        self._stories_on = stories_on
        #: Pending story records of the items saved so far, for `StoryIndex.hint`.
        self.hints: list[Pending] = []
        #: Items saved so far.
        self.saved = 0

    def known_identities(self, feed_id: int, identities: Sequence[str]) -> set[str]:
        return item_rows.known_identities(self._conn, feed_id, identities)

    def save_items(
        self,
        feed_id: int,
        items: Sequence[Item],
        matches: Sequence[MatchRecord | None],
        now: datetime,
        shingles: Sequence[bytes | str] | None = None,
    ) -> SaveReport:
        """Store new items and their matches (None for an item that did not match); stories
        come later, in batches (`Storage.assign_pending_stories`), from the items' shingles:
        `shingles` as a worker took them (`story_shingles`), else taken here."""
        hashes: list[bytes] | None = None
        if self._stories_on:  # packed, as `items.story_hashes` holds them
            hashes = shingle_hashes(_shingles(items, shingles))
        ids = item_rows.insert_items(self._conn, feed_id, items, hashes)
        self.saved += len(ids)
        match_rows = [
            match_row(ids[i.identity], m, now)
            for i, m in zip(items, matches, strict=True)
            if i.identity in ids and m is not None
        ]
        new_matches = item_rows.insert_matches(self._conn, match_rows)
        if hashes is not None:
            self.hints += pending_records(ids, items, matches, hashes)
        return SaveReport(len(ids), new_matches)


def _shingles(items: Sequence[Item], taken: Sequence[bytes | str] | None) -> Sequence[bytes | str]:
    """Each item's story shingles: as a worker took them, else taken here."""
    if taken is not None:
        return taken
    return [story_shingles(i.title, i.summary) for i in items]


def match_row(item_id: int, match: MatchRecord, now: datetime) -> dict[str, Any]:
    """The matches-table row recording `match` for a stored item (its evidence as the JSON
    text the match carries: `insert_matches` and `replace_match` take it as it is)."""
    return {
        "item_id": item_id,
        "score": match.score,
        "topics": list(match.topics),
        "actors": list(match.actors),
        "evidence": match.evidence_json,
        "watchlist_version": match.watchlist_version,
        "matched_at": now,
    }
