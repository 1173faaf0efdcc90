"""Items keep the words story clustering compares, so a restart need not re-tokenise them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: items stored before (or with stories off) have none; their words are taken
    # from title and summary when needed.
    op.add_column("items", sa.Column("story_words", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("items", "story_words")
