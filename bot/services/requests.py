"""Use cases around a match request: ask for approval, decide, apply, revert, expire.

State changes are compare-and-set in the store, so a double click or two approvers clicking at
once act once. The directory write happens only after approval, after a fresh re-check whose
verdict is still ``eligible`` with the very plan the approver saw, and the old values are kept
for a revert. A request to create the missing AD account (KB step 2) follows the same path:
the re-check must still say ``needs_account`` with the very create plan approved, ONE LDAP add
creates the account (its GUID becomes the request's anchor), and a revert before the match
deletes exactly that object by its GUID.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import JsonValue

from bot.domain import AuditEventName, AuditNote, MatchRequest, OpenRequestExists
from bot.errors import (
    ConcurrentModification,
    DirectoryError,
    DirectoryUnavailable,
    InsecureTransport,
    NameTaken,
    NotFound,
    PermissionMissing,
    SchemaViolation,
)
from bot.log_format import current_reference
from bot.metrics import record_check
from bot.ports import ApprovalBoard, ChangePlan, RequestStore, TeamDirectory
from bot.rules.checks import Report, Verdict
from bot.rules.codec import plan_to_dict
from bot.rules.requests import (
    OPEN_STATES,
    TERMINAL_STATES,
    Decision,
    RequestState,
    decision_transition,
)
from bot.services.check import Directories, check_match
from bot.services.create import anchor_of, creation_details, generate_password, guid_of
from bot.services.faults import public_fault

log = logging.getLogger(__name__)
E = AuditEventName

__all__ = ["TeamDirectory"]  # re-exported: callers named it here before it moved to the ports


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
    ALREADY_OPEN = "already_open"  # another request for the address or AD object is open


class NoBoard:
    """No approvers' channel: requests are stored but not posted anywhere."""

    def post(self, request: MatchRequest) -> tuple[str, str] | None:
        """Nothing to post to."""
        return None

    def show(self, request: MatchRequest) -> None:
        """Nothing to update."""


#: Something to do once a match was applied (start the sync watch, tell people).
AppliedListener = Callable[[MatchRequest], None]


@dataclass
class RequestServices:
    """What the request use cases need: directories, store, approvers, clock, and where
    requests are shown. Built by the composition root (:mod:`bot.bootstrap`)."""

    dirs: Directories
    store: RequestStore
    approvers: tuple[str, ...] = ()
    #: Who may check and request (user ids and user groups; empty: anyone in the workspace).
    requesters: tuple[str, ...] = ()
    ttl: timedelta = timedelta(hours=24)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    board: ApprovalBoard = field(default_factory=NoBoard)
    #: The "a match was applied" event: each listener is called once per applied request,
    #: after the write is recorded; a listener's fault is logged and does not hide the write.
    applied_listeners: Sequence[AppliedListener] = ()
    #: Makes the password of an account created by KB step 2 (a seam for tests); the
    #: password goes to AD in the creating add and nowhere else.
    new_password: Callable[[], str] = generate_password


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
        E.CHECKED, actor=actor, details=checked_details(report, onprem_id)
    )
    return report, event.id


def checked_details(report: Report, onprem_id: str | None) -> dict[str, JsonValue]:
    """What the audit log keeps of a check (in Slack or on the command line)."""
    return {
        "address": report.address,
        "onprem": onprem_id,
        "dn": report.onprem.dn if report.onprem else None,
        "verdict": str(report.verdict),
        # KB step 2: the report offers the creation of the AD account.
        "create": bool(report.plan and report.plan.creates),
    }


def load_check(svc: RequestServices, check_id: str, actor: str) -> tuple[str, str | None] | str:
    """The address and AD DN of an eligible check that ``actor`` ran recently.

    Returns:
        ``(address, dn)``; ``(address, None)`` for a check that offered to create the AD
        account (KB step 2); or a message saying why the button cannot be used.
    """
    stale = "This report is no longer valid; run `/smtpmatch` again."
    event = svc.store.get_audit(int(check_id)) if check_id.isdigit() else None
    if event is None or event.event != E.CHECKED:
        return stale
    if event.actor != actor:
        return "Only the person who ran this check can request approval for it."
    details = event.details
    creation = details.get("verdict") == "needs_account" and details.get("create") is True
    if not creation and (details.get("verdict") != "eligible" or not details.get("dn")):
        return stale
    if event.at + CHECK_VALID_FOR < svc.clock():
        return stale
    return str(details["address"]), None if creation else str(details["dn"])


