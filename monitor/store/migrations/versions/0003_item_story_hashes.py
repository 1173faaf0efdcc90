"""Items keep their story shingles hashed (`story_hashes`) instead of as words.

A restart then reloads the story window without hashing it again. The words column goes:
words and hashes both come from the item's title and summary, so an item without hashes
(stored before, or with stories off) has them taken from its text when needed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("story_hashes", sa.LargeBinary(), nullable=True))
    _drop_items_column("story_words")


def downgrade() -> None:
    op.add_column("items", sa.Column("story_words", sa.Text(), nullable=True))
    _drop_items_column("story_hashes")


def _drop_items_column(name: str) -> None:
    # PostgreSQL and SQLite 3.35+ drop a plain column in place; older SQLite needs Alembic's
    # batch mode, which copies the items table.
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        with op.batch_alter_table("items") as batch:
            batch.drop_column(name)
    else:
        op.execute(f"ALTER TABLE items DROP COLUMN {name}")
