"""KB step 2 through the request services, with the demo directories as stateful fakes, their
simulated sync (what `serve --demo` runs) and a real SQLite store: request, approve, create,
sync to "matched"; a fault mid-way; a revert by GUID; the views' wording."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from bot.directories.demo import (
    DemoActiveDirectory,
    DemoEntraDirectory,
    DemoSyncTrigger,
    build_demo_directories,
)
from bot.errors import DirectoryUnavailable
from bot.ports import ChangePlan
from bot.rules.requests import RequestState
from bot.rules.sync import SyncJudgement
from bot.services.check import Directories
from bot.services.requests import (
    Outcome,
    RequestServices,
    approve_request,
    check_for,
    recover_stuck_approvals,
    request_match,
    revert_request,
    submit_request,
)
from bot.services.sync import SyncServices, poll_due_watches, start_watch
from bot.slack_views.blocks import (
    applied_announcement,
    approval_blocks,
    home_view,
    report_blocks,
    request_posted_announcement,
)
from bot.slack_views.ids import ActionId
from bot.store.repository import MatchRequest, Store

NORA = "nora.new@contoso.com"
REQUESTER = "U0HELPDESK"
APPROVER = "U0APPROVER"
PASSWORD = "Demo-Secret-9!x"


class Team:
    def group_members(self, group_id: str) -> set[str]:
        return set()


class Notes:
    def __init__(self) -> None:
        self.finished: list[SyncJudgement] = []

    def sync_started(self, request: MatchRequest, note: str) -> None:
        return None

    def sync_finished(self, request: MatchRequest, judgement: SyncJudgement) -> None:
        self.finished.append(judgement)


class Clock:
    now = datetime(2026, 11, 29, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    svc: RequestServices
    sync: SyncServices
    ad: DemoActiveDirectory
    cloud: DemoEntraDirectory
    clock: Clock
    notes: Notes


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    ad, cloud, policy = build_demo_directories()
    clock, notes = Clock(), Notes()
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", clock=clock)
    store.migrate()
    dirs = Directories(ad, cloud, policy)
    sync = SyncServices(
        dirs=dirs,
        store=store,
        notifier=notes,
        trigger=DemoSyncTrigger(cloud),
        poll_seconds=1,
        timeout=timedelta(minutes=30),
        clock=clock,
        owner="demo",
    )
    svc = RequestServices(
        dirs=dirs,
        store=store,
        approvers=(APPROVER,),
        clock=clock,
        applied_listeners=(lambda r: start_watch(sync, r),),
        new_password=lambda: PASSWORD,
    )
    yield World(svc, sync, ad, cloud, clock, notes)
    store.close()


def requested(w: World) -> MatchRequest:
    result = request_match(w.svc, address=NORA, onprem_id=None, requester_id=REQUESTER, create=True)
    assert result.outcome is Outcome.REQUESTED and result.request is not None
    return result.request


def created(w: World) -> list[str]:
    return [u.dn for u in w.ad.users if u.mail == NORA]


def test_the_demo_carries_a_creation_through_to_matched(world: World) -> None:
    request = requested(world)
    assert request.plan.creates and request.anchor == "" and created(world) == []

    result = approve_request(world.svc, request.id, APPROVER, Team())

    assert result.outcome is Outcome.APPLIED
    [dn] = created(world)
    assert dn == request.onprem_dn
    user = next(u for u in world.ad.users if u.dn == dn)
    assert user.enabled and user.sam_account_name == "nora.new"
    assert result.request is not None and result.request.anchor == user.anchor
    world.clock.now += timedelta(seconds=10)
    while poll_due_watches(world.sync):
        pass
    assert world.svc.store.get_request(request.id).state is RequestState.MATCHED
    cloud = next(u for u in world.cloud.users if u.mail == NORA)
    assert cloud.on_premises_immutable_id == user.anchor and cloud.on_premises_sync_enabled
    audit = json.dumps([e.details for e in world.svc.store.list_audit()])
    assert PASSWORD not in audit and '"action": "create"' in audit


def test_the_report_button_and_the_recorded_check_lead_to_a_creation_request(
    world: World,
) -> None:
    report, check_id = check_for(world.svc, NORA, None, REQUESTER)
    blocks = json.dumps(report_blocks(report, request_check=check_id))
    assert "Request account creation" in blocks and ActionId.REQUEST_APPROVAL in blocks

    result = submit_request(
        world.svc, check_id=str(check_id), requester_id=REQUESTER, requester_name=None, reason="x"
    )

    assert result.outcome is Outcome.REQUESTED and result.request is not None
    assert result.request.plan.creates


def test_a_creation_is_not_requested_once_someone_made_the_account(world: World) -> None:
    _, check_id = check_for(world.svc, NORA, None, REQUESTER)
    plan = requested(world).plan  # one request is open; make the account by hand meanwhile
    world.ad.create(plan, PASSWORD)

    result = submit_request(
        world.svc, check_id=str(check_id), requester_id=REQUESTER, requester_name=None, reason="x"
    )

    assert result.outcome is Outcome.NOT_ELIGIBLE


def test_the_approval_and_the_messages_say_an_account_is_created_and_what_happens_to_the_password(
    world: World,
) -> None:
    request = requested(world)
    approval = json.dumps(approval_blocks(request))
    assert "create a new AD account" in approval and "stops working" in approval
    assert "stops working" in request_posted_announcement(request, "C0APPROVALS")[0]
    done = approve_request(world.svc, request.id, APPROVER, Team()).request
    assert done is not None
    text, _ = applied_announcement(done)
    assert "was created" in text and "password" in text
    home = json.dumps(home_view([done], [], [done], is_approver=False))
    assert "new AD account" in home
    for shown in (approval, text, home):
        assert PASSWORD not in shown


class _Flaky:
    """The demo AD whose create fails after (or before) the add, as a dropped connection."""

    def __init__(self, inner: DemoActiveDirectory, *, lands: bool) -> None:
        self.inner = inner
        self.lands = lands

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def create(self, plan: ChangePlan, password: str) -> uuid.UUID:
        if self.lands:
            self.inner.create(plan, password)
        raise DirectoryUnavailable("Active Directory", "demo", "the connection dropped")


@pytest.mark.parametrize("lands", [True, False])
def test_a_fault_mid_creation_records_what_really_happened_and_leaves_no_half_account(
    world: World, lands: bool
) -> None:
    request = requested(world)
    world.svc.dirs.onprem = _Flaky(world.ad, lands=lands)  # type: ignore[assignment]

    result = approve_request(world.svc, request.id, APPROVER, Team())

    current = world.svc.store.get_request(request.id)
    if lands:
        assert result.outcome is Outcome.APPLIED and current.state is RequestState.APPLIED
        [dn] = created(world)
        assert current.anchor == next(u.anchor for u in world.ad.users if u.dn == dn)
    else:
        assert result.outcome is Outcome.OUTAGE and current.state is RequestState.PENDING
        assert created(world) == []


def test_a_claim_stuck_mid_creation_is_settled_by_the_sweep(world: World) -> None:
    request = requested(world)
    world.svc.store.transition(request.id, [RequestState.PENDING], RequestState.APPROVING)
    world.ad.create(request.plan, PASSWORD)  # the add landed, then the process died
    world.clock.now += timedelta(hours=1)

    [result] = recover_stuck_approvals(world.svc)

    assert result.outcome is Outcome.APPLIED
    settled = world.svc.store.get_request(request.id)
    assert settled.state is RequestState.APPLIED and settled.anchor


def test_revert_before_the_match_deletes_exactly_the_created_account(world: World) -> None:
    request = requested(world)
    world.sync.trigger = _NoSync()
    done = approve_request(world.svc, request.id, APPROVER, Team()).request
    assert done is not None and len(created(world)) == 1
    before = len(world.ad.users)

    result = revert_request(world.svc, request.id, APPROVER, Team())

    assert result.outcome is Outcome.REVERTED
    assert created(world) == [] and len(world.ad.users) == before - 1
    [event] = [
        e for e in world.svc.store.list_audit(request_id=request.id) if e.event == "reverted"
    ]
    assert event.details["action"] == "delete" and event.details["guid"]


def test_the_requester_cannot_revert_nor_approve_their_own_creation(world: World) -> None:
    request = requested(world)
    result = approve_request(world.svc, request.id, REQUESTER, Team())
    assert result.outcome is Outcome.REFUSED_SELF and created(world) == []


class _NoSync:
    name = "none"

    def trigger(self, subject: object) -> str:
        return "no trigger"

    def close(self) -> None:
        return None
