"""One polling instance per database: a file lock for SQLite, an advisory lock for PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from sqlalchemy import Engine, text

from monitor.errors import LockedError

#: Arbitrary constant key of the PostgreSQL advisory lock ("monitor" in ASCII).
ADVISORY_KEY = 0x6D6F6E69746F72


@contextmanager
def instance_lock(engine: Engine) -> Iterator[None]:
    """Hold the polling lock for the life of the block, or raise LockedError at once."""
    if engine.dialect.name == "sqlite":
        with _sqlite_lock(engine.url.database):
            yield
    else:
        with _advisory_lock(engine):
            yield


@contextmanager
def _sqlite_lock(database: str | None) -> Iterator[None]:
    if not database or database == ":memory:":
        yield
        return
    lock = FileLock(str(Path(database).with_suffix(Path(database).suffix + ".lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout as e:
        raise LockedError(
            f"another monitor is already polling {database} (lock {lock.lock_file}); "
            "stop it first or use a different database"
        ) from e
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _advisory_lock(engine: Engine) -> Iterator[None]:
    with engine.connect() as conn:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar()
        conn.commit()
        if not got:
            raise LockedError(
                "another monitor is already polling this PostgreSQL database "
                "(advisory lock held); stop it first"
            )
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
            conn.commit()
