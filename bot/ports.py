"""Ports: what the services need from the directories. Adapters implement these.

All methods are synchronous; the services run them concurrently on a thread pool. Faults are
raised as the project's errors (:mod:`bot.errors`); a fact that cannot be read for lack of a
permission is returned as :class:`bot.models.Unknown` where the signature allows it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from bot.models import CloudUser, Holder, OnPremUser, RoleAssignment, Tenant, Unknown

if TYPE_CHECKING:  # the domain and report types build on ChangePlan below
    from bot.domain import AuditDetails, AuditEvent, AuditNote, MatchRequest, SyncWatch
    from bot.rules.checks import Report
    from bot.rules.requests import RequestState
    from bot.rules.sync import SyncJudgement


@dataclass(frozen=True, slots=True)
class AttributeChange:
    """One attribute of one AD object: its value before and after.

    Single-valued attributes (``mail``) use a 1-tuple or an empty tuple for "not set", so that
    one shape serves both kinds; the JSON view turns them into a string or ``null``.
    """

    attribute: str
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChangePlan:
    """What smtpmatch would write to the AD object ``dn``."""

    dn: str
    changes: tuple[AttributeChange, ...]

    def inverse(self) -> ChangePlan:
        """The change that restores the before values (for a revert)."""
        return ChangePlan(
            dn=self.dn,
            changes=tuple(AttributeChange(c.attribute, c.after, c.before) for c in self.changes),
        )


class OnPremDirectory(Protocol):
    """On-prem Active Directory, as the rules and the write need it."""

    def find_users(self, address: str, onprem_id: str | None) -> Sequence[OnPremUser]:
        """Identify the AD user(s) for a match.

        Args:
            address: the mailbox address typed (already validated).
            onprem_id: sAMAccountName, UPN or DN given by the requester; when set, only that
                object is looked up (a user, contact or group, so the rules can refuse a
                contact). A DN is looked up only below the base DN and outside the
                configuration and schema partitions; anything else is not found.

        Returns:
            Every candidate; empty when none, several when ambiguous. Each carries what the
            rules need to judge it (``isCriticalSystemObject``, ``adminDescription``,
            ``adminCount``, protected-group membership, names).
        """
        ...

    def find_lookalikes(
        self,
        display_name: str | None,
        given_name: str | None,
        surname: str | None,
        account_name: str | None,
    ) -> Sequence[OnPremUser]:
        """AD users that plausibly are a person under another name: the same ``displayName``,
        the same ``givenName`` AND ``sn``, or ``sAMAccountName`` = ``account_name`` (the cloud
        UPN's prefix). ``None`` values are not searched; none at all finds nothing."""
        ...

    def find_holders(self, address: str) -> Sequence[Holder]:
        """Every AD object of any class holding ``address`` in ``mail``, ``proxyAddresses``
        (any prefix case), ``userPrincipalName`` or ``targetAddress``: one Holder per object and
        attribute."""
        ...

    def apply(self, plan: ChangePlan) -> ChangePlan:
        """Write ``plan`` in one modify that fails if any ``before`` value is no longer current.

        Returns:
            The change as applied (before = what was replaced, after = what is now stored).

        Raises:
            ConcurrentModification: the object changed since it was read; nothing was written.
        """
        ...


class CloudDirectory(Protocol):
    """Entra ID (and Exchange Online) through Microsoft Graph."""

    def find_users(self, address: str) -> Sequence[CloudUser]:
        """Users holding ``address`` as UPN, ``mail`` or any ``proxyAddresses`` value."""
        ...

    def get_user(self, user_id: str) -> CloudUser | None:
        """One user by object id, with the on-prem properties; ``None`` when it is gone."""
        ...

    def has_mailbox(self, user_id: str) -> bool | Unknown:
        """Whether the user has an Exchange Online mailbox."""
        ...

    def roles(self, user_id: str) -> tuple[RoleAssignment, ...] | Unknown:
        """Active directory roles (direct or through groups) and PIM-eligible ones."""
        ...

    def find_holders(self, address: str) -> Sequence[Holder] | Unknown:
        """Every cloud object (users including guests, groups, contacts) holding ``address``;
        ``Unknown`` (naming the permission) when it may not list them."""
        ...

    def find_by_anchor(self, anchor: str, sid: str | None) -> Sequence[CloudUser]:
        """Cloud users carrying this on-prem anchor (immutable id) or SID."""
        ...

    def find_deleted_by_anchor(self, anchor: str, sid: str | None) -> Sequence[CloudUser] | Unknown:
        """Soft-deleted users (``deleted`` set) carrying this anchor or SID; ``Unknown``
        (naming the permission) when the deleted items may not be read."""
        ...

    def find_holders_of(self, addresses: Sequence[str]) -> Sequence[Holder] | Unknown:
        """Every cloud object holding any of ``addresses`` (as :meth:`find_holders`, one
        Holder per object and address), in one round trip where the API allows it."""
        ...

    def find_user_by_upn(self, upn: str) -> CloudUser | None:
        """The cloud user whose UPN is ``upn``, if any."""
        ...

    def tenant(self) -> Tenant:
        """Verified domains and on-prem synchronization flags."""
        ...


# -- ports of the request and sync use cases ---------------------------------------------------


class TeamDirectory(Protocol):
    """Who belongs to a chat user group (resolved at click time, never cached long)."""

    def group_members(self, group_id: str) -> Collection[str]:
        """User ids in the user group ``group_id``."""
        ...


class ApprovalBoard(Protocol):
    """Where approvers see requests: one message per request, kept showing its state."""

    def post(self, request: MatchRequest) -> tuple[str, str] | None:
        """Post a new request for approval; returns ``(channel, ts)``, or None without a
        channel."""
        ...

    def show(self, request: MatchRequest) -> None:
        """Make the request's message show its current state (buttons only while open)."""
        ...


class RequestStore(Protocol):
    """Requests, audit events and sync watches (the SQL adapter is :class:`bot.store.Store`).

    Every state change is a compare-and-set; an audit note is written with the change it
    records, in the same transaction.
    """

    def schema_revision(self) -> str | None:
        """The database's migration revision (``None`` before the first migration)."""
        ...

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
        """Store a new pending request; with ``exclusive``, refuse (``OpenRequestExists``)
        while another request for the address or AD object is open."""
        ...

    def get_request(self, request_id: str) -> MatchRequest | None:
        """One request, or None."""
        ...

    def transition(
        self,
        request_id: str,
        from_states: Iterable[RequestState],
        to_state: RequestState,
        audit: AuditNote | None = None,
        **fields: object,
    ) -> MatchRequest | None:
        """Compare-and-set the state; None when the request was not in ``from_states``."""
        ...

    def update_fields(self, request_id: str, **fields: object) -> MatchRequest:
        """Set non-state fields (message coordinates)."""
        ...

    def list_requests(
        self,
        *,
        requester_id: str | None = None,
        states: Iterable[RequestState] | None = None,
        limit: int = 20,
    ) -> list[MatchRequest]:
        """Requests, newest first."""
        ...

    def expire_due(self, now: datetime) -> list[MatchRequest]:
        """Expire every overdue pending request; returns those this call expired."""
        ...

    def append_audit(
        self,
        event: str,
        *,
        request_id: str | None = None,
        actor: str | None = None,
        details: AuditDetails | None = None,
    ) -> AuditEvent:
        """Append one audit event."""
        ...

    def get_audit(self, event_id: int) -> AuditEvent | None:
        """One audit event, or None."""
        ...

    def list_audit(
        self,
        *,
        since: datetime | None = None,
        request_id: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """Audit events, oldest first."""
        ...

    def create_watch(
        self,
        request_id: str,
        anchor: str,
        cloud_user_id: str,
        deadline: datetime,
        next_poll_at: datetime,
    ) -> SyncWatch:
        """Start watching sync for an applied request."""
        ...

    def lease_due_watches(
        self, owner: str, now: datetime, lease_seconds: float, limit: int = 10
    ) -> list[SyncWatch]:
        """Claim due watches for a while."""
        ...

    def reschedule_watch(
        self, watch_id: int, owner: str, next_poll_at: datetime, attempts: int
    ) -> bool:
        """Set the next poll of a leased watch; False when the lease was lost."""
        ...

    def finish_watch(self, watch_id: int, owner: str, outcome: str, detail: str) -> bool:
        """Record a leased watch's outcome; False when the lease was lost."""
        ...


class Notifier(Protocol):
    """Tells people about sync (the Slack adapter posts to the team and the requester)."""

    def sync_started(self, request: MatchRequest, note: str) -> str | None:
        """The change was written and sync was triggered (or is awaited).

        Returns:
            The ts of the team message that later results thread under, if one was posted.
        """
        ...

    def sync_finished(self, request: MatchRequest, judgement: SyncJudgement) -> None:
        """Sync matched, failed or timed out."""
        ...
