"""Judging sync: matched, a duplicate instead of a match (and why), errors, timeout, waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.models import CloudUser, ProvisioningError, RoleAssignment
from bot.rules.sync import SyncFacts, SyncOutcome, judge_sync

NOW = datetime(2026, 11, 26, 10, tzinfo=UTC)
LATER = NOW + timedelta(minutes=30)
TARGET = CloudUser(id="t", user_principal_name="jane@contoso.com")


def facts(**kw) -> SyncFacts:
    values = dict(
        anchor="QUJD",
        address="jane@contoso.com",
        upn="jane@contoso.com",
        target_id="t",
        target=TARGET,
        anchor_holders=(),
    )
    values.update(kw)
    return SyncFacts(**values)


def test_a_bound_target_is_matched() -> None:
    bound = CloudUser(
        id="t",
        user_principal_name="jane@contoso.com",
        on_premises_immutable_id="QUJD",
        on_premises_sync_enabled=True,
    )
    judgement = judge_sync(facts(target=bound, anchor_holders=(bound,)), now=NOW, deadline=LATER)
    assert judgement.outcome is SyncOutcome.MATCHED


def test_a_new_cloud_user_with_the_anchor_is_a_failed_match_naming_the_quarantine() -> None:
    dup = CloudUser(
        id="d",
        user_principal_name="jane1234@contoso.onmicrosoft.com",
        on_premises_immutable_id="QUJD",
        on_premises_sync_enabled=True,
        provisioning_errors=(
            ProvisioningError("PropertyConflict", "ProxyAddresses", "SMTP:jane@contoso.com"),
        ),
    )
    judgement = judge_sync(facts(anchor_holders=(dup,)), now=NOW, deadline=LATER)
    assert judgement.outcome is SyncOutcome.SYNC_FAILED
    assert "jane1234@contoso.onmicrosoft.com" in judgement.detail
    assert "quarantined" in judgement.detail and "ProxyAddresses" in judgement.detail
    assert judgement.remedy and "Revert" in judgement.remedy


def test_a_duplicate_for_a_role_holder_is_an_admin_role_conflict() -> None:
    dup = CloudUser(
        id="d", user_principal_name="alex5@contoso.onmicrosoft.com", on_premises_immutable_id="QUJD"
    )
    judgement = judge_sync(
        facts(anchor_holders=(dup,), target_roles=(RoleAssignment("Exchange Administrator"),)),
        now=NOW,
        deadline=LATER,
    )
    assert judgement.outcome is SyncOutcome.SYNC_FAILED
    assert "Existing Admin Role Conflict" in judgement.detail
    assert "Exchange Administrator" in judgement.detail


def test_provisioning_errors_naming_the_address_fail_the_match() -> None:
    target = CloudUser(
        id="t",
        user_principal_name="jane@contoso.com",
        provisioning_errors=(
            ProvisioningError("PropertyConflict", "ProxyAddresses", "smtp:JANE@contoso.com"),
        ),
    )
    assert judge_sync(facts(target=target), now=NOW, deadline=LATER).outcome is (
        SyncOutcome.SYNC_FAILED
    )


def test_nothing_yet_waits_until_the_deadline_then_times_out_with_next_steps() -> None:
    assert judge_sync(facts(), now=NOW, deadline=LATER).outcome is SyncOutcome.WAITING
    late = judge_sync(facts(), now=LATER, deadline=LATER)
    assert late.outcome is SyncOutcome.SYNC_TIMEOUT
    assert late.remedy and "Start-ADSyncSyncCycle" in late.remedy


def test_a_deleted_target_fails() -> None:
    assert judge_sync(facts(target=None), now=NOW, deadline=LATER).outcome is (
        SyncOutcome.SYNC_FAILED
    )
