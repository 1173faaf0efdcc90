"""Storage on SQLite and PostgreSQL: feed sync, idempotent inserts, refusal of foreign databases."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, String, bindparam, cast, func, insert, select, text

from monitor.errors import LockedError, StorageError
from monitor.settings import FeedSpec
from monitor.store import Storage, make_engine, require_current, upgrade
from monitor.store import engine as engine_module
from monitor.store import items as item_rows
from monitor.store.engine import PAGE_SIZE, WAL_CHECKPOINT_PAGES, WAL_SIZE_LIMIT
from monitor.store.lock import instance_lock
from monitor.store.schema import cycles, feeds, item_stories, items, matches
from monitor.store.wal import ITEMS_PER_CHECKPOINT, WalCheckpointer, checkpoint
from monitor.types import FeedUpdateIntent, Item

NOW = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)


def spec(url: str, **kw: object) -> FeedSpec:
    base = {"name": None, "interval_s": 900, "enabled": True, "tags": (), "lang": None}
    return FeedSpec(url=url, **{**base, **kw})  # type: ignore[arg-type]


def item(identity: str, title: str = "Talks resume in Istanbul") -> Item:
    return Item(
        identity=identity,
        guid=identity,
        url=f"https://news.example/{identity}",
        title=title,
        summary="Delegations met for two hours.",
        content="",
        author=None,
        published_at=NOW - timedelta(hours=1),
        updated_at=None,
        first_seen_at=NOW,
        lang="en",
        content_hash="h" + identity,
    )


def test_sync_feeds_adds_updates_disables(engine: Engine) -> None:
    storage = Storage(engine)
    report = storage.sync_feeds([spec("https://a.example/rss"), spec("https://b.example/rss")], NOW)
    assert (report.added, report.updated, report.disabled) == (2, 0, 0)
    report = storage.sync_feeds([spec("https://a.example/rss", name="A", interval_s=600)], NOW)
    assert (report.added, report.updated, report.disabled) == (0, 1, 1)
    assert [f.url for f in storage.selected_feeds()] == ["https://a.example/rss"]
    assert storage.selected_feeds()[0].interval_s == 600


def test_due_feeds_follow_next_fetch_at(engine: Engine) -> None:
    storage = Storage(engine)
    storage.sync_feeds([spec("https://a.example/rss"), spec("https://b.example/rss")], NOW)
    a, b = storage.due_feeds(NOW, 10)
    storage.update_feed(
        FeedUpdateIntent(
            feed_id=a.id,
            fetched_at=NOW,
            next_fetch_at=NOW + timedelta(minutes=15),
            etag='"v1"',
            last_modified="Mon, 02 Jun 2025 09:00:00 GMT",
            http_status=200,
        )
    )
    assert [f.id for f in storage.due_feeds(NOW, 10)] == [b.id]
    later = storage.due_feeds(NOW + timedelta(minutes=16), 10)
    assert {f.id for f in later} == {a.id, b.id}
    refreshed = next(f for f in later if f.id == a.id)
    assert (refreshed.etag, refreshed.error_count) == ('"v1"', 0)


def test_failure_keeps_validators_and_counts_errors(engine: Engine) -> None:
    storage = Storage(engine)
    storage.sync_feeds([spec("https://a.example/rss")], NOW)
    (feed,) = storage.due_feeds(NOW, 10)
    storage.update_feed(
        FeedUpdateIntent(
            feed_id=feed.id, fetched_at=NOW, next_fetch_at=NOW, etag='"v1"', http_status=200
        )
    )
    for n in range(3):
        storage.update_feed(
            FeedUpdateIntent(
                feed_id=feed.id,
                fetched_at=NOW + timedelta(hours=n),
                next_fetch_at=NOW,
                ok=False,
                error="HTTP 500",
                http_status=500,
            )
        )
    (feed,) = storage.due_feeds(NOW, 10)
    assert (feed.etag, feed.error_count) == ('"v1"', 3)
    with engine.connect() as conn:
        row = conn.execute(select(feeds.c.first_error_at, feeds.c.last_error)).one()
    assert row.first_error_at == NOW and row.last_error == "HTTP 500"


def test_one_batch_of_outcomes_of_every_kind_is_written_as_one_at_a_time(
    engine: Engine,
) -> None:
    storage = Storage(engine)
    urls = [f"https://{n}.example/rss" for n in ("fresh", "same", "broken", "twice")]
    storage.sync_feeds([spec(u) for u in urls], NOW)
    ids = {f.url: f.id for f in storage.selected_feeds()}
    start = [
        FeedUpdateIntent(feed_id=i, fetched_at=NOW, next_fetch_at=NOW, etag='"v1"', title="Old")
        for i in ids.values()
    ]
    storage.update_feeds(start)
    later = NOW + timedelta(hours=1)
    failed = {"ok": False, "error": "HTTP 503", "http_status": 503}
    storage.update_feeds(
        [
            FeedUpdateIntent(ids[urls[0]], later, later, etag='"v2"', title="New", http_status=200),
            FeedUpdateIntent(ids[urls[1]], later, later, not_modified=True, http_status=304),
            FeedUpdateIntent(ids[urls[2]], later, later, **failed),  # type: ignore[arg-type]
        ]
    )
    storage.update_feeds(
        [
            FeedUpdateIntent(ids[urls[3]], later, later, **failed),  # type: ignore[arg-type]
            FeedUpdateIntent(ids[urls[3]], later, later, etag='"v3"', http_status=200),
            FeedUpdateIntent(ids[urls[2]], later, later, **failed),  # type: ignore[arg-type]
        ]
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                feeds.c.url,
                feeds.c.etag,
                feeds.c.title,
                feeds.c.error_count,
                feeds.c.first_error_at,
                feeds.c.last_status,
            )
        ).all()
    state = {r.url: tuple(r)[1:] for r in rows}
    assert state[urls[0]] == ('"v2"', "New", 0, None, 200)
    assert state[urls[1]] == ('"v1"', "Old", 0, None, 304)
    assert state[urls[2]] == ('"v1"', "Old", 2, later, 503)
    assert state[urls[3]] == ('"v3"', "Old", 0, None, 200)


def test_permanent_redirect_is_followed_next_time(engine: Engine) -> None:
    storage = Storage(engine)
    storage.sync_feeds([spec("https://old.example/rss")], NOW)
    (feed,) = storage.due_feeds(NOW, 10)
    storage.update_feed(
        FeedUpdateIntent(
            feed_id=feed.id,
            fetched_at=NOW,
            next_fetch_at=NOW,
            permanent_url="https://new.example/rss",
        )
    )
    assert storage.due_feeds(NOW, 10)[0].url == "https://new.example/rss"


def test_inserts_are_idempotent(engine: Engine) -> None:
    storage = Storage(engine)
    storage.sync_feeds([spec("https://a.example/rss")], NOW)
    (feed,) = storage.due_feeds(NOW, 10)
    first = storage.save_items(feed.id, [item("1"), item("2")], [None, None], NOW)
    again = storage.save_items(feed.id, [item("2"), item("3")], [None, None], NOW)
    assert (first.new_items, again.new_items) == (2, 1)
    assert storage.known_identities(feed.id, ["1", "3", "4"]) == {"1", "3"}


def test_bulk_inserts_report_exactly_the_rows_they_added(engine: Engine) -> None:
    """Ids handed back are those stored; rows already there, or repeated in the batch, are
    skipped and not reported; matches already stored are not counted again."""
    storage = Storage(engine)
    storage.sync_feeds([spec("https://a.example/rss"), spec("https://b.example/rss")], NOW)
    a, b = storage.selected_feeds()
    with engine.begin() as conn:
        first = item_rows.insert_items(conn, a.id, [item("1"), item("2")])
        again = item_rows.insert_items(
            conn, a.id, [item("2"), item("3"), item("3", "A second copy"), item("4")]
        )
        other = item_rows.insert_items(conn, b.id, [item("1")])
        stored = dict(
            conn.execute(select(items.c.identity, items.c.id).where(items.c.feed_id == a.id)).all()
        )
        row = {
            "score": 0.9,
            "topics": ["talks"],
            "actors": ["Umerov"],
            "evidence": json.dumps({"hits": [{"phrase": "Istanbul", "kind": "topic"}]}),
            "watchlist_version": "v1",
            "matched_at": NOW,
        }
        added = item_rows.insert_matches(conn, [{**row, "item_id": first["1"]}])
        repeated = item_rows.insert_matches(
            conn, [{**row, "item_id": first["1"]}, {**row, "item_id": again["4"]}]
        )
        titles = dict(conn.execute(select(items.c.identity, items.c.title)).all())
    assert set(first) == {"1", "2"} and set(again) == {"3", "4"} and set(other) == {"1"}
    assert {**first, **again} == stored
    assert other["1"] not in stored.values()
    assert titles["3"] == "Talks resume in Istanbul", "the first copy in a batch is kept"
    assert (added, repeated) == (1, 1)


def test_text_with_every_unicode_plane_round_trips(engine: Engine) -> None:
    storage = Storage(engine)
    storage.sync_feeds([spec("https://a.example/rss")], NOW)
    (feed,) = storage.due_feeds(NOW, 10)
    title = "Зеленський і Ердоган: переговори 🕊️ — «мир»"
    storage.save_items(feed.id, [item("u", title)], [None], NOW)
    with engine.connect() as conn:
        stored = conn.execute(select(items.c.title, items.c.first_seen_at)).one()
    assert stored.title == title and stored.first_seen_at == NOW


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(polls=st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=8), min_size=1, max_size=6))
def test_any_sequence_of_polls_stores_each_item_once(
    engine: Engine, polls: list[list[str]]
) -> None:
    storage = Storage(engine)
    with engine.begin() as conn:
        conn.execute(items.delete())
    storage.sync_feeds([spec("https://p.example/rss")], NOW)
    (feed,) = storage.selected_feeds()
    for poll in polls:
        batch = [item(i) for i in dict.fromkeys(poll)]
        known = storage.known_identities(feed.id, [i.identity for i in batch])
        fresh = [i for i in batch if i.identity not in known]
        storage.save_items(feed.id, fresh, [None] * len(fresh), NOW)
        # and a replay of the whole batch, as after a crash before the validators advanced
        storage.save_items(feed.id, batch, [None] * len(batch), NOW)
    with engine.connect() as conn:
        stored = conn.execute(
            select(items.c.identity, func.count()).group_by(items.c.identity)
        ).all()
    assert {identity for identity, _ in stored} == {i for poll in polls for i in poll}
    assert all(count == 1 for _, count in stored)


def test_migrating_twice_changes_nothing(engine: Engine) -> None:
    assert upgrade(engine) == "0008"
    require_current(engine)


#: How SQLite stores every UTC time (SQLAlchemy's form, six fraction digits, no offset).
CANONICAL_TIME = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$"


def stored_times(path: Path) -> dict[str, list[str]]:
    """Every non-NULL UTC time column value of a SQLite database, as stored text."""
    from monitor.store.schema import UtcDateTime, metadata

    out: dict[str, list[str]] = {}
    with closing(sqlite3.connect(path)) as conn, conn:
        for table in metadata.sorted_tables:
            for column in table.columns:
                if isinstance(column.type, UtcDateTime):
                    query = (
                        f"SELECT {column.name} FROM {table.name} WHERE {column.name} IS NOT NULL"
                    )
                    out[f"{table.name}.{column.name}"] = [r[0] for r in conn.execute(query)]
    return out


def test_evidence_encoded_where_matched_is_stored_as_the_column_encodes_it(
    engine: Engine,
) -> None:
    """A match's evidence arrives as JSON text (encoded in the worker) and is stored as the
    same text the Core writes for it as JSON data; rewriting a match takes the text too."""
    from monitor.match import match_record
    from monitor.store import match_row
    from monitor.store import matches as match_rows
    from tests.test_stories_store import _result

    record = match_record(_result(("lavrov",), ("Istanbul Talks", "istanbul talks")))
    evidence = json.loads(record.evidence_json)
    storage = Storage(engine)
    storage.sync_feeds([spec("https://a.example/rss")], NOW)
    [feed] = storage.selected_feeds()
    with engine.begin() as conn:
        ids = item_rows.insert_items(conn, feed.id, [item("1"), item("2")])
        as_text = match_row(ids["1"], record, NOW)
        assert isinstance(as_text["evidence"], str)
        assert item_rows.insert_matches(conn, [as_text]) == 1
        by_core = item_rows.evidence_as_data(match_row(ids["2"], record, NOW))
        conn.execute(insert(matches).values(**by_core))
        stored = dict(conn.execute(select(matches.c.item_id, matches.c.evidence)).all())
        raw = dict(conn.execute(select(matches.c.item_id, cast(matches.c.evidence, String))).all())
        [match_id] = conn.execute(
            select(matches.c.id).where(matches.c.item_id == ids["1"])
        ).scalars()
        match_rows.replace_match(conn, match_id, {**as_text, "score": 0.5})
        rewritten = conn.execute(
            select(matches.c.evidence, matches.c.score).where(matches.c.id == match_id)
        ).one()
    assert stored[ids["1"]] == stored[ids["2"]] == evidence
    assert raw[ids["1"]] == raw[ids["2"]], "the same text as the Core writes"
    assert tuple(rewritten) == (evidence, 0.5)


def test_every_time_written_on_sqlite_has_one_text_form(tmp_path: Path) -> None:
    """Bulk inserts (items, matches, stories) and feed-state updates store times as the
    Core does: whole seconds keep their fraction and aware values lose their offset, so
    equal instants compare equal in SQL (and sqlite3's deprecated adapter is never used)."""
    from monitor.match import match_record
    from monitor.settings import StoriesSettings
    from tests.test_stories_store import _result

    engine = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    upgrade(engine)
    storage = Storage(engine, StoriesSettings())
    storage.sync_feeds([spec("https://a.example/rss")], NOW)
    [feed] = storage.selected_feeds(["https://a.example/rss"])
    matched = match_record(_result(("lavrov",), ("Istanbul Talks",)))
    storage.save_items(feed.id, [item("1"), item("2")], [matched, None], NOW)
    assert storage.assign_pending_stories(NOW) == 2
    failed = FeedUpdateIntent(
        feed_id=feed.id, fetched_at=NOW, next_fetch_at=NOW, ok=False, http_status=500, error="x"
    )
    storage.update_feeds([failed])
    engine.dispose()
    times = stored_times(tmp_path / "monitor.db")
    for name in ("items.published_at", "stories.first_seen_at", "feeds.first_error_at"):
        assert times[name], name
    odd = {k: v for k, v in times.items() if any(not re.match(CANONICAL_TIME, t) for t in v)}
    assert odd == {}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.datetimes(
            min_value=datetime(1970, 1, 2),
            max_value=datetime(2200, 1, 1),
            timezones=st.sampled_from(
                [UTC, timezone(timedelta(hours=3)), timezone(-timedelta(hours=7, minutes=30))]
            ),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_times_read_from_the_driver_equal_the_cores(
    engine: Engine, moments: list[datetime]
) -> None:
    """The type's result processor applied to the driver's values (large reads that bypass
    the Core's row processing, such as the story window) gives the datetimes the Core gives,
    on every backend."""
    from monitor.store.schema import UtcDateTime

    with engine.begin() as conn:
        conn.execute(cycles.delete())
        conn.execute(
            cycles.insert(),
            [{"started_at": m, "finished_at": m} for m in moments],
        )
    query = select(cycles.c.started_at).order_by(cycles.c.id)
    with engine.connect() as conn:
        by_core = list(conn.execute(query).scalars())
        result = conn.execute(query)
        raw = [row[0] for row in result.cursor.fetchall()]
        result.close()
        process = UtcDateTime().dialect_impl(conn.dialect).result_processor(conn.dialect, None)
        assert process is not None
        by_driver = list(map(process, raw))
    assert by_driver == by_core == [m.astimezone(UTC) for m in moments]
    assert all(d.tzinfo is UTC for d in by_driver)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=11))]
        ),
    )
)
def test_times_are_written_on_sqlite_as_the_generic_path_writes_them(moment: datetime) -> None:
    """`UtcDateTime`'s one-step SQLite text equals the type's own conversion followed by
    SQLAlchemy's SQLite datetime format."""
    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    from monitor.store.schema import UtcDateTime

    dialect = sqlite.dialect()
    fast = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    generic = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert fast is not None and generic is not None
    naive = UtcDateTime().process_bind_param(moment, dialect)
    assert fast(moment) == generic(naive)
    with pytest.raises(ValueError, match="naive"):
        fast(moment.replace(tzinfo=None))