@dataclass(frozen=True)
class HomeLists:
    """What App Home shows one user."""

    own: list[MatchRequest]
    awaiting: list[MatchRequest]
    recent: list[MatchRequest]
    is_approver: bool


def home_lists(svc: RequestServices, user_id: str, team: TeamDirectory) -> HomeLists:
    """What App Home shows ``user_id``: their own requests; to approvers also those awaiting
    their decision (never their own) and recent results. Nobody else sees another person's
    requests or results."""
    approver = is_approver(svc, user_id, team)
    own = svc.store.list_requests(requester_id=user_id, limit=10)
    if not approver:
        return HomeLists(own=own, awaiting=[], recent=[], is_approver=False)
    awaiting = [
        r
        for r in svc.store.list_requests(states=[RequestState.PENDING], limit=20)
        if r.requester_id != user_id
    ]
    recent = svc.store.list_requests(
        states=TERMINAL_STATES | (OPEN_STATES - {RequestState.PENDING}), limit=10
    )
    return HomeLists(own=own, awaiting=awaiting, recent=recent, is_approver=True)


def request_match(
    svc: RequestServices,
    *,
    address: str,
    onprem_id: str | None,
    requester_id: str,
    requester_name: str | None = None,
    reason: str | None = None,
    requester_channel: str | None = None,
    create: bool = False,
) -> Result:
    """Re-check the address and, if still eligible, store a pending request.

    The report behind the request is made now, not taken from a button: buttons are untrusted.

    Args:
        create: request the creation of the missing AD account (KB step 2): the fresh
            verdict must still be ``needs_account`` with a create plan.
    """
    report = check_match(svc.dirs, address, onprem_id)
    wanted = Verdict.NEEDS_ACCOUNT if create else Verdict.ELIGIBLE
    if report.verdict is not wanted or report.plan is None or report.plan.creates is not create:
        return Result(
            Outcome.NOT_ELIGIBLE,
            report=report,
            message=f"{report.address} is no longer eligible ({report.verdict}): {report.summary}",
        )
    assert report.cloud is not None and report.target_address
    assert create or report.onprem is not None
    try:
        request = svc.store.create_request(
            address=report.address,
            onprem_id=onprem_id,
            target_address=report.target_address,
            onprem_dn=report.plan.dn,
            cloud_user_id=report.cloud.id,
            cloud_upn=report.cloud.user_principal_name,
            # A new account's anchor is known once it exists (recorded at creation).
            anchor=report.onprem.anchor if report.onprem else "",
            plan=report.plan,
            report=report,
            requester_id=requester_id,
            requester_name=requester_name,
            reason=reason,
            requester_channel=requester_channel,
            expires_at=svc.clock() + svc.ttl,
            audit=AuditNote(
                E.REQUESTED,
                requester_id,
                {"address": report.address, "dn": report.plan.dn, "reason": reason}
                | ({"action": "create"} if create else {}),
            ),
            exclusive=True,
        )
    except OpenRequestExists as exc:
        open_request = exc.existing
        return Result(
            Outcome.ALREADY_OPEN,
            request=open_request,
            report=report,
            message=f"Request `{open_request.id}` for {open_request.target_address} → "
            f"{open_request.onprem_dn} is still {open_request.state}; nothing new was created.",
        )
    return Result(Outcome.REQUESTED, request=request, report=report)


def is_approver(svc: RequestServices, user_id: str, team: TeamDirectory) -> bool:
    """Whether ``user_id`` is an approver directly or through a user group (resolved now)."""
    if user_id in svc.approvers:
        return True
    return any(user_id in team.group_members(g) for g in svc.approvers if g.startswith("S"))


#: What a person outside ``SMTPMATCH_REQUESTERS`` is told (nothing was looked up).
NOT_A_REQUESTER = (
    ":no_entry: You are not one of the people allowed to check or request SMTP matches "
    "with this bot (SMTPMATCH_REQUESTERS); ask the bot's admin."
)


def requester_known(svc: RequestServices, user_id: str) -> bool | None:
    """Whether ``user_id`` may request, when that is known without asking Slack.

    Returns:
        True (anyone may, or listed by id), False (not listed and no group is configured),
        or None (only the groups can tell: see :func:`may_request`).
    """
    if not svc.requesters or user_id in svc.requesters:
        return True
    return None if any(r.startswith("S") for r in svc.requesters) else False


