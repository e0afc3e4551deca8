"""Initial schema: requests, audit events, sync watches.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

The schema is written out here rather than imported from ``tables``: a revision must keep
creating exactly what it created on the day it shipped, whatever the models look like later.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the three tables."""
    op.create_table(
        "requests",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("onprem_id", sa.String(1024), nullable=True),
        sa.Column("target_address", sa.String(320), nullable=False),
        sa.Column("onprem_dn", sa.String(2048), nullable=False),
        sa.Column("cloud_user_id", sa.String(64), nullable=False),
        sa.Column("cloud_upn", sa.String(1024), nullable=False),
        sa.Column("anchor", sa.String(256), nullable=False),
        sa.Column("plan", _JSON, nullable=False),
        sa.Column("report", _JSON, nullable=False),
        sa.Column("requester_id", sa.String(64), nullable=False),
        sa.Column("requester_name", sa.String(256), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("updated_at"),
        sa.Column("decided_by", sa.String(64), nullable=True),
        _ts("decided_at", nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("applied", _JSON, nullable=True),
        sa.Column("approval_channel", sa.String(64), nullable=True),
        sa.Column("approval_ts", sa.String(64), nullable=True),
        sa.Column("requester_channel", sa.String(64), nullable=True),
        sa.Column("notify_ts", sa.String(64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_requests"),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        _ts("at"),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(256), nullable=True),
        sa.Column("details", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name="fk_audit_events_request_id_requests"
        ),
    )
    op.create_table(
        "sync_watches",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("anchor", sa.String(256), nullable=False),
        sa.Column("cloud_user_id", sa.String(64), nullable=False),
        _ts("created_at"),
        _ts("deadline"),
        _ts("next_poll_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(256), nullable=True),
        _ts("lease_until", nullable=True),
        sa.Column("outcome", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sync_watches"),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name="fk_sync_watches_request_id_requests"
        ),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("sync_watches")
    op.drop_table("audit_events")
    op.drop_table("requests")