def test_bulk_writes_convert_a_value_shared_by_columns_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`executemany` caches per bind processor: a story of one item, first and last seen at
    one time, has that time converted once for both columns, and both hold its text."""
    from sqlalchemy import Column, Integer, MetaData, Table, create_engine

    from monitor.store import schema
    from monitor.store.bulk import executemany

    converted: list[datetime] = []
    to_text = schema._sqlite_text

    def counting(value: datetime) -> str | None:
        converted.append(value)
        return to_text(value)

    monkeypatch.setattr(schema, "_sqlite_text", counting)
    table = Table(
        "spans",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("first", schema.UtcDateTime()),
        Column("last", schema.UtcDateTime()),
    )
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    times = [NOW, NOW + timedelta(hours=1), NOW]
    rows = [(n, t, t + timedelta(hours=n == 1)) for n, t in enumerate(times)]
    names = ("id", "first", "last")
    types = {"first": table.c.first.type, "last": table.c.last.type}
    with engine.begin() as conn:
        executemany(conn, table.insert(), names, rows, types)
        stored = conn.execute(select(table).order_by(table.c.id)).all()
    assert [tuple(r) for r in stored] == rows
    assert sorted(converted) == [NOW, NOW + timedelta(hours=1), NOW + timedelta(hours=2)]


def test_the_time_text_migration_rewrites_the_old_forms(tmp_path: Path) -> None:
    """0004 rewrites, on SQLite, the forms sqlite3's default adapter wrote (a whole second
    without its fraction, an aware value with its +00:00 offset); the instants read back
    unchanged."""
    from alembic import command

    from monitor.store.migrate import _alembic_config

    path = tmp_path / "monitor.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    storage = Storage(engine)
    storage.sync_feeds([spec("https://a.example/rss")], NOW)
    [feed] = storage.selected_feeds(["https://a.example/rss"])
    storage.save_items(feed.id, [item("1"), item("2")], [None, None], NOW)
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0003")
    old_forms = {
        "UPDATE items SET published_at = '2025-06-02 08:30:00' WHERE identity = '1'",
        "UPDATE items SET published_at = '2025-06-02 08:30:00.250000+00:00' WHERE identity = '2'",
        "UPDATE feeds SET first_error_at = '2025-06-02 09:30:00+00:00'",
    }
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in old_forms:
            conn.execute(statement)
    assert upgrade(engine) == "0008"
    engine.dispose()
    times = stored_times(path)
    assert sorted(times["items.published_at"]) == [
        "2025-06-02 08:30:00.000000",
        "2025-06-02 08:30:00.250000",
    ]
    assert times["feeds.first_error_at"] == ["2025-06-02 09:30:00.000000"]
    assert all(re.match(CANONICAL_TIME, t) for values in times.values() for t in values)
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        published = dict(conn.execute(select(items.c.identity, items.c.published_at)).all())
    engine.dispose()
    assert published == {
        "1": datetime(2025, 6, 2, 8, 30, tzinfo=UTC),
        "2": datetime(2025, 6, 2, 8, 30, 0, 250000, tzinfo=UTC),
    }


def test_the_story_hashes_migration_goes_down_and_up_again(engine: Engine) -> None:
    """0003 swaps items.story_words for items.story_hashes, in place on both backends."""
    from alembic import command
    from sqlalchemy import inspect

    from monitor.store.migrate import _alembic_config

    def item_columns() -> set[str]:
        return {c["name"] for c in inspect(engine).get_columns("items")}

    assert "story_hashes" in item_columns() and "story_words" not in item_columns()
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0002")
    assert "story_words" in item_columns() and "story_hashes" not in item_columns()
    assert upgrade(engine) == "0008"
    assert "story_hashes" in item_columns() and "story_words" not in item_columns()


def test_foreign_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices VALUES (1, 9.5)")
    with pytest.raises(StorageError, match="not the monitor's"):
        upgrade(make_engine(f"sqlite:///{path}"))
    with closing(sqlite3.connect(path)) as conn, conn:
        assert conn.execute("SELECT total FROM invoices").fetchall() == [(9.5,)]


def test_corrupt_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    garbage = b"this is not a database file at all " * 200
    path.write_bytes(garbage)
    with pytest.raises(StorageError, match="cannot use the database"):
        upgrade(make_engine(f"sqlite:///{path}"))
    assert path.read_bytes() == garbage


def test_unmigrated_database_is_reported(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="monitor db upgrade"):
        require_current(make_engine(f"sqlite:///{tmp_path / 'new.db'}"))


def test_only_one_instance_polls_a_database(engine: Engine) -> None:
    with instance_lock(engine), pytest.raises(LockedError, match="already polling"):
        other = make_engine(engine.url.render_as_string(hide_password=False))
        try:
            with instance_lock(other):
                pass
        finally:
            other.dispose()
    with instance_lock(engine):  # released: can be taken again
        pass


def test_sqlite_pragmas_are_set_on_every_connection(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == WAL_CHECKPOINT_PAGES
        assert conn.execute(text("PRAGMA journal_size_limit")).scalar() == WAL_SIZE_LIMIT
        assert conn.execute(text("PRAGMA page_size")).scalar() == PAGE_SIZE


def test_a_database_made_with_other_pages_keeps_them_and_its_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file made with SQLite's 4 KiB pages (before the page size was set) is opened as it
    is: the pragma changes nothing in a file that holds tables, and nothing stored is lost."""
    path = tmp_path / "old.db"
    with monkeypatch.context() as patch:
        patch.setattr(engine_module, "PAGE_SIZE", 4096)
        old = make_engine(f"sqlite:///{path}")
        upgrade(old)
        storage = Storage(old)
        storage.sync_feeds([spec("https://a.example/rss")], NOW)
        (feed,) = storage.due_feeds(NOW, 10)
        storage.save_items(feed.id, [item("1")], [None], NOW)
        old.dispose()
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    assert Storage(engine).save_items(feed.id, [item("2")], [None], NOW).new_items == 1
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA page_size")).scalar() == 4096
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(select(func.count()).select_from(items)).scalar() == 2