def may_request(svc: RequestServices, user_id: str, team: TeamDirectory | None) -> bool:
    """Whether ``user_id`` may check and request: listed in ``requesters`` by id or through a
    user group (resolved now, like approvers), or anyone when none are configured."""
    known = requester_known(svc, user_id)
    if known is not None:
        return known
    if team is None:
        return False
    return any(user_id in team.group_members(g) for g in svc.requesters if g.startswith("S"))


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
            E(f"{action}_refused"), request_id=request.id, actor=actor, details={"why": "requester"}
        )
        return Result(
            Outcome.REFUSED_SELF,
            request=request,
            message="You asked for this match, so another approver has to decide it.",
        )
    if not is_approver(svc, actor, team):
        svc.store.append_audit(
            E(f"{action}_refused"),
            request_id=request.id,
            actor=actor,
            details={"why": "not an approver"},
        )
        return Result(
            Outcome.REFUSED_NOT_APPROVER,
            request=request,
            message="Only the configured approvers can revert a change."
            if action is Decision.REVERT
            else "Only the configured approvers can decide SMTP match requests.",
        )
    return request


def _expire_if_due(svc: RequestServices, request: MatchRequest) -> Result | None:
    if request.state is RequestState.PENDING and request.expires_at <= svc.clock():
        expired = svc.store.transition(
            request.id, [RequestState.PENDING], RequestState.EXPIRED, audit=AuditNote(E.EXPIRED)
        )
        current = expired or svc.store.get_request(request.id)
        return Result(Outcome.EXPIRED, request=current, message="This request has expired.")
    return None


def _stale(svc: RequestServices, request_id: str) -> Result:
    current = svc.store.get_request(request_id)
    state = current.state if current else "gone"
    return Result(Outcome.STALE, request=current, message=f"This request is already {state}.")


_DECIDED = {Decision.APPROVE: E.APPROVED, Decision.REJECT: E.REJECTED}


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
    svc: RequestServices, request: MatchRequest, actor: str | None, exc: DirectoryError
) -> Result:
    reference = new_reference()
    log.warning("approval of %s aborted [ref %s]: %s", request.id, reference, exc)
    released = svc.store.transition(
        request.id,
        [RequestState.APPROVING],
        RequestState.PENDING,
        audit=AuditNote(E.APPROVAL_ABORTED, actor, {"error": str(exc), "reference": reference}),
        decided_by=None,
        decided_at=None,
    )
    return Result(
        Outcome.OUTAGE,
        request=released,
        message=f"{public_fault(exc)}, so nothing was changed and the request "
        f"is pending again; try again later (ref {reference}).",
        reference=reference,
    )


def _fail(
    svc: RequestServices,
    request: MatchRequest,
    actor: str | None,
    outcome: Outcome,
    why: str,
    report: Report | None = None,
) -> Result:
    failed = svc.store.transition(
        request.id,
        [RequestState.APPROVING],
        RequestState.FAILED,
        audit=AuditNote(E.APPLY_REFUSED, actor, {"why": why}),
        decision_reason=why,
    )
    return Result(outcome, request=failed, report=report, message=why)


def _identity_changes(request: MatchRequest, report: Report) -> list[str]:
    """What the approver saw that the fresh report no longer shows: the cloud user, the AD
    object (its DN and its anchor) or the primary address. Any of these moving means the
    write would bind other accounts than the ones approved, even with the same plan."""
    changed = []
    if report.cloud is None or report.cloud.id != request.cloud_user_id:
        changed.append("cloud user holding the address")
    if report.onprem is None or report.onprem.dn.lower() != request.onprem_dn.lower():
        changed.append("AD object's DN")
    elif report.onprem.anchor != request.anchor:
        changed.append("AD object's anchor")
    if (report.target_address or "").lower() != request.target_address.lower():
        changed.append("primary address")
    return changed


def _apply(svc: RequestServices, request: MatchRequest, actor: str) -> Result:
    creates = request.plan.creates
    try:
        report = check_match(
            svc.dirs,
            request.address,
            None if creates else request.onprem_dn,
            approved_primary=request.target_address,
        )
    except DirectoryError as exc:
        return _release(svc, request, actor, exc)
    return apply_checked(svc, request, actor, report)


