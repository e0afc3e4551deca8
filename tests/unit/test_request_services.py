"""Requesting, approving, rejecting, reverting and expiring, with the demo directories as
fakes (they keep state) and a real SQLite store."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.directories.demo import DemoActiveDirectory, DemoEntraDirectory, build_demo_directories
from bot.errors import DirectoryUnavailable
from bot.ports import AttributeChange
from bot.rules.requests import RequestState
from bot.services.check import Directories
from bot.services.requests import (
    Outcome,
    RequestServices,
    approve_request,
    check_for,
    expire_requests,
    load_check,
    recover_stuck_approvals,
    reject_request,
    request_match,
    revert_request,
    submit_request,
)
from bot.store.repository import Store

REQUESTER = "U0HELPDESK"
APPROVER = "U0APPROVER"
GROUP_MEMBER = "U0GROUPIE"


class Team:
    def __init__(self) -> None:
        self.groups = {"S0ADMINS": {GROUP_MEMBER}}

    def group_members(self, group_id: str) -> Collection[str]:
        return self.groups.get(group_id, set())


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(tmp_path) -> Iterator[tuple[RequestServices, DemoActiveDirectory, DemoEntraDirectory]]:
    ad, cloud, policy = build_demo_directories()
    clock = Clock()
    store = Store(f"sqlite:///{tmp_path / 'smtpmatch.db'}", clock=clock)
    store.migrate()
    svc = RequestServices(
        dirs=Directories(ad, cloud, policy),
        store=store,
        approvers=(APPROVER, "S0ADMINS"),
        clock=clock,
    )
    yield svc, ad, cloud
    store.close()


def ad_user(ad: DemoActiveDirectory, sam: str):
    return next(u for u in ad.users if u.sam_account_name == sam)


def requested(svc: RequestServices, address: str = "jane@contoso.com"):
    result = request_match(
        svc,
        address=address,
        onprem_id=None,
        requester_id=REQUESTER,
        requester_channel=REQUESTER,
        reason="joins on-prem",
    )
    assert result.outcome is Outcome.REQUESTED and result.request is not None
    return result.request


def approved(svc: RequestServices, address: str):
    request = requested(svc, address)
    result = approve_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.APPLIED
    return result.request


def test_an_eligible_address_becomes_a_pending_request_with_its_plan(world) -> None:
    svc, _, _ = world
    request = requested(svc)
    assert request.state is RequestState.PENDING
    assert request.plan.changes[0].after == ("jane@contoso.com",)
    assert request.expires_at == svc.clock() + timedelta(hours=24)
    assert [e.event for e in svc.store.list_audit(request_id=request.id)] == ["requested"]


def test_a_blocked_address_makes_no_request(world) -> None:
    svc, _, _ = world
    result = request_match(
        svc, address="alex.admin@contoso.com", onprem_id=None, requester_id=REQUESTER
    )
    assert result.outcome is Outcome.NOT_ELIGIBLE
    assert svc.store.list_requests() == []


def test_approval_writes_ad_once_and_records_the_old_values(world) -> None:
    svc, ad, _ = world
    request = requested(svc, "paul.primary@contoso.com")
    result = approve_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.APPLIED
    paul = ad_user(ad, "paul.primary")
    assert paul.mail == "paul.primary@contoso.com"
    assert "smtp:paul@fabrikam.com" in paul.proxy_addresses
    stored = svc.store.get_request(request.id)
    assert stored is not None and stored.state is RequestState.APPLIED
    assert stored.decided_by == APPROVER
    mail = {c.attribute: c for c in stored.applied.changes}["mail"]
    assert mail == AttributeChange(
        attribute="mail",
        before=("paul@fabrikam.com",),
        after=("paul.primary@contoso.com",),
    )


def test_the_requester_cannot_approve_their_own_request(world) -> None:
    svc, ad, _ = world
    request = requested(svc)
    result = approve_request(svc, request.id, REQUESTER, Team())
    assert result.outcome is Outcome.REFUSED_SELF
    assert ad_user(ad, "jane.doe").mail is None
    assert svc.store.get_request(request.id).state is RequestState.PENDING


def test_a_non_approver_is_refused(world) -> None:
    svc, ad, _ = world
    request = requested(svc)
    assert approve_request(svc, request.id, "U0RANDOM", Team()).outcome is (
        Outcome.REFUSED_NOT_APPROVER
    )
    assert ad_user(ad, "jane.doe").mail is None
    assert "approve_refused" in [e.event for e in svc.store.list_audit(request_id=request.id)]


def test_a_member_of_an_approver_group_may_approve(world) -> None:
    svc, _, _ = world
    request = requested(svc)
    assert approve_request(svc, request.id, GROUP_MEMBER, Team()).outcome is Outcome.APPLIED


def test_two_concurrent_approvals_write_exactly_once(world) -> None:
    svc, ad, _ = world
    request = requested(svc)
    writes: list[object] = []
    real_apply = ad.apply

    def counting_apply(plan):
        writes.append(plan)
        return real_apply(plan)

    ad.apply = counting_apply  # type: ignore[method-assign]
    barrier = threading.Barrier(2)
    outcomes: list[Outcome] = []

    def click(user: str) -> None:
        barrier.wait()
        outcomes.append(approve_request(svc, request.id, user, Team()).outcome)

    threads = [threading.Thread(target=click, args=(u,)) for u in (APPROVER, GROUP_MEMBER)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted([Outcome.APPLIED, Outcome.STALE])
    assert len(writes) == 1


def test_a_changed_cloud_primary_is_refused_at_approval(world) -> None:
    svc, ad, cloud = world
    request = requested(svc)
    jane = next(u for u in cloud.users if u.user_principal_name == "jane@contoso.com")
    cloud.update_user(
        replace(jane, proxy_addresses=("SMTP:jane.new@contoso.com", "smtp:jane@contoso.com"))
    )
    result = approve_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.RECHECK_BLOCKED
    assert "cloud.primary_unchanged" in result.message
    assert ad_user(ad, "jane.doe").mail is None
    assert svc.store.get_request(request.id).state is RequestState.FAILED


def test_a_change_to_the_ad_user_since_the_request_is_refused(world) -> None:
    svc, ad, _ = world
    request = requested(svc)
    ad.users = [
        replace(u, proxy_addresses=("smtp:jd@contoso.com",))
        if u.sam_account_name == "jane.doe"
        else u
        for u in ad.users
    ]
    result = approve_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.RECHECK_BLOCKED
    assert ad_user(ad, "jane.doe").proxy_addresses == ("smtp:jd@contoso.com",)


def test_a_directory_outage_mid_approval_changes_nothing_and_releases_the_request(world) -> None:
    svc, ad, cloud = world
    request = requested(svc)

    def down(*_: object) -> list[object]:
        raise DirectoryUnavailable("Entra ID", "graph.example", "timed out")

    cloud.find_users = down  # type: ignore[method-assign]
    result = approve_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.OUTAGE
    assert result.reference and result.reference in result.message
    assert ad_user(ad, "jane.doe").mail is None
    assert svc.store.get_request(request.id).state is RequestState.PENDING


def test_reject_records_the_reason_and_blocks_a_later_approval(world) -> None:
    svc, ad, _ = world
    request = requested(svc)
    result = reject_request(svc, request.id, APPROVER, Team(), "wrong person")
    assert result.outcome is Outcome.REJECTED
    assert result.request.decision_reason == "wrong person"
    assert approve_request(svc, request.id, GROUP_MEMBER, Team()).outcome is Outcome.STALE
    assert ad_user(ad, "jane.doe").mail is None


def test_an_expired_request_cannot_be_approved(world) -> None:
    svc, ad, _ = world
    request = requested(svc)
    svc.clock.now += timedelta(hours=25)  # type: ignore[attr-defined]
    result = approve_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.EXPIRED
    assert svc.store.get_request(request.id).state is RequestState.EXPIRED
    assert ad_user(ad, "jane.doe").mail is None


def test_the_expiry_sweep_expires_only_overdue_requests(world) -> None:
    svc, _, _ = world
    old = requested(svc)
    svc.clock.now += timedelta(hours=20)  # type: ignore[attr-defined]
    young = requested(svc, "paul.primary@contoso.com")
    svc.clock.now += timedelta(hours=5)  # type: ignore[attr-defined]
    assert [r.id for r in expire_requests(svc)] == [old.id]
    assert svc.store.get_request(young.id).state is RequestState.PENDING


def test_revert_restores_the_recorded_values(world) -> None:
    svc, ad, _ = world
    request = requested(svc, "paul.primary@contoso.com")
    before = ad_user(ad, "paul.primary")
    approve_request(svc, request.id, APPROVER, Team())
    result = revert_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.REVERTED
    after = ad_user(ad, "paul.primary")
    assert after.mail == before.mail
    assert set(after.proxy_addresses) == set(before.proxy_addresses)
    assert revert_request(svc, request.id, APPROVER, Team()).outcome is Outcome.STALE


class TestTheRequestApprovalButton:
    def test_it_leads_back_to_the_checked_address_and_ad_user(self, world) -> None:
        svc, _, _ = world
        report, check_id = check_for(svc, "jane.doe@contoso.com", None, REQUESTER)
        assert load_check(svc, str(check_id), REQUESTER) == (
            "jane.doe@contoso.com",
            report.onprem.dn,
        )

    def test_another_user_cannot_use_it(self, world) -> None:
        svc, _, _ = world
        _, check_id = check_for(svc, "jane@contoso.com", None, REQUESTER)
        assert "Only the person" in load_check(svc, str(check_id), "U0SOMEONE")

    def test_a_blocked_check_forged_or_old_ids_are_refused(self, world) -> None:
        svc, _, _ = world
        _, blocked = check_for(svc, "alex.admin@contoso.com", None, REQUESTER)
        _, fresh = check_for(svc, "jane@contoso.com", None, REQUESTER)
        for value in (str(blocked), "999999", "1 OR 1=1", "", "-1"):
            assert "no longer valid" in load_check(svc, value, REQUESTER)
        svc.clock.now += timedelta(hours=2)  # type: ignore[attr-defined]
        assert "no longer valid" in load_check(svc, str(fresh), REQUESTER)


def test_an_address_moved_to_another_cloud_user_is_refused_at_approval(world) -> None:
    svc, ad, cloud = world
    request = requested(svc)
    jane = next(u for u in cloud.users if u.user_principal_name == "jane@contoso.com")
    impostor = replace(jane, id="00000000-0000-4000-8000-00000000bad0")
    cloud.users = [impostor if u.id == jane.id else u for u in cloud.users]
    cloud.mailboxes[impostor.id] = True
    result = approve_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.RECHECK_BLOCKED
    assert "cloud user holding the address" in result.message
    assert ad_user(ad, "jane.doe").mail is None
    assert svc.store.get_request(request.id).state is RequestState.FAILED


def test_an_ad_object_recreated_under_the_same_dn_is_refused_at_approval(world) -> None:
    svc, ad, _ = world
    request = requested(svc)
    ad.users = [
        replace(u, object_guid=bytes(16)) if u.sam_account_name == "jane.doe" else u
        for u in ad.users
    ]
    result = approve_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.RECHECK_BLOCKED
    assert "anchor" in result.message
    assert ad_user(ad, "jane.doe").mail is None


def test_a_second_request_for_an_open_address_creates_nothing_and_names_the_first(world) -> None:
    svc, _, _ = world
    first = requested(svc)
    again = request_match(svc, address="jane@contoso.com", onprem_id=None, requester_id="U0OTHER")
    assert again.outcome is Outcome.ALREADY_OPEN
    assert first.id in again.message
    assert [r.id for r in svc.store.list_requests()] == [first.id]


class Board:
    """Approvers' channel stand-in: keeps what was posted."""

    def __init__(self) -> None:
        self.posted: list[str] = []

    def post(self, request):
        self.posted.append(request.id)
        return "C0APPROVALS", f"1.{len(self.posted)}"

    def show(self, request) -> None:
        pass


