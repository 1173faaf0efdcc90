"""Item and match rows: which items are new, idempotent bulk inserts, cycle records."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import ReturningInsert

from monitor.store.bulk import Compiled, compiled, executemany
from monitor.store.schema import cycles, items, matches
from monitor.types import Item

#: Identities checked per query (SQLite's bound-parameter limit is far above this).
_CHUNK = 500


#: Built once: constructing the statement and its cache key cost more per call than the
#: lookup itself.
_KNOWN = select(items.c.identity).where(
    items.c.feed_id == bindparam("feed"), items.c.identity.in_(bindparam("wanted", expanding=True))
)


def known_identities(conn: Connection, feed_id: int, identities: Iterable[str]) -> set[str]:
    """The identities among `identities` already stored for this feed."""
    wanted = list(dict.fromkeys(identities))
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        found.update(conn.execute(_KNOWN, {"feed": feed_id, "wanted": chunk}).scalars())
    return found


def _insert(backend: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that knows ON CONFLICT on the backend."""
    return postgresql.insert(table) if backend == "postgresql" else sqlite.insert(table)


@functools.cache
def _new_items_statement(backend: str) -> ReturningInsert[Any]:
    """INSERT of items, skipping those stored already, returning the ids of those added
    (built once per backend, as `_KNOWN`)."""
    unique = [items.c.feed_id, items.c.identity]
    return (
        _insert(backend, items)
        .on_conflict_do_nothing(index_elements=unique)
        .returning(items.c.id, items.c.identity)
    )


@functools.cache
def _new_matches_statement(backend: str) -> ReturningInsert[Any]:
    """INSERT of matches, skipping items matched already, returning the ids added."""
    return (
        _insert(backend, matches)
        .on_conflict_do_nothing(index_elements=[matches.c.item_id])
        .returning(matches.c.id)
    )


#: The columns of an item row, in the order of `item_values`.
ITEM_COLUMNS = (
    "feed_id",
    "identity",
    "guid",
    "url",
    "title",
    "summary",
    "content",
    "author",
    "published_at",
    "updated_at",
    "first_seen_at",
    "lang",
    "content_hash",
    "story_hashes",
)


def item_values(feed_id: int, item: Item, story_hashes: bytes | None = None) -> tuple[Any, ...]:
    """An item's row as values in the order of ITEM_COLUMNS."""
    return (
        feed_id,
        item.identity,
        item.guid,
        item.url,
        item.title,
        item.summary,
        item.content,
        item.author,
        item.published_at,
        item.updated_at,
        item.first_seen_at,
        item.lang,
        item.content_hash,
        story_hashes,
    )


def item_row(feed_id: int, item: Item, story_hashes: bytes | None = None) -> dict[str, Any]:
    return dict(zip(ITEM_COLUMNS, item_values(feed_id, item, story_hashes), strict=True))


def insert_items(
    conn: Connection,
    feed_id: int,
    new: Sequence[Item],
    story_hashes: Sequence[bytes | None] | None = None,
) -> dict[str, int]:
    """Insert items idempotently (ON CONFLICT DO NOTHING), with their story shingles'
    hashes if given; identity → id of rows really added."""
    if not new:
        return {}
    hashes = story_hashes if story_hashes is not None else [None] * len(new)
    if conn.dialect.name == "sqlite":
        return _insert_items_sqlite(conn, feed_id, new, hashes)
    statement = _new_items_statement(conn.dialect.name)
    rows = conn.execute(
        statement, [item_row(feed_id, i, h) for i, h in zip(new, hashes, strict=True)]
    ).all()
    return {r.identity: r.id for r in rows}


_TOP_ITEM_ID = select(func.coalesce(func.max(items.c.id), 0))
_ITEMS_IN_RANGE = select(items.c.identity, items.c.id).where(
    items.c.id >= bindparam("first"), items.c.id < bindparam("end")
)


def _insert_items_sqlite(
    conn: Connection, feed_id: int, new: Sequence[Item], hashes: Sequence[bytes | None]
) -> dict[str, int]:
    """`insert_items` on SQLite, by driver-level executemany: the rows get ids above the
    highest stored one (safe: the transaction holds the write lock, BEGIN IMMEDIATE), and
    the rows really added (not skipped as already stored) are read back by that id range,
    unless the driver reports every row added: then each has the id it was given (a first
    poll: 0.1 s of the storage thread's CPU for the bench's cold cycle, in 500 read-backs).

    Through the Core's INSERT … RETURNING, SQLAlchemy's per-row parameter handling held the
    storage thread, and the GIL, longer than SQLite's own work."""
    first = int(conn.execute(_TOP_ITEM_ID).scalar_one()) + 1
    rows = [
        (first + k, *item_values(feed_id, item, h))
        for k, (item, h) in enumerate(zip(new, hashes, strict=True))
    ]
    names = ("id", *ITEM_COLUMNS)
    # The packed shingle hashes go to sqlite3 as the bytes they are (a BLOB): the Core's
    # binary type would wrap each in a memoryview first (1.4 µs an item, for nothing).
    types = {n: items.c[n].type for n in names if n != "story_hashes"}
    statement = _sqlite_insert(items, names, conn.dialect)
    if executemany(conn, statement, names, rows, types) == len(rows):
        return {item.identity: first + k for k, item in enumerate(new)}
    added = conn.execute(_ITEMS_IN_RANGE, {"first": first, "end": first + len(rows)})
    return {identity: item_id for identity, item_id in added}