def apply_checked(
    svc: RequestServices, request: MatchRequest, actor: str, report: Report
) -> Result:
    """The guarded write of a request claimed in ``approving``, given its fresh re-check:
    write only if ``report`` is still the approved verdict with the same plan, cloud user,
    AD object (DN and anchor) and primary; exactly once, old values kept. A wave item's
    write (:mod:`bot.services.waves`) runs through here too."""
    if request.plan.creates:
        return _create(svc, request, actor, report)
    if report.verdict is not Verdict.ELIGIBLE or report.plan is None:
        failed = [c.id for c in report.checks if c.status == "fail"]
        why = (
            f"The re-check now says {report.verdict}"
            + (f" (failed: {', '.join(failed)})" if failed else f": {report.summary}")
            + ". Nothing was changed."
        )
        return _fail(svc, request, actor, Outcome.RECHECK_BLOCKED, why, report)
    moved = _identity_changes(request, report)
    if moved:
        why = (
            f"The {' and '.join(moved)} changed since the request, so this is no longer the "
            "match that was approved. Nothing was changed; check again and re-request."
        )
        return _fail(svc, request, actor, Outcome.RECHECK_BLOCKED, why, report)
    if report.plan != request.plan:
        why = (
            "The AD user's mail or proxyAddresses changed since the request, so the change is no "
            "longer the one that was approved. Nothing was changed; check again and re-request."
        )
        return _fail(svc, request, actor, Outcome.RECHECK_BLOCKED, why, report)

    try:
        applied = svc.dirs.onprem.apply(report.plan)
    except ConcurrentModification as exc:
        why = f"{public_fault(exc)}. Nothing was overwritten."
        return _fail(svc, request, actor, Outcome.CONFLICT, why, report)
    except DirectoryError as exc:
        # The modify may have reached AD before the connection dropped: look, don't guess.
        return _settle_after_fault(svc, request, actor, report.plan, exc, report)
    return _record_applied(svc, request, actor, applied, report)


def _create(svc: RequestServices, request: MatchRequest, actor: str, report: Report) -> Result:
    """KB step 2 after approval: the re-check must still say ``needs_account`` for the same
    cloud user and primary with the very plan approved; then ONE add creates the account."""
    if report.verdict is not Verdict.NEEDS_ACCOUNT or report.plan is None:
        failed = [c.id for c in report.checks if c.status == "fail"]
        why = (
            f"The re-check now says {report.verdict}"
            + (
                f" (failed: {', '.join(failed)})"
                if failed and report.verdict is not Verdict.NEEDS_ACCOUNT
                else f": {report.summary}"
            )
            + ". No account was created."
        )
        return _fail(svc, request, actor, Outcome.RECHECK_BLOCKED, why, report)
    moved = [m for m in _identity_changes(request, report) if not m.startswith("AD object")]
    if moved:
        why = (
            f"The {' and '.join(moved)} changed since the request, so this is no longer the "
            "account creation that was approved. No account was created; check again."
        )
        return _fail(svc, request, actor, Outcome.RECHECK_BLOCKED, why, report)
    if report.plan != request.plan:
        why = (
            "The account to create is no longer the one approved (a name it would take, or an "
            "address, changed in the directories meanwhile). No account was created; check "
            "again and re-request."
        )
        return _fail(svc, request, actor, Outcome.RECHECK_BLOCKED, why, report)
    try:
        guid = svc.dirs.onprem.create(report.plan, svc.new_password())
    except NameTaken as exc:
        why = (
            f"The {exc.attribute} {exc.value} was taken in AD between the approval and the "
            "creation. No account was created; check again and re-request."
        )
        return _fail(svc, request, actor, Outcome.CONFLICT, why, report)
    except (InsecureTransport, PermissionMissing, SchemaViolation) as exc:
        log.warning("creation for %s refused: %s", request.id, exc)
        why = f"{public_fault(exc)}. No account was created."
        return _fail(svc, request, actor, Outcome.CONFLICT, why, report)
    except DirectoryError as exc:
        # The add may have reached AD before the connection dropped: look, don't guess.
        return _settle_after_fault(svc, request, actor, report.plan, exc, report)
    return _record_applied(svc, request, actor, report.plan, report, guid=guid)


def _record_applied(
    svc: RequestServices,
    request: MatchRequest,
    actor: str | None,
    applied: ChangePlan,
    report: Report | None,
    note: str | None = None,
    guid: uuid.UUID | None = None,
) -> Result:
    details = (creation_details(applied, guid) if guid else plan_to_dict(applied)) | (
        {"note": note} if note else {}
    )
    done = svc.store.transition(
        request.id,
        [RequestState.APPROVING],
        RequestState.APPLIED,
        audit=AuditNote(E.APPLIED, actor, details),
        applied=applied,
        # A created account's anchor is its new objectGUID: the sync watch looks for it.
        **({"anchor": anchor_of(guid)} if guid else {}),
    )
    if done is None:  # another replica's recovery settled it first
        return _stale(svc, request.id)
    for listener in svc.applied_listeners:
        try:
            listener(done)
        except Exception:  # the write is done and recorded; a listener must not hide that
            log.exception("a listener of applied request %s failed", done.id)
    return Result(Outcome.APPLIED, request=done, report=report, message="Applied.")


