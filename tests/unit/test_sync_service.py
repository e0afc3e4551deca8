"""The sync watcher with the demo directories as a stateful fake and a real SQLite store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.directories.demo import build_demo_directories
from bot.errors import DirectoryUnavailable
from bot.rules.requests import RequestState
from bot.rules.sync import SyncJudgement
from bot.services.check import Directories
from bot.services.requests import RequestServices, approve_request, request_match, revert_request
from bot.services.sync import SyncServices, poll_due_watches, start_watch
from bot.store.repository import MatchRequest, Store
from bot.sync_triggers import SyncSubject


class Notes:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.notes: list[str] = []
        self.finished: list[tuple[str, SyncJudgement]] = []

    def sync_started(self, request: MatchRequest, note: str) -> None:
        self.started.append(request.id)
        self.notes.append(note)

    def sync_finished(self, request: MatchRequest, judgement: SyncJudgement) -> None:
        self.finished.append((request.id, judgement))


class Team:
    def group_members(self, group_id: str) -> set[str]:
        return set()


class Clock:
    now = datetime(2026, 11, 26, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(tmp_path):
    ad, cloud, policy = build_demo_directories()
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    clock = Clock()
    dirs = Directories(ad, cloud, policy)
    notes = Notes()
    sync = SyncServices(
        dirs=dirs,
        store=store,
        notifier=notes,
        poll_seconds=10,
        timeout=timedelta(minutes=30),
        clock=clock,
        owner="replica-a",
    )
    svc = RequestServices(
        dirs=dirs,
        store=store,
        approvers=("U0APPROVER",),
        clock=clock,
        applied_listeners=(lambda r: start_watch(sync, r),),
    )
    yield svc, sync, cloud, notes, clock
    store.close()


def applied(svc: RequestServices, address: str = "jane@contoso.com") -> MatchRequest:
    request = request_match(svc, address=address, onprem_id=None, requester_id="U0HELP").request
    result = approve_request(svc, request.id, "U0APPROVER", Team())
    assert result.request.state is RequestState.APPLIED
    return result.request


def test_applying_starts_a_watch_and_tells_the_team(world) -> None:
    svc, sync, _, notes, _ = world
    request = applied(svc)
    assert sync.store.get_watch(request.id) is not None
    assert notes.started == [request.id]


def test_a_failed_trigger_tells_the_team_without_naming_the_webhook_host(world) -> None:
    svc, sync, _, notes, _ = world

    class DownWebhook:
        name = "webhook"

        def trigger(self, subject: SyncSubject) -> str:
            raise DirectoryUnavailable(
                "Sync webhook", "sync-hook.corp.internal:8443", "ConnectError token=abc"
            )

    sync.trigger = DownWebhook()
    request = applied(svc)
    assert sync.store.get_watch(request.id) is not None  # the write stands; the watch runs
    [note] = notes.notes
    assert "Sync webhook could not be reached" in note
    assert "corp.internal" not in note and "token" not in note
    [audit] = [e for e in svc.store.list_audit() if e.event == "sync_triggered"]
    assert "corp.internal" not in str(audit.details)


def test_a_bound_cloud_user_settles_the_request_as_matched(world) -> None:
    svc, sync, cloud, notes, clock = world
    request = applied(svc)
    jane = cloud.get_user(request.cloud_user_id)
    cloud.update_user(
        replace(jane, on_premises_immutable_id=request.anchor, on_premises_sync_enabled=True)
    )
    clock.now += timedelta(seconds=10)
    assert poll_due_watches(sync) == 1
    assert svc.store.get_request(request.id).state is RequestState.MATCHED
    assert [n[0] for n in notes.finished] == [request.id]
    assert poll_due_watches(sync) == 0  # finished watches are not polled again


def test_no_change_keeps_waiting_with_backoff_then_times_out(world) -> None:
    svc, sync, _, notes, clock = world
    request = applied(svc)
    clock.now += timedelta(seconds=10)
    assert poll_due_watches(sync) == 1
    assert poll_due_watches(sync) == 0  # rescheduled, not due yet
    assert sync.store.get_watch(request.id).next_poll_at > clock.now
    clock.now += timedelta(minutes=31)
    assert poll_due_watches(sync) == 1
    assert svc.store.get_request(request.id).state is RequestState.SYNC_TIMEOUT
    assert "Start-ADSyncSyncCycle" in notes.finished[0][1].remedy


def test_a_reverted_request_stops_being_watched(world) -> None:
    svc, sync, _, notes, clock = world
    request = applied(svc)
    assert revert_request(svc, request.id, "U0APPROVER", Team()).request.state is (
        RequestState.REVERTED
    )
    clock.now += timedelta(seconds=10)
    poll_due_watches(sync)
    assert sync.store.get_watch(request.id).outcome == "cancelled"
    assert notes.finished == []


def test_the_demo_bot_sees_its_match_through_to_matched(world) -> None:
    from bot.bootstrap import build_sync_trigger
    from bot.settings import Settings

    svc, sync, _, notes, clock = world
    sync.trigger = build_sync_trigger(Settings(_env_file=None), svc.dirs, demo=True)
    request = applied(svc, "paul.primary@contoso.com")
    clock.now += timedelta(seconds=10)
    poll_due_watches(sync)
    assert svc.store.get_request(request.id).state is RequestState.MATCHED
    assert "bound to the AD user" in notes.finished[0][1].detail
