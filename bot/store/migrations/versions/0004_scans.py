"""Whole-tenant scans: one row per scan (summary) and one per judged user (its item).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

``scans.running`` is 1 while a scan runs and NULL afterwards; its unique index lets at most
one scan run at a time (NULLs never collide, on SQLite and PostgreSQL alike).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _ts(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create ``scans`` and ``scan_items``."""
    op.create_table(
        "scans",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("running", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(256), nullable=True),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        sa.Column("summary", _JSON, nullable=False),
        sa.Column("slack_channel", sa.String(64), nullable=True),
        sa.Column("slack_ts", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_scans"),
    )
    op.create_index("uq_scans_running", "scans", ["running"], unique=True)
    op.create_index("ix_scans_state_started_at", "scans", ["state", "started_at"])
    op.create_table(
        "scan_items",
        sa.Column("scan_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("cloud_user_id", sa.String(64), nullable=False),
        sa.Column("cloud_upn", sa.String(1024), nullable=False),
        sa.Column("onprem_dn", sa.String(2048), nullable=True),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("failing", _JSON, nullable=False),
        sa.Column("warnings", _JSON, nullable=False),
        sa.Column("plan", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("scan_id", "position", name="pk_scan_items"),
        sa.ForeignKeyConstraint(
            ["scan_id"], ["scans.id"], name="fk_scan_items_scan_id_scans", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_scan_items_scan_id_verdict", "scan_items", ["scan_id", "verdict"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_scan_items_scan_id_verdict", table_name="scan_items")
    op.drop_table("scan_items")
    op.drop_index("ix_scans_state_started_at", table_name="scans")
    op.drop_index("uq_scans_running", table_name="scans")
    op.drop_table("scans")
