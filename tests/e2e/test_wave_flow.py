"""Waves end to end: the real Bolt app driven by signed Slack requests, the Samba DC, the
Graph emulator with its sync simulator behind the signed webhook trigger, SQLite and
PostgreSQL. A scan's eligible users are requested as one wave, approved once by someone else,
re-checked and written exactly once each (changed ones skipped with the reason), watched in
bulk, reported, and revertible; a restart mid-wave finishes without writing anything twice."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from bot.cli import main
from bot.errors import DirectoryUnavailable
from bot.ports import OnPremDirectory
from bot.rules.waves import ItemState, Wave, WaveState
from bot.settings import SyncTrigger
from bot.slack_views.ids import (
    FIELD_LIMIT,
    FIELD_REASON,
    FIELD_REJECT_REASON,
    FIELD_REVERT_ADDRESS,
    WaveActionId,
)
from bot.store.repository import Store
from bot.store.waves import WaveStore
from tests.e2e.conftest import (
    APPROVAL_CHANNEL,
    APPROVER,
    GROUP_MEMBER,
    NOTIFY_CHANNEL,
    OUTSIDER,
    REQUESTER,
    BotWorld,
    Driver,
    Seeded,
)
from tests.support.graph_emulator import LdapParams, SyncWebhook
from tests.support.samba import SambaDC
from tests.support.slack_fake import PostedMessage, find_action

SECRET = "wave-webhook-secret"
HELPDESK = "C_HELPDESK"


def wait_until(predicate: Callable[[], object], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


class FlakyAd:
    """Active Directory that, after ``healthy`` writes, makes the next write and then stops
    answering (the write reached AD, its answer did not; AD cannot be re-read either)."""

    def __init__(self, inner: OnPremDirectory, healthy: int) -> None:
        self._inner = inner
        self._healthy = healthy
        self.down = False

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise DirectoryUnavailable("Active Directory", "dc", "connection reset")
            if name == "apply":
                if self._healthy == 0:
                    target(*args, **kwargs)
                    self.down = True
                    raise DirectoryUnavailable("Active Directory", "dc", "connection reset")
                self._healthy -= 1
            return target(*args, **kwargs)

        return call


def running(
    world: BotWorld,
    webhook_url: str,
    *,
    onprem: Callable[[OnPremDirectory], OnPremDirectory] | None = None,
    **overrides: Any,
) -> contextlib.AbstractContextManager[Driver]:
    """A bot with the webhook sync trigger, unpaced waves (and, optionally, a wrapped AD)."""
    return world.running(
        onprem=onprem,
        **{
            "smtpmatch_sync_trigger": SyncTrigger.WEBHOOK,
            "smtpmatch_sync_webhook_url": webhook_url,
            "smtpmatch_sync_webhook_secret": SecretStr(SECRET),
            "smtpmatch_sync_poll_seconds": 0.2,
            "smtpmatch_wave_writes_per_minute": 0,
        }
        | overrides,
    )


@pytest.fixture
def webhook(world: BotWorld, samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> SyncWebhook:
    monkeypatch.setenv("SSL_CERT_FILE", str(world.graph.ca_file))
    return world.graph.configure_sync_simulator(LdapParams.of_samba(samba_dc), secret=SECRET)


@pytest.fixture
def webhook_on(
    world_on: BotWorld, samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch
) -> SyncWebhook:
    monkeypatch.setenv("SSL_CERT_FILE", str(world_on.graph.ca_file))
    return world_on.graph.configure_sync_simulator(LdapParams.of_samba(samba_dc), secret=SECRET)


def scan_and_ask(slack: Driver, world: BotWorld, reason: str, **fields: str) -> PostedMessage:
    """An approver scans; the requester presses the summary's button and sends the picker;
    returns the approval message posted to the approvers."""
    response = slack.slack_driver.command("scan", user_id=GROUP_MEMBER)
    assert response.status_code == 200
    world.slack.wait_for("files.completeUploadExternal", timeout=120)
    [summary] = world.slack.messages(HELPDESK)
    block_id, button = find_action(summary.blocks, WaveActionId.OPEN)
    response = slack.slack_driver.click(
        WaveActionId.OPEN,
        str(button["value"]),
        REQUESTER,
        channel_id=HELPDESK,
        message_ts=summary.ts,
        block_id=block_id,
    )
    assert response.status_code == 200
    world.slack.wait_for("views.open", timeout=30)
    values = {FIELD_REASON: {FIELD_REASON: reason}} | {k: {k: v} for k, v in fields.items()}
    response = slack.slack_driver.submit_view(WaveActionId.SUBMIT, REQUESTER, values)
    assert response.status_code == 200, response.text
    wait_until(lambda: world.slack.messages(APPROVAL_CHANNEL), timeout=60)
    return world.slack.messages(APPROVAL_CHANNEL)[-1]


def the_wave(world: BotWorld) -> tuple[WaveStore, Wave]:
    store = Store(world.store_url)
    waves = WaveStore(store)
    [wave] = waves.list_waves()
    return waves, wave


def state_of(world: BotWorld) -> WaveState:
    store = Store(world.store_url)
    try:
        [wave] = WaveStore(store).list_waves()
        return wave.state
    finally:
        store.close()


def applied_events(store: Store) -> Counter[str]:
    return Counter(e.request_id or "" for e in store.list_audit() if e.event == "applied")


def change_five(world: BotWorld, seeded: list[Seeded]) -> dict[str, str]:
    """Change five users between the scan and the approval; returns address → what changed."""
    a, b, c, d, e = seeded[:5]
    world.ad.set_values(a.dn, "mail", [world.ad.address("somebody-else")])
    world.graph.state.delete_user(b.cloud_id)
    world.graph.state.set_mailbox(c.cloud_id, False)
    world.ad.delete(d.dn)
    world.ad.set_values(e.dn, "proxyAddresses", [f"smtp:{world.ad.address('alias-e')}"])
    return {
        a.address: "mail",
        b.address: "cloud",
        c.address: "mailbox",
        d.address: "AD",
        e.address: "proxy",
    }


def test_a_wave_of_50_skips_the_5_that_changed_writes_45_once_and_reports_them_matched(
    world: BotWorld, webhook: SyncWebhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = [world.seed(f"wave{i:02d}") for i in range(50)]
    with running(world, world.graph.sync_webhook_url or "") as slack:
        approval = scan_and_ask(slack, world, "cut-over of the sales floor")
        assert "50" in approval.text and "Approve all" in json.dumps(approval.blocks)
        # The CSV is uploaded after the approval message is posted: wait for it.
        world.slack.wait_for(lambda c: c.method == "files.completeUploadExternal")
        [upload] = world.slack.files(APPROVAL_CHANNEL)
        assert upload.thread_ts == approval.ts
        rows = list(csv.DictReader(io.StringIO((upload.content or b"").decode())))
        assert sorted(r["address"] for r in rows) == sorted(s.address for s in seeded)

        changed = change_five(world, seeded)

        # The requester cannot approve their own wave; nothing runs.
        slack.press(approval, WaveActionId.APPROVE, REQUESTER)
        world.slack.wait_for(lambda c: "another approver" in json.dumps(c.args), timeout=30)
        assert state_of(world) is WaveState.PENDING

        # Two approvers click "Approve all" at the same moment: the wave runs once.
        clicks = [
            threading.Thread(target=slack.press, args=(approval, WaveActionId.APPROVE, who))
            for who in (APPROVER, GROUP_MEMBER)
        ]
        for click in clicks:
            click.start()
        for click in clicks:
            click.join()
        world.slack.wait_for(lambda c: "already" in json.dumps(c.args), timeout=30)
        wait_until(lambda: state_of(world) is WaveState.DONE, timeout=240)

        store = Store(world.store_url)
        waves, wave = the_wave(world)
        items = waves.items(wave.id)
        by_state = Counter(i.state for i in items)
        assert by_state == {ItemState.MATCHED: 45, ItemState.SKIPPED: 5}
        skipped = {i.address: i.reason or "" for i in items if i.state is ItemState.SKIPPED}
        assert set(skipped) == set(changed)
        assert all(r.startswith("Changed since the scan") for r in skipped.values())
        assert "onprem.user_found" in skipped[seeded[3].address]  # the AD user is gone
        # Written exactly once each, read back from AD.
        assert sorted(applied_events(store).values()) == [1] * 45
        for s in seeded[5:]:
            values = world.ad.read(s.dn, ["mail"])
            assert [str(v).lower() for v in values["mail"]] == [s.address.lower()]
        assert len(webhook.calls) == 45
        assert sum(1 for e in store.list_audit() if e.event == "wave_approved") == 1
        refusals = [e for e in store.list_audit() if e.event == "wave_approve_refused"]
        assert [e.actor for e in refusals] == [REQUESTER]

        # The result: the team's channel (with the CSV) and a DM to the requester.
        wait_until(lambda: world.slack.files(NOTIFY_CHANNEL), timeout=30)
        [result] = world.slack.messages(NOTIFY_CHANNEL)
        assert "matched 45" in result.text and "skipped 5" in result.text
        [result_csv] = world.slack.files(NOTIFY_CHANNEL)
        outcome = list(csv.DictReader(io.StringIO((result_csv.content or b"").decode())))
        assert Counter(r["state"] for r in outcome) == {"matched": 45, "skipped": 5}
        dm = world.slack.dm_channel(REQUESTER)
        assert any("matched 45" in m.text for m in world.slack.messages(dm))
        # One progress message for the wave, in the approval's thread, updated to the end.
        progress = [m for m in world.slack.messages(APPROVAL_CHANNEL) if m.thread_ts == approval.ts]
        assert len(progress) == 1 and "done" in progress[0].text
        store.close()

    # `smtpmatch audit` has each item's outcome; `--wave` narrows it to this wave and the
    # requests its users' writes became, `--request` to one of them.
    monkeypatch.setenv("SMTPMATCH_DATABASE_URL", world.store_url)

    def audit(*extra: str) -> list[dict[str, Any]]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["audit", "--format", "json", *extra]) == 0
        return list(json.loads(out.getvalue()))

    everything = audit()
    events = Counter(e["event"] for e in everything)
    assert events["wave_item_matched"] == 45 and events["wave_item_skipped"] == 5
    _, wave = the_wave(world)
    of_wave = audit("--wave", wave.id)
    assert Counter(e["event"] for e in of_wave)["applied"] == 45
    assert Counter(e["event"] for e in of_wave)["wave_item_matched"] == 45
    one = next(e["request_id"] for e in of_wave if e["event"] == "applied")
    of_request = audit("--request", one)
    assert of_request and {e["request_id"] for e in of_request} == {one}
    assert "applied" in [e["event"] for e in of_request]
    assert audit("--wave", "no-such-wave") == []


def test_a_restart_mid_wave_finishes_without_writing_twice_and_one_item_reverts(
    world_on: BotWorld, webhook_on: SyncWebhook
) -> None:
    world = world_on
    webhook_on.enabled = False  # sync never comes: the items stay revertible
    seeded = [world.seed(f"rst{i:02d}") for i in range(8)]
    flaky: list[FlakyAd] = []

    def wrap(onprem: OnPremDirectory) -> OnPremDirectory:
        flaky.append(FlakyAd(onprem, healthy=3))
        return flaky[-1]  # type: ignore[return-value]

    url = world.graph.sync_webhook_url or ""
    with running(world, url) as slack:
        approval = scan_and_ask(slack, world, "restart drill", **{FIELD_LIMIT: "8"})
    with running(world, url, onprem=wrap) as slack:
        slack.press(approval, WaveActionId.APPROVE, APPROVER)
        # The 4th write reached AD but its answer did not, and AD went down: the wave pauses.
        wait_until(lambda: state_of(world) is WaveState.PAUSED, timeout=120)
        waves, wave = the_wave(world)
        counts = waves.counts(wave.id)
        assert counts[ItemState.APPLIED] == 3 and counts[ItemState.APPLYING] == 1
        assert counts[ItemState.PENDING] == 4
        paused = [m for m in world.slack.messages(APPROVAL_CHANNEL) if m.thread_ts]
        assert any("paused" in m.text for m in paused)

    # The restart: AD answers again. Before the automatic retry (2 minutes), an approver
    # presses "Resume now" on the paused progress message (the requester may not): the item
    # caught mid-write is settled by reading AD (not written again), the rest are written.
    [paused_progress] = [
        m
        for m in world.slack.messages(APPROVAL_CHANNEL)
        if m.thread_ts and has_action(m, WaveActionId.RESUME)
    ]
    assert has_action(paused_progress, WaveActionId.STOP)
    with running(world, url) as slack:
        slack.press(paused_progress, WaveActionId.RESUME, REQUESTER)
        world.slack.wait_for(lambda c: "another approver" in json.dumps(c.args), timeout=30)
        assert state_of(world) is WaveState.PAUSED
        slack.press(paused_progress, WaveActionId.RESUME, APPROVER)
        wait_until(lambda: state_of(world) is WaveState.WATCHING, timeout=120)
        store = Store(world.store_url)
        waves, wave = the_wave(world)
        items = waves.items(wave.id)
        assert Counter(i.state for i in items) == {ItemState.APPLIED: 8}
        assert sorted(applied_events(store).values()) == [1] * 8
        confirmed = [
            e for e in store.list_audit() if e.event == "applied" and "re-read" in str(e.details)
        ]
        assert len(confirmed) == 1
        for s in seeded:
            assert [str(v).lower() for v in world.ad.read(s.dn, ["mail"])["mail"]] == [
                s.address.lower()
            ]

        # Revert of one item, from the progress message's "Revert one user…": a malformed
        # address keeps the modal open and changes nothing; the requester is refused; an
        # approver reverts it through the guarded revert: the old (empty) mail is back.
        first = items[0]
        dn = next(s.dn for s in seeded if s.address == first.address)
        [progress] = [
            m
            for m in world.slack.messages(APPROVAL_CHANNEL)
            if m.thread_ts and m.blocks and has_action(m, WaveActionId.REVERT_ONE)
        ]
        opened = len(world.slack.views_opened())
        slack.press(progress, WaveActionId.REVERT_ONE, REQUESTER)  # told, no form opened
        world.slack.wait_for(lambda c: "another approver" in json.dumps(c.args), timeout=30)
        assert len(world.slack.views_opened()) == opened
        slack.press(progress, WaveActionId.REVERT_ONE, APPROVER)
        wait_until(lambda: len(world.slack.views_opened()) > opened, timeout=30)
        modal = world.slack.views_opened()[-1]
        assert modal["callback_id"] == WaveActionId.REVERT_ONE_SUBMIT
        assert modal["private_metadata"] == wave.id

        def revert_one(user: str, typed: str) -> Any:
            return slack.slack_driver.submit_view(
                WaveActionId.REVERT_ONE_SUBMIT,
                user,
                {FIELD_REVERT_ADDRESS: {FIELD_REVERT_ADDRESS: typed}},
                private_metadata=wave.id,
            )

        def dms(user: str) -> list[str]:
            return [m.text for m in world.slack.messages(world.slack.dm_channel(user))]

        bad = revert_one(APPROVER, f"{first.address})(mail=*")
        assert bad.status_code == 200
        assert bad.json()["response_action"] == "errors"
        assert "not a mailbox address" in bad.json()["errors"][FIELD_REVERT_ADDRESS]

        def told(user: str, typed: str) -> str:
            """Submit the modal as ``user`` and return the DM the bot then sends them."""
            before = len(dms(user))
            assert revert_one(user, typed).status_code == 200
            wait_until(lambda: len(dms(user)) > before, timeout=60)
            return dms(user)[-1]

        assert "another approver" in told(REQUESTER, first.address.upper())
        assert waves.get_item(wave.id, first.position).state is ItemState.APPLIED  # type: ignore[union-attr]

        stranger = "nobody-here@" + first.address.rpartition("@")[2]
        assert f"{stranger} is not one of the users of wave" in told(APPROVER, stranger)

        assert "old values are back" in told(APPROVER, first.address)
        assert waves.get_item(wave.id, first.position).state is ItemState.REVERTED  # type: ignore[union-attr]
        assert world.ad.read(dn, ["mail"]).get("mail") in (None, [])
        for other in seeded:
            if other.dn != dn:
                assert world.ad.read(other.dn, ["mail"])["mail"], other.address

        def shown() -> str:
            return json.dumps(world.slack.message(progress.channel, progress.ts).blocks)

        wait_until(lambda: "reverted 1" in shown(), timeout=30)

        # The same revert again changes nothing and says why.
        assert "already reverted" in told(APPROVER, first.address)
        store.close()


def has_action(message: PostedMessage, action: str) -> bool:
    try:
        find_action(message.blocks, action)
    except LookupError:
        return False
    return True


def test_a_rejected_wave_writes_nothing_and_tells_the_requester_why(
    world: BotWorld, webhook: SyncWebhook
) -> None:
    seeded = [world.seed(f"rej{i}") for i in range(3)]
    with running(world, world.graph.sync_webhook_url or "") as slack:
        approval = scan_and_ask(slack, world, "reject drill")
        [wave] = WaveStore(Store(world.store_url)).list_waves()

        # App Home lists the pending wave for approvers, and for its requester as theirs;
        # someone else sees no wave.
        def home(user: str) -> str:
            published = len(world.slack.calls("views.publish"))
            assert slack.slack_driver.home_opened(user).status_code == 200
            world.slack.wait_for("views.publish", count=published + 1)
            return json.dumps(world.slack.published_home(user))

        approver_home = home(APPROVER)
        assert "Open waves" in approver_home and f"Wave `{wave.id}`: 3 users, *pending*" in (
            approver_home
        )
        assert f"<#{APPROVAL_CHANNEL}>" in approver_home
        assert "My waves" in home(REQUESTER) and wave.id in home(REQUESTER)
        assert wave.id not in home(OUTSIDER)

        # The requester may not reject (nor open the form); nothing changes.
        opened = len(world.slack.views_opened())
        slack.press(approval, WaveActionId.REJECT, REQUESTER)
        world.slack.wait_for(lambda c: "another approver" in json.dumps(c.args), timeout=30)
        assert len(world.slack.views_opened()) == opened

        # An approver is asked why; an empty reason keeps the form open.
        slack.press(approval, WaveActionId.REJECT, APPROVER)
        wait_until(lambda: len(world.slack.views_opened()) > opened, timeout=30)
        form = world.slack.views_opened()[-1]
        assert form["callback_id"] == WaveActionId.REJECT_SUBMIT
        assert form["private_metadata"] == wave.id

        def reject(user: str, reason: str) -> Any:
            return slack.slack_driver.submit_view(
                WaveActionId.REJECT_SUBMIT,
                user,
                {FIELD_REJECT_REASON: {FIELD_REJECT_REASON: reason}},
                private_metadata=wave.id,
            )

        empty = reject(APPROVER, "   ")
        assert empty.json()["response_action"] == "errors"
        assert state_of(world) is WaveState.PENDING

        # A forged submission by the requester (the form was never opened for them) is
        # refused by the service, which authorizes again.
        def requester_dms() -> list[PostedMessage]:
            return world.slack.messages(world.slack.dm_channel(REQUESTER))

        before = len(requester_dms())  # "sent to the approvers" is there already
        assert reject(REQUESTER, "self").status_code == 200
        wait_until(lambda: len(requester_dms()) > before, timeout=30)
        assert "another approver" in requester_dms()[-1].text
        assert state_of(world) is WaveState.PENDING

        assert reject(APPROVER, "Not before the <!channel> freeze *ends*").status_code == 200
        wait_until(lambda: state_of(world) is WaveState.REJECTED, timeout=30)
        wait_until(lambda: len(requester_dms()) > before + 1, timeout=30)
        told = requester_dms()[-1]
        shown = json.dumps(told.blocks)
        assert "rejected by <@" + APPROVER + ">" in shown and "freeze" in shown
        assert "<!channel>" not in shown  # the reason is shown literally, never as a mention

        def approval_now() -> PostedMessage:
            return world.slack.message(approval.channel, approval.ts)

        wait_until(lambda: "rejected" in approval_now().text, timeout=30)
        with pytest.raises(LookupError):
            find_action(approval_now().blocks, WaveActionId.APPROVE)

        # A stale Approve all on the old message runs nothing.
        slack.press(approval, WaveActionId.APPROVE, GROUP_MEMBER)
        world.slack.wait_for(lambda c: "already rejected" in json.dumps(c.args), timeout=30)
        for s in seeded:
            assert world.ad.read(s.dn, ["mail"]).get("mail") in (None, [])
        store = Store(world.store_url)
        assert not [e for e in store.list_audit() if e.event == "applied"]
        rejected = [e for e in store.list_audit() if e.event == "wave_rejected"]
        assert [(e.actor, e.details.get("reason")) for e in rejected] == [
            (APPROVER, "Not before the <!channel> freeze *ends*")
        ]
        store.close()


def test_stop_skips_the_users_not_yet_written_and_keeps_what_was_written(
    world: BotWorld, webhook: SyncWebhook
) -> None:
    seeded = [world.seed(f"stp{i}") for i in range(8)]
    url = world.graph.sync_webhook_url or ""
    with running(world, url, smtpmatch_wave_writes_per_minute=40) as slack:  # 1.5 s per write
        approval = scan_and_ask(slack, world, "stop drill")
        slack.press(approval, WaveActionId.APPROVE, APPROVER)
        waves, wave = the_wave(world)

        def written() -> int:
            return (
                waves.counts(wave.id)[ItemState.APPLIED] + waves.counts(wave.id)[ItemState.MATCHED]
            )

        wait_until(lambda: written() >= 2, timeout=120)
        [progress] = [
            m
            for m in world.slack.messages(APPROVAL_CHANNEL)
            if m.thread_ts and has_action(m, WaveActionId.STOP)
        ]
        _, stop = find_action(progress.blocks, WaveActionId.STOP)
        assert "confirm" in stop  # Slack asks "are you sure" first

        # Someone who is neither the requester nor an approver cannot stop it.
        slack.press(progress, WaveActionId.STOP, OUTSIDER)
        world.slack.wait_for(lambda c: "requester or an approver" in json.dumps(c.args))
        # The requester can: the brake is theirs too.
        slack.press(progress, WaveActionId.STOP, REQUESTER)
        world.slack.wait_for(lambda c: "Stopped:" in json.dumps(c.args))
        wait_until(lambda: state_of(world) in (WaveState.WATCHING, WaveState.DONE))
        items = waves.items(wave.id)
        done = [i for i in items if i.state is not ItemState.SKIPPED]
        stopped = [i for i in items if i.state is ItemState.SKIPPED]
        assert 2 <= len(done) < 8 and len(done) + len(stopped) == 8
        assert all(i.reason == "the wave was stopped before this user's write" for i in stopped)
        store = Store(world.store_url)
        assert sorted(applied_events(store).values()) == [1] * len(done)
        by_address = {s.address: s for s in seeded}
        for i in stopped:  # never written
            assert world.ad.read(by_address[i.address].dn, ["mail"]).get("mail") in (None, [])
        for i in done:
            assert world.ad.read(by_address[i.address].dn, ["mail"])["mail"]
        events = [e for e in store.list_audit() if e.event in ("wave_stopped", "wave_stop_refused")]
        assert [(e.event, e.actor) for e in events] == [
            ("wave_stop_refused", OUTSIDER),
            ("wave_stopped", REQUESTER),
        ]
        # The written ones are watched to the end; the summary counts the stopped ones.
        wait_until(lambda: state_of(world) is WaveState.DONE, timeout=120)
        wait_until(lambda: world.slack.messages(NOTIFY_CHANNEL), timeout=30)
        [result] = world.slack.messages(NOTIFY_CHANNEL)
        assert f"matched {len(done)}" in result.text and f"skipped {len(stopped)}" in result.text
        store.close()
