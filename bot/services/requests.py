"""Use cases around a match request: ask for approval, decide, apply, revert, expire.

State changes are compare-and-set in the store, so a double click or two approvers clicking at
once act once. The directory write happens only after approval, after a fresh re-check whose
verdict is still ``eligible`` with the very plan the approver saw, and the old values are kept
for a revert.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from bot.errors import ConcurrentModification, DirectoryError
from bot.log_format import current_reference
from bot.metrics import record_check
from bot.rules.checks import Report, Verdict
from bot.rules.codec import plan_from_dict, plan_to_dict, report_to_dict
from bot.rules.requests import (
    OPEN_STATES,
    TERMINAL_STATES,
    Decision,
    RequestState,
    decision_transition,
)
from bot.services.check import Directories, check_match
from bot.store.repository import AuditNote, MatchRequest, Store

log = logging.getLogger(__name__)


class TeamDirectory(Protocol):
    """Who belongs to a Slack user group (resolved at click time, never cached long)."""

    def group_members(self, group_id: str) -> Collection[str]:
        """User ids in the user group ``group_id``."""
        ...


class Outcome(StrEnum):
    """What a decision attempt came to."""

    NOT_FOUND = "not_found"
    REFUSED_SELF = "refused_self"
    REFUSED_NOT_APPROVER = "refused_not_approver"
    STALE = "stale"  # the request is no longer in a state this decision applies to
    EXPIRED = "expired"
    REJECTED = "rejected"
    APPLIED = "applied"
    RECHECK_BLOCKED = "recheck_blocked"
    CONFLICT = "conflict"  # the AD object changed under us; nothing was written
    OUTAGE = "outage"  # a directory could not answer; nothing changed
    REVERTED = "reverted"
    NOT_ELIGIBLE = "not_eligible"
    REQUESTED = "requested"


@dataclass
class RequestServices:
    """What the request use cases need: directories, store, approvers, clock."""

    dirs: Directories
    store: Store
    approvers: tuple[str, ...] = ()
    ttl: timedelta = timedelta(hours=24)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: Called with each applied request (the sync watcher hooks in here).
    on_applied: Callable[[MatchRequest], None] | None = None


@dataclass(frozen=True)
class Result:
    """The outcome of a use case, with what the views need to render it.

    Args:
        outcome: what happened.
        request: the request as it is now in the store (when there is one).
        report: the fresh report, when one was made.
        message: a plain explanation for people.
        reference: an id that is also in the log, for faults.
    """

    outcome: Outcome
    request: MatchRequest | None = None
    report: Report | None = None
    message: str = ""
    reference: str | None = None


def new_reference() -> str:
    """A short id that ties a user-facing error to its log lines (the request's own, if any)."""
    return current_reference() or uuid.uuid4().hex[:8].upper()


#: How long the "Request approval" button of a report stays usable.
CHECK_VALID_FOR = timedelta(hours=1)


def check_for(
    svc: RequestServices, address: str, onprem_id: str | None, actor: str
) -> tuple[Report, int]:
    """A check asked for by a person: the report, recorded in the audit log.

    Returns:
        The report and the id of its audit event: the only thing the report's "Request
        approval" button carries.
    """
    report = check_match(svc.dirs, address, onprem_id)
    record_check(report.verdict)
    event = svc.store.append_audit(
        "checked",
        actor=actor,
        details={
            "address": report.address,
            "onprem": onprem_id,
            "dn": report.onprem.dn if report.onprem else None,
            "verdict": str(report.verdict),
        },
    )
    return report, event.id


def load_check(svc: RequestServices, check_id: str, actor: str) -> tuple[str, str] | str:
    """The address and AD DN of an eligible check that ``actor`` ran recently.

    Returns:
        ``(address, dn)``, or a message saying why the button cannot be used.
    """
    stale = "This report is no longer valid; run `/smtpmatch` again."
    event = svc.store.get_audit(int(check_id)) if check_id.isdigit() else None
    if event is None or event.event != "checked":
        return stale
    if event.actor != actor:
        return "Only the person who ran this check can request approval for it."
    details = event.details
    if details.get("verdict") != "eligible" or not details.get("dn"):
        return stale
    if event.at + CHECK_VALID_FOR < svc.clock():
        return stale
    return str(details["address"]), str(details["dn"])


@dataclass(frozen=True)
class HomeLists:
    """What App Home shows one user."""

    own: list[MatchRequest]
    awaiting: list[MatchRequest]
    recent: list[MatchRequest]
    is_approver: bool


def home_lists(svc: RequestServices, user_id: str, team: TeamDirectory) -> HomeLists:
    """The user's own requests, those awaiting their decision (approvers only; never their
    own), and recent results."""
    approver = is_approver(svc, user_id, team)
    awaiting = (
        [
            r
            for r in svc.store.list_requests(states=[RequestState.PENDING], limit=20)
            if r.requester_id != user_id
        ]
        if approver
        else []
    )
    recent = svc.store.list_requests(
        states=TERMINAL_STATES | (OPEN_STATES - {RequestState.PENDING}), limit=10
    )
    own = svc.store.list_requests(requester_id=user_id, limit=10)
    return HomeLists(own=own, awaiting=awaiting, recent=recent, is_approver=approver)


def request_match(
    svc: RequestServices,
    *,
    address: str,
    onprem_id: str | None,
    requester_id: str,
    requester_name: str | None = None,
    reason: str | None = None,
    requester_channel: str | None = None,
) -> Result:
    """Re-check the address and, if still eligible, store a pending request.

    The report behind the request is made now, not taken from a button: buttons are untrusted.
    """
    report = check_match(svc.dirs, address, onprem_id)
    if report.verdict is not Verdict.ELIGIBLE or report.plan is None:
        return Result(
            Outcome.NOT_ELIGIBLE,
            report=report,
            message=f"{report.address} is no longer eligible ({report.verdict}): {report.summary}",
        )
    assert report.cloud is not None and report.onprem is not None and report.target_address
    request = svc.store.create_request(
        address=report.address,
        onprem_id=onprem_id,
        target_address=report.target_address,
        onprem_dn=report.onprem.dn,
        cloud_user_id=report.cloud.id,
        cloud_upn=report.cloud.user_principal_name,
        anchor=report.onprem.anchor,
        plan=plan_to_dict(report.plan),
        report=report_to_dict(report),
        requester_id=requester_id,
        requester_name=requester_name,
        reason=reason,
        requester_channel=requester_channel,
        expires_at=svc.clock() + svc.ttl,
        audit=AuditNote(
            "requested",
            requester_id,
            {"address": report.address, "dn": report.onprem.dn, "reason": reason},
        ),
    )
    return Result(Outcome.REQUESTED, request=request, report=report)


def is_approver(svc: RequestServices, user_id: str, team: TeamDirectory) -> bool:
    """Whether ``user_id`` is an approver directly or through a user group (resolved now)."""
    if user_id in svc.approvers:
        return True
    return any(user_id in team.group_members(g) for g in svc.approvers if g.startswith("S"))


def authorize_decision(
    svc: RequestServices, request_id: str, actor: str, team: TeamDirectory, action: Decision
) -> Result | MatchRequest:
    """Load a request and check that ``actor`` may decide it: an approver, not the requester.

    Returns:
        The request, or a refusal (audited) to show to the clicker only.
    """
    request = svc.store.get_request(request_id)
    if request is None:
        return Result(Outcome.NOT_FOUND, message="This request does not exist (any more).")
    if actor == request.requester_id:
        svc.store.append_audit(
            f"{action}_refused", request_id=request.id, actor=actor, details={"why": "requester"}
        )
        return Result(
            Outcome.REFUSED_SELF,
            request=request,
            message="You asked for this match, so another approver has to decide it.",
        )
    if not is_approver(svc, actor, team):
        svc.store.append_audit(
            f"{action}_refused",
            request_id=request.id,
            actor=actor,
            details={"why": "not an approver"},
        )
        return Result(
            Outcome.REFUSED_NOT_APPROVER,
            request=request,
            message="Only the configured approvers can decide SMTP match requests.",
        )
    return request


def _expire_if_due(svc: RequestServices, request: MatchRequest) -> Result | None:
    if request.state is RequestState.PENDING and request.expires_at <= svc.clock():
        expired = svc.store.transition(
            request.id, [RequestState.PENDING], RequestState.EXPIRED, audit=AuditNote("expired")
        )
        current = expired or svc.store.get_request(request.id)
        return Result(Outcome.EXPIRED, request=current, message="This request has expired.")
    return None


def _stale(svc: RequestServices, request_id: str) -> Result:
    current = svc.store.get_request(request_id)
    state = current.state if current else "gone"
    return Result(Outcome.STALE, request=current, message=f"This request is already {state}.")


_DECIDED = {Decision.APPROVE: "approved", Decision.REJECT: "rejected"}


def _decide(
    svc: RequestServices,
    request_id: str,
    actor: str,
    team: TeamDirectory,
    decision: Decision,
    reason: str | None = None,
) -> Result | MatchRequest:
    """Authorize the clicker, expire an overdue request, then make the decision's
    compare-and-set (:func:`decision_transition`); a lost race is a stale click, told as such.
    Audited as ``approved`` or ``rejected``."""
    checked = authorize_decision(svc, request_id, actor, team, decision)
    if isinstance(checked, Result):
        return checked
    if (expired := _expire_if_due(svc, checked)) is not None:
        return expired
    extra = {"decision_reason": reason} if reason is not None else {}
    from_states, to_state = decision_transition(decision)
    request = svc.store.transition(
        request_id,
        from_states,
        to_state,
        audit=AuditNote(_DECIDED[decision], actor, {"reason": reason} if reason else None),
        decided_by=actor,
        decided_at=svc.clock(),
        **extra,
    )
    if request is None:
        return _stale(svc, request_id)
    return request


def reject_request(
    svc: RequestServices, request_id: str, actor: str, team: TeamDirectory, reason: str
) -> Result:
    """An approver turns a pending request down, with a reason."""
    decided = _decide(svc, request_id, actor, team, Decision.REJECT, reason)
    if isinstance(decided, Result):
        return decided
    return Result(Outcome.REJECTED, request=decided, message="Rejected.")


def approve_request(
    svc: RequestServices, request_id: str, actor: str, team: TeamDirectory
) -> Result:
    """An approver approves: claim, re-check on live data, write once, record the old values."""
    decided = _decide(svc, request_id, actor, team, Decision.APPROVE)
    if isinstance(decided, Result):
        return decided
    return _apply(svc, decided, actor)


def _release(
    svc: RequestServices, request: MatchRequest, actor: str, exc: DirectoryError
) -> Result:
    reference = new_reference()
    log.warning("approval of %s aborted [ref %s]: %s", request.id, reference, exc)
    released = svc.store.transition(
        request.id,
        [RequestState.APPROVING],
        RequestState.PENDING,
        audit=AuditNote("approval_aborted", actor, {"error": str(exc), "reference": reference}),
        decided_by=None,
        decided_at=None,
    )
    return Result(
        Outcome.OUTAGE,
        request=released,
        message=f"{exc.directory} could not be reached, so nothing was changed and the request "
        f"is pending again; try again later (ref {reference}).",
        reference=reference,
    )


def _fail(
    svc: RequestServices,
    request: MatchRequest,
    actor: str,
    outcome: Outcome,
    why: str,
    report: Report | None = None,
) -> Result:
    failed = svc.store.transition(
        request.id,
        [RequestState.APPROVING],
        RequestState.FAILED,
        audit=AuditNote("apply_refused", actor, {"why": why}),
        decision_reason=why,
    )
    return Result(outcome, request=failed, report=report, message=why)


def _apply(svc: RequestServices, request: MatchRequest, actor: str) -> Result:
    try:
        report = check_match(
            svc.dirs, request.address, request.onprem_dn, approved_primary=request.target_address
        )
    except DirectoryError as exc:
        return _release(svc, request, actor, exc)

    if report.verdict is not Verdict.ELIGIBLE or report.plan is None:
        failed = [c.id for c in report.checks if c.status == "fail"]
        why = (
            f"The re-check now says {report.verdict}"
            + (f" (failed: {', '.join(failed)})" if failed else f": {report.summary}")
            + ". Nothing was changed."
        )
        return _fail(svc, request, actor, Outcome.RECHECK_BLOCKED, why, report)
    if plan_to_dict(report.plan) != request.plan:
        why = (
            "The AD user's mail or proxyAddresses changed since the request, so the change is no "
            "longer the one that was approved. Nothing was changed; check again and re-request."
        )
        return _fail(svc, request, actor, Outcome.RECHECK_BLOCKED, why, report)

    try:
        applied = svc.dirs.onprem.apply(report.plan)
    except ConcurrentModification as exc:
        return _fail(
            svc, request, actor, Outcome.CONFLICT, f"{exc}. Nothing was overwritten.", report
        )
    except DirectoryError as exc:
        return _release(svc, request, actor, exc)

    done = svc.store.transition(
        request.id,
        [RequestState.APPROVING],
        RequestState.APPLIED,
        audit=AuditNote("applied", actor, plan_to_dict(applied)),
        applied=plan_to_dict(applied),
    )
    assert done is not None  # we hold the APPROVING claim: nobody else can move it
    if svc.on_applied is not None:
        svc.on_applied(done)
    return Result(Outcome.APPLIED, request=done, report=report, message="Applied.")


def revert_request(
    svc: RequestServices, request_id: str, actor: str, team: TeamDirectory
) -> Result:
    """An approver undoes an applied change that has not matched: the old values come back
    through the same concurrency-safe write."""
    request = svc.store.get_request(request_id)
    if request is None:
        return Result(Outcome.NOT_FOUND, message="This request does not exist (any more).")
    if not is_approver(svc, actor, team):
        return Result(
            Outcome.REFUSED_NOT_APPROVER,
            request=request,
            message="Only the configured approvers can revert a change.",
        )
    from_states, to_state = decision_transition(Decision.REVERT)
    if request.state not in from_states or request.applied is None:
        return _stale(svc, request_id)
    inverse = plan_from_dict(request.applied).inverse()
    try:
        restored = svc.dirs.onprem.apply(inverse)
    except ConcurrentModification as exc:
        return Result(
            Outcome.CONFLICT,
            request=request,
            message=f"{exc}. The values were changed by someone else (or already "
            "reverted); nothing was overwritten.",
        )
    except DirectoryError as exc:
        reference = new_reference()
        log.warning("revert of %s failed [ref %s]: %s", request_id, reference, exc)
        return Result(
            Outcome.OUTAGE,
            request=request,
            reference=reference,
            message=f"{exc.directory} could not be reached; nothing was changed (ref {reference}).",
        )
    reverted = svc.store.transition(
        request_id,
        from_states,
        to_state,
        audit=AuditNote("reverted", actor, plan_to_dict(restored)),
        decided_by=actor,
        decided_at=svc.clock(),
    )
    return Result(
        Outcome.REVERTED,
        request=reverted or svc.store.get_request(request_id),
        message="Reverted: the old values are back.",
    )


def expire_requests(svc: RequestServices) -> list[MatchRequest]:
    """Expire every pending request past its deadline; returns those this call expired."""
    expired = svc.store.expire_due(svc.clock())
    for request in expired:
        svc.store.append_audit("expired", request_id=request.id)
    return expired
