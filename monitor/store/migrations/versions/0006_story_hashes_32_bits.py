"""Stored shingle hashes keep 32 bits instead of 64 (`items.story_hashes` halves).

An item's hashes were little-endian int64; they are now the low 32 bits of the same values,
little-endian uint32 (`monitor.stories.PACKED`), as new items' are. The low half of a
little-endian 8-byte value is its first 4 bytes, so each stored blob keeps every other
4-byte word, read and written back in batches of ids. Going down, the hashes are cleared:
their high bits are gone, and an item without hashes has them taken from its title and
summary when it is next compared.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: Items read and rewritten per statement.
_BATCH = 5000

_SELECT = sa.text(
    "SELECT id, story_hashes FROM items WHERE id > :after AND story_hashes IS NOT NULL "
    "ORDER BY id LIMIT :n"
)
_UPDATE = sa.text("UPDATE items SET story_hashes = :hashes WHERE id = :id")


def narrowed(blob: bytes) -> bytes:
    """Little-endian int64 values as the little-endian uint32 of their low 32 bits."""
    return np.frombuffer(blob, dtype="<u4")[::2].tobytes()


def upgrade() -> None:
    conn = op.get_bind()
    after = 0
    while rows := conn.execute(_SELECT, {"after": after, "n": _BATCH}).all():
        conn.execute(_UPDATE, [{"id": i, "hashes": narrowed(bytes(blob))} for i, blob in rows])
        after = rows[-1][0]


def downgrade() -> None:
    op.execute("UPDATE items SET story_hashes = NULL WHERE story_hashes IS NOT NULL")