class _Written(StrEnum):
    AFTER = "after"  # AD holds the planned values: the write happened
    BEFORE = "before"  # AD holds the old values: nothing was written
    NEITHER = "neither"  # someone else changed the object meanwhile


def _what_ad_holds(svc: RequestServices, request: MatchRequest, plan: ChangePlan) -> _Written:
    """Read the AD object again and compare it with the plan's before and after values.

    Raises:
        DirectoryError: AD still cannot be read.
    """
    found = [u for u in svc.dirs.onprem.find_users(request.address, request.onprem_dn)]
    user = next((u for u in found if u.dn.lower() == plan.dn.lower()), None)
    if user is None:
        return _Written.NEITHER
    current = {"mail": (user.mail,) if user.mail else (), "proxyaddresses": user.proxy_addresses}

    def holds(side: str) -> bool:
        for change in plan.changes:
            values = current.get(change.attribute.lower())
            wanted = change.after if side == "after" else change.before
            if values is None or sorted(values) != sorted(wanted):
                return False
        return True

    if holds("after"):
        return _Written.AFTER
    if holds("before"):
        return _Written.BEFORE
    return _Written.NEITHER


def _what_ad_made(
    svc: RequestServices, request: MatchRequest, plan: ChangePlan
) -> tuple[_Written, uuid.UUID | None]:
    """After a fault during a creation: is the planned account there (with its GUID)?

    Raises:
        DirectoryError: AD still cannot be read.
    """
    found = svc.dirs.onprem.find_users(request.address, plan.dn)
    user = next((u for u in found if u.dn.lower() == plan.dn.lower()), None)
    if user is None:
        return _Written.BEFORE, None  # the one add did not happen: no half-made account
    sam = plan.value("sAMAccountName") or ""
    if (user.sam_account_name or "").casefold() == sam.casefold() and user.object_guid:
        return _Written.AFTER, uuid.UUID(bytes_le=user.object_guid)
    return _Written.NEITHER, None


def _settle_after_fault(
    svc: RequestServices,
    request: MatchRequest,
    actor: str | None,
    plan: ChangePlan,
    exc: DirectoryError,
    report: Report | None = None,
) -> Result:
    """After a write fault, record what really happened in AD; if AD cannot be read either,
    leave the claim in ``approving`` for :func:`recover_stuck_approvals` to settle."""
    created: uuid.UUID | None = None
    try:
        if plan.creates:
            written, created = _what_ad_made(svc, request, plan)
        else:
            written = _what_ad_holds(svc, request, plan)
    except DirectoryError as again:
        reference = new_reference()
        log.warning(
            "write for %s failed and AD cannot be re-read [ref %s]: %s / %s",
            request.id,
            reference,
            exc,
            again,
        )
        return Result(
            Outcome.OUTAGE,
            request=svc.store.get_request(request.id),
            reference=reference,
            message=f"{exc.directory} stopped answering during the write; whether it was made "
            "will be checked and recorded automatically as soon as AD answers "
            f"(ref {reference}).",
        )
    if written is _Written.AFTER:
        return _record_applied(
            svc,
            request,
            actor,
            plan,
            report,
            note=f"confirmed by a re-read after: {exc}",
            guid=created,
        )
    if written is _Written.BEFORE:
        return _release(svc, request, actor, exc)
    log.warning("write for %s failed: %s", request.id, exc)
    why = (
        f"The write failed ({public_fault(exc)}) and the AD object now holds neither the old "
        "nor the planned values: someone else changed it. Check it by hand."
    )
    return _fail(svc, request, actor, Outcome.CONFLICT, why, report)


def settle_claim(svc: RequestServices, request: MatchRequest, actor: str | None) -> Result:
    """Settle a claim left in ``approving`` now (a wave resuming after a restart): AD is read
    again, as after a write fault, and the request recorded accordingly."""
    fault = DirectoryUnavailable("Active Directory", request.onprem_dn, "no answer recorded")
    return _settle_after_fault(svc, request, actor, request.plan, fault)


#: How long a claim may stay in ``approving`` before the sweep settles it.
STUCK_AFTER = timedelta(minutes=10)


