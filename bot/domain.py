"""Domain types of requests and their audit trail: frozen, typed, shared by every layer.

The rules' own types (report, checks, plan, directory users) live in :mod:`bot.rules.checks`,
:mod:`bot.ports` and :mod:`bot.models`; this module adds what a request's life needs: the
request, the audit event and its name, the sync watch. No I/O and no JSON here: the store
turns these into database rows at its edge (:mod:`bot.store.codecs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import JsonValue

from bot.ports import ChangePlan
from bot.rules.checks import Report
from bot.rules.requests import RequestState

#: Facts recorded with an audit event: JSON values only, so any export can carry them.
AuditDetails = Mapping[str, JsonValue]


class AuditEventName(StrEnum):
    """Every event the bot writes to the audit log (the one place they are named)."""

    CHECKED = "checked"
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    APPROVE_REFUSED = "approve_refused"
    REJECT_REFUSED = "reject_refused"
    REVERT_REFUSED = "revert_refused"
    APPROVAL_ABORTED = "approval_aborted"
    APPLY_REFUSED = "apply_refused"
    APPLIED = "applied"
    REVERT_STARTED = "revert_started"
    REVERTED = "reverted"
    EXPIRED = "expired"
    SYNC_TRIGGERED = "sync_triggered"
    SYNC_MATCHED = "sync_matched"
    SYNC_FAILED = "sync_failed"
    SYNC_TIMEOUT = "sync_timeout"


@dataclass(frozen=True, slots=True)
class MatchRequest:
    """A request to SMTP-match an AD user to an Entra ID user, as stored."""

    id: str
    address: str
    onprem_id: str | None
    target_address: str
    onprem_dn: str
    cloud_user_id: str
    cloud_upn: str
    anchor: str
    #: The change the approver is asked to approve.
    plan: ChangePlan
    #: The report the requester saw when asking.
    report: Report
    requester_id: str
    requester_name: str | None
    reason: str | None
    state: RequestState
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    #: The change as applied, with the old values (for a revert); None until applied.
    applied: ChangePlan | None
    approval_channel: str | None
    approval_ts: str | None
    #: Where to tell the requester (a channel or DM id).
    requester_channel: str | None
    notify_ts: str | None
    #: Bumped by every change; lets callers notice that a request moved under them.
    version: int


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the append-only audit log.

    ``event`` is an :class:`AuditEventName` for everything the bot writes; entries written
    by other tools (or older versions) keep their own name as a plain string.
    """

    id: int
    at: datetime
    event: str
    request_id: str | None
    actor: str | None
    details: dict[str, JsonValue]


@dataclass(frozen=True, slots=True)
class AuditNote:
    """An audit event to write in the same transaction as a request change, so that the log
    can never miss a change that happened (nor record one that did not)."""

    event: str
    actor: str | None = None
    details: AuditDetails | None = None


@dataclass(frozen=True, slots=True)
class SyncWatch:
    """A watch on directory sync for one applied request."""

    id: int
    request_id: str
    anchor: str
    cloud_user_id: str
    created_at: datetime
    deadline: datetime
    next_poll_at: datetime
    attempts: int
    lease_owner: str | None
    lease_until: datetime | None
    outcome: str | None
    detail: str | None
    finished_at: datetime | None = None


class OpenRequestExists(Exception):
    """A store refused a new request: one for the same address or AD object is still open.

    The service turns it into a result (the existing request is named); it is not a fault.
    """

    def __init__(self, existing: MatchRequest) -> None:
        self.existing = existing
        super().__init__(f"request {existing.id} for this address or AD object is still open")