def _items_in_file_alone(database: Path, copy: Path) -> int:
    """Items in the database file itself, without its write-ahead log (a copy of the file
    alone, opened where no log lies beside it)."""
    copy.write_bytes(database.read_bytes())
    with closing(sqlite3.connect(copy)) as conn:
        return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])


def _stored_feed(storage: Storage) -> int:
    """A feed to save items under, with the schema and the feed copied into the file."""
    storage.sync_feeds([spec("https://example.org/feed")], NOW)
    [feed] = storage.selected_feeds()
    checkpoint(storage.engine)
    return feed.id


def _save(storage: Storage, feed_id: int, numbers: range) -> None:
    saved = [item(str(n)) for n in numbers]
    storage.save_items(feed_id, saved, [None] * len(saved), NOW)


def test_a_checkpoint_copies_the_log_into_the_database_file(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    storage = Storage(sqlite_engine)
    _save(storage, _stored_feed(storage), range(50))
    database = Path(str(sqlite_engine.url.database))
    # Far fewer pages than WAL_CHECKPOINT_PAGES: the commits left them in the log.
    assert _items_in_file_alone(database, tmp_path / "before.db") == 0
    checkpoint(sqlite_engine)
    assert _items_in_file_alone(database, tmp_path / "after.db") == 50


def test_a_checkpoint_elsewhere_than_an_sqlite_file_does_nothing(engine: Engine) -> None:
    checkpoint(engine)  # PostgreSQL: nothing to copy; no error
    memory = make_engine("sqlite://")
    try:
        checkpoint(memory)
    finally:
        memory.dispose()


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "monitor-checkpoint"]


