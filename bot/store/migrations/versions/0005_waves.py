"""Waves (bulk hand-over): one row per wave and one per wave item.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Every state change of a wave or an item is a compare-and-set (``UPDATE ... WHERE state IN``)
with its audit event in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _ts(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create ``waves`` and ``wave_items``."""
    op.create_table(
        "waves",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("scan_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requester_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("criteria", _JSON, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("approver_id", sa.String(64), nullable=True),
        _ts("decided_at", nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("approval_channel", sa.String(64), nullable=True),
        sa.Column("approval_ts", sa.String(64), nullable=True),
        sa.Column("progress_channel", sa.String(64), nullable=True),
        sa.Column("progress_ts", sa.String(64), nullable=True),
        _ts("watch_deadline", nullable=True),
        sa.Column("lease_owner", sa.String(256), nullable=True),
        _ts("lease_until", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_waves"),
        sa.ForeignKeyConstraint(["scan_id"], ["scans.id"], name="fk_waves_scan_id_scans"),
    )
    op.create_index("ix_waves_state", "waves", ["state"])
    op.create_table(
        "wave_items",
        sa.Column("wave_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("cloud_user_id", sa.String(64), nullable=False),
        sa.Column("cloud_upn", sa.String(1024), nullable=False),
        sa.Column("onprem_dn", sa.String(2048), nullable=True),
        sa.Column("plan", _JSON, nullable=True),
        sa.Column("creates", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _ts("updated_at"),
        sa.Column("request_id", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("anchor", sa.String(256), nullable=True),
        sa.PrimaryKeyConstraint("wave_id", "position", name="pk_wave_items"),
        sa.ForeignKeyConstraint(
            ["wave_id"], ["waves.id"], name="fk_wave_items_wave_id_waves", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name="fk_wave_items_request_id_requests"
        ),
    )
    op.create_index("ix_wave_items_wave_id_state", "wave_items", ["wave_id", "state"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_wave_items_wave_id_state", table_name="wave_items")
    op.drop_table("wave_items")
    op.drop_index("ix_waves_state", table_name="waves")
    op.drop_table("waves")
