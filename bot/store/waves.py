"""The store's wave block: waves and wave items, each state change a compare-and-set with its
audit event in the same transaction (revision 0005).

Kept apart from :mod:`bot.store.repository` (it shares its engine through
:meth:`bot.store.repository.Store.connection`), so the single-request store stays as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from pydantic import JsonValue
from sqlalchemy import Connection, Table, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from bot.domain import AuditNote
from bot.rules.waves import (
    ItemState,
    NewWaveItem,
    Wave,
    WaveEvent,
    WaveItem,
    WaveState,
    check_item_move,
    check_wave_move,
)
from bot.store.repository import Store, new_request_id
from bot.store.tables import AuditRow, WaveItemRow, WaveRow

_WAVES = cast(Table, WaveRow.__table__)
_ITEMS = cast(Table, WaveItemRow.__table__)
_AUDIT = cast(Table, AuditRow.__table__)

#: Wave fields a caller may set along with a state change (or alone).
_SETTABLE_WAVE: Final = frozenset(
    {
        "approver_id",
        "decided_at",
        "note",
        "approval_channel",
        "approval_ts",
        "progress_channel",
        "progress_ts",
        "watch_deadline",
    }
)
_SETTABLE_ITEM: Final = frozenset({"request_id", "reason", "anchor"})


class WaveStore:
    """Waves and their items in the store's database.

    Args:
        store: the store whose database (and transactions) are used.
        clock: where "now" comes from.
    """

    def __init__(self, store: Store, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- waves --------------------------------------------------------------------------------

    def create_wave(
        self,
        *,
        scan_id: str,
        requester_id: str,
        reason: str,
        criteria: dict[str, JsonValue],
        items: Sequence[NewWaveItem],
        audit: AuditNote,
    ) -> Wave:
        """Store a pending wave and its items (each ``pending``, in the given order) in one
        transaction.

        Args:
            audit: the ``wave_requested`` event (its details get the wave id).
        """
        now = self._clock()
        wave_id = new_request_id()
        values: dict[str, Any] = {
            "id": wave_id,
            "scan_id": scan_id,
            "state": str(WaveState.PENDING),
            "requester_id": requester_id,
            "reason": reason,
            "criteria": criteria,
            "count": len(items),
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        rows = [
            {
                "wave_id": wave_id,
                "position": position,
                "state": str(ItemState.PENDING),
                "updated_at": now,
                "address": item.address,
                "cloud_user_id": item.cloud_user_id,
                "cloud_upn": item.cloud_upn,
                "onprem_dn": item.onprem_dn,
                "plan": item.plan,
                "creates": item.creates,
            }
            for position, item in enumerate(items)
        ]
        with self.store.connection() as conn:
            conn.execute(insert(_WAVES).values(**values))
            for start in range(0, len(rows), 1000):
                conn.execute(insert(_ITEMS), rows[start : start + 1000])
            details = {"wave": wave_id, **dict(audit.details or {})}
            self._audit(conn, AuditNote(audit.event, audit.actor, details), None)
            row = conn.execute(select(_WAVES).where(_WAVES.c.id == wave_id)).mappings().one()
        return _to_wave(row)

    def get_wave(self, wave_id: str) -> Wave | None:
        """One wave, or None."""
        with self.store.connection() as conn:
            row = conn.execute(select(_WAVES).where(_WAVES.c.id == wave_id)).mappings().first()
        return _to_wave(row) if row is not None else None

    def list_waves(
        self,
        *,
        states: Iterable[WaveState] | None = None,
        requester_id: str | None = None,
        limit: int = 20,
    ) -> list[Wave]:
        """Waves, newest first."""
        stmt = select(_WAVES)
        if states is not None:
            stmt = stmt.where(_WAVES.c.state.in_(sorted(str(s) for s in states)))
        if requester_id is not None:
            stmt = stmt.where(_WAVES.c.requester_id == requester_id)
        stmt = stmt.order_by(_WAVES.c.created_at.desc(), _WAVES.c.id).limit(limit)
        with self.store.connection() as conn:
            return [_to_wave(r) for r in conn.execute(stmt).mappings().all()]

    def transition_wave(
        self,
        wave_id: str,
        from_states: Iterable[WaveState],
        to_state: WaveState,
        audit: AuditNote | None = None,
        **fields: object,
    ) -> Wave | None:
        """Move a wave to ``to_state`` if it is still in one of ``from_states`` (one
        ``UPDATE ... WHERE state IN``: one of several racing callers wins).

        Returns:
            The moved wave, or None when someone else moved it first.
        """
        sources = frozenset(WaveState(s) for s in from_states)
        check_wave_move(sources, WaveState(to_state))
        values = _checked(fields, _SETTABLE_WAVE)
        stmt = (
            update(_WAVES)
            .where(_WAVES.c.id == wave_id, _WAVES.c.state.in_(sorted(str(s) for s in sources)))
            .values(
                state=str(to_state),
                version=_WAVES.c.version + 1,
                updated_at=self._clock(),
                **values,
            )
            .returning(*_WAVES.c)
        )
        with self.store.connection() as conn:
            row = conn.execute(stmt).mappings().first()
            if row is not None and audit is not None:
                details = {"wave": wave_id, **dict(audit.details or {})}
                self._audit(conn, AuditNote(audit.event, audit.actor, details), None)
        return _to_wave(row) if row is not None else None

    def update_wave(self, wave_id: str, **fields: object) -> Wave | None:
        """Set non-state fields of a wave (message places, deadline)."""
        values = _checked(fields, _SETTABLE_WAVE)
        stmt = (
            update(_WAVES)
            .where(_WAVES.c.id == wave_id)
            .values(version=_WAVES.c.version + 1, updated_at=self._clock(), **values)
            .returning(*_WAVES.c)
        )
        with self.store.connection() as conn:
            row = conn.execute(stmt).mappings().first()
        return _to_wave(row) if row is not None else None

    def lease_wave(self, wave_id: str, owner: str, seconds: float) -> bool:
        """Take (or renew) the right to apply an ``applying`` wave: one runner at a time
        across replicas; a crashed runner's lease runs out and another takes over.

        Returns:
            Whether ``owner`` holds the lease now.
        """
        now = self._clock()
        stmt = (
            update(_WAVES)
            .where(
                _WAVES.c.id == wave_id,
                _WAVES.c.state == str(WaveState.APPLYING),
                or_(
                    _WAVES.c.lease_until.is_(None),
                    _WAVES.c.lease_until < now,
                    _WAVES.c.lease_owner == owner,
                ),
            )
            .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
        )
        with self.store.connection() as conn:
            return conn.execute(stmt).rowcount == 1

    def release_wave(self, wave_id: str, owner: str) -> None:
        """Give the lease back (the runner stopped or finished)."""
        with self.store.connection() as conn:
            conn.execute(
                update(_WAVES)
                .where(_WAVES.c.id == wave_id, _WAVES.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    # -- items --------------------------------------------------------------------------------

    def items(
        self, wave_id: str, states: Iterable[ItemState] | None = None, limit: int | None = None
    ) -> list[WaveItem]:
        """A wave's items in order (optionally only those in ``states``)."""
        stmt = select(_ITEMS).where(_ITEMS.c.wave_id == wave_id)
        if states is not None:
            stmt = stmt.where(_ITEMS.c.state.in_(sorted(str(s) for s in states)))
        stmt = stmt.order_by(_ITEMS.c.position)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.store.connection() as conn:
            return [_to_item(r) for r in conn.execute(stmt).mappings().all()]

    def get_item(self, wave_id: str, position: int) -> WaveItem | None:
        """One item, or None."""
        with self.store.connection() as conn:
            row = (
                conn.execute(
                    select(_ITEMS).where(_ITEMS.c.wave_id == wave_id, _ITEMS.c.position == position)
                )
                .mappings()
                .first()
            )
        return _to_item(row) if row is not None else None

    def item_for_request(self, request_id: str) -> WaveItem | None:
        """The wave item whose write is the request ``request_id``, or None (a single request)."""
        with self.store.connection() as conn:
            row = (
                conn.execute(select(_ITEMS).where(_ITEMS.c.request_id == request_id))
                .mappings()
                .first()
            )
        return _to_item(row) if row is not None else None

    def find_item(self, wave_id: str, address: str) -> WaveItem | None:
        """The wave's item handed over at ``address`` (compared without case), or None."""
        stmt = (
            select(_ITEMS)
            .where(_ITEMS.c.wave_id == wave_id, func.lower(_ITEMS.c.address) == address.lower())
            .order_by(_ITEMS.c.position)
        )
        with self.store.connection() as conn:
            row = conn.execute(stmt).mappings().first()
        return _to_item(row) if row is not None else None

    def counts(self, wave_id: str) -> dict[ItemState, int]:
        """How many items are in each state (every state listed)."""
        stmt = (
            select(_ITEMS.c.state, func.count())
            .where(_ITEMS.c.wave_id == wave_id)
            .group_by(_ITEMS.c.state)
        )
        with self.store.connection() as conn:
            found = {ItemState(s): int(n) for s, n in conn.execute(stmt).all()}
        return {s: found.get(s, 0) for s in ItemState}

    def transition_item(
        self,
        wave_id: str,
        position: int,
        from_states: Iterable[ItemState],
        to_state: ItemState,
        event: str,
        actor: str | None = None,
        details: dict[str, JsonValue] | None = None,
        **fields: object,
    ) -> WaveItem | None:
        """Compare-and-set one item's state, with its audit event in the same transaction.

        The event carries the item's request id (when it has one) and, in its details, the
        wave, the position, the address and the new state: ``smtpmatch audit`` shows each
        item's outcome.

        Returns:
            The moved item, or None when it was not in one of ``from_states``.
        """
        sources = frozenset(ItemState(s) for s in from_states)
        check_item_move(sources, ItemState(to_state))
        values = _checked(fields, _SETTABLE_ITEM)
        stmt = (
            update(_ITEMS)
            .where(
                _ITEMS.c.wave_id == wave_id,
                _ITEMS.c.position == position,
                _ITEMS.c.state.in_(sorted(str(s) for s in sources)),
            )
            .values(state=str(to_state), updated_at=self._clock(), **values)
            .returning(*_ITEMS.c)
        )
        with self.store.connection() as conn:
            row = conn.execute(stmt).mappings().first()
            if row is not None:
                note = {
                    "wave": wave_id,
                    "position": position,
                    "address": row["address"],
                    "state": str(to_state),
                    **({"reason": row["reason"]} if row["reason"] else {}),
                    **(details or {}),
                }
                self._audit(conn, AuditNote(event, actor, note), row["request_id"])
        return _to_item(row) if row is not None else None

    def skip_pending(self, wave_id: str, actor: str, reason: str) -> int:
        """Skip every item of the wave not yet claimed for its write (the wave was stopped),
        each with its ``wave_item_skipped`` audit event, in one transaction. An item already
        claimed (``applying``) is left to finish its write.

        Returns:
            How many items were skipped.
        """
        check_item_move(frozenset({ItemState.PENDING}), ItemState.SKIPPED)
        now = self._clock()
        stmt = (
            update(_ITEMS)
            .where(_ITEMS.c.wave_id == wave_id, _ITEMS.c.state == str(ItemState.PENDING))
            .values(state=str(ItemState.SKIPPED), reason=reason, updated_at=now)
            .returning(_ITEMS.c.position, _ITEMS.c.address, _ITEMS.c.request_id)
        )
        with self.store.connection() as conn:
            rows = conn.execute(stmt).mappings().all()
            if rows:
                conn.execute(
                    insert(_AUDIT),
                    [
                        {
                            "at": now,
                            "event": str(WaveEvent.ITEM_SKIPPED),
                            "request_id": row["request_id"],
                            "actor": actor,
                            "details": {
                                "wave": wave_id,
                                "position": row["position"],
                                "address": row["address"],
                                "state": str(ItemState.SKIPPED),
                                "reason": reason,
                            },
                        }
                        for row in rows
                    ],
                )
        return len(rows)

    def set_item_fields(self, wave_id: str, position: int, **fields: object) -> None:
        """Set non-state fields of an item (its request id, once made)."""
        values = _checked(fields, _SETTABLE_ITEM)
        with self.store.connection() as conn:
            conn.execute(
                update(_ITEMS)
                .where(_ITEMS.c.wave_id == wave_id, _ITEMS.c.position == position)
                .values(updated_at=self._clock(), **values)
            )

    def audit(
        self, event: str, actor: str | None, details: dict[str, JsonValue], request_id: str | None
    ) -> None:
        """Append one audit event about a wave (e.g. a refused approval)."""
        with self.store.connection() as conn:
            self._audit(conn, AuditNote(event, actor, details), request_id)

    def _audit(self, conn: Connection, note: AuditNote, request_id: str | None) -> None:
        conn.execute(
            insert(_AUDIT).values(
                at=self._clock(),
                event=str(note.event),
                request_id=request_id,
                actor=note.actor,
                details=dict(note.details or {}),
            )
        )


