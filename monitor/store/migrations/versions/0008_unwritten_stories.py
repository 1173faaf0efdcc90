"""An item placed alone without a match may have no story row: `item_stories.story_id` NULL.

Nearly every item of a cold cycle starts a story of one item that nothing joins; writing
those rows was most of what story assignment wrote. Such an item now gets its link row with
a NULL story, and its story is written when another item joins it (docs/decisions.md,
"Unwritten stories of one"). The index on `story_id` becomes partial (non-NULL values), so
those links add nothing to it; it still answers the lookups by story and the check that a
deleted story has no item left. Stories already written stay as they are.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WRITTEN = sa.text("story_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_item_stories_story_id", table_name="item_stories")
    with op.batch_alter_table("item_stories") as batch:
        batch.alter_column("story_id", existing_type=_ID, nullable=True)
    op.create_index(
        "ix_item_stories_story_id",
        "item_stories",
        ["story_id"],
        unique=False,
        sqlite_where=_WRITTEN,
        postgresql_where=_WRITTEN,
    )


def downgrade() -> None:
    # An unwritten story has no row to point at: those items go back to having no story,
    # and the next assignment within the window writes their stories of one.
    op.execute("DELETE FROM item_stories WHERE story_id IS NULL")
    op.drop_index("ix_item_stories_story_id", table_name="item_stories")
    with op.batch_alter_table("item_stories") as batch:
        batch.alter_column("story_id", existing_type=_ID, nullable=False)
    op.create_index("ix_item_stories_story_id", "item_stories", ["story_id"], unique=False)
