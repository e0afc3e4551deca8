"""A running scan's heartbeat.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

``scans.heartbeat_at`` is renewed every minute while a scan runs. A scan whose heartbeat (or,
before its first, its start) is older than ten minutes died with its process, and no longer
holds the one-scan lock: a restart mid-scan no longer blocks new scans for hours.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``scans.heartbeat_at``."""
    op.add_column("scans", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop ``scans.heartbeat_at`` (batch mode: SQLite rebuilds the table, keeping its indexes)."""
    with op.batch_alter_table("scans") as batch:
        batch.drop_column("heartbeat_at")