def test_a_replayed_submission_of_one_check_creates_and_posts_one_request(world) -> None:
    svc, _, _ = world
    svc.board = board = Board()
    _, check_id = check_for(svc, "jane@contoso.com", None, REQUESTER)
    outcomes = [
        submit_request(
            svc,
            check_id=str(check_id),
            requester_id=REQUESTER,
            requester_name="hal",
            reason=None,
        ).outcome
        for _ in range(2)
    ]
    assert outcomes == [Outcome.REQUESTED, Outcome.ALREADY_OPEN]
    assert len(svc.store.list_requests()) == 1
    assert board.posted == [svc.store.list_requests()[0].id]


def test_a_decided_request_does_not_block_a_new_one(world) -> None:
    svc, _, _ = world
    first = requested(svc)
    reject_request(svc, first.id, APPROVER, Team(), "not yet")
    assert requested(svc).id != first.id


def test_a_requester_who_is_also_an_approver_cannot_revert_alone_and_it_is_audited(
    world,
) -> None:
    svc, ad, _ = world
    request = approved(svc, "paul.primary@contoso.com")
    both = replace(svc, approvers=(APPROVER, REQUESTER))
    result = revert_request(both, request.id, REQUESTER, Team())
    assert result.outcome is Outcome.REFUSED_SELF
    assert ad_user(ad, "paul.primary").mail == "paul.primary@contoso.com"
    [refusal] = [e for e in svc.store.list_audit(request_id=request.id) if "refused" in e.event]
    assert (refusal.event, refusal.actor) == ("revert_refused", REQUESTER)


