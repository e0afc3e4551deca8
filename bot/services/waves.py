"""Waves: a stored scan's eligible users requested, approved and applied as one batch.

A wave keeps every safety of a single request. It is approved by an approver other than the
requester (a compare-and-set on the wave, so two "Approve all" clicks run it once). Each item
is then claimed with its own compare-and-set, re-checked against live data and written only if
the fresh report is still ``eligible`` with the plan, cloud user, AD object and primary the
scan showed; the write itself is a match request's guarded write
(:func:`bot.services.requests.apply_checked`): exactly once, old values kept, revertible. Writes
are paced; a directory outage pauses the wave (resumed later) instead of failing the rest; a
restart resumes it, settling items caught mid-write by reading AD again. One sync watch per
wave polls Entra ID in bulk.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from pydantic import JsonValue

from bot.domain import AuditEventName, AuditNote, MatchRequest, OpenRequestExists
from bot.errors import DirectoryError
from bot.ports import CloudDirectory, TeamDirectory
from bot.rules.address import parse_address
from bot.rules.checks import Report, Verdict
from bot.rules.codec import plan_to_dict
from bot.rules.requests import RequestState
from bot.rules.sync import SyncFacts, SyncOutcome, judge_sync
from bot.rules.waves import (
    ITEM_TRANSITIONS,
    REVERTIBLE_ITEM_STATES,
    ItemState,
    NewWaveItem,
    Wave,
    WaveEvent,
    WaveItem,
    WaveState,
)
from bot.scan.model import ScanItem, ScanState
from bot.services.check import check_match
from bot.services.requests import (
    NOT_A_REQUESTER,
    Outcome,
    RequestServices,
    Result,
    apply_checked,
    is_approver,
    may_request,
    new_reference,
    revert_request,
    settle_claim,
)
from bot.services.sync import default_owner
from bot.store.waves import WaveStore
from bot.sync_triggers import NoTrigger, SyncSubject, SyncTriggerPort

log = logging.getLogger(__name__)
E = AuditEventName
W = WaveEvent
I = ItemState  # noqa: E741

#: How many items the approval message lists (the CSV has them all).
FIRST_ITEMS = 10


class WaveOutcome(StrEnum):
    """What a wave use case came to."""

    CREATED = "created"
    EMPTY = "empty"
    NOT_FOUND = "not_found"
    REFUSED_SELF = "refused_self"
    REFUSED_NOT_APPROVER = "refused_not_approver"
    REFUSED_NOT_REQUESTER = "refused_not_requester"
    STALE = "stale"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVERTED = "reverted"
    STOPPED = "stopped"
    RESUMED = "resumed"
    DONE = "done"


@dataclass(frozen=True)
class WaveResult:
    """The outcome of a wave use case and what the views need."""

    outcome: WaveOutcome
    wave: Wave | None = None
    message: str = ""


class WaveBoard(Protocol):
    """Where a wave is shown: the approvers' message, its progress, its result."""

    def post_approval(self, wave: Wave, first: Sequence[WaveItem], csv_text: str) -> None:
        """Ask the approvers (count, first items, CSV of all); remember where."""
        ...

    def progress(self, wave: Wave, counts: dict[ItemState, int], note: str | None) -> None:
        """Show how far the wave is (one message per wave, updated)."""
        ...

    def finished(self, wave: Wave, counts: dict[ItemState, int], csv_text: str) -> None:
        """The result: the team's summary with the per-user CSV, a DM to the requester."""
        ...

    def closed(self, wave: Wave) -> None:
        """The wave ended without a write (rejected or expired): the approval message shows
        it, and the requester is told why."""
        ...


class NoWaveBoard:
    """No Slack: waves are stored and run, shown nowhere."""

    def post_approval(self, wave: Wave, first: Sequence[WaveItem], csv_text: str) -> None:
        """Nothing to post."""

    def progress(self, wave: Wave, counts: dict[ItemState, int], note: str | None) -> None:
        """Nothing to update."""

    def finished(self, wave: Wave, counts: dict[ItemState, int], csv_text: str) -> None:
        """Nothing to tell."""

    def closed(self, wave: Wave) -> None:
        """Nothing to tell."""


