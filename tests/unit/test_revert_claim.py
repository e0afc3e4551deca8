"""A revert claims the request first (``reverting``, compare-and-set), then asks Entra ID,
then writes (issue 15 M2): two reverts, or a revert and the sync watcher, act once, and the
AD write and its audit event always agree."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from bot.domain import AuditNote
from bot.errors import DirectoryUnavailable
from bot.rules.requests import RequestState
from bot.rules.waves import ItemState, NewWaveItem, WaveEvent
from bot.services.requests import (
    Outcome,
    recover_stuck_reverts,
    revert_request,
)
from bot.services.waves import NoWaveBoard, WaveServices, follow_requests
from bot.store.waves import WaveStore
from tests.unit import test_request_services as request_tests
from tests.unit.test_request_services import (
    APPROVER,
    GROUP_MEMBER,
    Team,
    ad_user,
    approved,
)

#: The request tests' world (request services on the demo directories), under this file's name.
services = request_tests.world


ADDRESS = "paul.primary@contoso.com"


def _events(svc, request_id: str) -> list[str]:
    return [e.event for e in svc.store.list_audit(request_id=request_id)]


def test_two_reverts_at_once_write_once_and_one_is_told_it_is_taken(services) -> None:
    svc, ad, _ = services
    original = ad_user(ad, "paul.primary")
    request = approved(svc, ADDRESS)
    real_apply, writes, inside, go_on = ad.apply, [], threading.Event(), threading.Event()

    def slow_apply(plan):
        writes.append(plan)
        inside.set()
        go_on.wait(5)
        return real_apply(plan)

    ad.apply = slow_apply  # type: ignore[method-assign]
    results = {}
    first = threading.Thread(
        target=lambda: results.update(a=revert_request(svc, request.id, APPROVER, Team()))
    )
    first.start()
    assert inside.wait(5)  # the first revert holds the claim and is writing
    results["b"] = revert_request(svc, request.id, GROUP_MEMBER, Team())
    go_on.set()
    first.join(5)

    assert results["a"].outcome is Outcome.REVERTED
    assert results["b"].outcome is Outcome.STALE and "reverting" in results["b"].message
    assert len(writes) == 1
    restored = ad_user(ad, "paul.primary")
    assert (restored.mail, set(restored.proxy_addresses)) == (
        original.mail,
        set(original.proxy_addresses),
    )
    assert svc.store.get_request(request.id).state is RequestState.REVERTED
    assert _events(svc, request.id).count("reverted") == 1
    assert _events(svc, request.id)[-2:] == ["revert_started", "reverted"]


def test_the_watcher_cannot_settle_a_request_a_revert_holds(services) -> None:
    svc, ad, _ = services
    original = ad_user(ad, "paul.primary")
    request = approved(svc, ADDRESS)
    real_apply, watcher = ad.apply, []

    def apply_while_the_watcher_looks(plan):
        # The sync watcher's compare-and-set (applied -> matched) loses to the claim.
        watcher.append(
            svc.store.transition(request.id, [RequestState.APPLIED], RequestState.MATCHED)
        )
        return real_apply(plan)

    ad.apply = apply_while_the_watcher_looks  # type: ignore[method-assign]
    result = revert_request(svc, request.id, APPROVER, Team())
    assert watcher == [None]
    assert result.outcome is Outcome.REVERTED
    assert result.request.state is RequestState.REVERTED
    restored = ad_user(ad, "paul.primary")
    assert (restored.mail, set(restored.proxy_addresses)) == (
        original.mail,
        set(original.proxy_addresses),
    )
    assert _events(svc, request.id)[-2:] == ["revert_started", "reverted"]


def test_entra_unreachable_releases_the_claim_and_writes_nothing(services) -> None:
    svc, ad, cloud = services
    request = approved(svc, ADDRESS)
    written = ad_user(ad, "paul.primary")

    def unreachable(user_id):
        raise DirectoryUnavailable("Entra ID", "graph.example:443", "timed out")

    cloud.get_user = unreachable  # type: ignore[method-assign]
    result = revert_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.OUTAGE
    assert "Entra ID could not be reached" in result.message
    assert "graph.example" not in result.message
    assert svc.store.get_request(request.id).state is RequestState.APPLIED
    assert ad_user(ad, "paul.primary") == written
    assert _events(svc, request.id)[-2:] == ["revert_started", "revert_refused"]


def test_a_restoring_write_that_reached_ad_before_the_fault_is_recorded_as_reverted(
    services,
) -> None:
    svc, ad, _ = services
    original = ad_user(ad, "paul.primary")
    request = approved(svc, ADDRESS)
    real_apply = ad.apply

    def apply_then_drop(plan):
        real_apply(plan)
        raise DirectoryUnavailable("Active Directory", "dc1:636", "connection reset")

    ad.apply = apply_then_drop  # type: ignore[method-assign]
    result = revert_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.REVERTED
    assert ad_user(ad, "paul.primary").mail == original.mail
    assert svc.store.get_request(request.id).state is RequestState.REVERTED
    assert _events(svc, request.id)[-2:] == ["revert_started", "reverted"]


def _drop_ad(ad: Any, *, write_lands: bool) -> dict[str, bool]:
    """AD that stops answering during the restoring write (after making it, or not) and
    cannot be read until ``down["down"]`` is set False."""
    real_apply, real_find = ad.apply, ad.find_users
    down = {"down": True}

    def apply_then_drop(plan):
        if write_lands:
            real_apply(plan)
        raise DirectoryUnavailable("Active Directory", "dc1:636", "connection reset")

    def find(*args, **kwargs):
        if down["down"]:
            raise DirectoryUnavailable("Active Directory", "dc1:636", "connection refused")
        return real_find(*args, **kwargs)

    ad.apply, ad.find_users = apply_then_drop, find
    return down


def test_an_unsettled_revert_whose_write_landed_is_recorded_reverted_once_ad_answers(
    services,
) -> None:
    svc, ad, _ = services
    original = ad_user(ad, "paul.primary")
    request = approved(svc, ADDRESS)
    down = _drop_ad(ad, write_lands=True)

    result = revert_request(svc, request.id, APPROVER, Team())
    assert result.outcome is Outcome.OUTAGE and "automatically" in result.message
    assert svc.store.get_request(request.id).state is RequestState.REVERTING

    svc.clock.now += timedelta(minutes=11)
    assert recover_stuck_reverts(svc) == []  # AD still silent: the claim stays
    assert svc.store.get_request(request.id).state is RequestState.REVERTING

    down["down"] = False
    [settled] = recover_stuck_reverts(svc)
    assert settled.outcome is Outcome.REVERTED
    stored = svc.store.get_request(request.id)
    assert stored.state is RequestState.REVERTED and stored.decided_by == APPROVER
    assert ad_user(ad, "paul.primary").mail == original.mail
    last = svc.store.list_audit(request_id=request.id)[-1]
    assert last.event == "reverted" and last.actor == APPROVER
    assert "re-read" in str(last.details["note"])
    assert recover_stuck_reverts(svc) == []  # settled once


def test_an_unsettled_revert_that_never_reached_ad_is_handed_back_and_can_be_retried(
    services,
) -> None:
    svc, ad, _ = services
    original = ad_user(ad, "paul.primary")
    request = approved(svc, ADDRESS)
    written = ad_user(ad, "paul.primary")
    real_apply, real_find = ad.apply, ad.find_users
    down = _drop_ad(ad, write_lands=False)

    revert_request(svc, request.id, APPROVER, Team())
    assert svc.store.get_request(request.id).state is RequestState.REVERTING
    down["down"] = False
    svc.clock.now += timedelta(minutes=11)
    [settled] = recover_stuck_reverts(svc)
    assert settled.outcome is Outcome.OUTAGE and "reverted again" in settled.message
    assert svc.store.get_request(request.id).state is RequestState.APPLIED
    assert ad_user(ad, "paul.primary") == written  # nothing was written by the sweep
    assert _events(svc, request.id)[-1] == "revert_refused"

    ad.apply, ad.find_users = real_apply, real_find
    again = revert_request(svc, request.id, APPROVER, Team())
    assert again.outcome is Outcome.REVERTED, again.message
    assert ad_user(ad, "paul.primary").mail == original.mail


def test_a_wave_item_follows_its_revert_settled_by_the_sweep(services) -> None:
    svc, ad, _ = services
    request = approved(svc, ADDRESS)
    waves = WaveStore(svc.store)
    scan, _ = svc.store.start_scan(APPROVER)
    wave = waves.create_wave(
        scan_id=scan.id,
        requester_id="UREQ",
        reason="r",
        criteria={},
        items=[
            NewWaveItem(
                address=ADDRESS,
                cloud_user_id=request.cloud_user_id,
                cloud_upn=ADDRESS,
                onprem_dn=request.onprem_dn,
                plan={},
                creates=False,
            )
        ],
        audit=AuditNote(WaveEvent.REQUESTED, "UREQ"),
    )
    for source, target, event in (
        (ItemState.PENDING, ItemState.APPLYING, WaveEvent.ITEM_APPLYING),
        (ItemState.APPLYING, ItemState.APPLIED, WaveEvent.ITEM_APPLIED),
        (ItemState.APPLIED, ItemState.TIMEOUT, WaveEvent.ITEM_TIMEOUT),  # the wave is done
    ):
        assert waves.transition_item(wave.id, 0, [source], target, event, None) is not None
    waves.set_item_fields(wave.id, 0, request_id=request.id)

    down = _drop_ad(ad, write_lands=True)
    revert_request(svc, request.id, APPROVER, Team())
    down["down"] = False
    svc.clock.now += timedelta(minutes=11)
    settled = [r.request for r in recover_stuck_reverts(svc) if r.request is not None]

    shown: list[str] = []

    class Board(NoWaveBoard):
        def progress(self, wave: Any, counts: Any, note: str | None) -> None:
            shown.append(wave.id)

    wave_svc = WaveServices(requests=svc, waves=waves, board=Board())
    assert follow_requests(wave_svc, settled) == 1
    item = waves.get_item(wave.id, 0)
    assert item is not None and item.state is ItemState.REVERTED
    assert shown == [wave.id]
    assert follow_requests(wave_svc, settled) == 0  # once
