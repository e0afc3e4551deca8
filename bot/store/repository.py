"""The store: requests, decisions, audit events and sync watches in SQLite or PostgreSQL.

Every state change is a compare-and-set done by the database in one statement, so two clicks,
two threads or two replicas racing for the same request get exactly one winner. What leaves
this module is frozen dataclasses with aware UTC datetimes, never ORM objects or rows.

SQLite is for one process (several threads); PostgreSQL is for several replicas.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Table,
    and_,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import URL, Connection, Engine, RowMapping, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from bot.actors import with_actor_name
from bot.domain import (
    AuditDetails,
    AuditEvent,
    AuditNote,
    MatchRequest,
    OpenRequestExists,
    SyncWatch,
)
from bot.errors import ConfigurationError, SmtpMatchError
from bot.ports import ChangePlan
from bot.rules.checks import Report, Verdict
from bot.rules.requests import OPEN_STATES, InvalidTransition, RequestState, can_transition
from bot.scan.model import ScanItem, ScanResult, ScanState, StoredScan
from bot.store.codecs import PLAN, REPORT
from bot.store.tables import AuditRow, RequestRow, ScanItemRow, ScanRow, WatchRow

__all__ = [
    "AuditEvent",
    "AuditNote",
    "MatchRequest",
    "OpenRequestExists",
    "RequestNotFound",
    "ScanRunning",
    "Store",
    "StoreError",
    "SyncWatch",
]

#: The alembic scripts, found next to this module so an installed package migrates too.
log = logging.getLogger("smtpmatch.store")

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"

#: How long a SQLite writer waits for another writer before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000

#: A running scan renews its heartbeat every minute; one silent this long died with its process.
SCAN_STALE_AFTER: Final = timedelta(minutes=10)

#: Key of the PostgreSQL advisory lock that serialises replicas migrating at the same start.
_MIGRATION_LOCK_KEY: Final = 0x736D74706D617463  # "smtpmatc"

# Execution option that makes a SQLite transaction start with BEGIN IMMEDIATE (see _sqlite_begin).
_WRITE_OPTION: Final = "smtpmatch_write"

_REQUESTS = cast(Table, RequestRow.__table__)
_AUDIT = cast(Table, AuditRow.__table__)
_WATCHES = cast(Table, WatchRow.__table__)
_SCANS = cast(Table, ScanRow.__table__)
_SCAN_ITEMS = cast(Table, ScanItemRow.__table__)


class StoreError(SmtpMatchError):
    """Base class of the store's own errors."""


class ScanRunning(StoreError):
    """Another scan started at the same moment (one runs at a time)."""

    def __init__(self) -> None:
        super().__init__("a scan is running already")