def test_a_non_approvers_revert_is_refused_and_audited(world) -> None:
    svc, _, _ = world
    request = approved(svc, "paul.primary@contoso.com")
    assert revert_request(svc, request.id, "U0RANDOM", Team()).outcome is (
        Outcome.REFUSED_NOT_APPROVER
    )
    events = [e.event for e in svc.store.list_audit(request_id=request.id)]
    assert events[-1] == "revert_refused"


def test_a_revert_once_entra_has_bound_the_user_is_refused_and_settles_it_as_matched(
    world,
) -> None:
    svc, ad, cloud = world
    request = approved(svc, "paul.primary@contoso.com")
    paul = next(u for u in cloud.users if u.id == request.cloud_user_id)
    cloud.update_user(
        replace(paul, on_premises_sync_enabled=True, on_premises_immutable_id=request.anchor)
    )
    result = revert_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.STALE and "already bound" in result.message
    assert ad_user(ad, "paul.primary").mail == "paul.primary@contoso.com"  # not restored
    assert svc.store.get_request(request.id).state is RequestState.MATCHED
    events = [e.event for e in svc.store.list_audit(request_id=request.id)]
    assert events[-2:] == ["revert_refused", "sync_matched"]


def failing_after_write(ad: DemoActiveDirectory) -> None:
    """The modify reaches AD, then the connection drops before the answer."""
    real_apply = ad.apply

    def apply(plan):
        real_apply(plan)
        raise DirectoryUnavailable("Active Directory", "dc1:636", "connection reset")

    ad.apply = apply  # type: ignore[method-assign]