def _wait_for_items_in_file(database: Path, copy: Path, count: int) -> None:
    """Until the database file alone holds `count` items (copied by the checkpoint thread)."""
    deadline = time.monotonic() + 10
    while _items_in_file_alone(database, copy) < count:
        assert time.monotonic() < deadline, f"the file did not get {count} items in 10 s"
        time.sleep(0.05)


def test_while_checkpointing_a_thread_copies_the_log_once_enough_items_committed(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    storage = Storage(sqlite_engine)
    feed_id = _stored_feed(storage)
    database = Path(str(sqlite_engine.url.database))
    with storage.checkpointing():
        assert len(_checkpoint_threads()) == 1
        _save(storage, feed_id, range(ITEMS_PER_CHECKPOINT))
        _wait_for_items_in_file(database, tmp_path / "copy.db", ITEMS_PER_CHECKPOINT)
        _save(storage, feed_id, range(ITEMS_PER_CHECKPOINT, ITEMS_PER_CHECKPOINT + 10))
    assert _checkpoint_threads() == []
    # A large cycle: the rest is copied as it ends.
    storage.settle_log()
    assert _items_in_file_alone(database, tmp_path / "settled.db") == ITEMS_PER_CHECKPOINT + 10


def test_small_cycles_leave_their_pages_to_a_later_copy(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    storage = Storage(sqlite_engine)
    feed_id = _stored_feed(storage)
    database = Path(str(sqlite_engine.url.database))
    half = ITEMS_PER_CHECKPOINT // 2 + 1
    with storage.checkpointing():
        _save(storage, feed_id, range(half))
    storage.settle_log()
    assert _items_in_file_alone(database, tmp_path / "first.db") == 0
    # The next cycle's items and those still owed reach the count together.
    with storage.checkpointing():
        _save(storage, feed_id, range(half, 2 * half))
        _wait_for_items_in_file(database, tmp_path / "second.db", 2 * half)


def test_checkpointing_starts_no_thread_but_for_an_sqlite_file(engine: Engine) -> None:
    with Storage(engine).checkpointing():
        expected = 1 if engine.dialect.name == "sqlite" else 0
        assert len(_checkpoint_threads()) == expected
    assert _checkpoint_threads() == []


def test_a_checkpoint_thread_that_fails_logs_it_and_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "monitor.db"
    broken.write_bytes(b"not a database, " * 512)
    engine = make_engine(f"sqlite:///{broken}")
    checkpointer = WalCheckpointer(engine, period_s=0.0)
    try:
        checkpointer.start()
        checkpointer.committed(ITEMS_PER_CHECKPOINT)
        deadline = time.monotonic() + 10
        while _checkpoint_threads():
            assert time.monotonic() < deadline, "the thread did not end"
            time.sleep(0.01)
        assert "cannot checkpoint the database" in caplog.text
        assert checkpointer.done == 0
        checkpointer.stop()  # after the thread ended on its own: returns at once
    finally:
        engine.dispose()


def test_a_checkpoint_that_fails_says_so_as_a_storage_error(tmp_path: Path) -> None:
    broken = tmp_path / "monitor.db"
    broken.write_bytes(b"not a database, " * 512)
    engine = make_engine(f"sqlite:///{broken}")
    try:
        with pytest.raises(StorageError, match="cannot checkpoint the database"):
            checkpoint(engine)
    finally:
        engine.dispose()


def test_cycles_are_recorded_and_old_ones_pruned(engine: Engine) -> None:
    from monitor.store.items import CycleSummary

    storage = Storage(engine)

    def cycle(at: datetime, polled: int) -> None:
        cycle_id = storage.start_cycle(at, "v1")
        storage.finish_cycle(cycle_id, CycleSummary(at, at, polled, 0, 0, polled * 3, 0))

    cycle(NOW - timedelta(days=30), 5)
    cycle(NOW - timedelta(hours=1), 4)
    cycle(NOW, 0)  # an idle tick
    with engine.connect() as conn:
        assert item_rows.count_rows(conn, cycles) == 2  # the month-old one is gone
        latest = item_rows.last_cycle(conn)
        polled = item_rows.last_cycle(conn, polled_only=True)
    assert latest is not None and latest.feeds_fetched == 0
    assert polled is not None and (polled.feeds_fetched, polled.new_items) == (4, 12)


def test_migrations_produce_exactly_the_schema(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from monitor.store.schema import metadata

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = [
            d
            for d in compare_metadata(context, metadata)
            if not (
                isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version"
            )
        ]
    assert diff == []


def test_revision_0006_keeps_the_low_32_bits_of_each_stored_hash(db_url: str) -> None:
    """Hashes stored as int64 before revision 0006 become the uint32 of their low 32 bits,
    the values new items get for the same words: an item stored before the upgrade joins a
    rewrite stored after it. Going down clears them (older code takes them from the text)."""
    import numpy as np
    from alembic import command

    from monitor.settings import StoriesSettings
    from monitor.shingles import story_words
    from monitor.store.migrate import _alembic_config
    from monitor.store.schema import UtcDateTime
    from monitor.stories import packed, word_hashes

    title = "Delegations resume Istanbul talks on prisoner exchange"
    summary = "Umerov and Medinsky met for two hours in Istanbul."
    [kept] = word_hashes([story_words(title, summary)])
    high = np.arange(1, len(kept) + 1, dtype=np.uint64) << np.uint64(40)  # bits that go
    wide = (kept.astype(np.uint64) | high).astype("<u8").tobytes()
    _at_revision(db_url, "0005")
    insert_old = text(
        "INSERT INTO items (feed_id, identity, url, title, summary, content, first_seen_at, "
        "lang, content_hash, story_hashes) VALUES (1, :identity, NULL, :title, :summary, '', "
        ":now, 'en', :key, :hashes)"
    ).bindparams(bindparam("now", type_=UtcDateTime()))
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            values = {"title": title, "summary": summary, "now": NOW}
            for identity, hashes in (("old", wide), ("bare", None)):
                conn.execute(
                    insert_old, {**values, "identity": identity, "key": identity, "hashes": hashes}
                )
        assert upgrade(engine) == "0008"
        stored = select(items.c.identity, items.c.story_hashes).order_by(items.c.id)
        with engine.connect() as conn:
            assert dict(map(tuple, conn.execute(stored))) == {"old": packed(kept), "bare": None}
        storage = Storage(engine, StoriesSettings())
        rewrite = item("new", "Istanbul talks on prisoner exchange resume, delegations say")
        storage.save_items(1, [rewrite], [None], NOW)
        assert storage.assign_pending_stories(NOW + timedelta(minutes=1)) == 3
        placed = select(items.c.identity, item_stories.c.story_id).join(
            item_stories, item_stories.c.item_id == items.c.id
        )
        with engine.connect() as conn:
            story_of = dict(map(tuple, conn.execute(placed)))
        assert story_of["old"] == story_of["new"] == story_of["bare"]
        with engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0005")
        with engine.connect() as conn:
            assert (
                conn.execute(
                    select(items.c.story_hashes).where(items.c.story_hashes.is_not(None))
                ).all()
                == []
            )
    finally:
        engine.dispose()


def _at_revision(db_url: str, revision: str, *statements: str) -> None:
    """A database of ours migrated only to `revision`, holding one feed (id 1), then
    `statements` run as they are (`:now` is NOW)."""
    from alembic import command

    from monitor.store.migrate import APPLICATION_ID, _alembic_config
    from monitor.store.schema import UtcDateTime, meta

    feed = (
        "INSERT INTO feeds (url, tags, enabled, interval_s, error_count, created_at) "
        "VALUES ('https://a.example/rss', '[]', true, 900, 0, :now)"
    )
    old = make_engine(db_url)
    with old.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)
        conn.execute(meta.insert().values(key="application", value=APPLICATION_ID))
        for sql in (feed, *statements):
            conn.execute(text(sql).bindparams(bindparam("now", type_=UtcDateTime())), {"now": NOW})
    old.dispose()


def test_a_database_at_revision_0001_with_items_upgrades_and_places_them(db_url: str) -> None:
    """Items stored before shingle hashes were kept (NULL) are placed from their text."""
    from monitor.settings import StoriesSettings
    from monitor.shingles import story_words
    from monitor.stories import packed, word_hashes

    _at_revision(
        db_url,
        "0001",
        "INSERT INTO items (feed_id, identity, url, title, summary, content, first_seen_at, "
        "lang, content_hash) VALUES (1, 'old', 'https://a.example/old', "
        "'Delegations resume Istanbul talks on prisoner exchange', "
        "'Umerov and Medinsky met for two hours in Istanbul.', '', :now, 'en', 'h-old')",
    )
    engine = make_engine(db_url)
    try:
        assert upgrade(engine) == "0008"
        storage = Storage(engine, StoriesSettings())
        rewrite = item("new", "Istanbul talks on prisoner exchange resume, delegations say")
        storage.save_items(1, [rewrite], [None], NOW)
        assert storage.assign_pending_stories(NOW + timedelta(minutes=1)) == 2
        with engine.connect() as conn:
            rows = conn.execute(
                select(items.c.identity, item_stories.c.story_id, items.c.story_hashes).join(
                    item_stories, item_stories.c.item_id == items.c.id
                )
            )
            by_identity = {r.identity: r for r in rows}
        assert by_identity["old"].story_hashes is None
        [taken] = word_hashes([story_words(rewrite.title, rewrite.summary)])
        assert by_identity["new"].story_hashes == packed(taken)
        assert by_identity["old"].story_id == by_identity["new"].story_id is not None
    finally:
        engine.dispose()


def test_revision_0005_moves_each_items_story_to_item_stories_and_back(db_url: str) -> None:
    """Stories placed before revision 0005 (in `items.story_id`) keep their members, and a
    downgrade puts them back."""
    from alembic import command

    from monitor.store.migrate import _alembic_config
    from monitor.store.stories import get_story

    story = (
        "INSERT INTO stories (id, representative_item_id, first_seen_at, last_seen_at, "
        "item_count, actors, topics, terms) VALUES (7, 1, :now, :now, 2, '[]', '[]', '[]')"
    )
    members = [
        "INSERT INTO items (id, feed_id, identity, title, summary, content, first_seen_at, "
        f"lang, content_hash, story_id) VALUES ({n}, 1, 'i{n}', 'Talks {n}', '', '', :now, "
        f"'en', 'h{n}', {story_id})"
        for n, story_id in ((1, "7"), (2, "7"), (3, "NULL"))
    ]
    _at_revision(db_url, "0004", story, *members)
    engine = make_engine(db_url)
    try:
        assert upgrade(engine) == "0008"
        with engine.connect() as conn:
            assert sorted(map(tuple, conn.execute(select(item_stories)))) == [(1, 7), (2, 7)]
            assert (
                conn.execute(
                    select(items.c.retired_story_id).where(items.c.retired_story_id.is_not(None))
                ).all()
                == []
            )
            kept = get_story(conn, 7)
            assert kept is not None and [m.item_id for m in kept.members] == [1, 2]
        with engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0004")
        with engine.connect() as conn:
            restored = conn.execute(
                select(items.c.id, items.c.retired_story_id).order_by(items.c.id)
            )
            assert list(map(tuple, restored)) == [(1, 7), (2, 7), (3, None)]
    finally:
        engine.dispose()


def test_revision_0008_lets_a_link_name_no_story_and_goes_back_down(db_url: str) -> None:
    """Links written before revision 0008 stay; after it a link may name no story (an
    unwritten story of one); a downgrade drops those links, so their items wait for a
    story again, and keeps the others."""
    from alembic import command

    from monitor.store.migrate import _alembic_config

    story = (
        "INSERT INTO stories (id, representative_item_id, first_seen_at, last_seen_at, "
        "item_count, actors, topics, terms) VALUES (7, 1, :now, :now, 1, '[]', '[]', '[]')"
    )
    members = [
        "INSERT INTO items (id, feed_id, identity, title, summary, content, first_seen_at, "
        f"lang, content_hash) VALUES ({n}, 1, 'i{n}', 'Talks {n}', '', '', :now, 'en', 'h{n}')"
        for n in (1, 2)
    ]
    _at_revision(db_url, "0007", story, *members)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO item_stories (item_id, story_id) VALUES (1, 7)")
        assert upgrade(engine) == "0008"
        with engine.begin() as conn:
            conn.execute(insert(item_stories).values(item_id=2, story_id=None))
            rows = conn.execute(select(item_stories).order_by(item_stories.c.item_id))
            assert list(map(tuple, rows)) == [(1, 7), (2, None)]
        with engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0007")
        with engine.connect() as conn:
            assert list(map(tuple, conn.execute(select(item_stories)))) == [(1, 7)]
    finally:
        engine.dispose()


def test_a_reading_connection_reads_the_committed_rows_beside_a_writer(db_url: str) -> None:
    """`reading` neither waits for the write lock (SQLite's writers take it as they begin)
    nor sees what the writer has not committed."""
    from monitor.store.engine import reading

    engine = make_engine(db_url, busy_timeout_s=0.5)
    try:
        upgrade(engine)
        count = select(func.count()).select_from(cycles)
        with engine.begin() as writer:
            item_rows.start_cycle(writer, datetime(2025, 6, 3, tzinfo=UTC), None)
            with reading(engine) as reader:  # a wait for the lock would fail after 0.5 s
                assert reader.execute(count).scalar_one() == 0
        with reading(engine) as reader:
            assert reader.execute(count).scalar_one() == 1
    finally:
        engine.dispose()


def test_the_references_to_a_deleted_story_are_found_by_index(engine: Engine) -> None:
    """Deleting a story checks each table that refers to it: by an index in each (the
    retired `items.story_id` by an index of its non-NULL values, which holds none, and
    `item_stories` by one that leaves out the links naming no story)."""
    checks = {
        "items": "ix_items_retired_story_id",
        "item_stories": "ix_item_stories_story_id",
        "story_deliveries": "ix_story_deliveries_story_id",
    }
    with engine.connect() as conn:
        for table, index in checks.items():
            lookup = f"SELECT 1 FROM {table} WHERE story_id = "
            if engine.dialect.name == "sqlite":
                plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {lookup} ?", (1,)).all()
            else:  # the generic plan, as PostgreSQL's reference check keeps it; sequential
                # scans off, as an empty table would be read whole: the index must answer
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
                conn.exec_driver_sql(f"PREPARE check_{table} (bigint) AS {lookup} $1")
                plan = conn.exec_driver_sql(f"EXPLAIN EXECUTE check_{table}(1)").all()
            assert index in " ".join(str(r) for r in plan), plan