def _checked(fields: dict[str, object], allowed: frozenset[str]) -> dict[str, object]:
    unknown = set(fields) - allowed
    if unknown:
        raise TypeError(f"not settable: {', '.join(sorted(unknown))}")
    return dict(fields)


def _to_wave(row: RowMapping) -> Wave:
    return Wave(
        id=row["id"],
        scan_id=row["scan_id"],
        state=WaveState(row["state"]),
        requester_id=row["requester_id"],
        reason=row["reason"],
        criteria=dict(row["criteria"] or {}),
        count=int(row["count"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        approver_id=row["approver_id"],
        decided_at=row["decided_at"],
        note=row["note"],
        approval_channel=row["approval_channel"],
        approval_ts=row["approval_ts"],
        progress_channel=row["progress_channel"],
        progress_ts=row["progress_ts"],
        watch_deadline=row["watch_deadline"],
        version=int(row["version"]),
    )


def _to_item(row: RowMapping) -> WaveItem:
    return WaveItem(
        wave_id=row["wave_id"],
        position=int(row["position"]),
        address=row["address"],
        cloud_user_id=row["cloud_user_id"],
        cloud_upn=row["cloud_upn"],
        onprem_dn=row["onprem_dn"],
        plan=row["plan"],
        creates=bool(row["creates"]),
        state=ItemState(row["state"]),
        updated_at=row["updated_at"],
        request_id=row["request_id"],
        reason=row["reason"],
        anchor=row["anchor"],
    )
