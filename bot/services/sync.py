"""Triggering and watching directory sync after a write, and telling people the result.

Watches live in the store and are leased, so they survive restarts and, with several replicas
on PostgreSQL, each is worked by one replica at a time.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.domain import AuditEventName, AuditNote, MatchRequest, SyncWatch
from bot.errors import DirectoryError
from bot.models import RoleAssignment, Unknown
from bot.ports import ApprovalBoard, Notifier, RequestStore
from bot.rules.requests import RequestState
from bot.rules.sync import SyncFacts, SyncOutcome, judge_sync
from bot.services.check import Directories
from bot.services.faults import public_fault
from bot.services.requests import NoBoard, show_current_state
from bot.sync_triggers import NoTrigger, SyncSubject, SyncTriggerPort

log = logging.getLogger(__name__)

_STATE_OF = {
    SyncOutcome.MATCHED: RequestState.MATCHED,
    SyncOutcome.SYNC_FAILED: RequestState.SYNC_FAILED,
    SyncOutcome.SYNC_TIMEOUT: RequestState.SYNC_TIMEOUT,
}


_EVENT_OF = {
    SyncOutcome.MATCHED: AuditEventName.SYNC_MATCHED,
    SyncOutcome.SYNC_FAILED: AuditEventName.SYNC_FAILED,
    SyncOutcome.SYNC_TIMEOUT: AuditEventName.SYNC_TIMEOUT,
}

__all__ = ["Notifier", "SyncServices", "poll_due_watches", "start_watch"]


def default_owner() -> str:
    """A name for this replica's watcher: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class SyncServices:
    """What the sync use cases need."""

    dirs: Directories
    store: RequestStore
    notifier: Notifier
    trigger: SyncTriggerPort = field(default_factory=NoTrigger)
    poll_seconds: float = 60.0
    timeout: timedelta = timedelta(minutes=90)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    owner: str = field(default_factory=default_owner)
    #: A lease lasts a few polls, so a crashed replica's watches are taken over soon.
    lease_seconds: float = 120.0
    #: Where the approvers see the request (its message shows the sync result too).
    board: ApprovalBoard = field(default_factory=NoBoard)


def start_watch(svc: SyncServices, request: MatchRequest) -> SyncWatch:
    """Trigger a sync for an applied request and start watching it.

    A trigger fault does not undo the write: the watch still runs (the scheduled cycle will
    come), and the fault is recorded and told.
    """
    subject = SyncSubject(request.id, request.onprem_dn, request.target_address, request.anchor)
    try:
        note = svc.trigger.trigger(subject)
    except DirectoryError as exc:
        log.warning("sync trigger for %s failed: %s", request.id, exc)
        note = (
            f"the {svc.trigger.name} trigger failed ({public_fault(exc)}); "
            "waiting for the scheduled cycle"
        )
    now = svc.clock()
    watch = svc.store.create_watch(
        request_id=request.id,
        anchor=request.anchor,
        cloud_user_id=request.cloud_user_id,
        deadline=now + svc.timeout,
        next_poll_at=now + timedelta(seconds=min(svc.poll_seconds, 5.0)),
    )
    svc.store.append_audit(
        AuditEventName.SYNC_TRIGGERED,
        request_id=request.id,
        details={"trigger": svc.trigger.name, "note": note},
    )
    notify_ts = svc.notifier.sync_started(request, note)
    if notify_ts is not None:
        svc.store.update_fields(request.id, notify_ts=notify_ts)
    return watch


def _gather(svc: SyncServices, request: MatchRequest, watch: SyncWatch) -> SyncFacts:
    cloud = svc.dirs.cloud
    target = cloud.get_user(watch.cloud_user_id)
    holders = tuple(cloud.find_by_anchor(watch.anchor, None))
    roles: tuple[RoleAssignment, ...] | Unknown | None = None
    if any(h.id != watch.cloud_user_id for h in holders):
        roles = cloud.roles(watch.cloud_user_id)  # only needed to name the cause of a failure
    return SyncFacts(
        anchor=watch.anchor,
        address=request.target_address,
        upn=request.report.onprem.user_principal_name if request.report.onprem else None,
        target_id=watch.cloud_user_id,
        target=target,
        anchor_holders=holders,
        target_roles=roles,
    )


def _next_poll(svc: SyncServices, attempts: int, now: datetime) -> datetime:
    # Back off from the configured cadence to at most 8x it, so a long wait costs few calls.
    delay = svc.poll_seconds * min(2 ** max(attempts - 1, 0), 8)
    return now + timedelta(seconds=delay)


def poll_due_watches(svc: SyncServices, limit: int = 10) -> int:
    """Look once at every due watch this replica can lease; returns how many were looked at."""
    now = svc.clock()
    watches = svc.store.lease_due_watches(svc.owner, now, svc.lease_seconds, limit)
    for watch in watches:
        _poll(svc, watch)
    return len(watches)


def _poll(svc: SyncServices, watch: SyncWatch) -> None:
    request = svc.store.get_request(watch.request_id)
    now = svc.clock()
    if request is not None and request.state is RequestState.REVERTING:
        # A revert holds the request; it may release it to applied: keep watching.
        svc.store.reschedule_watch(
            watch.id, svc.owner, _next_poll(svc, watch.attempts, now), watch.attempts
        )
        return
    if request is None or request.state is not RequestState.APPLIED:
        # Reverted (or otherwise settled) meanwhile: nothing left to watch.
        state = request.state if request else "gone"
        svc.store.finish_watch(watch.id, svc.owner, "cancelled", f"request is {state}")
        return
    try:
        judgement = judge_sync(_gather(svc, request, watch), now=now, deadline=watch.deadline)
    except DirectoryError as exc:
        log.warning("sync watch %s: Entra ID did not answer (%s); will retry", watch.id, exc)
        svc.store.reschedule_watch(
            watch.id, svc.owner, _next_poll(svc, watch.attempts + 1, now), watch.attempts + 1
        )
        return
    if judgement.outcome is SyncOutcome.WAITING:
        svc.store.reschedule_watch(
            watch.id, svc.owner, _next_poll(svc, watch.attempts + 1, now), watch.attempts + 1
        )
        return
    if not svc.store.finish_watch(watch.id, svc.owner, judgement.outcome, judgement.detail):
        return  # our lease ran out and another replica owns the watch now
    state = _STATE_OF[judgement.outcome]
    reason = judgement.detail + (f" Remedy: {judgement.remedy}" if judgement.remedy else "")
    event = _EVENT_OF[judgement.outcome]
    settled = svc.store.transition(
        request.id,
        [RequestState.APPLIED],
        state,
        audit=AuditNote(event, None, {"detail": judgement.detail, "remedy": judgement.remedy}),
        decision_reason=reason,
    )
    if settled is not None:
        svc.notifier.sync_finished(settled, judgement)
        show_current_state(svc.store, svc.board, settled.id)