class RequestNotFound(StoreError, LookupError):
    """No request has the given id."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(f"no request with id {request_id!r}")


#: Request fields a caller may set through ``transition`` / ``update_fields``. The id, the
#: state and the bookkeeping columns are the store's to manage.
SETTABLE_REQUEST_FIELDS: Final = frozenset(f.name for f in fields(MatchRequest)) - {
    "id",
    "state",
    "version",
    "created_at",
    "updated_at",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def new_request_id() -> str:
    """Return a fresh short random url-safe id (12 characters) for a request, a scan or a wave.

    It never starts with ``-``, so it can be typed after an option (``smtpmatch audit
    --request ID``) without being taken for one.

    Returns:
        The id; it travels in Slack button values, so it stays short.
    """
    while True:
        value = secrets.token_urlsafe(9)
        if not value.startswith("-"):
            return value


class Store:
    """Requests, audit events and sync watches in one SQL database.

    Safe to share between threads: every call takes its own connection from the pool.

    Args:
        url: ``sqlite:///PATH`` (one process) or ``postgresql://...`` /
            ``postgresql+psycopg://...`` (several replicas). ``sqlite://`` (in memory) works
            for single-threaded use only.
        clock: where "now" comes from for created_at/updated_at/audit times; tests pass a
            fixed clock. Defaults to the system clock in UTC.

    Raises:
        ConfigurationError: the URL is malformed or names an unsupported database.
    """

    def __init__(self, url: str, *, clock: Callable[[], datetime] | None = None) -> None:
        self._url = _normalise_url(url)
        self._clock = clock or _utcnow
        self._engine = _build_engine(self._url)
        # Same pool, but its transactions announce themselves as writers (BEGIN IMMEDIATE on
        # SQLite), so a transaction never has to upgrade a read lock and fail with "busy".
        self._writer = self._engine.execution_options(**{_WRITE_OPTION: True})

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def dialect(self) -> str:
        """The database kind: ``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (the newest by default); creates it when empty.

        Safe to call from several replicas at once: on PostgreSQL the upgrade runs under an
        advisory lock, on SQLite under the write lock, and everything runs in one transaction.

        Args:
            revision: alembic revision to upgrade to, e.g. ``"0001"``; ``"head"`` by default.
        """
        config = Config()
        # Config values go through ConfigParser interpolation, which would choke on "%".
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        with self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            config.attributes["connection"] = conn
            command.upgrade(config, revision)

    def schema_revision(self) -> str | None:
        """Return the schema's alembic revision, or None for an empty database.

        Returns:
            The current revision id.
        """
        with self._engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def close(self) -> None:
        """Close every pooled connection. The store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------

    def create_request(
        self,
        *,
        address: str,
        target_address: str,
        onprem_dn: str,
        cloud_user_id: str,
        cloud_upn: str,
        anchor: str,
        plan: ChangePlan,
        report: Report,
        requester_id: str,
        expires_at: datetime,
        onprem_id: str | None = None,
        requester_name: str | None = None,
        reason: str | None = None,
        approval_channel: str | None = None,
        approval_ts: str | None = None,
        requester_channel: str | None = None,
        notify_ts: str | None = None,
        audit: AuditNote | None = None,
        exclusive: bool = False,
    ) -> MatchRequest:
        """Store a new request in state ``pending``.

        Args:
            address: the address the requester asked about.
            target_address: the address the on-prem user will carry.
            onprem_dn: DN of the AD user to be written.
            cloud_user_id: Entra ID object id of the cloud user.
            cloud_upn: the cloud user's UPN.
            anchor: the sourceAnchor the AD user will present to sync.
            plan: the change the approver is asked to approve.
            report: the report the requester saw.
            requester_id: Slack user id of the requester.
            expires_at: when the request expires unless decided (aware).
            onprem_id: the AD account named by the requester, if any.
            requester_name: display name of the requester.
            reason: why the requester wants the match.
            approval_channel: channel of the approval message, once posted.
            approval_ts: ts of the approval message, once posted.
            requester_channel: where to tell the requester about progress.
            notify_ts: ts of the requester's progress message.
            audit: an event to log about the new request, in the same transaction.
            exclusive: refuse when a request for the same target address or AD DN is still
                open (pending, approving or applied). Decided inside the writing transaction
                (SQLite's write lock, a PostgreSQL advisory lock per address), so two
                submissions racing each other create one request.

        Returns:
            The stored request, with its new id.

        Raises:
            OpenRequestExists: ``exclusive`` and such a request exists (nothing was stored).
        """
        now = self._clock()
        values: dict[str, object] = {
            "address": address,
            "onprem_id": onprem_id,
            "target_address": target_address,
            "onprem_dn": onprem_dn,
            "cloud_user_id": cloud_user_id,
            "cloud_upn": cloud_upn,
            "anchor": anchor,
            "plan": PLAN.dump(plan),
            "report": REPORT.dump(report),
            "requester_id": requester_id,
            "requester_name": requester_name,
            "reason": reason,
            "state": RequestState.PENDING.value,
            "created_at": now,
            "expires_at": expires_at,
            "updated_at": now,
            "approval_channel": approval_channel,
            "approval_ts": approval_ts,
            "requester_channel": requester_channel,
            "notify_ts": notify_ts,
            "version": 1,
        }
        # 72 random bits make a clash absurdly rare; retry anyway rather than fail a user.
        attempts = 3
        for attempt in range(attempts):
            try:
                with self._writer.begin() as conn:
                    if exclusive:
                        self._refuse_if_open(conn, target_address, onprem_dn)
                    row = (
                        conn.execute(
                            insert(_REQUESTS)
                            .values(id=new_request_id(), **values)
                            .returning(*_REQUESTS.c)
                        )
                        .mappings()
                        .one()
                    )
                    self._insert_audit(conn, audit, row["id"])
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
                continue
            return _to_request(row)
        raise AssertionError("unreachable")  # pragma: no cover

    def _refuse_if_open(self, conn: Connection, address: str, dn: str) -> None:
        if conn.dialect.name == "postgresql":
            # Serialise creators per address (and per DN); released when the transaction ends.
            for key in sorted({f"address:{address.lower()}", f"dn:{dn.lower()}"}):
                conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))
        open_states = sorted(s.value for s in OPEN_STATES)
        stmt = (
            select(_REQUESTS)
            .where(
                _REQUESTS.c.state.in_(open_states),
                or_(
                    func.lower(_REQUESTS.c.target_address) == address.lower(),
                    func.lower(_REQUESTS.c.onprem_dn) == dn.lower(),
                ),
            )
            .order_by(_REQUESTS.c.created_at)
            .limit(1)
        )
        found = conn.execute(stmt).mappings().first()
        if found is not None:
            raise OpenRequestExists(_to_request(found))

    def get_request(self, request_id: str) -> MatchRequest | None:
        """Load one request.

        Args:
            request_id: the request's id.

        Returns:
            The request, or None when there is no such request.
        """
        with self._engine.connect() as conn:
            row = conn.execute(select(_REQUESTS).where(_REQUESTS.c.id == request_id)).mappings()
            found = row.first()
        return _to_request(found) if found is not None else None

    def transition(
        self,
        request_id: str,
        from_states: Iterable[RequestState],
        to_state: RequestState,
        audit: AuditNote | None = None,
        **fields: object,
    ) -> MatchRequest | None:
        """Move a request to ``to_state`` if it is still in one of ``from_states``.

        A single ``UPDATE ... WHERE id = :id AND state IN (...)``: the database decides the
        race, so exactly one of several concurrent callers (threads or replicas) wins.

        Args:
            request_id: the request's id.
            from_states: the states the caller expects the request to be in.
            to_state: the state to move to.
            audit: an event to log when (and only when) the move happens, in the same
                transaction.
            **fields: other request fields to set in the same update (e.g. ``decided_by``).

        Returns:
            The updated request, or None when it was not in one of ``from_states`` (someone
            else moved it first) or does not exist.

        Raises:
            InvalidTransition: a move from one of ``from_states`` to ``to_state`` is not
                allowed by the state machine.
            ValueError: ``from_states`` is empty.
            TypeError: a field is unknown or not settable.
        """
        sources = frozenset(RequestState(s) for s in from_states)
        target = RequestState(to_state)
        if not sources:
            raise ValueError("transition needs at least one from_state")
        for source in sorted(sources):
            if not can_transition(source, target):
                raise InvalidTransition(source, target)
        values = _checked_fields(fields)
        stmt = (
            update(_REQUESTS)
            .where(_REQUESTS.c.id == request_id, _REQUESTS.c.state.in_(sorted(sources)))
            .values(
                state=target.value,
                version=_REQUESTS.c.version + 1,
                updated_at=self._clock(),
                **values,
            )
            .returning(*_REQUESTS.c)
        )
        with self._writer.begin() as conn:
            row = conn.execute(stmt).mappings().first()
            if row is not None:
                self._insert_audit(conn, audit, request_id)
        return _to_request(row) if row is not None else None

    def update_fields(self, request_id: str, **fields: object) -> MatchRequest:
        """Set non-state fields of a request (e.g. ``approval_channel``, ``notify_ts``).

        Args:
            request_id: the request's id.
            **fields: the fields to set.

        Returns:
            The updated request.

        Raises:
            RequestNotFound: there is no such request.
            TypeError: a field is unknown or not settable (the state only moves by transition).
        """
        values = _checked_fields(fields)
        stmt = (
            update(_REQUESTS)
            .where(_REQUESTS.c.id == request_id)
            .values(version=_REQUESTS.c.version + 1, updated_at=self._clock(), **values)
            .returning(*_REQUESTS.c)
        )
        with self._writer.begin() as conn:
            row = conn.execute(stmt).mappings().first()
        if row is None:
            raise RequestNotFound(request_id)
        return _to_request(row)

    def list_requests(
        self,
        *,
        requester_id: str | None = None,
        states: Iterable[RequestState] | None = None,
        limit: int = 20,
    ) -> list[MatchRequest]:
        """List requests, newest first.

        Args:
            requester_id: only this requester's requests.
            states: only requests in these states.
            limit: at most this many.

        Returns:
            The requests.
        """
        stmt = select(_REQUESTS)
        if requester_id is not None:
            stmt = stmt.where(_REQUESTS.c.requester_id == requester_id)
        if states is not None:
            stmt = stmt.where(_REQUESTS.c.state.in_(sorted(RequestState(s) for s in states)))
        stmt = stmt.order_by(_REQUESTS.c.created_at.desc(), _REQUESTS.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_to_request(r) for r in rows]

    def expire_due(self, now: datetime) -> list[MatchRequest]:
        """Expire every pending request whose ``expires_at`` is at or before ``now``.

        One compare-and-set update: a request decided at the same moment is not expired, and
        replicas expiring concurrently each get a disjoint set.

        Args:
            now: the current time (aware).

        Returns:
            The requests this call expired (and so must announce).
        """
        stmt = (
            update(_REQUESTS)
            .where(
                _REQUESTS.c.state == RequestState.PENDING.value,
                _REQUESTS.c.expires_at <= now,
            )
            .values(
                state=RequestState.EXPIRED.value,
                version=_REQUESTS.c.version + 1,
                updated_at=now,
            )
            .returning(*_REQUESTS.c)
        )
        with self._writer.begin() as conn:
            rows = conn.execute(stmt).mappings().all()
        return sorted((_to_request(r) for r in rows), key=lambda r: (r.expires_at, r.id))

    # -- audit ------------------------------------------------------------------------------

    def append_audit(
        self,
        event: str,
        *,
        request_id: str | None = None,
        actor: str | None = None,
        details: AuditDetails | None = None,
    ) -> AuditEvent:
        """Append one event to the audit log (there is no way to change or remove it).

        Args:
            event: what happened (an :class:`bot.domain.AuditEventName` for the bot's own).
            request_id: the request concerned, if any.
            actor: who did it (a Slack user id, or the bot's own name).
            details: JSON-serialisable facts (old and new values, sync result, ...).

        Returns:
            The stored event.
        """
        with self._writer.begin() as conn:
            row = self._insert_audit(conn, AuditNote(event, actor, details), request_id)
        assert row is not None
        return _to_audit(row)

    def _insert_audit(
        self, conn: Connection, note: AuditNote | None, request_id: str | None
    ) -> RowMapping | None:
        if note is None:
            return None
        stmt = (
            insert(_AUDIT)
            .values(
                at=self._clock(),
                event=str(note.event),
                request_id=request_id,
                actor=note.actor,
                # The actor's display name at the time, next to the id (bot.actors).
                details=with_actor_name(note.details or {}, note.actor),
            )
            .returning(*_AUDIT.c)
        )
        return conn.execute(stmt).mappings().one()

    def get_audit(self, event_id: int) -> AuditEvent | None:
        """One audit event by id, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(select(_AUDIT).where(_AUDIT.c.id == event_id)).mappings().first()
        return _to_audit(row) if row is not None else None

    def list_audit(
        self,
        *,
        since: datetime | None = None,
        request_id: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """List audit events, oldest first.

        Args:
            since: only events at or after this time (inclusive).
            request_id: only events about this request.
            limit: at most this many (the oldest ones).

        Returns:
            The events.
        """
        stmt = select(_AUDIT)
        if since is not None:
            stmt = stmt.where(_AUDIT.c.at >= since)
        if request_id is not None:
            stmt = stmt.where(_AUDIT.c.request_id == request_id)
        stmt = stmt.order_by(_AUDIT.c.at, _AUDIT.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_to_audit(r) for r in rows]

    # -- sync watches -----------------------------------------------------------------------

    def create_watch(
        self,
        request_id: str,
        anchor: str,
        cloud_user_id: str,
        deadline: datetime,
        next_poll_at: datetime,
    ) -> SyncWatch:
        """Start watching sync for an applied request.

        Args:
            request_id: the request whose change is being synced.
            anchor: the sourceAnchor to look for in Entra ID.
            cloud_user_id: the cloud user that should become bound.
            deadline: when to give up (outcome timeout).
            next_poll_at: when to look first.

        Returns:
            The new watch, unleased.
        """
        stmt = (
            insert(_WATCHES)
            .values(
                request_id=request_id,
                anchor=anchor,
                cloud_user_id=cloud_user_id,
                created_at=self._clock(),
                deadline=deadline,
                next_poll_at=next_poll_at,
                attempts=0,
            )
            .returning(*_WATCHES.c)
        )
        with self._writer.begin() as conn:
            row = conn.execute(stmt).mappings().one()
        return _to_watch(row)

    def lease_due_watches(
        self, owner: str, now: datetime, lease_seconds: float, limit: int = 10
    ) -> list[SyncWatch]:
        """Claim open watches that are due, for ``lease_seconds``.

        A watch is due when it has no outcome, ``next_poll_at <= now`` and its lease is free
        or expired. On PostgreSQL the candidates are locked with ``FOR UPDATE SKIP LOCKED`` so
        replicas claim disjoint sets without waiting on each other; on SQLite the whole
        transaction holds the write lock (BEGIN IMMEDIATE). Either way no watch is claimed by
        two owners.

        Args:
            owner: unique name of the claiming worker (e.g. host + pid).
            now: the current time (aware).
            lease_seconds: how long the claim lasts; another owner may take the watch after.
            limit: at most this many watches.

        Returns:
            The claimed watches, earliest due first.
        """
        due = _WATCHES.c.next_poll_at <= now
        free = or_(_WATCHES.c.lease_until.is_(None), _WATCHES.c.lease_until <= now)
        open_ = _WATCHES.c.outcome.is_(None)
        candidates = (
            select(_WATCHES.c.id)
            .where(open_, due, free)
            .order_by(_WATCHES.c.next_poll_at, _WATCHES.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # rendered as nothing on SQLite
        )
        with self._writer.begin() as conn:
            ids = list(conn.execute(candidates).scalars())
            if not ids:
                return []
            # The same conditions again: cheap, and it keeps the claim correct even if a
            # database ever ignored the row locks above.
            claim = (
                update(_WATCHES)
                .where(_WATCHES.c.id.in_(ids), open_, due, free)
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
                .returning(*_WATCHES.c)
            )
            rows = conn.execute(claim).mappings().all()
        return sorted((_to_watch(r) for r in rows), key=lambda w: (w.next_poll_at, w.id))

    def reschedule_watch(
        self, watch_id: int, owner: str, next_poll_at: datetime, attempts: int
    ) -> bool:
        """Set the next poll time of a leased watch and release the lease.

        Args:
            watch_id: the watch's id.
            owner: the worker that holds the lease.
            next_poll_at: when to look again.
            attempts: how many polls have been made so far.

        Returns:
            False when ``owner`` no longer holds the lease (another worker took it over, or the
            watch is finished): the caller must drop its work on this watch.
        """
        return self._update_leased(
            watch_id,
            owner,
            next_poll_at=next_poll_at,
            attempts=attempts,
            lease_owner=None,
            lease_until=None,
        )

    def finish_watch(self, watch_id: int, owner: str, outcome: str, detail: str) -> bool:
        """Record the outcome of a leased watch; it will not be polled again.

        Args:
            watch_id: the watch's id.
            owner: the worker that holds the lease.
            outcome: e.g. ``"matched"``, ``"sync_failed"``, ``"sync_timeout"``.
            detail: a human-readable explanation.

        Returns:
            False when ``owner`` no longer holds the lease (nothing was recorded).
        """
        return self._update_leased(
            watch_id,
            owner,
            outcome=outcome,
            detail=detail,
            finished_at=self._clock(),
            lease_owner=None,
            lease_until=None,
        )

    def get_watch(self, request_id: str) -> SyncWatch | None:
        """Return the newest watch of a request.

        Args:
            request_id: the request's id.

        Returns:
            The watch, or None when the request has none.
        """
        stmt = (
            select(_WATCHES)
            .where(_WATCHES.c.request_id == request_id)
            .order_by(_WATCHES.c.id.desc())
            .limit(1)
        )
        with self._engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return _to_watch(row) if row is not None else None

    def list_open_watches(self) -> list[SyncWatch]:
        """Return every watch without an outcome, earliest due first.

        Returns:
            The open watches, leased or not.
        """
        stmt = (
            select(_WATCHES)
            .where(_WATCHES.c.outcome.is_(None))
            .order_by(_WATCHES.c.next_poll_at, _WATCHES.c.id)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_to_watch(r) for r in rows]

    def _update_leased(self, watch_id: int, owner: str, **values: object) -> bool:
        # Fencing by owner: a worker whose lease expired and was taken over finds
        # lease_owner changed and loses; if nobody took it over, finishing is still safe.
        stmt = (
            update(_WATCHES)
            .where(
                _WATCHES.c.id == watch_id,
                _WATCHES.c.lease_owner == owner,
                _WATCHES.c.outcome.is_(None),
            )
            .values(**values)
        )
        with self._writer.begin() as conn:
            result = conn.execute(stmt)
            return result.rowcount == 1

    # -- whole-tenant scans --------------------------------------------------------------------

    def start_scan(
        self, requested_by: str | None, *, stale_after: timedelta = SCAN_STALE_AFTER
    ) -> tuple[StoredScan, bool]:
        """Record a new running scan, unless one is running already (one at a time).

        A running scan whose heartbeat (or, before its first one, its start) is older than
        ``stale_after`` is taken to have died with its process and is marked failed first.

        Returns:
            ``(the new scan, True)``, or ``(the scan already running, False)``.
        """
        now = self._clock()
        with self._writer.begin() as conn:
            conn.execute(
                update(_SCANS)
                .where(
                    _SCANS.c.running == 1,
                    or_(
                        _SCANS.c.heartbeat_at < now - stale_after,
                        and_(
                            _SCANS.c.heartbeat_at.is_(None),
                            _SCANS.c.started_at < now - stale_after,
                        ),
                    ),
                )
                .values(
                    state=str(ScanState.FAILED),
                    running=None,
                    finished_at=now,
                    summary={"error": "the scan stopped without finishing"},
                )
            )
            current = conn.execute(select(_SCANS).where(_SCANS.c.running == 1)).mappings().first()
            if current is not None:
                return _to_scan(current), False
            scan_id = new_request_id()
            values: dict[str, Any] = {
                "id": scan_id,
                "state": str(ScanState.RUNNING),
                "running": 1,
                "requested_by": requested_by,
                "started_at": now,
                "summary": {},
            }
            try:
                conn.execute(insert(_SCANS).values(**values))
            except IntegrityError:
                # Another replica started one in between (the unique index on running).
                raise ScanRunning() from None
        return _to_scan(values), True

    def beat_scan(self, scan_id: str) -> bool:
        """Renew a running scan's heartbeat (its process is alive).

        Returns:
            False when the database did not take it (logged here; a missed beat only
            shortens the lock's life, so the scan goes on).
        """
        try:
            with self._writer.begin() as conn:
                conn.execute(
                    update(_SCANS)
                    .where(_SCANS.c.id == scan_id, _SCANS.c.running == 1)
                    .values(heartbeat_at=self._clock())
                )
        except SQLAlchemyError as exc:
            log.warning("scan %s: heartbeat not stored: %s", scan_id, exc)
            return False
        return True

    def set_scan_message(self, scan_id: str, channel: str, ts: str) -> None:
        """Remember where a scan's Slack progress message is."""
        with self._writer.begin() as conn:
            conn.execute(
                update(_SCANS)
                .where(_SCANS.c.id == scan_id)
                .values(slack_channel=channel, slack_ts=ts)
            )

    def finish_scan(self, scan_id: str, result: ScanResult) -> StoredScan:
        """Store a running scan's items and summary, in one transaction, and mark it done."""
        summary = {
            "generated": result.generated.isoformat(),
            "totals": result.totals(),
            "remedies": result.remedies,
        }
        rows = [
            {
                "scan_id": scan_id,
                "position": position,
                "address": item.address,
                "cloud_user_id": item.cloud_id,
                "cloud_upn": item.cloud_upn,
                "onprem_dn": item.onprem_dn,
                "verdict": str(item.verdict),
                "failing": list(item.failing),
                "warnings": list(item.warnings),
                "plan": item.plan,
            }
            for position, item in enumerate(result.items)
        ]
        with self._writer.begin() as conn:
            for start in range(0, len(rows), 1000):
                conn.execute(insert(_SCAN_ITEMS), rows[start : start + 1000])
            conn.execute(
                update(_SCANS)
                .where(_SCANS.c.id == scan_id)
                .values(
                    state=str(ScanState.DONE),
                    running=None,
                    finished_at=self._clock(),
                    summary=summary,
                )
            )
            row = conn.execute(select(_SCANS).where(_SCANS.c.id == scan_id)).mappings().one()
        return _to_scan(row)

    def fail_scan(self, scan_id: str, error: str) -> None:
        """Mark a running scan failed (nothing of it is kept but the reason)."""
        with self._writer.begin() as conn:
            conn.execute(
                update(_SCANS)
                .where(_SCANS.c.id == scan_id)
                .values(
                    state=str(ScanState.FAILED),
                    running=None,
                    finished_at=self._clock(),
                    summary={"error": error[:500]},
                )
            )

    def get_scan(self, scan_id: str) -> StoredScan | None:
        """One scan, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(select(_SCANS).where(_SCANS.c.id == scan_id)).mappings().first()
        return _to_scan(row) if row else None

    def latest_scans(self, limit: int = 2) -> list[StoredScan]:
        """Finished scans, newest first."""
        stmt = (
            select(_SCANS)
            .where(_SCANS.c.state == str(ScanState.DONE))
            .order_by(_SCANS.c.started_at.desc(), _SCANS.c.finished_at.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [_to_scan(r) for r in conn.execute(stmt).mappings().all()]

    def scan_items(self, scan_id: str) -> tuple[ScanItem, ...]:
        """A scan's items, in the scan's order."""
        stmt = (
            select(_SCAN_ITEMS)
            .where(_SCAN_ITEMS.c.scan_id == scan_id)
            .order_by(_SCAN_ITEMS.c.position)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return tuple(
            ScanItem(
                address=r["address"],
                cloud_id=r["cloud_user_id"],
                cloud_upn=r["cloud_upn"],
                onprem_dn=r["onprem_dn"],
                verdict=Verdict(r["verdict"]),
                failing=tuple(r["failing"] or ()),
                warnings=tuple(r["warnings"] or ()),
                plan=r["plan"],
            )
            for r in rows
        )

    # -- for tests and maintenance ----------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Yield a connection in a transaction, committed on success (tests, maintenance).

        Yields:
            A SQLAlchemy connection on the store's engine.
        """
        with self._writer.begin() as conn:
            yield conn


# -- helpers --------------------------------------------------------------------------------


def _normalise_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        # The URL may hold a password: do not echo it.
        raise ConfigurationError("SMTPMATCH_DATABASE_URL is not a database URL") from exc
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise ConfigurationError(
        f"SMTPMATCH_DATABASE_URL: unsupported database {parsed.drivername!r}; "
        "use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def _build_engine(url: URL) -> Engine:
    if url.get_backend_name() == "postgresql":
        # pre_ping: a replica outlives database restarts and failovers without a user error.
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)

    in_memory = url.database in (None, "", ":memory:")
    if not in_memory:
        _create_private(Path(str(url.database)))
    engine = create_engine(
        url,
        connect_args={
            # Python's own busy wait; the PRAGMA below sets SQLite's to the same value.
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            # The pool hands connections to whichever thread asks; each is used by one
            # thread at a time, which is what sqlite3 actually requires.
            "check_same_thread": False,
        },
        **({"poolclass": StaticPool} if in_memory else {}),
    )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600), before SQLite would create it
    with the process umask (usually world-readable). The ``-wal`` and ``-shm`` files SQLite
    adds later take the database file's permissions."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # e.g. a missing folder: SQLite's own error names it on connect
    os.close(fd)


