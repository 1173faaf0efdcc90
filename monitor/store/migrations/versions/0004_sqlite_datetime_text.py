"""On SQLite, every stored UTC time in one text form: `YYYY-MM-DD HH:MM:SS.ffffff`.

Bulk writes used to hand datetimes to sqlite3's default adapter, which writes a whole second
without its fraction (`2025-06-02 09:30:00`), and one column (a feed's first error) got an
aware datetime, written with its offset (`2025-06-02 09:30:00+00:00`); everything written
through SQLAlchemy has six fraction digits. Text compares character by character, so the
same instant in two forms did not compare equal (`… 09:30:00` sorts before
`… 09:30:00.000000`). Writes now all go through SQLAlchemy's form; this rewrites the rest.
PostgreSQL stores timestamps natively and is left alone.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: Every UTC time column at this revision.
_COLUMNS = {
    "cycles": ("started_at", "finished_at"),
    "digests": ("created_at", "period_start", "period_end", "next_attempt_at", "sent_at"),
    "feeds": ("next_fetch_at", "last_fetch_at", "last_success_at", "first_error_at", "created_at"),
    "stories": ("first_seen_at", "last_seen_at"),
    "items": ("published_at", "updated_at", "first_seen_at"),
    "matches": ("matched_at",),
}

#: (condition on the text, its canonical form); the values were always UTC.
_REWRITES = (
    ("length({c}) = 19", "{c} || '.000000'"),
    ("length({c}) = 25 AND substr({c}, 20) = '+00:00'", "substr({c}, 1, 19) || '.000000'"),
    ("length({c}) = 32 AND substr({c}, 27) = '+00:00'", "substr({c}, 1, 26)"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in _COLUMNS.items():
        for column in columns:
            for condition, canonical in _REWRITES:
                where, value = condition.format(c=column), canonical.format(c=column)
                op.execute(f"UPDATE {table} SET {column} = {value} WHERE {where}")


def downgrade() -> None:
    # The canonical form is what every version reads and writes through SQLAlchemy.
    pass
