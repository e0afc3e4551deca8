"""Judging directory sync after the write: matched, failed (and why), timed out, or waiting.

Pure: the watcher gathers the facts, these rules explain them in the terms of docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.models import CloudUser, ProvisioningError, ProxyAddress, RoleAssignment, Unknown
from bot.rules.address import same_address


class SyncOutcome(StrEnum):
    """What one look at Entra ID says about a watched match."""

    WAITING = "waiting"
    MATCHED = "matched"
    SYNC_FAILED = "sync_failed"
    SYNC_TIMEOUT = "sync_timeout"


@dataclass(frozen=True, slots=True)
class SyncFacts:
    """What Entra ID shows now for one applied change."""

    anchor: str
    address: str
    upn: str | None
    target_id: str
    target: CloudUser | None
    anchor_holders: tuple[CloudUser, ...]
    target_roles: tuple[RoleAssignment, ...] | Unknown | None = None


@dataclass(frozen=True, slots=True)
class SyncJudgement:
    """The outcome with a plain explanation and, for failures, the remedy."""

    outcome: SyncOutcome
    detail: str
    remedy: str | None = None


def _describe_errors(errors: Sequence[ProvisioningError]) -> str:
    return "; ".join(
        f"{e.category} on {e.property_causing_error} ({e.value})"
        + (f" at {e.occurred}" if e.occurred else "")
        for e in errors
    )


def _names_us(error: ProvisioningError, address: str, upn: str | None) -> bool:
    parsed = ProxyAddress.parse(error.value or "")
    value = parsed.address if parsed.prefix else error.value or ""
    return same_address(value, address) or (upn is not None and same_address(value, upn))


def judge_sync(facts: SyncFacts, *, now: datetime, deadline: datetime) -> SyncJudgement:
    """Decide what Entra ID's current state means for the match.

    Success: the target shows ``onPremisesSyncEnabled`` and the AD anchor. Failure: another
    cloud object carries the anchor (sync created a duplicate instead of matching), or
    provisioning errors name the address or the UPN. Otherwise wait until the deadline.
    """
    target = facts.target
    if (
        target is not None
        and target.on_premises_sync_enabled is True
        and target.on_premises_immutable_id == facts.anchor
    ):
        return SyncJudgement(
            SyncOutcome.MATCHED,
            f"{target.user_principal_name} is now bound to the AD user (immutable id "
            f"{facts.anchor}); AD is its source of authority from now on.",
        )

    duplicates = [u for u in facts.anchor_holders if u.id != facts.target_id]
    if duplicates:
        dup = duplicates[0]
        errors = _describe_errors(dup.provisioning_errors)
        roles = facts.target_roles
        if isinstance(roles, tuple) and any(not r.eligible for r in roles):
            names = ", ".join(r.role for r in roles if not r.eligible)
            return SyncJudgement(
                SyncOutcome.SYNC_FAILED,
                f"Existing Admin Role Conflict: the cloud user holds {names}, so Entra ID "
                f"refused the soft match and created a new cloud user {dup.user_principal_name} "
                f"({dup.id}) for the AD user instead" + (f" ({errors})." if errors else "."),
                "Revert the AD change, delete the new cloud user, remove the admin role(s) from "
                "the cloud user, match again, then give the roles back.",
            )
        return SyncJudgement(
            SyncOutcome.SYNC_FAILED,
            f"Sync did not match: it created a new cloud user {dup.user_principal_name} "
            f"({dup.id}) carrying the AD anchor"
            + (
                f"; duplicate attribute resiliency quarantined its conflicting values ({errors})."
                if errors
                else "."
            ),
            "Revert the AD change, delete the new cloud user, remove the duplicate value named "
            "above from the other object, then check and match again.",
        )

    if target is not None:
        ours = [e for e in target.provisioning_errors if _names_us(e, facts.address, facts.upn)]
        if ours:
            return SyncJudgement(
                SyncOutcome.SYNC_FAILED,
                f"Entra ID reports provisioning errors for {target.user_principal_name}: "
                f"{_describe_errors(ours)}.",
                "Remove the conflicting value from the other object (the error names it), then "
                "run a delta sync.",
            )

    if target is None:
        return SyncJudgement(
            SyncOutcome.SYNC_FAILED,
            f"The cloud user {facts.target_id} no longer exists in Entra ID.",
            "Find out who deleted it; restore it from deleted users if the match is still wanted.",
        )

    if now >= deadline:
        return SyncJudgement(
            SyncOutcome.SYNC_TIMEOUT,
            f"Sync has not bound {target.user_principal_name} to the AD user yet.",
            "Check on the Entra Connect server that a sync cycle ran (Start-ADSyncSyncCycle "
            "-PolicyType Delta) and look for export errors on the AD user in Synchronization "
            "Service Manager; check that its OU is in the sync scope.",
        )
    return SyncJudgement(SyncOutcome.WAITING, "Waiting for directory sync.")
