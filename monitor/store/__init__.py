"""Storage: the only SQLAlchemy code; `Storage` is what the pipeline and commands talk to."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from monitor.settings import FeedSpec, StoriesSettings
from monitor.store import feeds as feed_rows
from monitor.store import items as item_rows
from monitor.store.engine import make_engine
from monitor.store.migrate import require_current, upgrade
from monitor.types import FeedForUpdate, FeedUpdateIntent, Item, MatchResult

__all__ = ["Storage", "make_engine", "match_row", "require_current", "upgrade"]


class Storage:
    """Transactions over one Engine; each method is one unit of work."""

    def __init__(self, engine: Engine, stories: StoriesSettings | None = None) -> None:
        self.engine = engine
        self.stories = stories
        self.story_index = _new_story_index()

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
        results: Sequence[MatchResult | None],
        now: datetime,
    ) -> Any:
        """Store new items, their matches and story links in one transaction."""
        from monitor.pipeline import SaveReport

        with self.engine.begin() as conn:
            ids = item_rows.insert_items(conn, feed_id, items)
            inserted = [
                (ids[i.identity], i, r)
                for i, r in zip(items, results, strict=True)
                if i.identity in ids
            ]
            match_rows = [
                match_row(item_id, r, now)
                for item_id, _, r in inserted
                if r is not None and r.matched
            ]
            new_matches = item_rows.insert_matches(conn, match_rows)
            if self.stories is not None and self.stories.enabled and inserted:
                _assign_stories(conn, inserted, self.stories, now, self.story_index)
        return SaveReport(len(inserted), new_matches)

    def update_feed(self, intent: FeedUpdateIntent) -> None:
        with self.engine.begin() as conn:
            feed_rows.apply_update(conn, intent)

    def start_cycle(self, now: datetime, watchlist_version: str | None) -> int:
        with self.engine.begin() as conn:
            return item_rows.start_cycle(conn, now, watchlist_version)

    def finish_cycle(self, cycle_id: int, summary: item_rows.CycleSummary) -> None:
        with self.engine.begin() as conn:
            item_rows.finish_cycle(conn, cycle_id, summary)


def match_row(item_id: int, result: MatchResult, now: datetime) -> dict[str, Any]:
    """The matches-table row recording `result` for a stored item."""
    from monitor.match import evidence_to_json

    return {
        "item_id": item_id,
        "score": result.score,
        "topics": list(result.topics),
        "actors": list(result.actors),
        "evidence": evidence_to_json(result),
        "watchlist_version": result.watchlist_version,
        "matched_at": now,
    }


def _assign_stories(
    conn: Any,
    inserted: Sequence[tuple[int, Item, MatchResult | None]],
    settings: StoriesSettings,
    now: datetime,
    index: Any,
) -> None:
    from monitor.store.stories import assign_stories
    from monitor.stories import NewItem

    new_items = [NewItem.from_match(item_id, item, result) for item_id, item, result in inserted]
    assign_stories(conn, new_items, settings, now, index)


def _new_story_index() -> Any:
    """The in-memory story index of this Storage (filled from the database on first use)."""
    from monitor.store.stories import StoryIndex

    return StoryIndex()
