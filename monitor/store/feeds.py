"""Feed rows: sync with config, due feeds, state after each poll, status listings."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Update, and_, bindparam, func, or_, select, update

from monitor.settings import FeedSpec
from monitor.store.schema import feeds, items
from monitor.types import FeedForUpdate, FeedUpdateIntent


@dataclass(frozen=True, slots=True)
class SyncReport:
    added: int
    updated: int
    disabled: int


def sync_feeds(conn: Connection, specs: Sequence[FeedSpec], now: datetime) -> SyncReport:
    """Make the feeds table follow the config: add new feeds, update settings, disable the
    ones no longer configured (their items stay)."""
    rows = {
        r.url: r
        for r in conn.execute(
            select(
                feeds.c.id,
                feeds.c.url,
                feeds.c.name,
                feeds.c.tags,
                feeds.c.lang,
                feeds.c.enabled,
                feeds.c.interval_s,
            )
        )
    }
    added = updated = disabled = 0
    configured = set()
    for spec in specs:
        configured.add(spec.url)
        wanted = {
            "name": spec.name,
            "tags": list(spec.tags),
            "lang": spec.lang,
            "enabled": spec.enabled,
            "interval_s": int(spec.interval_s or 900),
        }
        row = rows.get(spec.url)
        if row is None:
            conn.execute(
                feeds.insert().values(
                    url=spec.url, created_at=now, error_count=0, next_fetch_at=now, **wanted
                )
            )
            added += 1
        elif any(getattr(row, k) != v for k, v in wanted.items()):
            conn.execute(update(feeds).where(feeds.c.id == row.id).values(**wanted))
            updated += 1
    for url, row in rows.items():
        if url not in configured and row.enabled:
            conn.execute(update(feeds).where(feeds.c.id == row.id).values(enabled=False))
            disabled += 1
    return SyncReport(added, updated, disabled)


def _for_update(row: Any) -> FeedForUpdate:
    return FeedForUpdate(
        id=row.id,
        url=row.moved_to or row.url,
        name=row.name,
        etag=row.etag,
        last_modified=row.last_modified,
        error_count=row.error_count,
        interval_s=row.interval_s,
        lang=row.lang,
        fetched_before=bool(row.fetched_before),
    )


_FOR_UPDATE_COLUMNS = (
    feeds.c.id,
    feeds.c.url,
    feeds.c.moved_to,
    feeds.c.name,
    feeds.c.etag,
    feeds.c.last_modified,
    feeds.c.error_count,
    feeds.c.interval_s,
    feeds.c.lang,
    feeds.c.last_success_at.is_not(None).label("fetched_before"),
)


def due_feeds(conn: Connection, now: datetime, limit: int) -> list[FeedForUpdate]:
    """Enabled feeds whose next poll time has come, most overdue first."""
    query = (
        select(*_FOR_UPDATE_COLUMNS)
        .where(feeds.c.enabled, or_(feeds.c.next_fetch_at.is_(None), feeds.c.next_fetch_at <= now))
        .order_by(feeds.c.next_fetch_at.asc().nulls_first(), feeds.c.id)
        .limit(limit)
    )
    return [_for_update(r) for r in conn.execute(query)]


def selected_feeds(conn: Connection, urls: Sequence[str] | None = None) -> list[FeedForUpdate]:
    """Enabled feeds (or the named ones, enabled or not), whatever their schedule."""
    query = select(*_FOR_UPDATE_COLUMNS).order_by(feeds.c.id)
    if urls:
        query = query.where(
            or_(feeds.c.url.in_(urls), feeds.c.moved_to.in_(urls), feeds.c.name.in_(urls))
        )
    else:
        query = query.where(feeds.c.enabled)
    return [_for_update(r) for r in conn.execute(query)]


def apply_updates(conn: Connection, intents: Sequence[FeedUpdateIntent]) -> None:
    """Record polls' outcomes; validators advance only on success (after items are stored).

    One executemany per shape of update (which columns it sets), each statement built once:
    building and compiling an UPDATE per feed cost more than running it (a steady cycle
    writes 500 of them, a 5,000-feed one 5,000). A feed named twice is written in order, one
    update at a time."""
    if len({i.feed_id for i in intents}) < len(intents):
        for intent in intents:
            apply_updates(conn, [intent])
        return
    shapes: dict[tuple[bool, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    for intent in intents:
        values = _update_values(intent)
        shapes[(intent.ok, tuple(values))].append(
            {"b_id": intent.feed_id, **{f"b_{k}": v for k, v in values.items()}}
        )
    for (ok, names), rows in shapes.items():
        conn.execute(_update_statement(ok, names), rows)


def _update_values(intent: FeedUpdateIntent) -> dict[str, Any]:
    """The plain values a poll's outcome sets (the failure counters are SQL expressions, in
    `_update_statement`)."""
    values: dict[str, Any] = {
        "last_fetch_at": intent.fetched_at,
        "next_fetch_at": intent.next_fetch_at,
        "last_status": intent.http_status,
    }
    if not intent.ok:
        values.update(last_error=intent.error, first_error_at=intent.fetched_at)
        return values
    values.update(
        last_success_at=intent.fetched_at, error_count=0, first_error_at=None, last_error=None
    )
    if not intent.not_modified:
        values.update(etag=intent.etag, last_modified=intent.last_modified)
    if intent.title:
        values["title"] = intent.title
    if intent.permanent_url:
        values["moved_to"] = intent.permanent_url
    return values


@functools.cache
def _update_statement(ok: bool, names: tuple[str, ...]) -> Update:
    """UPDATE of one feed by id (`b_id`) setting `names` from `b_<name>` parameters; after a
    failure, the error count goes up by one and the first error keeps its earlier time."""
    values: dict[str, Any] = {n: bindparam(f"b_{n}", type_=feeds.c[n].type) for n in names}
    if not ok:
        values["error_count"] = feeds.c.error_count + 1
        values["first_error_at"] = func.coalesce(feeds.c.first_error_at, values["first_error_at"])
    return update(feeds).where(feeds.c.id == bindparam("b_id")).values(values)


@dataclass(frozen=True, slots=True)
class FeedStatus:
    id: int
    url: str
    name: str | None
    title: str | None
    enabled: bool
    moved_to: str | None
    last_success_at: datetime | None
    next_fetch_at: datetime | None
    error_count: int
    first_error_at: datetime | None
    last_error: str | None
    item_count: int


def feed_statuses(conn: Connection) -> list[FeedStatus]:
    counts = select(items.c.feed_id, func.count().label("n")).group_by(items.c.feed_id).subquery()
    query = (
        select(feeds, func.coalesce(counts.c.n, 0).label("item_count"))
        .outerjoin(counts, counts.c.feed_id == feeds.c.id)
        .order_by(feeds.c.id)
    )
    return [
        FeedStatus(
            id=r.id,
            url=r.url,
            name=r.name,
            title=r.title,
            enabled=r.enabled,
            moved_to=r.moved_to,
            last_success_at=r.last_success_at,
            next_fetch_at=r.next_fetch_at,
            error_count=r.error_count,
            first_error_at=r.first_error_at,
            last_error=r.last_error,
            item_count=r.item_count,
        )
        for r in conn.execute(query)
    ]


def failing_count(conn: Connection) -> int:
    return conn.execute(
        select(func.count())
        .select_from(feeds)
        .where(and_(feeds.c.enabled, feeds.c.error_count > 0))
    ).scalar_one()
