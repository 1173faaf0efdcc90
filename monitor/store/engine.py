"""Database engines: SQLite (WAL, foreign keys, busy timeout) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.errors import StorageError
from monitor.store.wal import keeps_a_log

#: WAL pages after which a commit on SQLite copies the log into the database file itself
#: (SQLite's default is 1,000, about 4 MB). During a cycle a thread of its own does that
#: (`monitor.store.wal`), so this is only the net for when it falls behind: at the default,
#: a cold cycle's storage thread waited in twenty-odd such checkpoints (docs/decisions.md).
#: Counted in pages: 64 MB with the 8 KiB pages of new files, 32 MB with 4 KiB ones.
WAL_CHECKPOINT_PAGES = 8000
#: Bytes per page of a new SQLite file (SQLite's default is 4,096). A cold cycle's saves
#: took 0.54-0.58 s of CPU with 8 KiB pages against 0.65-0.96 s with 4 KiB (docs/decisions.md).
#: A file keeps the size it was made with: the pragma changes nothing once it holds a table.
PAGE_SIZE = 8192
#: Bytes the WAL file is cut back to once copied (it would otherwise keep its largest size).
WAL_SIZE_LIMIT = 64 * 1024 * 1024


#: Execution option of the connections `reading` opens.
READ_ONLY = "monitor_read_only"


def normalise_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain postgresql:// URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, busy_timeout_s: float = 30.0) -> Engine:
    """An Engine for `url`; SQLite files get their directory created and safe pragmas."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError as e:
        raise StorageError(f"invalid database URL {url!r}: {e}") from e
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(
            parsed.render_as_string(hide_password=False), parsed.database, busy_timeout_s
        )
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, future=True)
    raise StorageError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
    )


def _sqlite_engine(url: str, database: str | None, busy_timeout_s: float) -> Engine:
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s}, future=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions (BEGIN is emitted below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        if database and database != ":memory:":
            cursor.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file's; no-op otherwise
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: no deadlock when two writers upgrade. A
        # connection opened by `reading` never writes, so it must not wait for that lock.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def reads_beside_a_writer(engine: Engine) -> bool:
    """Whether another connection of `engine` can read committed rows while one writes:
    PostgreSQL, or an SQLite file (WAL); not an in-memory SQLite database, which each
    connection of the pool sees apart."""
    return engine.dialect.name == "postgresql" or keeps_a_log(engine)


def reading(engine: Engine) -> Connection:
    """A connection of `engine` for reads only: on SQLite its transactions begin DEFERRED,
    so it reads the last committed state beside a writer holding the write lock."""
    return engine.connect().execution_options(**{READ_ONLY: True})
