"""Stored matches: listing for people and tools, and re-matching stored items."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, exists, func, select, update

from monitor.store.items import evidence_as_data
from monitor.store.schema import digest_matches, feeds, items, matches
from monitor.types import Item


@dataclass(frozen=True, slots=True)
class StoredMatch:
    id: int
    item_id: int
    link: str | None
    title: str
    feed: str
    published: datetime | None
    first_seen: datetime
    topics: tuple[str, ...]
    actors: tuple[str, ...]
    score: float
    matched_at: datetime
    evidence: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "link": self.link,
            "title": self.title,
            "feed": self.feed,
            "published": self.published.isoformat() if self.published else None,
            "first_seen": self.first_seen.isoformat(),
            "topics": list(self.topics),
            "actors": list(self.actors),
            "score": round(self.score, 3),
            "matched_at": self.matched_at.isoformat(),
            "evidence": self.evidence,
        }


def list_matches(
    conn: Connection, since: datetime | None, topic: str | None, limit: int
) -> list[StoredMatch]:
    """Matches, newest first; `topic` filters on the matched topics (in Python: JSON arrays
    are queried differently on each backend, and listings are bounded by `limit`)."""
    query = (
        select(
            matches,
            items.c.url,
            items.c.title,
            items.c.published_at,
            items.c.first_seen_at,
            func.coalesce(feeds.c.name, feeds.c.title, feeds.c.url).label("feed"),
        )
        .join(items, items.c.id == matches.c.item_id)
        .join(feeds, feeds.c.id == items.c.feed_id)
        .order_by(items.c.first_seen_at.desc(), matches.c.id.desc())
    )
    if since is not None:
        query = query.where(items.c.first_seen_at >= since)
    found: list[StoredMatch] = []
    for row in conn.execute(query).yield_per(500):
        if topic and topic not in row.topics:
            continue
        found.append(
            StoredMatch(
                row.id,
                row.item_id,
                row.url,
                row.title,
                row.feed,
                row.published_at,
                row.first_seen_at,
                tuple(row.topics),
                tuple(row.actors),
                row.score,
                row.matched_at,
                row.evidence,
            )
        )
        if len(found) >= limit:
            break
    return found


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item as stored, with its current match (if any) and whether it was delivered."""

    id: int
    item: Item
    match_id: int | None
    topics: tuple[str, ...]
    score: float | None
    delivered: bool


def items_since(
    conn: Connection, since: datetime | None, batch: int = 1000
) -> Iterator[StoredItem]:
    delivered = exists().where(digest_matches.c.match_id == matches.c.id)
    query = (
        select(
            items,
            matches.c.id.label("match_id"),
            matches.c.topics.label("m_topics"),
            matches.c.score.label("m_score"),
            delivered.label("delivered"),
        )
        .outerjoin(matches, matches.c.item_id == items.c.id)
        .order_by(items.c.id)
    )
    if since is not None:
        query = query.where(items.c.first_seen_at >= since)
    for row in conn.execute(query).yield_per(batch):
        yield StoredItem(
            row.id,
            _item(row),
            row.match_id,
            tuple(row.m_topics or ()),
            row.m_score,
            bool(row.delivered),
        )


def _item(row: Any) -> Item:
    return Item(
        identity=row.identity,
        guid=row.guid,
        url=row.url,
        title=row.title,
        summary=row.summary,
        content=row.content,
        author=row.author,
        published_at=row.published_at,
        updated_at=row.updated_at,
        first_seen_at=row.first_seen_at,
        lang=row.lang,
        content_hash=row.content_hash,
    )


def replace_match(conn: Connection, match_id: int, row: dict[str, Any]) -> None:
    """Update a match in place: its id, and so its deliveries, stay."""
    values = {k: v for k, v in evidence_as_data(row).items() if k != "item_id"}
    conn.execute(update(matches).where(matches.c.id == match_id).values(**values))


def delete_undelivered(conn: Connection, match_ids: Sequence[int]) -> int:
    if not match_ids:
        return 0
    delivered = select(digest_matches.c.match_id)
    result = conn.execute(
        delete(matches).where(matches.c.id.in_(match_ids), matches.c.id.not_in(delivered))
    )
    return result.rowcount or 0