def recover_stuck_approvals(svc: RequestServices) -> list[Result]:
    """Settle requests left in ``approving`` (a crash or an outage mid-write): AD is read
    and the request recorded as applied, released to pending, or failed accordingly."""
    results = []
    cutoff = svc.clock() - STUCK_AFTER
    for request in svc.store.list_requests(states=[RequestState.APPROVING], limit=50):
        if request.updated_at > cutoff:
            continue
        fault = DirectoryUnavailable("Active Directory", request.onprem_dn, "no answer recorded")
        result = _settle_after_fault(svc, request, None, request.plan, fault)
        if result.request is not None and result.outcome is not Outcome.OUTAGE:
            show_current_state(svc.store, svc.board, result.request.id)
        results.append(result)
    return results


def recover_stuck_reverts(svc: RequestServices) -> list[Result]:
    """Settle requests left in ``reverting`` (the restoring write failed and AD could not be
    read, or the bot stopped mid-revert): AD is read, and the request is recorded as
    ``reverted`` when the old values are back, or handed back to the state it came from when
    they are not (nothing written, or someone else changed the values), so it can be reverted
    again. While AD stays silent the claim stays, and the next sweep looks again."""
    results = []
    cutoff = svc.clock() - STUCK_AFTER
    for request in svc.store.list_requests(states=[RequestState.REVERTING], limit=50):
        if request.updated_at > cutoff or request.applied is None or request.applied.creates:
            continue  # a creation's revert never stays claimed: its delete is released on fault
        inverse = request.applied.inverse()
        try:
            written = _what_ad_holds(svc, request, inverse)
        except DirectoryError as exc:
            log.warning("revert of %s still unsettled: AD cannot be read: %s", request.id, exc)
            continue
        started = [
            e for e in svc.store.list_audit(request_id=request.id) if e.event == E.REVERT_STARTED
        ]
        actor = started[-1].actor if started else None
        came_from = RequestState(str(started[-1].details.get("from"))) if started else None
        if written is _Written.AFTER:
            details = plan_to_dict(inverse) | {"note": "confirmed by a re-read after an outage"}
            result = _record_reverted(svc, request.id, actor, details, "the old values are back")
        else:
            why = (
                "The revert did not reach Active Directory; the request can be reverted again."
                if written is _Written.BEFORE
                else "Active Directory holds neither the planned nor the old values: someone "
                "else changed them, so nothing was reverted. Check the account by hand."
            )
            result = _release_revert(
                svc,
                request,
                actor,
                came_from or RequestState.APPLIED,
                Outcome.CONFLICT if written is _Written.NEITHER else Outcome.OUTAGE,
                why,
            )
        if result.request is not None:
            show_current_state(svc.store, svc.board, result.request.id)
        results.append(result)
    return results


def revert_request(
    svc: RequestServices, request_id: str, actor: str, team: TeamDirectory
) -> Result:
    """An approver other than the requester undoes an applied change that has not matched:
    the old values come back through the same concurrency-safe write.

    The request is claimed first (``reverting``, compare-and-set, audited in the same
    transaction), so two reverts, or a revert and the sync watcher, act once. Then Entra ID is
    asked live: once the cloud user is bound to the AD user, restoring the old AD values would
    not unbind it, so the revert is refused and the request settled as matched. Only then is
    AD written, and the claim ends in ``reverted`` with the restored values: the write and its
    audit event cannot disagree. When nothing was written the claim is released to the state
    it came from. Refusals are audited.
    """
    checked = authorize_decision(svc, request_id, actor, team, Decision.REVERT)
    if isinstance(checked, Result):
        return checked
    request = checked
    from_states, claim = decision_transition(Decision.REVERT)
    if request.state not in from_states or request.applied is None:
        return _stale(svc, request_id)
    came_from = request.state
    claimed = svc.store.transition(
        request_id,
        [came_from],
        claim,
        audit=AuditNote(E.REVERT_STARTED, actor, {"from": str(came_from)}),
    )
    if claimed is None or claimed.applied is None:
        return _stale(svc, request_id)  # another revert, or the watcher, moved it first
    try:
        bound = _bound_now(svc, claimed)
    except DirectoryError as exc:
        return _revert_outage(svc, claimed, actor, came_from, exc)
    if bound:
        return _refuse_bound_revert(svc, claimed, actor)
    if claimed.applied.creates:
        return _revert_creation(svc, claimed, actor, came_from)
    inverse = claimed.applied.inverse()
    try:
        restored = svc.dirs.onprem.apply(inverse)
    except ConcurrentModification as exc:
        return _release_revert(
            svc,
            claimed,
            actor,
            came_from,
            Outcome.CONFLICT,
            f"{public_fault(exc)}. The values were changed by someone else (or already "
            "reverted); nothing was overwritten.",
        )
    except DirectoryError as exc:
        # The modify may have reached AD before the connection dropped: look, don't guess.
        try:
            written = _what_ad_holds(svc, claimed, inverse)
        except DirectoryError:
            return _revert_unsettled(claimed, exc)
        if written is not _Written.AFTER:
            return _revert_outage(svc, claimed, actor, came_from, exc)
        restored = inverse
    return _record_reverted(
        svc, request_id, actor, plan_to_dict(restored), "the old values are back"
    )


