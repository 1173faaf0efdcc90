"""Test helpers for the digest tests: rows written straight into a migrated database."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select

from monitor.settings import EmailChannel, FileChannel, MonitorSettings
from monitor.store.schema import feeds, item_stories, items, matches, stories

NOW = datetime(2025, 3, 14, 7, 0, tzinfo=UTC)


def add_feed(engine: Engine, name: str, *, url: str | None = None, **extra: Any) -> int:
    url = url or f"https://example.org/{hashlib.sha1(name.encode()).hexdigest()[:8]}/feed.xml"
    row = {
        "url": url,
        "name": name,
        "tags": [],
        "enabled": True,
        "interval_s": 900,
        "error_count": 0,
        "created_at": NOW - timedelta(days=30),
        **extra,
    }
    with engine.begin() as conn:
        return int(conn.execute(insert(feeds).values(**row).returning(feeds.c.id)).scalar_one())


def add_story(
    engine: Engine, first_seen: datetime, *, actors: Sequence[str] = (), topics: Sequence[str] = ()
) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(stories)
                .values(
                    first_seen_at=first_seen,
                    last_seen_at=first_seen,
                    item_count=1,
                    actors=list(actors),
                    topics=list(topics),
                    terms=[],
                )
                .returning(stories.c.id)
            ).scalar_one()
        )


def add_item(
    engine: Engine,
    feed_id: int,
    title: str,
    *,
    url: str | None = None,
    seen: datetime = NOW,
    published: datetime | None = None,
    story_id: int | None = None,
    duplicate_of: int | None = None,
    summary: str = "",
) -> int:
    identity = hashlib.sha1(f"{feed_id}|{title}|{url}".encode()).hexdigest()
    row = {
        "feed_id": feed_id,
        "identity": identity,
        "guid": None,
        "url": url,
        "title": title,
        "summary": summary,
        "content": "",
        "author": None,
        "published_at": published,
        "updated_at": None,
        "first_seen_at": seen,
        "lang": "en",
        "content_hash": hashlib.sha256(title.encode()).hexdigest(),
        "duplicate_of": duplicate_of,
    }
    with engine.begin() as conn:
        item_id = int(conn.execute(insert(items).values(**row).returning(items.c.id)).scalar_one())
        if story_id is not None:
            conn.execute(insert(item_stories).values(item_id=item_id, story_id=story_id))
        return item_id


def add_match(
    engine: Engine,
    item_id: int,
    *,
    score: float = 3.0,
    topics: Sequence[str] = ("negotiations",),
    actors: Sequence[str] = (),
    terms: Sequence[str] = (),
    snippet: str = "",
    matched_at: datetime = NOW,
) -> int:
    hits = [
        {
            "kind": "topic",
            "target": topics[0] if topics else "",
            "phrase": t,
            "field": "title",
            "start": 0,
            "end": len(t),
            "text": t,
        }
        for t in terms
    ]
    hits += [
        {
            "kind": "actor",
            "target": a,
            "phrase": a,
            "field": "title",
            "start": 0,
            "end": len(a),
            "text": a,
        }
        for a in actors
    ]
    evidence = {"format": 1, "hits": hits, "snippet": snippet, "score": score}
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(matches)
                .values(
                    item_id=item_id,
                    score=score,
                    topics=list(topics),
                    actors=list(actors),
                    evidence=evidence,
                    watchlist_version="test",
                    matched_at=matched_at,
                )
                .returning(matches.c.id)
            ).scalar_one()
        )


def matched_item(engine: Engine, feed_id: int, title: str, **kw: Any) -> tuple[int, int]:
    """An item plus its match; keyword arguments go to the one that takes them."""
    item_keys = {"url", "seen", "published", "story_id", "duplicate_of", "summary"}
    item_id = add_item(engine, feed_id, title, **{k: v for k, v in kw.items() if k in item_keys})
    match_kw = {k: v for k, v in kw.items() if k not in item_keys}
    match_kw.setdefault("matched_at", kw.get("seen", NOW))
    return item_id, add_match(engine, item_id, **match_kw)


def match_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(matches.c.id).order_by(matches.c.id)).scalars())


def file_settings(tmp_dir: str, **channels: FileChannel | EmailChannel) -> MonitorSettings:
    chans = channels or {
        "files": FileChannel(kind="file", schedule="immediate", directory=f"{tmp_dir}/digests")
    }
    return MonitorSettings(channels=dict(chans))