def test_a_write_that_reached_ad_before_the_fault_is_recorded_as_applied(world) -> None:
    svc, ad, _ = world
    request = requested(svc, "paul.primary@contoso.com")
    failing_after_write(ad)
    result = approve_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.APPLIED
    stored = svc.store.get_request(request.id)
    assert stored.state is RequestState.APPLIED
    assert stored.applied == stored.plan  # the old values are kept for a revert
    applied = [e for e in svc.store.list_audit(request_id=request.id) if e.event == "applied"]
    assert "connection reset" in str(applied[0].details["note"])


def test_a_write_fault_before_ad_changed_releases_the_request(world) -> None:
    svc, ad, _ = world
    request = requested(svc)

    def refuse(plan):
        raise DirectoryUnavailable("Active Directory", "dc1:636", "connection reset")

    ad.apply = refuse  # type: ignore[method-assign]
    result = approve_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.OUTAGE
    assert svc.store.get_request(request.id).state is RequestState.PENDING
    assert ad_user(ad, "jane.doe").mail is None


def test_a_claim_stuck_in_approving_is_settled_by_the_sweep_from_what_ad_holds(world) -> None:
    svc, ad, _ = world
    written = requested(svc, "paul.primary@contoso.com")
    untouched = requested(svc, "jane@contoso.com")
    for request in (written, untouched):  # a crash right after the claim
        svc.store.transition(request.id, [RequestState.PENDING], RequestState.APPROVING)
    ad.apply(written.plan)  # ... and for one of them, after the write
    assert recover_stuck_approvals(svc) == []  # too recent: maybe still in progress
    svc.clock.now += timedelta(minutes=11)  # type: ignore[attr-defined]
    outcomes = {r.request.id: r.outcome for r in recover_stuck_approvals(svc)}
    assert outcomes == {written.id: Outcome.APPLIED, untouched.id: Outcome.OUTAGE}
    assert svc.store.get_request(written.id).state is RequestState.APPLIED
    assert svc.store.get_request(untouched.id).state is RequestState.PENDING