def _record_reverted(
    svc: RequestServices,
    request_id: str,
    actor: str | None,
    details: dict[str, JsonValue],
    what: str,
) -> Result:
    """The revert happened in AD: the claim ends in ``reverted``, with what was restored in
    its audit event (the write and its event cannot disagree)."""
    reverted = svc.store.transition(
        request_id,
        [RequestState.REVERTING],
        RequestState.REVERTED,
        audit=AuditNote(E.REVERTED, actor, details),
        decided_by=actor,
        decided_at=svc.clock(),
    )
    return Result(Outcome.REVERTED, request=reverted, message=f"Reverted: {what}.")


def _release_revert(
    svc: RequestServices,
    request: MatchRequest,
    actor: str | None,
    came_from: RequestState,
    outcome: Outcome,
    why: str,
    reference: str | None = None,
) -> Result:
    """Nothing was written: give the claim back (audited as a refused revert)."""
    details: dict[str, JsonValue] = {"why": why}
    if reference:
        details["reference"] = reference
    released = svc.store.transition(
        request.id,
        [RequestState.REVERTING],
        came_from,
        audit=AuditNote(E.REVERT_REFUSED, actor, details),
    )
    return Result(outcome, request=released or request, message=why, reference=reference)


def _revert_creation(
    svc: RequestServices, request: MatchRequest, actor: str, came_from: RequestState
) -> Result:
    """Undo KB step 2 before the match: delete exactly the account the bot created (by its
    objectGUID, recorded at creation), audited."""
    guid = guid_of(request.anchor)
    try:
        svc.dirs.onprem.delete(request.onprem_dn, guid)
    except (NotFound, ConcurrentModification) as exc:
        return _release_revert(
            svc,
            request,
            actor,
            came_from,
            Outcome.CONFLICT,
            f"{public_fault(exc)}. The created account was moved or deleted by someone "
            "else; nothing was deleted.",
        )
    except DirectoryError as exc:
        return _revert_outage(svc, request, actor, came_from, exc)
    details: dict[str, JsonValue] = {
        "action": "delete",
        "dn": request.onprem_dn,
        "guid": str(guid),
    }
    return _record_reverted(svc, request.id, actor, details, "the created AD account was deleted")


def _bound_now(svc: RequestServices, request: MatchRequest) -> bool:
    """Whether Entra ID shows the cloud user bound to the AD user now (asked live)."""
    user = svc.dirs.cloud.get_user(request.cloud_user_id)
    return (
        user is not None
        and user.on_premises_sync_enabled is True
        and user.on_premises_immutable_id == request.anchor
    )


def _refuse_bound_revert(svc: RequestServices, request: MatchRequest, actor: str) -> Result:
    """Entra ID has bound the users: the claimed request becomes ``matched`` (audited as a
    refused revert and as the sync result), and nothing is written."""
    why = (
        "Entra ID has already bound the cloud user to the AD account the bot created, so "
        "deleting it would delete the cloud user with it; nothing was changed."
        if request.plan.creates
        else "Entra ID has already bound the cloud user to the AD user, so restoring the old AD "
        "values would not undo the match; nothing was changed."
    )
    svc.store.append_audit(
        E.REVERT_REFUSED, request_id=request.id, actor=actor, details={"why": "already bound"}
    )
    settled = svc.store.transition(
        request.id,
        [RequestState.REVERTING],
        RequestState.MATCHED,
        audit=AuditNote(E.SYNC_MATCHED, None, {"detail": "bound (seen at a revert)"}),
        decision_reason="Matched: Entra ID bound the users (seen when a revert was asked).",
    )
    return Result(Outcome.STALE, request=settled or request, message=why)


def _revert_outage(
    svc: RequestServices,
    request: MatchRequest,
    actor: str,
    came_from: RequestState,
    exc: DirectoryError,
) -> Result:
    reference = new_reference()
    log.warning("revert of %s failed [ref %s]: %s", request.id, reference, exc)
    return _release_revert(
        svc,
        request,
        actor,
        came_from,
        Outcome.OUTAGE,
        f"{public_fault(exc)}; nothing was changed (ref {reference}).",
        reference,
    )


