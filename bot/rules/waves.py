"""The wave (bulk hand-over) state machines and types: which state may follow which. Pure.

A wave is a reviewed batch of a stored scan's items. It is born ``pending`` (awaiting an
approver other than the requester); one approver's click moves it to ``applying`` with a
compare-and-set, so two concurrent "Approve all" clicks run it once. A directory outage moves
it to ``paused`` (resumed later); when every item is settled it is ``watching`` sync, then
``done``. Each item has its own compare-and-set states: ``pending`` → ``applying`` →
``applied`` / ``skipped`` / ``failed`` → ``matched`` / ``sync_failed`` / ``timeout``, and
``reverted`` for an applied item undone before it matched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pydantic import JsonValue


class WaveState(StrEnum):
    """Where a wave is in its life."""

    PENDING = "pending"
    REJECTED = "rejected"
    EXPIRED = "expired"
    APPLYING = "applying"
    PAUSED = "paused"
    WATCHING = "watching"
    DONE = "done"


class ItemState(StrEnum):
    """Where one wave item is."""

    PENDING = "pending"
    APPLYING = "applying"
    APPLIED = "applied"
    SKIPPED = "skipped"
    FAILED = "failed"
    MATCHED = "matched"
    SYNC_FAILED = "sync_failed"
    TIMEOUT = "timeout"
    REVERTED = "reverted"


_W = WaveState
_I = ItemState

WAVE_TRANSITIONS: Mapping[WaveState, frozenset[WaveState]] = MappingProxyType(
    {
        _W.PENDING: frozenset({_W.APPLYING, _W.REJECTED, _W.EXPIRED}),
        _W.APPLYING: frozenset({_W.PAUSED, _W.WATCHING}),
        _W.PAUSED: frozenset({_W.APPLYING}),
        _W.WATCHING: frozenset({_W.DONE}),
        _W.REJECTED: frozenset(),
        _W.EXPIRED: frozenset(),
        _W.DONE: frozenset(),
    }
)

ITEM_TRANSITIONS: Mapping[ItemState, frozenset[ItemState]] = MappingProxyType(
    {
        # Back to PENDING only when a directory could not answer before anything was written;
        # PENDING to SKIPPED only when the wave is stopped before the item's write.
        _I.PENDING: frozenset({_I.APPLYING, _I.SKIPPED}),
        _I.APPLYING: frozenset({_I.APPLIED, _I.SKIPPED, _I.FAILED, _I.PENDING}),
        _I.APPLIED: frozenset({_I.MATCHED, _I.SYNC_FAILED, _I.TIMEOUT, _I.REVERTED}),
        _I.SYNC_FAILED: frozenset({_I.REVERTED}),
        _I.TIMEOUT: frozenset({_I.MATCHED, _I.REVERTED}),
        _I.SKIPPED: frozenset(),
        _I.FAILED: frozenset(),
        _I.MATCHED: frozenset(),
        _I.REVERTED: frozenset(),
    }
)

#: Items whose write is settled (whatever sync then says).
SETTLED_ITEM_STATES: frozenset[ItemState] = frozenset(ItemState) - {_I.PENDING, _I.APPLYING}

#: Items whose change can still be undone (not yet matched).
REVERTIBLE_ITEM_STATES: frozenset[ItemState] = frozenset(
    s for s, nxt in ITEM_TRANSITIONS.items() if _I.REVERTED in nxt
)


class InvalidWaveTransition(ValueError):
    """A caller asked for a state change the wave state machines do not allow (a bug)."""


def check_wave_move(sources: frozenset[WaveState], target: WaveState) -> None:
    """Raise :class:`InvalidWaveTransition` unless every source may move to ``target``."""
    for source in sources:
        if target not in WAVE_TRANSITIONS[source]:
            raise InvalidWaveTransition(f"a wave cannot go from {source} to {target}")


def check_item_move(sources: frozenset[ItemState], target: ItemState) -> None:
    """Raise :class:`InvalidWaveTransition` unless every source may move to ``target``."""
    for source in sources:
        if target not in ITEM_TRANSITIONS[source]:
            raise InvalidWaveTransition(f"a wave item cannot go from {source} to {target}")


@dataclass(frozen=True, slots=True)
class Wave:
    """A wave as stored.

    Args:
        criteria: how the items were picked (domain, OU, maximum, creations included).
        progress: where the wave's progress message is (channel, ts), once posted.
    """

    id: str
    scan_id: str
    state: WaveState
    requester_id: str
    reason: str
    criteria: dict[str, JsonValue]
    count: int
    created_at: datetime
    updated_at: datetime
    approver_id: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    approval_channel: str | None = None
    approval_ts: str | None = None
    progress_channel: str | None = None
    progress_ts: str | None = None
    watch_deadline: datetime | None = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class NewWaveItem:
    """A user picked for a wave, as the scan saw it: what the approvers are asked to approve.

    Args:
        plan: the scan's plan (the ``check --json`` shape).
        creates: a KB step 2 creation (only when the requester ticked creations).
    """

    address: str
    cloud_user_id: str
    cloud_upn: str
    onprem_dn: str | None
    plan: dict[str, Any] | None
    creates: bool


@dataclass(frozen=True, slots=True)
class WaveItem:
    """One user of a wave: the scan's facts the approver saw, and where its write is.

    Args:
        plan: the scan's plan (the ``check --json`` shape) the approver saw.
        creates: a KB step 2 creation (only when the requester ticked creations).
        request_id: the match request the item's guarded write runs through, once made.
        reason: why it was skipped or failed, or what sync said.
    """

    wave_id: str
    position: int
    address: str
    cloud_user_id: str
    cloud_upn: str
    onprem_dn: str | None
    plan: dict[str, Any] | None
    creates: bool
    state: ItemState
    updated_at: datetime
    request_id: str | None = None
    reason: str | None = None
    anchor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class WaveEvent(StrEnum):
    """The audit events of waves and their items (``smtpmatch audit`` exports them)."""

    REQUESTED = "wave_requested"
    APPROVED = "wave_approved"
    REJECTED = "wave_rejected"
    EXPIRED = "wave_expired"
    APPROVE_REFUSED = "wave_approve_refused"  # any approver-only decision; details["action"]
    PAUSED = "wave_paused"
    RESUMED = "wave_resumed"
    STOPPED = "wave_stopped"
    STOP_REFUSED = "wave_stop_refused"
    WATCHING = "wave_watching"
    DONE = "wave_done"
    ITEM_APPLYING = "wave_item_applying"
    ITEM_RELEASED = "wave_item_released"
    ITEM_APPLIED = "wave_item_applied"
    ITEM_SKIPPED = "wave_item_skipped"
    ITEM_FAILED = "wave_item_failed"
    ITEM_MATCHED = "wave_item_matched"
    ITEM_SYNC_FAILED = "wave_item_sync_failed"
    ITEM_TIMEOUT = "wave_item_timeout"
    ITEM_REVERTED = "wave_item_reverted"
