"""Indexes for the hot queries, sync_watches.finished_at, and an append-only audit table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

- Indexes: ``expire_due`` (pending by expiry), "my requests" (requester, newest first),
  ``list_audit`` (by time and by request), ``lease_due_watches`` (open watches by next poll).
- ``sync_watches.finished_at``: when the watch got its outcome (watches from revision 0001
  that are already finished keep NULL: the time was not recorded then).
- Triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on ``audit_events``, so
  the audit log stays append-only even against a buggy or hurried hand in the database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_APPEND_ONLY = "audit_events is append-only"

_PG_UP = [
    f"""
    CREATE FUNCTION smtpmatch_audit_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{_APPEND_ONLY}' USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION smtpmatch_audit_append_only()
    """,
    """
    CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION smtpmatch_audit_append_only()
    """,
]
_PG_DOWN = [
    "DROP TRIGGER audit_events_no_truncate ON audit_events",
    "DROP TRIGGER audit_events_append_only ON audit_events",
    "DROP FUNCTION smtpmatch_audit_append_only()",
]
_SQLITE_UP = [
    f"""
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END
    """,
    f"""
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END
    """,
]
_SQLITE_DOWN = [
    "DROP TRIGGER audit_events_no_delete",
    "DROP TRIGGER audit_events_no_update",
]


def upgrade() -> None:
    """Add the indexes, the column and the audit triggers."""
    op.create_index("ix_requests_state_expires_at", "requests", ["state", "expires_at"])
    op.create_index(
        "ix_requests_requester_id_created_at", "requests", ["requester_id", "created_at"]
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_request_id", "audit_events", ["request_id"])
    op.create_index(
        "ix_sync_watches_outcome_next_poll_at", "sync_watches", ["outcome", "next_poll_at"]
    )
    op.create_index("ix_sync_watches_request_id", "sync_watches", ["request_id"])
    # ADD COLUMN of a nullable column is done in place by both databases; no batch rebuild.
    op.add_column(
        "sync_watches", sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True)
    )
    for statement in _statements(up=True):
        op.execute(statement)


def downgrade() -> None:
    """Remove the triggers, the column and the indexes."""
    for statement in _statements(up=False):
        op.execute(statement)
    with op.batch_alter_table("sync_watches") as batch:
        batch.drop_column("finished_at")
    op.drop_index("ix_sync_watches_request_id", "sync_watches")
    op.drop_index("ix_sync_watches_outcome_next_poll_at", "sync_watches")
    op.drop_index("ix_audit_events_request_id", "audit_events")
    op.drop_index("ix_audit_events_at", "audit_events")
    op.drop_index("ix_requests_requester_id_created_at", "requests")
    op.drop_index("ix_requests_state_expires_at", "requests")


def _statements(*, up: bool) -> list[str]:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        return _PG_UP if up else _PG_DOWN
    if dialect == "sqlite":
        return _SQLITE_UP if up else _SQLITE_DOWN
    # Other databases are not supported by the store; keep their schema usable, unguarded.
    return []