def _revert_unsettled(request: MatchRequest, exc: DirectoryError) -> Result:
    """The restoring write failed and AD cannot be read: whether it happened is unknown, so
    the claim stays in ``reverting`` (nothing else can act on it) until
    :func:`recover_stuck_reverts` reads AD again and records what is there."""
    reference = new_reference()
    log.error(
        "revert of %s: the write failed and AD cannot be re-read; the request stays "
        "reverting [ref %s]: %s",
        request.id,
        reference,
        exc,
    )
    return Result(
        Outcome.OUTAGE,
        request=request,
        reference=reference,
        message=f"{exc.directory} stopped answering during the revert; whether the old values "
        "are back is unknown. The request stays reverting, and is checked and recorded "
        f"automatically as soon as AD answers (ref {reference}).",
    )


def expire_requests(svc: RequestServices) -> list[MatchRequest]:
    """Expire every pending request past its deadline; returns those this call expired."""
    expired = svc.store.expire_due(svc.clock())
    for request in expired:
        svc.store.append_audit(E.EXPIRED, request_id=request.id)
    return expired


# -- showing requests where the approvers work ---------------------------------------------


def show_current_state(store: RequestStore, board: ApprovalBoard, request_id: str) -> None:
    """Make the request's approval message show its latest state.

    The state is reloaded from the store, and again after the update: the watcher or another
    replica may settle the request while a (possibly retried) update is on its way, and the
    message must end showing the latest state, not the one this caller happened to hold.
    """
    shown: int | None = None
    for _ in range(3):
        current = store.get_request(request_id)
        if current is None or current.version == shown:
            return
        if not (current.approval_channel and current.approval_ts):
            return
        board.show(current)
        shown = current.version


def submit_request(
    svc: RequestServices,
    *,
    check_id: str,
    requester_id: str,
    requester_name: str | None,
    reason: str | None,
) -> Result:
    """The requester confirmed "Request approval" on a recorded check: check again, store the
    request and post it to the approvers.

    Returns:
        ``REQUESTED`` with the posted request, ``NOT_ELIGIBLE`` with the fresh report, or
        ``STALE`` when the check cannot be used (too old, someone else's).
    """
    target = load_check(svc, check_id, requester_id)
    if isinstance(target, str):
        return Result(Outcome.STALE, message=target)
    address, dn = target
    result = request_match(
        svc,
        address=address,
        onprem_id=dn,
        requester_id=requester_id,
        requester_name=requester_name,
        reason=reason,
        requester_channel=requester_id,
        create=dn is None,
    )
    if result.outcome is not Outcome.REQUESTED or result.request is None:
        return result
    posted = svc.board.post(result.request)
    if posted is None:
        return result
    channel, ts = posted
    request = svc.store.update_fields(result.request.id, approval_channel=channel, approval_ts=ts)
    return Result(Outcome.REQUESTED, request=request, report=result.report)


def prepare_rejection(
    svc: RequestServices, request_id: str, actor: str, team: TeamDirectory
) -> Result | MatchRequest:
    """Before asking an approver for the reason: may ``actor`` reject, and is it still open?"""
    checked = authorize_decision(svc, request_id, actor, team, Decision.REJECT)
    if isinstance(checked, Result):
        return checked
    if checked.state is not RequestState.PENDING:
        return Result(
            Outcome.STALE, request=checked, message=f"This request is already {checked.state}."
        )
    return checked


def decide(
    svc: RequestServices,
    decision: Decision,
    request_id: str,
    actor: str,
    team: TeamDirectory,
    reason: str | None = None,
) -> Result:
    """Approve, reject or revert, then show the request's new state to the approvers.

    Args:
        reason: required to reject; ignored otherwise.
    """
    if decision is Decision.APPROVE:
        result = approve_request(svc, request_id, actor, team)
    elif decision is Decision.REJECT:
        result = reject_request(svc, request_id, actor, team, reason or "")
    else:
        result = revert_request(svc, request_id, actor, team)
    if result.request is not None and result.outcome not in _NOT_SHOWN:
        show_current_state(svc.store, svc.board, result.request.id)
    return result


#: Refusals change nothing, so the approval message stays as it is.
_NOT_SHOWN = frozenset({Outcome.NOT_FOUND, Outcome.REFUSED_SELF, Outcome.REFUSED_NOT_APPROVER})


def expire_and_show(svc: RequestServices) -> list[MatchRequest]:
    """Expire overdue requests and show each one's new state to the approvers."""
    expired = expire_requests(svc)
    for request in expired:
        show_current_state(svc.store, svc.board, request.id)
    return expired
