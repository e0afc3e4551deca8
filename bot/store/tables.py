"""SQLAlchemy table definitions: the schema at the newest migration revision.

These describe the schema for queries; the migrations under ``migrations/versions`` create and
change it. Keep the two in step: a new column here needs a new revision there.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import JsonValue
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back as an aware UTC ``datetime``.

    PostgreSQL keeps ``timestamptz`` and returns aware values; SQLite has no time zone type and
    returns naive values, so they are stored as naive UTC and tagged UTC on the way out.
    Naive values on the way in are refused: guessing their zone is how audit logs go wrong.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC (naive UTC for SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware datetimes")
        utc = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime whatever the database gave back."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")

#: 64-bit ids on PostgreSQL; SQLite only auto-increments a plain INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Stable constraint names, so later migrations (and SQLite batch rebuilds) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base holding the project's metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RequestRow(Base):
    """One SMTP-match request, from the requester's click to the sync result."""

    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    onprem_id: Mapped[str | None] = mapped_column(String(1024))
    target_address: Mapped[str] = mapped_column(String(320))
    onprem_dn: Mapped[str] = mapped_column(String(2048))
    cloud_user_id: Mapped[str] = mapped_column(String(64))
    cloud_upn: Mapped[str] = mapped_column(String(1024))
    anchor: Mapped[str] = mapped_column(String(256))
    plan: Mapped[dict[str, JsonValue]] = mapped_column(JsonDoc)
    report: Mapped[dict[str, JsonValue]] = mapped_column(JsonDoc)
    requester_id: Mapped[str] = mapped_column(String(64))
    requester_name: Mapped[str | None] = mapped_column(String(256))
    reason: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    applied: Mapped[dict[str, JsonValue] | None] = mapped_column(JsonDoc)
    approval_channel: Mapped[str | None] = mapped_column(String(64))
    approval_ts: Mapped[str | None] = mapped_column(String(64))
    requester_channel: Mapped[str | None] = mapped_column(String(64))
    notify_ts: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (
        # expire_due scans pending requests by expiry.
        Index("ix_requests_state_expires_at", "state", "expires_at"),
        # "my requests", newest first.
        Index("ix_requests_requester_id_created_at", "requester_id", "created_at"),
    )


class AuditRow(Base):
    """One audit event. Append-only: triggers refuse UPDATE and DELETE (revision 0002)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    event: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("requests.id"))
    actor: Mapped[str | None] = mapped_column(String(256))
    details: Mapped[dict[str, JsonValue]] = mapped_column(JsonDoc)

    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_request_id", "request_id"),
    )


class WatchRow(Base):
    """One sync watch: poll Entra ID until the applied request matches, fails or times out."""

    __tablename__ = "sync_watches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(32), ForeignKey("requests.id"))
    anchor: Mapped[str] = mapped_column(String(256))
    cloud_user_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    deadline: Mapped[datetime] = mapped_column(UtcDateTime)
    next_poll_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(256))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        # lease_due_watches: open watches by next poll time.
        Index("ix_sync_watches_outcome_next_poll_at", "outcome", "next_poll_at"),
        Index("ix_sync_watches_request_id", "request_id"),
    )


requests_table = RequestRow.__table__
audit_table = AuditRow.__table__
watches_table = WatchRow.__table__


# -- whole-tenant scans (revision 0004) -------------------------------------------------------


class ScanRow(Base):
    """One whole-tenant scan: its state and summary (totals, remedies)."""

    __tablename__ = "scans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    #: 1 while running, NULL afterwards: a unique index allows one running scan.
    running: Mapped[int | None] = mapped_column(Integer)
    requested_by: Mapped[str | None] = mapped_column(String(256))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    summary: Mapped[dict[str, JsonValue]] = mapped_column(JsonDoc)
    slack_channel: Mapped[str | None] = mapped_column(String(64))
    slack_ts: Mapped[str | None] = mapped_column(String(64))
    #: Renewed while the scan runs (revision 0006): a stale one means its process died.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("uq_scans_running", "running", unique=True),
        Index("ix_scans_state_started_at", "state", "started_at"),
    )


class ScanItemRow(Base):
    """One judged cloud-only user of a scan."""

    __tablename__ = "scan_items"

    scan_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("scans.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    cloud_user_id: Mapped[str] = mapped_column(String(64))
    cloud_upn: Mapped[str] = mapped_column(String(1024))
    onprem_dn: Mapped[str | None] = mapped_column(String(2048))
    verdict: Mapped[str] = mapped_column(String(32))
    failing: Mapped[list[str]] = mapped_column(JsonDoc)
    warnings: Mapped[list[str]] = mapped_column(JsonDoc)
    plan: Mapped[dict[str, JsonValue] | None] = mapped_column(JsonDoc)

    __table_args__ = (Index("ix_scan_items_scan_id_verdict", "scan_id", "verdict"),)


scans_table = ScanRow.__table__
scan_items_table = ScanItemRow.__table__


# -- waves, the bulk hand-over (revision 0005) ------------------------------------------------


class WaveRow(Base):
    """One wave: a reviewed batch of a scan's items, approved and applied as one."""

    __tablename__ = "waves"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scan_id: Mapped[str] = mapped_column(String(32), ForeignKey("scans.id"))
    state: Mapped[str] = mapped_column(String(16))
    requester_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    criteria: Mapped[dict[str, JsonValue]] = mapped_column(JsonDoc)
    count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    approver_id: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    approval_channel: Mapped[str | None] = mapped_column(String(64))
    approval_ts: Mapped[str | None] = mapped_column(String(64))
    progress_channel: Mapped[str | None] = mapped_column(String(64))
    progress_ts: Mapped[str | None] = mapped_column(String(64))
    watch_deadline: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: The replica applying the wave, and until when (one runner at a time).
    lease_owner: Mapped[str | None] = mapped_column(String(256))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (Index("ix_waves_state", "state"),)


class WaveItemRow(Base):
    """One user of a wave, with its own compare-and-set state."""

    __tablename__ = "wave_items"

    wave_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("waves.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    cloud_user_id: Mapped[str] = mapped_column(String(64))
    cloud_upn: Mapped[str] = mapped_column(String(1024))
    onprem_dn: Mapped[str | None] = mapped_column(String(2048))
    plan: Mapped[dict[str, JsonValue] | None] = mapped_column(JsonDoc)
    creates: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    request_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("requests.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    anchor: Mapped[str | None] = mapped_column(String(256))

    __table_args__ = (Index("ix_wave_items_wave_id_state", "wave_id", "state"),)