def _sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Take BEGIN away from the sqlite3 module (it emits it late and never for SELECT), so
    # _sqlite_begin decides how each transaction starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers never block the writer and vice versa, which several threads need.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # NORMAL is durable across application crashes in WAL mode, and much faster.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front: a deferred transaction that reads and then writes
    # can fail with SQLITE_BUSY instead of waiting, which would break the compare-and-set.
    if conn.get_execution_options().get(_WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _checked_fields(values: Mapping[str, object]) -> dict[str, object]:
    unknown = sorted(set(values) - SETTABLE_REQUEST_FIELDS)
    if unknown:
        raise TypeError(f"cannot set request field(s) {', '.join(unknown)}")
    checked = dict(values)
    for name, codec in (("plan", PLAN), ("applied", PLAN)):
        value = checked.get(name)
        if value is not None:
            if not isinstance(value, ChangePlan):
                raise TypeError(f"request field {name} takes a ChangePlan")
            checked[name] = codec.dump(value)
    if "report" in checked:
        report = checked["report"]
        if not isinstance(report, Report):
            raise TypeError("request field report takes a Report")
        checked["report"] = REPORT.dump(report)
    return checked


def _to_request(row: RowMapping) -> MatchRequest:
    data = {name: row[name] for name in _REQUEST_FIELDS}
    data["state"] = RequestState(row["state"])
    data["plan"] = PLAN.load(row["plan"])
    data["report"] = REPORT.load(row["report"])
    data["applied"] = PLAN.load(row["applied"]) if row["applied"] is not None else None
    return MatchRequest(**data)


def _to_audit(row: RowMapping) -> AuditEvent:
    return AuditEvent(
        id=int(row["id"]),
        at=row["at"],
        event=row["event"],
        request_id=row["request_id"],
        actor=row["actor"],
        details=dict(row["details"] or {}),
    )


def _to_scan(row: Mapping[str, Any] | RowMapping) -> StoredScan:
    return StoredScan(
        id=row["id"],
        state=ScanState(row["state"]),
        started_at=row["started_at"],
        requested_by=row.get("requested_by"),
        finished_at=row.get("finished_at"),
        summary=dict(row.get("summary") or {}),
        slack_channel=row.get("slack_channel"),
        slack_ts=row.get("slack_ts"),
    )


def _to_watch(row: RowMapping) -> SyncWatch:
    return SyncWatch(**{name: row[name] for name in _WATCH_FIELDS})


_REQUEST_FIELDS: Final[Sequence[str]] = tuple(f.name for f in fields(MatchRequest))
_WATCH_FIELDS: Final[Sequence[str]] = tuple(f.name for f in fields(SyncWatch))
