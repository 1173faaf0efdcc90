"""Schema migrations at start (Alembic) and refusal of foreign or corrupt databases."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, select
from sqlalchemy.exc import DatabaseError, OperationalError, SQLAlchemyError

from monitor.errors import StorageError
from monitor.store.schema import meta

MIGRATIONS = Path(__file__).parent / "migrations"
APPLICATION_ID = "storywatch-monitor"


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def check_ours(connection: Connection) -> bool:
    """True for our database, False for an empty one; StorageError for anything else."""
    tables = set(inspect(connection).get_table_names())
    if not tables:
        return False
    if meta.name not in tables:
        raise StorageError(
            "the database holds tables that are not the monitor's "
            f"({', '.join(sorted(tables)[:5])}); refusing to touch it. Point database.url "
            "(or MONITOR_DATABASE_URL) at an empty database or a monitor database."
        )
    marker = connection.execute(
        select(meta.c.value).where(meta.c.key == "application")
    ).scalar_one_or_none()
    if marker != APPLICATION_ID:
        raise StorageError("the database is not a monitor database (no application marker)")
    return True


def upgrade(engine: Engine) -> str:
    """Bring the database to the latest schema; returns the revision. Never recreates data."""
    try:
        with engine.begin() as connection:
            ours = check_ours(connection)
            revision = current_revision(connection) if ours else None
            if revision is not None and revision not in _known_revisions():
                raise StorageError(
                    f"the database is at schema revision {revision!r}, newer than this "
                    "program knows; upgrade the program"
                )
            command.upgrade(_alembic_config(connection), "head")
            if not ours:
                connection.execute(meta.insert().values(key="application", value=APPLICATION_ID))
            return current_revision(connection) or "base"
    except (OperationalError, DatabaseError) as e:
        raise StorageError(f"cannot use the database: {_short(e)}") from e


def require_current(engine: Engine) -> None:
    """Refuse to work on a database that is foreign, unreachable or not migrated."""
    try:
        with engine.connect() as connection:
            if not check_ours(connection):
                raise StorageError("the database is empty; run `monitor db upgrade`")
            if current_revision(connection) != head_revision():
                raise StorageError("the database schema is out of date; run `monitor db upgrade`")
    except SQLAlchemyError as e:
        raise StorageError(f"cannot use the database: {_short(e)}") from e


def _known_revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}


def _short(error: SQLAlchemyError) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]
