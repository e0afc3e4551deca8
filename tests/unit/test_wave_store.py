"""The wave store and the wave's decisions: per-item compare-and-set states with their audit
event in the same transaction, the state machines, the pick of a scan's items, approval once
and never by the requester."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from bot.rules.checks import Verdict
from bot.rules.waves import InvalidWaveTransition, ItemState, Wave, WaveEvent, WaveState
from bot.scan.model import ScanItem, ScanResult
from bot.services.check import Directories
from bot.services.requests import RequestServices
from bot.services.waves import (
    STOPPED_REASON,
    NoWaveBoard,
    WaveOutcome,
    WaveServices,
    approve_wave,
    create_wave,
    expire_waves,
    reject_wave,
    select_items,
    stop_wave,
    wave_csv,
)
from bot.store.repository import Store
from bot.store.waves import WaveStore

OU = "OU=Staff,DC=corp,DC=example"


class Team:
    def group_members(self, group_id: str) -> frozenset[str]:
        return frozenset({"UGROUPIE"}) if group_id == "SAPPROVERS" else frozenset()


def item(
    n: int, verdict: Verdict = Verdict.ELIGIBLE, domain: str = "contoso.com", ou: str = OU
) -> ScanItem:
    dn = f"CN=u{n},{ou}"
    return ScanItem(
        address=f"u{n}@{domain}",
        cloud_id=f"id-{n}",
        cloud_upn=f"u{n}@{domain}",
        onprem_dn=None if verdict is Verdict.NEEDS_ACCOUNT else dn,
        verdict=verdict,
        plan={
            "action": "create" if verdict is Verdict.NEEDS_ACCOUNT else "modify",
            "dn": dn,
            "changes": [],
        },
    )


ITEMS = (
    item(0),
    item(1, domain="fabrikam.com"),
    item(2, ou="OU=Sales,DC=corp,DC=example"),
    item(3, Verdict.NEEDS_ACCOUNT),
    item(4, Verdict.BLOCKED),
    item(5),
)


@pytest.fixture
def svc(tmp_path: Path) -> WaveServices:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    scan, _ = store.start_scan("UAPPROVER")
    store.finish_scan(scan.id, ScanResult(datetime.now(UTC), len(ITEMS), ITEMS))
    requests = RequestServices(
        dirs=cast(Directories, None), store=store, approvers=("UAPPROVER", "SAPPROVERS")
    )
    services = WaveServices(requests=requests, waves=WaveStore(store))
    services.scan_id = scan.id  # type: ignore[attr-defined]
    return services


def scan_id(svc: WaveServices) -> str:
    return cast(str, svc.scan_id)  # type: ignore[attr-defined]


def test_a_wave_takes_eligible_items_and_creations_only_when_ticked() -> None:
    assert [i.address for i in select_items(ITEMS)] == [
        "u0@contoso.com",
        "u1@fabrikam.com",
        "u2@contoso.com",
        "u5@contoso.com",
    ]
    with_creations = select_items(ITEMS, include_creations=True)
    assert "u3@contoso.com" in [i.address for i in with_creations]
    assert [i.address for i in select_items(ITEMS, domain="fabrikam.com")] == ["u1@fabrikam.com"]
    assert [i.address for i in select_items(ITEMS, ou="OU=Sales,DC=corp,DC=example")] == [
        "u2@contoso.com"
    ]
    assert [i.address for i in select_items(ITEMS, limit=2)] == [
        "u0@contoso.com",
        "u1@fabrikam.com",
    ]


def test_creating_a_wave_stores_pending_items_and_audits_the_request(svc: WaveServices) -> None:
    result = create_wave(svc, scan_id=scan_id(svc), requester_id="UREQ", reason="cut-over")
    assert result.outcome is WaveOutcome.CREATED and result.wave is not None
    wave = result.wave
    assert wave.count == 4 and wave.state is WaveState.PENDING
    items = svc.waves.items(wave.id)
    assert [i.state for i in items] == [ItemState.PENDING] * 4
    assert not any(i.creates for i in items)
    [event] = [e for e in svc.requests.store.list_audit() if e.event == WaveEvent.REQUESTED]
    assert event.actor == "UREQ" and event.details["wave"] == wave.id
    assert event.details["count"] == 4
    assert wave_csv(items).splitlines()[0].startswith("address,cloud_upn,onprem_dn")
    empty = create_wave(
        svc, scan_id=scan_id(svc), requester_id="UREQ", reason="x", domain="nowhere.com"
    )
    assert empty.outcome is WaveOutcome.EMPTY


def test_item_states_are_compare_and_set_with_their_audit_event(svc: WaveServices) -> None:
    wave = create_wave(svc, scan_id=scan_id(svc), requester_id="UREQ", reason="r").wave
    assert wave is not None
    waves = svc.waves
    claimed = waves.transition_item(
        wave.id, 0, [ItemState.PENDING], ItemState.APPLYING, WaveEvent.ITEM_APPLYING
    )
    assert claimed is not None and claimed.state is ItemState.APPLYING
    # A second claim of the same item loses: nothing changes, nothing is audited.
    again = waves.transition_item(
        wave.id, 0, [ItemState.PENDING], ItemState.APPLYING, WaveEvent.ITEM_APPLYING
    )
    assert again is None
    skipped = waves.transition_item(
        wave.id,
        0,
        [ItemState.APPLYING],
        ItemState.SKIPPED,
        WaveEvent.ITEM_SKIPPED,
        "UA",
        reason="changed",
    )
    assert skipped is not None and skipped.reason == "changed"
    events = [e for e in svc.requests.store.list_audit() if e.event.startswith("wave_item")]
    assert [(e.event, e.details["state"]) for e in events] == [
        ("wave_item_applying", "applying"),
        ("wave_item_skipped", "skipped"),
    ]
    assert events[1].details["reason"] == "changed" and events[1].details["position"] == 0
    with pytest.raises(InvalidWaveTransition):
        waves.transition_item(
            wave.id, 0, [ItemState.SKIPPED], ItemState.APPLIED, WaveEvent.ITEM_APPLIED
        )
    counts = waves.counts(wave.id)
    assert counts[ItemState.SKIPPED] == 1 and counts[ItemState.PENDING] == 3


def test_the_requester_cannot_approve_and_two_approvers_approve_once(svc: WaveServices) -> None:
    wave = create_wave(svc, scan_id=scan_id(svc), requester_id="UREQ", reason="r").wave
    assert wave is not None
    refused = approve_wave(svc, wave.id, "UREQ", Team())
    assert refused.outcome is WaveOutcome.REFUSED_SELF
    outsider = approve_wave(svc, wave.id, "UOUTSIDER", Team())
    assert outsider.outcome is WaveOutcome.REFUSED_NOT_APPROVER
    outcomes: list[Any] = []
    barrier = threading.Barrier(2)

    def click(user: str) -> None:
        barrier.wait()
        outcomes.append(approve_wave(svc, wave.id, user, Team()).outcome)

    threads = [threading.Thread(target=click, args=(u,)) for u in ("UAPPROVER", "UGROUPIE")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted([WaveOutcome.APPROVED, WaveOutcome.STALE])
    approvals = [e for e in svc.requests.store.list_audit() if e.event == WaveEvent.APPROVED]
    assert len(approvals) == 1
    refusals = [e for e in svc.requests.store.list_audit() if e.event == WaveEvent.APPROVE_REFUSED]
    assert [e.actor for e in refusals] == ["UREQ", "UOUTSIDER"]
    assert reject_wave(svc, wave.id, "UAPPROVER", Team(), "no").outcome is WaveOutcome.STALE


def test_stop_skips_only_unclaimed_items_once_and_only_for_the_requester_or_approvers(
    svc: WaveServices,
) -> None:
    wave = create_wave(svc, scan_id=scan_id(svc), requester_id="UREQ", reason="r").wave
    assert wave is not None
    # A pending wave is not stopped (it is rejected); nothing changes.
    assert stop_wave(svc, wave.id, "UREQ", Team()).outcome is WaveOutcome.STALE
    assert approve_wave(svc, wave.id, "UAPPROVER", Team()).outcome is WaveOutcome.APPROVED
    waves = svc.waves
    mid_write = waves.transition_item(
        wave.id, 0, [ItemState.PENDING], ItemState.APPLYING, WaveEvent.ITEM_APPLYING
    )
    assert mid_write is not None

    refused = stop_wave(svc, wave.id, "UOUTSIDER", Team())
    assert refused.outcome is WaveOutcome.REFUSED_NOT_APPROVER
    assert waves.counts(wave.id)[ItemState.PENDING] == 3

    stopped = stop_wave(svc, wave.id, "UGROUPIE", Team())  # an approver through the group
    assert stopped.outcome is WaveOutcome.STOPPED and "3 users" in stopped.message
    counts = waves.counts(wave.id)
    assert counts[ItemState.SKIPPED] == 3 and counts[ItemState.APPLYING] == 1  # its write goes on
    assert {i.reason for i in waves.items(wave.id, [ItemState.SKIPPED])} == {STOPPED_REASON}
    # The runner's claim of a stopped item loses.
    assert (
        waves.transition_item(
            wave.id, 1, [ItemState.PENDING], ItemState.APPLYING, WaveEvent.ITEM_APPLYING
        )
        is None
    )
    audit = svc.requests.store.list_audit()
    skipped = [e for e in audit if e.event == "wave_item_skipped"]
    assert sorted(e.details["position"] for e in skipped) == [1, 2, 3]
    assert {e.actor for e in skipped} == {"UGROUPIE"}
    assert [e.actor for e in audit if e.event == "wave_stopped"] == ["UGROUPIE"]
    assert [e.actor for e in audit if e.event == "wave_stop_refused"] == ["UOUTSIDER"]
    # A second stop skips nothing more.
    again = stop_wave(svc, wave.id, "UREQ", Team())
    assert again.outcome is WaveOutcome.STOPPED and "0 users" in again.message
    assert len([e for e in svc.requests.store.list_audit() if e.event == "wave_item_skipped"]) == 3


def test_an_undecided_wave_expires_after_the_requests_time_to_live_once(
    svc: WaveServices,
) -> None:
    wave = create_wave(svc, scan_id=scan_id(svc), requester_id="UREQ", reason="r").wave
    assert wave is not None
    closed: list[Wave] = []

    class Board(NoWaveBoard):
        def closed(self, wave: Wave) -> None:
            closed.append(wave)

    svc.board = Board()
    created = wave.created_at
    svc.clock = lambda: created + timedelta(hours=23)
    assert expire_waves(svc) == []
    svc.clock = lambda: created + timedelta(hours=25)
    [expired] = expire_waves(svc)
    assert expired.state is WaveState.EXPIRED and "24 hours" in (expired.note or "")
    assert [w.id for w in closed] == [wave.id]  # shown, and the requester told
    assert expire_waves(svc) == []  # once
    late = approve_wave(svc, wave.id, "UAPPROVER", Team())
    assert late.outcome is WaveOutcome.STALE and "expired" in late.message
    assert svc.waves.counts(wave.id)[ItemState.PENDING] == 4  # nothing was claimed
    events = [e.event for e in svc.requests.store.list_audit() if e.event.startswith("wave_")]
    assert events.count("wave_expired") == 1 and "wave_approved" not in events
