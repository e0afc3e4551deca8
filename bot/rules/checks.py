"""Check ids, statuses and verdicts (the one place each is defined) and the report shape."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.models import CloudUser, OnPremUser
from bot.ports import ChangePlan


class CheckId(StrEnum):
    """The stable check identifiers (docs/rules.md), in report order."""

    CLOUD_USER_FOUND = "cloud.user_found"
    CLOUD_ADDRESS_IS_PRIMARY = "cloud.address_is_primary"
    CLOUD_MEMBER_USER = "cloud.member_user"
    CLOUD_HAS_MAILBOX = "cloud.has_mailbox"
    CLOUD_NOT_SYNCED = "cloud.not_synced"
    CLOUD_HARD_MATCH_ALLOWED = "cloud.hard_match_allowed"
    CLOUD_NO_ADMIN_ROLES = "cloud.no_admin_roles"
    TENANT_SOFT_MATCH_ALLOWED = "tenant.soft_match_allowed"
    TENANT_DOMAIN_VERIFIED = "tenant.domain_verified"
    ONPREM_USER_FOUND = "onprem.user_found"
    ONPREM_SAME_PERSON = "onprem.same_person"
    ONPREM_NOT_PRIVILEGED = "onprem.not_privileged"
    ONPREM_IS_PERSON = "onprem.is_person"
    ONPREM_NOT_YET_SYNCED = "onprem.not_yet_synced"
    ONPREM_IN_SYNC_SCOPE = "onprem.in_sync_scope"
    ONPREM_UPN_CONFLICT = "onprem.upn_conflict"
    ONPREM_UPN_DIFFERS = "onprem.upn_differs"
    ONPREM_ACCOUNT_ENABLED = "onprem.account_enabled"
    ONPREM_NO_EXCHANGE_MAILBOX = "onprem.no_exchange_mailbox"
    UNIQUE_ONPREM = "unique.onprem"
    UNIQUE_CLOUD = "unique.cloud"
    CLOUD_PRIMARY_UNCHANGED = "cloud.primary_unchanged"


class Status(StrEnum):
    """The outcome of one check. Only ``fail`` blocks a match."""

    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    UNKNOWN = "unknown"
    SKIP = "skip"


class Verdict(StrEnum):
    """The overall answer of a report."""

    ELIGIBLE = "eligible"
    ALREADY_MATCHED = "already_matched"
    SYNC_PENDING = "sync_pending"
    NEEDS_ACCOUNT = "needs_account"
    BLOCKED = "blocked"
    NEEDS_INPUT = "needs_input"


@dataclass(frozen=True, slots=True)
class Check:
    """One check's result, explained for people."""

    id: CheckId
    status: Status
    title: str
    detail: str
    remediation: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the bot says about one address.

    Args:
        address: the address as typed.
        target_address: the address the match uses (the cloud primary), when known.
        cloud: the cloud user, when exactly one was found.
        onprem: the AD user, when exactly one was identified.
        candidates: every AD candidate found (several when ambiguous), or the likely AD
            accounts under another name when none was found by the address.
        checks: every check, in :class:`CheckId` order.
        plan: the change to make, or ``None`` when there is none to make.
    """

    address: str
    verdict: Verdict
    checks: tuple[Check, ...]
    target_address: str | None = None
    cloud: CloudUser | None = None
    onprem: OnPremUser | None = None
    candidates: tuple[OnPremUser, ...] = ()
    plan: ChangePlan | None = None
    summary: str = ""

    def check(self, check_id: CheckId) -> Check:
        """The check with this id (every report has each one)."""
        return next(c for c in self.checks if c.id == check_id)