@dataclass
class WaveServices:
    """What the wave use cases need (built by :mod:`bot.bootstrap`).

    Args:
        requests: the single-request services: the same directories, store, approvers and
            guarded write.
        waves: the store's wave block.
        pace_per_minute: writes per minute; 0 = unlimited.
        trigger: the sync trigger, called once per written item.
        poll_seconds: how often the wave's sync watch polls Entra ID.
        timeout: how long the watch waits for sync.
        resume_after: how long a paused wave waits before it is tried again.
    """

    requests: RequestServices
    waves: WaveStore
    pace_per_minute: int = 0
    board: WaveBoard = field(default_factory=NoWaveBoard)
    trigger: SyncTriggerPort = field(default_factory=NoTrigger)
    poll_seconds: float = 60.0
    timeout: timedelta = timedelta(minutes=90)
    resume_after: timedelta = timedelta(minutes=2)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: Set when the bot stops: a running wave stops between two items (still ``applying``,
    #: resumed at the next start).
    stopping: threading.Event = field(default_factory=threading.Event)
    #: Who applies waves here (host and process), and how long its lease on a wave lasts:
    #: a crashed replica's wave is taken over once the lease ran out.
    owner: str = field(default_factory=default_owner)
    lease_seconds: float = 120.0
    #: Serialises runs of one wave inside this process (other replicas are kept out by the
    #: per-item compare-and-set).
    _running: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def writer(self) -> RequestServices:
        """The request services without the per-request "applied" listeners: a wave has one
        sync watch for all its items."""
        return replace(self.requests, applied_listeners=())


# -- picking a wave ----------------------------------------------------------------------------


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _in_ou(dn: str | None, ou: str) -> bool:
    return dn is not None and dn.lower().endswith("," + ou.lower().strip())


def select_items(
    items: Sequence[ScanItem],
    *,
    domain: str | None = None,
    ou: str | None = None,
    limit: int | None = None,
    include_creations: bool = False,
) -> list[ScanItem]:
    """The scan items a wave takes: every ``eligible`` item with a plan (and ``needs_account``
    items only when ``include_creations``), narrowed by address domain, by the AD object's OU
    (for a creation: the OU it would be created in), at most ``limit``."""
    wanted = {Verdict.ELIGIBLE} | ({Verdict.NEEDS_ACCOUNT} if include_creations else set())
    picked = []
    for item in items:
        if item.verdict not in wanted or not item.plan:
            continue
        if domain and _domain_of(item.address) != domain.lower().lstrip("@"):
            continue
        dn = item.onprem_dn or str(item.plan.get("dn") or "")
        if ou and not _in_ou(dn, ou):
            continue
        picked.append(item)
        if limit is not None and len(picked) >= limit:
            break
    return picked


def create_wave(
    svc: WaveServices,
    *,
    scan_id: str,
    requester_id: str,
    reason: str,
    domain: str | None = None,
    ou: str | None = None,
    limit: int | None = None,
    include_creations: bool = False,
    team: TeamDirectory | None = None,
) -> WaveResult:
    """A requester asks for a wave of a stored scan's items; it is posted to the approvers.
    Only people who may request single matches may ask for a wave."""
    if not may_request(svc.requests, requester_id, team):
        return WaveResult(WaveOutcome.REFUSED_NOT_REQUESTER, message=NOT_A_REQUESTER)
    store = svc.requests.store
    scan = store.get_scan(scan_id)  # type: ignore[attr-defined]
    if scan is None or scan.state is not ScanState.DONE:
        return WaveResult(WaveOutcome.NOT_FOUND, message="This scan is not finished or gone.")
    picked = select_items(
        store.scan_items(scan_id),  # type: ignore[attr-defined]
        domain=domain,
        ou=ou,
        limit=limit,
        include_creations=include_creations,
    )
    if not picked:
        return WaveResult(WaveOutcome.EMPTY, message="No item of the scan fits this choice.")
    criteria: dict[str, JsonValue] = {
        "domain": domain,
        "ou": ou,
        "limit": limit,
        "include_creations": include_creations,
    }
    rows = [
        NewWaveItem(
            address=i.address,
            cloud_user_id=i.cloud_id,
            cloud_upn=i.cloud_upn,
            onprem_dn=i.onprem_dn,
            plan=i.plan,
            creates=i.verdict is Verdict.NEEDS_ACCOUNT,
        )
        for i in picked
    ]
    wave = svc.waves.create_wave(
        scan_id=scan_id,
        requester_id=requester_id,
        reason=reason,
        criteria=criteria,
        items=rows,
        audit=AuditNote(
            W.REQUESTED,
            requester_id,
            {"scan": scan_id, "count": len(rows), "reason": reason, **criteria},
        ),
    )
    items = svc.waves.items(wave.id)
    svc.board.post_approval(wave, items[:FIRST_ITEMS], wave_csv(items))
    return WaveResult(WaveOutcome.CREATED, wave=svc.waves.get_wave(wave.id) or wave)


# -- deciding ----------------------------------------------------------------------------------


def _authorize(
    svc: WaveServices, wave_id: str, actor: str, team: TeamDirectory, action: str
) -> WaveResult | Wave:
    wave = svc.waves.get_wave(wave_id)
    if wave is None:
        return WaveResult(WaveOutcome.NOT_FOUND, message="This wave does not exist (any more).")
    if actor == wave.requester_id:
        svc.waves.audit(
            W.APPROVE_REFUSED, actor, {"wave": wave_id, "action": action, "why": "requester"}, None
        )
        return WaveResult(
            WaveOutcome.REFUSED_SELF,
            wave=wave,
            message="You asked for this wave, so another approver has to decide it.",
        )
    if not is_approver(svc.requests, actor, team):
        svc.waves.audit(
            W.APPROVE_REFUSED,
            actor,
            {"wave": wave_id, "action": action, "why": "not an approver"},
            None,
        )
        return WaveResult(
            WaveOutcome.REFUSED_NOT_APPROVER,
            wave=wave,
            message=f"Only the configured approvers can {action} a wave.",
        )
    return wave


def _stale(svc: WaveServices, wave_id: str) -> WaveResult:
    """Someone else moved the wave first (a second click, a stale button): say where it is."""
    current = svc.waves.get_wave(wave_id)
    state = current.state if current else "gone"
    return WaveResult(WaveOutcome.STALE, wave=current, message=f"This wave is already {state}.")


def approve_wave(svc: WaveServices, wave_id: str, actor: str, team: TeamDirectory) -> WaveResult:
    """An approver approves all: one compare-and-set ``pending`` → ``applying`` (a second
    click finds the wave taken). The caller then runs :func:`run_wave` on an executor."""
    checked = _authorize(svc, wave_id, actor, team, "approve")
    if isinstance(checked, WaveResult):
        return checked
    wave = svc.waves.transition_wave(
        wave_id,
        [WaveState.PENDING],
        WaveState.APPLYING,
        audit=AuditNote(W.APPROVED, actor, {"count": checked.count}),
        approver_id=actor,
        decided_at=svc.clock(),
    )
    if wave is None:
        return _stale(svc, wave_id)
    return WaveResult(WaveOutcome.APPROVED, wave=wave, message="Approved: the wave is applying.")


def prepare_wave_rejection(
    svc: WaveServices, wave_id: str, actor: str, team: TeamDirectory
) -> WaveResult | Wave:
    """Before asking a rejecter for the reason: may ``actor`` reject, and is the wave still
    pending? (:func:`reject_wave` checks both again when the reason comes.)"""
    checked = _authorize(svc, wave_id, actor, team, "reject")
    if isinstance(checked, WaveResult):
        return checked
    if checked.state is not WaveState.PENDING:
        return WaveResult(
            WaveOutcome.STALE, wave=checked, message=f"This wave is already {checked.state}."
        )
    return checked


def prepare_wave_revert(
    svc: WaveServices, wave_id: str, actor: str, team: TeamDirectory
) -> WaveResult | Wave:
    """Before asking which user to revert: may ``actor`` revert, and has the wave written
    anything that could be? (:func:`revert_item` checks again for the user named.)"""
    checked = _authorize(svc, wave_id, actor, team, "revert")
    if isinstance(checked, WaveResult):
        return checked
    if checked.state not in (WaveState.WATCHING, WaveState.DONE):
        return WaveResult(
            WaveOutcome.STALE,
            wave=checked,
            message=f"This wave is {checked.state}: nothing of it can be reverted now.",
        )
    return checked


#: The reason recorded on each user a stop kept from being written.
STOPPED_REASON = "the wave was stopped before this user's write"


def stop_wave(svc: WaveServices, wave_id: str, actor: str, team: TeamDirectory) -> WaveResult:
    """The brake: the requester or an approver stops a wave being applied (or paused).

    Every user not yet claimed for its write is skipped at once, in one transaction (the
    runner's per-item compare-and-set then finds nothing to claim); a write already under way
    finishes. What was written stays, is watched as usual and can be reverted. A paused wave is
    moved back to ``applying`` so that the runner settles it and starts the watch; the caller
    runs :func:`run_wave`.
    """
    wave = svc.waves.get_wave(wave_id)
    if wave is None:
        return WaveResult(WaveOutcome.NOT_FOUND, message="This wave does not exist (any more).")
    if actor != wave.requester_id and not is_approver(svc.requests, actor, team):
        svc.waves.audit(W.STOP_REFUSED, actor, {"wave": wave_id, "why": "not an approver"}, None)
        return WaveResult(
            WaveOutcome.REFUSED_NOT_APPROVER,
            wave=wave,
            message="Only the wave's requester or an approver can stop it.",
        )
    if wave.state not in (WaveState.APPLYING, WaveState.PAUSED):
        return WaveResult(
            WaveOutcome.STALE,
            wave=wave,
            message=f"This wave is {wave.state}: there is nothing left to stop.",
        )
    skipped = svc.waves.skip_pending(wave_id, actor, STOPPED_REASON)
    svc.waves.audit(W.STOPPED, actor, {"wave": wave_id, "skipped": skipped}, None)
    if wave.state is WaveState.PAUSED:
        svc.waves.transition_wave(
            wave_id,
            [WaveState.PAUSED],
            WaveState.APPLYING,
            audit=AuditNote(W.RESUMED, actor, {"why": "stopped: settle and watch"}),
            note=None,
        )
    return WaveResult(
        WaveOutcome.STOPPED,
        wave=svc.waves.get_wave(wave_id),
        message=f"Stopped: {skipped} users of wave `{wave_id}` will not be written. Those "
        "already written are watched as usual and can be reverted.",
    )


def resume_wave(svc: WaveServices, wave_id: str, actor: str, team: TeamDirectory) -> WaveResult:
    """An approver resumes a paused wave now instead of waiting for the automatic retry; the
    caller runs :func:`run_wave` (which pauses it again if the directory is still down)."""
    checked = _authorize(svc, wave_id, actor, team, "resume")
    if isinstance(checked, WaveResult):
        return checked
    resumed = svc.waves.transition_wave(
        wave_id,
        [WaveState.PAUSED],
        WaveState.APPLYING,
        audit=AuditNote(W.RESUMED, actor, {"why": "resumed in Slack"}),
        note=None,
    )
    if resumed is None:
        return _stale(svc, wave_id)
    return WaveResult(WaveOutcome.RESUMED, wave=resumed, message="Resumed.")


def reject_wave(
    svc: WaveServices, wave_id: str, actor: str, team: TeamDirectory, reason: str
) -> WaveResult:
    """An approver turns the whole wave down; the board shows it and tells the requester."""
    checked = _authorize(svc, wave_id, actor, team, "reject")
    if isinstance(checked, WaveResult):
        return checked
    wave = svc.waves.transition_wave(
        wave_id,
        [WaveState.PENDING],
        WaveState.REJECTED,
        audit=AuditNote(W.REJECTED, actor, {"reason": reason}),
        approver_id=actor,
        decided_at=svc.clock(),
        note=reason,
    )
    if wave is None:
        return _stale(svc, wave_id)
    svc.board.closed(wave)
    return WaveResult(WaveOutcome.REJECTED, wave=wave, message="Rejected.")


def expire_waves(svc: WaveServices) -> list[Wave]:
    """Expire the waves nobody decided within the requests' time to live
    (``SMTPMATCH_REQUEST_TTL_HOURS``), as single requests expire: no old "Approve all" stays
    clickable. Each is a compare-and-set (an approval racing it wins or loses whole), audited,
    shown on its approval message and told to its requester."""
    cutoff = svc.clock() - svc.requests.ttl
    hours = svc.requests.ttl.total_seconds() / 3600
    expired = []
    for wave in svc.waves.list_waves(states=[WaveState.PENDING], limit=100):
        if wave.created_at > cutoff:
            continue
        note = f"no approver decided within {hours:g} hours"
        moved = svc.waves.transition_wave(
            wave.id,
            [WaveState.PENDING],
            WaveState.EXPIRED,
            audit=AuditNote(W.EXPIRED, None, {"why": note}),
            decided_at=svc.clock(),
            note=note,
        )
        if moved is not None:
            svc.board.closed(moved)
            expired.append(moved)
    return expired


# -- applying ----------------------------------------------------------------------------------


class _Outage(Exception):
    """A directory could not answer: the wave pauses."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def run_wave(svc: WaveServices, wave_id: str) -> Wave | None:
    """Apply an ``applying`` wave's items, paced; pause it on a directory outage; when every
    item is settled, start its sync watch. Safe to call again after a restart: items caught
    mid-write are settled by reading AD, pending ones continue.

    Returns:
        The wave as it is now (``paused``, ``watching``), or None when it was not applying or
        another thread of this process runs it.
    """
    with svc._lock:
        if wave_id in svc._running:
            return None
        svc._running.add(wave_id)
    try:
        if not svc.waves.lease_wave(wave_id, svc.owner, svc.lease_seconds):
            return None  # not applying, or another replica applies it
        try:
            return _run(svc, wave_id)
        finally:
            svc.waves.release_wave(wave_id, svc.owner)
    finally:
        with svc._lock:
            svc._running.discard(wave_id)


def _run(svc: WaveServices, wave_id: str) -> Wave | None:
    wave = svc.waves.get_wave(wave_id)
    if wave is None or wave.state is not WaveState.APPLYING:
        return wave
    interval = 60.0 / svc.pace_per_minute if svc.pace_per_minute > 0 else 0.0
    last_shown = 0.0
    try:
        # First what a crash (or an outage) left mid-write, then the rest in order.
        for item in svc.waves.items(wave_id, [I.APPLYING]):
            _settle(svc, wave, item)
        while True:
            batch = svc.waves.items(wave_id, [I.PENDING], limit=50)
            if not batch:
                break
            for item in batch:
                if svc.stopping.is_set() or not svc.waves.lease_wave(
                    wave_id, svc.owner, svc.lease_seconds
                ):
                    return svc.waves.get_wave(wave_id)
                claimed = svc.waves.transition_item(
                    wave_id, item.position, [I.PENDING], I.APPLYING, W.ITEM_APPLYING, None
                )
                if claimed is None:
                    continue  # another runner took it
                wrote = _settle(svc, wave, claimed)
                if time.monotonic() - last_shown > 2.0:
                    svc.board.progress(wave, svc.waves.counts(wave_id), None)
                    last_shown = time.monotonic()
                if wrote and interval:
                    svc.stopping.wait(interval)
    except _Outage as outage:
        paused = svc.waves.transition_wave(
            wave_id,
            [WaveState.APPLYING],
            WaveState.PAUSED,
            audit=AuditNote(W.PAUSED, None, {"why": outage.message}),
            note=outage.message,
        )
        if paused is not None:
            svc.board.progress(paused, svc.waves.counts(wave_id), outage.message)
        return paused or svc.waves.get_wave(wave_id)
    watching = svc.waves.transition_wave(
        wave_id,
        [WaveState.APPLYING],
        WaveState.WATCHING,
        audit=AuditNote(W.WATCHING, None, {"counts": _counts_json(svc.waves.counts(wave_id))}),
        watch_deadline=svc.clock() + svc.timeout,
        note=None,
    )
    if watching is not None:
        svc.board.progress(watching, svc.waves.counts(wave_id), None)
        if not svc.waves.items(wave_id, [I.APPLIED], limit=1):
            return finish_if_done(svc, wave_id) or watching
    return watching or svc.waves.get_wave(wave_id)


def _changed_since_scan(item: WaveItem, report: Report) -> str | None:
    """Why the fresh report is not the item the approver saw, or None."""
    wanted = Verdict.NEEDS_ACCOUNT if item.creates else Verdict.ELIGIBLE
    if report.verdict is not wanted or report.plan is None:
        failed = [c.id for c in report.checks if c.status == "fail"]
        return f"now {report.verdict}" + (f" (failed: {', '.join(failed)})" if failed else "")
    if report.cloud is None or report.cloud.id != item.cloud_user_id:
        return "the cloud user holding the address changed"
    if not item.creates and (
        report.onprem is None or (report.onprem.dn.lower() != (item.onprem_dn or "").lower())
    ):
        return "the AD object changed"
    if plan_to_dict(report.plan) != item.plan:
        return "the change to make is no longer the one approved (AD or cloud values changed)"
    return None


def _find_request(svc: WaveServices, wave: Wave, item: WaveItem) -> MatchRequest | None:
    if item.request_id:
        return svc.requests.store.get_request(item.request_id)
    # A crash between making the item's request and recording it on the item.
    for request in svc.requests.store.list_requests(
        requester_id=wave.requester_id,
        states=[RequestState.PENDING, RequestState.APPROVING],
        limit=500,
    ):
        if request.cloud_user_id == item.cloud_user_id and (request.reason or "").startswith(
            f"wave {wave.id}:"
        ):
            return request
    return None


def _settle(svc: WaveServices, wave: Wave, item: WaveItem) -> bool:
    """Drive one claimed (``applying``) item to its settled state.

    Returns:
        Whether a write was attempted (for the pace).

    Raises:
        _Outage: a directory did not answer; the item is back in ``pending`` (nothing was
            written) or stays ``applying`` (a write whose effect AD could not confirm yet).
    """
    approver = wave.approver_id or "wave"
    request = _find_request(svc, wave, item)
    if request is not None and item.request_id != request.id:
        svc.waves.set_item_fields(wave.id, item.position, request_id=request.id)
        item = replace(item, request_id=request.id)
    if request is not None and request.state is RequestState.EXPIRED:
        request = None  # released by an outage and expired meanwhile: nothing was written
    if request is not None and request.state is RequestState.APPROVING:
        return _record(svc, wave, item, settle_claim(svc.writer, request, approver))
    if request is not None and request.state is not RequestState.PENDING:
        return _record_state(svc, wave, item, request, request.decision_reason or "")
    try:
        report = check_match(
            svc.requests.dirs, item.address, None if item.creates else item.onprem_dn
        )
    except DirectoryError as exc:
        _release(svc, wave, item, exc)
        raise _Outage(f"{exc.directory} could not be reached; the wave is paused.") from exc
    why = _changed_since_scan(item, report)
    if why is not None:
        reason = f"Changed since the scan: {why}. Nothing was changed."
        if request is not None:
            svc.requests.store.transition(
                request.id,
                [RequestState.PENDING],
                RequestState.REJECTED,
                audit=AuditNote(E.REJECTED, approver, {"reason": reason, "wave": wave.id}),
                decision_reason=reason,
            )
        return _skip(svc, wave, item, approver, reason)
    if request is None:
        assert report.cloud is not None and report.target_address and report.plan is not None
        try:
            request = svc.requests.store.create_request(
                address=report.address,
                onprem_id=None if item.creates else item.onprem_dn,
                target_address=report.target_address,
                onprem_dn=report.plan.dn,
                cloud_user_id=report.cloud.id,
                cloud_upn=report.cloud.user_principal_name,
                anchor=report.onprem.anchor if report.onprem else "",
                plan=report.plan,
                report=report,
                requester_id=wave.requester_id,
                reason=f"wave {wave.id}: {wave.reason}",
                expires_at=svc.clock() + timedelta(hours=1),
                audit=AuditNote(
                    E.REQUESTED,
                    wave.requester_id,
                    {"address": report.address, "dn": report.plan.dn, "wave": wave.id},
                ),
                exclusive=True,
            )
        except OpenRequestExists as exc:
            reason = (
                f"Request `{exc.existing.id}` for this address or AD object is still "
                f"{exc.existing.state}; nothing was changed."
            )
            return _skip(svc, wave, item, approver, reason)
        svc.waves.set_item_fields(wave.id, item.position, request_id=request.id)
        item = replace(item, request_id=request.id)
    claimed = svc.requests.store.transition(
        request.id,
        [RequestState.PENDING],
        RequestState.APPROVING,
        audit=AuditNote(E.APPROVED, approver, {"wave": wave.id}),
        decided_by=approver,
        decided_at=svc.clock(),
    )
    if claimed is None:
        current = svc.requests.store.get_request(request.id)
        if current is None:
            return False
        return _record_state(svc, wave, item, current, current.decision_reason or "")
    return _record(svc, wave, item, apply_checked(svc.writer, claimed, approver, report))


def _release(svc: WaveServices, wave: Wave, item: WaveItem, exc: DirectoryError) -> None:
    reference = new_reference()
    log.warning("wave %s item %s: %s [ref %s]", wave.id, item.position, exc, reference)
    svc.waves.transition_item(
        wave.id,
        item.position,
        [I.APPLYING],
        I.PENDING,
        W.ITEM_RELEASED,
        None,
        {"error": str(exc), "reference": reference},
    )


def _record(svc: WaveServices, wave: Wave, item: WaveItem, result: Result) -> bool:
    """Map the guarded write's result onto the item."""
    request = result.request or (
        svc.requests.store.get_request(item.request_id) if item.request_id else None
    )
    if result.outcome is Outcome.OUTAGE:
        if request is not None and request.state is RequestState.PENDING:
            # Nothing was written (AD holds the old values): try again after the pause.
            svc.waves.transition_item(
                wave.id,
                item.position,
                [I.APPLYING],
                I.PENDING,
                W.ITEM_RELEASED,
                None,
                {"error": result.message},
            )
        raise _Outage(result.message)
    if request is None:
        return True
    skipped = result.outcome is Outcome.RECHECK_BLOCKED
    _record_state(svc, wave, item, request, result.message, skipped=skipped)
    if request.state is RequestState.APPLIED:
        _trigger(svc, request)
    return True


_SETTLED_AS = {
    RequestState.APPLIED: (I.APPLIED, W.ITEM_APPLIED),
    RequestState.MATCHED: (I.APPLIED, W.ITEM_APPLIED),
    RequestState.SYNC_FAILED: (I.APPLIED, W.ITEM_APPLIED),
    RequestState.SYNC_TIMEOUT: (I.APPLIED, W.ITEM_APPLIED),
    RequestState.REVERTED: (I.APPLIED, W.ITEM_APPLIED),
    RequestState.FAILED: (I.FAILED, W.ITEM_FAILED),
    RequestState.REJECTED: (I.SKIPPED, W.ITEM_SKIPPED),
    RequestState.EXPIRED: (I.SKIPPED, W.ITEM_SKIPPED),
}


def _skip(svc: WaveServices, wave: Wave, item: WaveItem, actor: str, reason: str) -> bool:
    """Settle an item being applied as skipped, with the reason; nothing was written."""
    svc.waves.transition_item(
        wave.id, item.position, [I.APPLYING], I.SKIPPED, W.ITEM_SKIPPED, actor, reason=reason
    )
    return False


def _record_state(
    svc: WaveServices,
    wave: Wave,
    item: WaveItem,
    request: MatchRequest,
    why: str,
    *,
    skipped: bool = False,
) -> bool:
    state, event = _SETTLED_AS.get(request.state, (I.FAILED, W.ITEM_FAILED))
    if skipped:
        state, event = I.SKIPPED, W.ITEM_SKIPPED
    details: dict[str, JsonValue] = {"request_state": str(request.state)}
    if state is I.APPLIED and request.applied is not None:
        details["plan"] = plan_to_dict(request.applied)
    svc.waves.transition_item(
        wave.id,
        item.position,
        [I.APPLYING],
        state,
        event,
        wave.approver_id,
        details,
        reason=None if state is I.APPLIED else why,
        anchor=request.anchor or None,
    )
    return True


def _trigger(svc: WaveServices, request: MatchRequest) -> None:
    subject = SyncSubject(request.id, request.onprem_dn, request.target_address, request.anchor)
    try:
        svc.trigger.trigger(subject)
    except DirectoryError as exc:
        log.warning("sync trigger for %s failed: %s", request.id, exc)


def due_waves(svc: WaveServices) -> list[str]:
    """Waves to run now: those left ``applying`` (a restart) and paused waves whose pause is
    over (moved back to ``applying`` here, audited). Run each with :func:`run_wave`."""
    cutoff = svc.clock() - svc.resume_after
    for wave in svc.waves.list_waves(states=[WaveState.PAUSED], limit=20):
        if wave.updated_at <= cutoff:
            svc.waves.transition_wave(
                wave.id, [WaveState.PAUSED], WaveState.APPLYING, audit=AuditNote(W.RESUMED)
            )
    return [
        wave.id
        for wave in svc.waves.list_waves(states=[WaveState.APPLYING], limit=20)
        if wave.id not in svc._running
    ]


# -- watching sync, in bulk --------------------------------------------------------------------


_ITEM_OF = {
    SyncOutcome.MATCHED: (I.MATCHED, W.ITEM_MATCHED, RequestState.MATCHED, E.SYNC_MATCHED),
    SyncOutcome.SYNC_FAILED: (
        I.SYNC_FAILED,
        W.ITEM_SYNC_FAILED,
        RequestState.SYNC_FAILED,
        E.SYNC_FAILED,
    ),
    SyncOutcome.SYNC_TIMEOUT: (
        I.TIMEOUT,
        W.ITEM_TIMEOUT,
        RequestState.SYNC_TIMEOUT,
        E.SYNC_TIMEOUT,
    ),
}


def _look_up(
    cloud: CloudDirectory, pairs: Sequence[tuple[str, str]]
) -> dict[str, tuple[Any, tuple[Any, ...]]]:
    bulk = getattr(cloud, "watch_users", None)
    if bulk is not None:
        found: dict[str, tuple[Any, tuple[Any, ...]]] = bulk(pairs)
        return found
    return {
        user_id: (cloud.get_user(user_id), tuple(cloud.find_by_anchor(anchor, None)))
        for user_id, anchor in pairs
    }


def poll_wave(svc: WaveServices, wave_id: str) -> Wave | None:
    """One look at Entra ID for every written, not yet settled item of a ``watching`` wave,
    in bulk (one Graph request per 15 users); the wave is done when none is left."""
    wave = svc.waves.get_wave(wave_id)
    if wave is None or wave.state is not WaveState.WATCHING:
        return wave
    waiting = svc.waves.items(wave_id, [I.APPLIED])
    now = svc.clock()
    deadline = wave.watch_deadline or now
    try:
        seen = _look_up(
            svc.requests.dirs.cloud, [(i.cloud_user_id, i.anchor or "") for i in waiting]
        )
    except DirectoryError as exc:
        log.warning("wave %s watch: Entra ID did not answer (%s); will retry", wave_id, exc)
        return wave
    for item in waiting:
        target, holders = seen.get(item.cloud_user_id, (None, ()))
        request = svc.requests.store.get_request(item.request_id or "")
        if request is None:
            continue
        if request.state is not RequestState.APPLIED:
            # Reverted or settled through the request itself meanwhile.
            _follow_request(svc, wave, item, request)
            continue
        facts = SyncFacts(
            anchor=request.anchor,
            address=request.target_address,
            upn=request.report.onprem.user_principal_name if request.report.onprem else None,
            target_id=item.cloud_user_id,
            target=target,
            anchor_holders=tuple(holders),
        )
        judgement = judge_sync(facts, now=now, deadline=deadline)
        if judgement.outcome is SyncOutcome.WAITING:
            continue
        item_state, item_event, request_state, request_event = _ITEM_OF[judgement.outcome]
        reason = judgement.detail + (f" Remedy: {judgement.remedy}" if judgement.remedy else "")
        settled = svc.requests.store.transition(
            request.id,
            [RequestState.APPLIED],
            request_state,
            audit=AuditNote(
                request_event, None, {"detail": judgement.detail, "remedy": judgement.remedy}
            ),
            decision_reason=reason,
        )
        if settled is not None:
            svc.waves.transition_item(
                wave_id,
                item.position,
                [I.APPLIED],
                item_state,
                item_event,
                None,
                reason=None if item_state is I.MATCHED else reason,
            )
    return finish_if_done(svc, wave_id) or svc.waves.get_wave(wave_id)


#: The item state (and event) that follows each settled request state.
_FOLLOWS: dict[RequestState, tuple[ItemState, WaveEvent]] = {
    RequestState.MATCHED: (I.MATCHED, W.ITEM_MATCHED),
    RequestState.SYNC_FAILED: (I.SYNC_FAILED, W.ITEM_SYNC_FAILED),
    RequestState.SYNC_TIMEOUT: (I.TIMEOUT, W.ITEM_TIMEOUT),
    RequestState.REVERTED: (I.REVERTED, W.ITEM_REVERTED),
}


def _follow_request(svc: WaveServices, wave: Wave, item: WaveItem, request: MatchRequest) -> bool:
    """Move ``item`` to the state its request was settled in (from any written state that may
    go there); returns whether it moved."""
    follow = _FOLLOWS.get(request.state)
    if follow is None:
        return False
    sources = [s for s in REVERTIBLE_ITEM_STATES if follow[0] in ITEM_TRANSITIONS[s]]
    moved = svc.waves.transition_item(
        wave.id, item.position, sources, follow[0], follow[1], None, reason=request.decision_reason
    )
    return moved is not None


def follow_requests(svc: WaveServices, requests: Sequence[MatchRequest]) -> int:
    """Wave items whose request was settled outside the wave (the sweep that settles a revert
    interrupted by an AD outage) follow it; their waves' progress is shown again.

    Returns:
        How many items moved.
    """
    moved = 0
    for request in requests:
        item = svc.waves.item_for_request(request.id)
        wave = svc.waves.get_wave(item.wave_id) if item is not None else None
        if item is None or wave is None or not _follow_request(svc, wave, item, request):
            continue
        moved += 1
        svc.board.progress(wave, svc.waves.counts(wave.id), None)
    return moved


def finish_if_done(svc: WaveServices, wave_id: str) -> Wave | None:
    """Mark a watching wave done once no item waits for sync, and tell the result."""
    if svc.waves.items(wave_id, [I.APPLIED, I.APPLYING, I.PENDING], limit=1):
        return None
    counts = svc.waves.counts(wave_id)
    done = svc.waves.transition_wave(
        wave_id,
        [WaveState.WATCHING],
        WaveState.DONE,
        audit=AuditNote(W.DONE, None, {"counts": _counts_json(counts)}),
    )
    if done is not None:
        svc.board.progress(done, counts, None)
        svc.board.finished(done, counts, wave_csv(svc.waves.items(wave_id)))
    return done


def poll_waves(svc: WaveServices) -> int:
    """Poll every watching wave once; returns how many were looked at."""
    watching = svc.waves.list_waves(states=[WaveState.WATCHING], limit=50)
    for wave in watching:
        poll_wave(svc, wave.id)
    return len(watching)


# -- reverting ---------------------------------------------------------------------------------


def revert_item(
    svc: WaveServices, wave_id: str, position: int, actor: str, team: TeamDirectory
) -> Result | WaveResult:
    """An approver undoes one written, not yet matched item, through the request's guarded
    revert (refused for the requester, for non-approvers and once Entra ID bound the users)."""
    item = svc.waves.get_item(wave_id, position)
    if item is None or item.request_id is None:
        return WaveResult(WaveOutcome.NOT_FOUND, message="This wave item was never written.")
    if item.state not in REVERTIBLE_ITEM_STATES:
        return WaveResult(WaveOutcome.STALE, message=f"This item is already {item.state}.")
    result = revert_request(svc.requests, item.request_id, actor, team)
    request = svc.requests.store.get_request(item.request_id)
    if request is not None and request.state in (RequestState.REVERTED, RequestState.MATCHED):
        target, event = (
            (I.REVERTED, W.ITEM_REVERTED)
            if request.state is RequestState.REVERTED
            else (I.MATCHED, W.ITEM_MATCHED)
        )
        svc.waves.transition_item(
            wave_id,
            position,
            REVERTIBLE_ITEM_STATES,
            target,
            event,
            actor,
            reason=result.message,
        )
    return result


def revert_address(
    svc: WaveServices, wave_id: str, address: str, actor: str, team: TeamDirectory
) -> Result | WaveResult:
    """:func:`revert_item` for the item handed over at ``address`` (as the approver typed it).

    Raises:
        InvalidInput: ``address`` is not a mailbox address (nothing is looked up).
    """
    wanted = parse_address(address)
    if svc.waves.get_wave(wave_id) is None:
        return WaveResult(WaveOutcome.NOT_FOUND, message=f"Wave `{wave_id}` does not exist.")
    item = svc.waves.find_item(wave_id, wanted)
    if item is None:
        return WaveResult(
            WaveOutcome.NOT_FOUND, message=f"{wanted} is not one of the users of wave `{wave_id}`."
        )
    return revert_item(svc, wave_id, item.position, actor, team)


def revert_wave(
    svc: WaveServices, wave_id: str, actor: str, team: TeamDirectory
) -> list[Result | WaveResult]:
    """Revert every written item of the wave that has not matched."""
    return [
        revert_item(svc, wave_id, item.position, actor, team)
        for item in svc.waves.items(wave_id, REVERTIBLE_ITEM_STATES)
    ]


def show_progress(svc: WaveServices, wave_id: str) -> None:
    """Show the wave's progress message as it is now (after a decision taken in Slack)."""
    wave = svc.waves.get_wave(wave_id)
    if wave is not None:
        svc.board.progress(wave, svc.waves.counts(wave_id), None)


#: Waves that still need someone: a decision, a write, a pause, a sync.
OPEN_WAVE_STATES = (WaveState.PENDING, WaveState.APPLYING, WaveState.PAUSED, WaveState.WATCHING)


def waves_for_home(svc: WaveServices, user: str, *, is_approver: bool, limit: int) -> list[Wave]:
    """What App Home lists: every open wave for approvers, the user's own waves for anyone
    else (newest first)."""
    if is_approver:
        return svc.waves.list_waves(states=OPEN_WAVE_STATES, limit=limit)
    return svc.waves.list_waves(requester_id=user, limit=limit)


# -- reports -----------------------------------------------------------------------------------


def _counts_json(counts: dict[ItemState, int]) -> dict[str, JsonValue]:
    return {str(k): v for k, v in counts.items() if v}


def wave_csv(items: Sequence[WaveItem]) -> str:
    """One row per item: address, cloud user, AD object, action, state, reason, request."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["address", "cloud_upn", "onprem_dn", "action", "state", "reason", "request_id"]
    )
    for item in items:
        writer.writerow(
            [
                item.address,
                item.cloud_upn,
                item.onprem_dn or (item.plan or {}).get("dn") or "",
                "create" if item.creates else "match",
                str(item.state),
                item.reason or "",
                item.request_id or "",
            ]
        )
    return out.getvalue()