#: The columns of a match row (`monitor.store.match_row`).
MATCH_COLUMNS = (
    "item_id",
    "score",
    "topics",
    "actors",
    "evidence",
    "watchlist_version",
    "matched_at",
)


def insert_matches(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert match rows (item_id, score, topics, actors, evidence, watchlist_version,
    matched_at); an item already matched keeps its row. Returns how many were added.

    The evidence is JSON text, as `match_row` gives it (encoded where the item was
    matched): on SQLite it goes to the driver as it is."""
    if not rows:
        return 0
    if conn.dialect.name == "sqlite":  # by driver-level executemany, as `_insert_items_sqlite`
        values = [tuple(r[n] for n in MATCH_COLUMNS) for r in rows]
        types = {n: matches.c[n].type for n in MATCH_COLUMNS if n != "evidence"}
        json_columns = ("topics", "actors")
        bulk = _sqlite_insert(matches, MATCH_COLUMNS, conn.dialect)
        return executemany(conn, bulk, MATCH_COLUMNS, values, types, uncached=json_columns)
    statement = _new_matches_statement(conn.dialect.name)
    return len(conn.execute(statement, [evidence_as_data(r) for r in rows]).all())


def evidence_as_data(row: dict[str, Any]) -> dict[str, Any]:
    """A match row with its evidence (JSON text) decoded, for a statement through the Core
    (whose JSON type encodes it)."""
    return {**row, "evidence": json.loads(row["evidence"])}


def _sqlite_insert(table: Table, names: tuple[str, ...], dialect: Dialect) -> Compiled:
    """INSERT of `names` (one bound parameter each) skipping rows that break a unique
    constraint, for `executemany`: compiled once per table and paramstyle."""
    return _sqlite_insert_for(table.name, names, dialect.paramstyle)


@functools.cache
def _sqlite_insert_for(table_name: str, names: tuple[str, ...], paramstyle: str) -> Compiled:
    table, unique = (
        (items, [items.c.feed_id, items.c.identity])
        if table_name == "items"
        else (matches, [matches.c.item_id])
    )
    statement = sqlite.insert(table).values({n: bindparam(n) for n in names})
    dialect = sqlite.dialect(paramstyle=paramstyle)
    return compiled(statement.on_conflict_do_nothing(index_elements=unique), dialect)


@dataclass(frozen=True, slots=True)
class CycleSummary:
    started_at: datetime
    finished_at: datetime | None
    feeds_fetched: int
    feeds_not_modified: int
    feeds_failed: int
    new_items: int
    new_matches: int


def start_cycle(conn: Connection, now: datetime, watchlist_version: str | None) -> int:
    statement = (
        cycles.insert()
        .values(
            started_at=now,
            feeds_fetched=0,
            feeds_not_modified=0,
            feeds_failed=0,
            new_items=0,
            new_matches=0,
            watchlist_version=watchlist_version,
        )
        .returning(cycles.c.id)
    )
    cycle_id: int = conn.execute(statement).scalar_one()
    return cycle_id


#: Cycle records older than this are pruned (a tick every 45 s adds ~1,900 rows a day).
CYCLE_HISTORY = timedelta(days=14)


def finish_cycle(conn: Connection, cycle_id: int, summary: CycleSummary) -> None:
    conn.execute(
        update(cycles)
        .where(cycles.c.id == cycle_id)
        .values(
            finished_at=summary.finished_at,
            feeds_fetched=summary.feeds_fetched,
            feeds_not_modified=summary.feeds_not_modified,
            feeds_failed=summary.feeds_failed,
            new_items=summary.new_items,
            new_matches=summary.new_matches,
        )
    )
    if summary.finished_at is not None:
        conn.execute(
            delete(cycles).where(cycles.c.started_at < summary.finished_at - CYCLE_HISTORY)
        )


def last_cycle(conn: Connection, *, polled_only: bool = False) -> CycleSummary | None:
    """The latest finished cycle; with `polled_only`, the latest that polled any feed (a tick
    with nothing due still proves the scheduler is alive, which is what health checks ask)."""
    query = select(cycles).where(cycles.c.finished_at.is_not(None))
    if polled_only:
        polled = cycles.c.feeds_fetched + cycles.c.feeds_not_modified + cycles.c.feeds_failed
        query = query.where(polled > 0)
    row = conn.execute(query.order_by(cycles.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return CycleSummary(
        row.started_at,
        row.finished_at,
        row.feeds_fetched,
        row.feeds_not_modified,
        row.feeds_failed,
        row.new_items,
        row.new_matches,
    )


def count_rows(conn: Connection, table: Table) -> int:
    count: int = conn.execute(select(func.count()).select_from(table)).scalar_one()
    return count
