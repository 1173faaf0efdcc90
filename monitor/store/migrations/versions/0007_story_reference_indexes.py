"""Indexes for the references to a story, so deleting one is a lookup in each table.

Story assignment now starts every new item in a story of its own and then folds the few
that join another story into it, deleting the stories they leave (docs/decisions.md). A
deleted story's references are checked in every table that refers to it: `item_stories`
has an index on `story_id`; `story_deliveries` (keyed by channel first) and the retired,
always-NULL `items.story_id` had none, so each deletion read both tables whole (2.8 s for
199 deletions beside a cold cycle's 29,550 items on SQLite). The index on `items.story_id`
is partial (non-NULL values only): it holds no entry and costs an insert nothing, yet
answers the reference check, which looks for one value.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SET = sa.text("story_id IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_items_retired_story_id",
        "items",
        ["story_id"],
        unique=False,
        sqlite_where=_SET,
        postgresql_where=_SET,
    )
    op.create_index(
        "ix_story_deliveries_story_id", "story_deliveries", ["story_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_story_deliveries_story_id", table_name="story_deliveries")
    op.drop_index("ix_items_retired_story_id", table_name="items")
