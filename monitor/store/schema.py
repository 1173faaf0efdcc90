"""Database tables (SQLAlchemy Core); the Alembic migrations must produce exactly these."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Primary keys: BIGINT on PostgreSQL, INTEGER (rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, the text the generic path writes, made in one step (`_sqlite_text`):
        1.7 times faster, for the bulk writes of items and stories."""
        if dialect.name == "sqlite":
            return _sqlite_text
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        """On SQLite, the stored text read in one step (`_utc_from_sqlite`): the generic path
        parsed it to a naive datetime and then replaced its zone, 8 times slower."""
        if dialect.name == "sqlite":
            return _utc_from_sqlite
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return _as_utc(value)


def _as_utc(value: datetime | str | None) -> datetime | None:
    """A stored time (a datetime, or ISO text) as an aware UTC datetime; naive means UTC."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


#: SQLAlchemy's SQLite datetime format, as `_sqlite_text` fills it from a datetime's fields.
_SQLITE_TIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


def _sqlite_text(value: datetime | None) -> str | None:
    """An aware datetime as SQLite holds a `UtcDateTime`: naive UTC text with microseconds
    (`process_bind_param`, then SQLAlchemy's SQLite format), from its fields in UTC: 0.7 µs
    against 1.4 µs for its ISO form without the offset (a cold cycle writes some 60,000)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
    return _SQLITE_TIME % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def _utc_from_sqlite(value: str | None) -> datetime | None:
    """A `UtcDateTime` as SQLite holds it (naive UTC text), as an aware UTC datetime."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value + "+00:00")  # the zone parsed with the rest
    except ValueError:  # text with an offset of its own (not written by this program)
        return _as_utc(value)


#: Marks the database as ours; a database without it (and not empty) is refused.
meta = Table(
    "monitor_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

feeds = Table(
    "feeds",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False, unique=True),
    #: Where the feed permanently moved (301/308); polled instead of `url`.
    Column("moved_to", Text),
    Column("name", Text),
    Column("title", Text),
    Column("tags", JSON, nullable=False, default=list),
    Column("lang", String(8)),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("interval_s", Integer, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("next_fetch_at", UtcDateTime, index=True),
    Column("last_fetch_at", UtcDateTime),
    Column("last_success_at", UtcDateTime),
    Column("last_status", Integer),
    Column("error_count", Integer, nullable=False, default=0),
    Column("first_error_at", UtcDateTime),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
)

items = Table(
    "items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("feed_id", Id, ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    Column("identity", Text, nullable=False),
    Column("guid", Text),
    Column("url", Text),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("author", Text),
    Column("published_at", UtcDateTime),
    Column("updated_at", UtcDateTime),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("lang", String(8), nullable=False),
    Column("content_hash", String(64), nullable=False),
    #: The earliest stored item with the same canonical URL or content hash, if another.
    Column("duplicate_of", Id, ForeignKey("items.id", ondelete="SET NULL")),
    #: Retired at revision 0005 (always NULL): an item's story is its `item_stories` row.
    #: SQLite cannot drop a foreign-key column without copying the whole table. Its key
    #: (`items.c.retired_story_id`) keeps code from reading it by its old name.
    Column("story_id", Id, ForeignKey("stories.id", ondelete="SET NULL"), key="retired_story_id"),
    #: The shingle hashes story clustering compares (monitor.stories.packed), when taken:
    #: a restart reloads the story window without tokenising or hashing again.
    Column("story_hashes", LargeBinary),
    UniqueConstraint("feed_id", "identity", name="uq_items_feed_identity"),
    Index("ix_items_first_seen_at", "first_seen_at"),
    Index("ix_items_url", "url"),
    Index("ix_items_content_hash", "content_hash"),
    #: Empty (the column is always NULL), but it answers the check that a deleted story
    #: has no item referring to it here, which read every item without it (revision 0007).
    Index(
        "ix_items_retired_story_id",
        "retired_story_id",
        sqlite_where=text("story_id IS NOT NULL"),
        postgresql_where=text("story_id IS NOT NULL"),
    ),
)

matches = Table(
    "matches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("item_id", Id, ForeignKey("items.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("score", Float, nullable=False),
    Column("topics", JSON, nullable=False),
    Column("actors", JSON, nullable=False),
    #: Hits, score parts, snippet, nearest seed: everything a person needs to check it.
    Column("evidence", JSON, nullable=False),
    Column("watchlist_version", String(64), nullable=False),
    Column("matched_at", UtcDateTime, nullable=False, index=True),
)

stories = Table(
    "stories",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    #: Not a foreign key (items already refer to stories); kept valid by the story code.
    Column("representative_item_id", Id),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False, index=True),
    Column("item_count", Integer, nullable=False, default=1),
    Column("actors", JSON, nullable=False, default=list),
    Column("topics", JSON, nullable=False, default=list),
    Column("terms", JSON, nullable=False, default=list),
)

#: The story of each placed item; an item without a row has no story yet. Kept apart from
#: the wide `items` rows, which are written once: placing a cold cycle's 30,000 items appends
#: small rows here instead of rewriting every page of `items` (docs/decisions.md).
#: A NULL story: the item was placed alone and did not match, and its story of one item is
#: not written until another item joins it (docs/decisions.md, "Unwritten stories of one").
item_stories = Table(
    "item_stories",
    metadata,
    Column(
        "item_id",
        Id,
        ForeignKey("items.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("story_id", Id, ForeignKey("stories.id", ondelete="CASCADE")),
    #: Partial: the many unwritten stories (NULL) cost it nothing.
    Index(
        "ix_item_stories_story_id",
        "story_id",
        sqlite_where=text("story_id IS NOT NULL"),
        postgresql_where=text("story_id IS NOT NULL"),
    ),
)

digests = Table(
    "digests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(128), nullable=False),
    #: pending → sent, or failed (retried at next_attempt_at).
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("period_start", UtcDateTime),
    Column("period_end", UtcDateTime, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("entry_count", Integer, nullable=False),
    #: The digest as built (entries, header, footer), so a resend is identical.
    Column("payload", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime),
    Column("last_error", Text),
    Column("sent_at", UtcDateTime),
    Index("ix_digests_channel_status", "channel", "status"),
)

#: Which match went out in which digest, per channel: each match reaches a channel once.
digest_matches = Table(
    "digest_matches",
    metadata,
    Column("channel", String(128), primary_key=True),
    Column("match_id", Id, ForeignKey("matches.id", ondelete="CASCADE"), primary_key=True),
    Column("digest_id", Id, ForeignKey("digests.id", ondelete="CASCADE"), nullable=False),
    Index("ix_digest_matches_digest_id", "digest_id"),
)

#: What each channel has been told about each story (for updates, never repeats).
story_deliveries = Table(
    "story_deliveries",
    metadata,
    Column("channel", String(128), primary_key=True),
    Column("story_id", Id, ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True),
    Column("digest_id", Id, ForeignKey("digests.id", ondelete="CASCADE"), nullable=False),
    Column("actors", JSON, nullable=False),
    Column("topics", JSON, nullable=False),
    Column("terms", JSON, nullable=False),
    Column("item_count", Integer, nullable=False),
    #: For the reference check when a story is deleted (revision 0007).
    Index("ix_story_deliveries_story_id", "story_id"),
)

cycles = Table(
    "cycles",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("started_at", UtcDateTime, nullable=False, index=True),
    Column("finished_at", UtcDateTime),
    Column("feeds_fetched", Integer, nullable=False, default=0),
    Column("feeds_not_modified", Integer, nullable=False, default=0),
    Column("feeds_failed", Integer, nullable=False, default=0),
    Column("new_items", Integer, nullable=False, default=0),
    Column("new_matches", Integer, nullable=False, default=0),
    Column("watchlist_version", String(64)),
)
