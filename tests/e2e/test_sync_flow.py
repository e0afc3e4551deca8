"""After the approval, end to end: the bot's signed webhook starts the emulator's simulated
directory sync (which reads the Samba AD), the watcher polls Graph, and the team's channel, the
requester and the approval message learn whether the match bound, failed (and why) or timed
out; a restart or a second replica neither loses nor doubles the result; revert undoes it."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ldap3
import pytest
from pydantic import SecretStr

from bot.rules.requests import RequestState
from bot.settings import SyncTrigger
from bot.slack_views.ids import ActionId
from bot.store.repository import MatchRequest, Store
from tests.e2e.conftest import (
    APPROVAL_CHANNEL,
    APPROVER,
    NOTIFY_CHANNEL,
    OUTSIDER,
    REQUESTER,
    BotWorld,
    Driver,
    Seeded,
)
from tests.support.graph_emulator import LdapParams, SyncWebhook
from tests.support.samba import SambaDC
from tests.support.slack_fake import ApiCall, PostedMessage, find_action

WEBHOOK_SECRET = "runbook-hmac-secret"
#: The watcher wakes every min(poll, 5) s; a short cadence keeps these tests fast.
POLL_SECONDS = 0.2
#: How a sync result starts (matched, failed, timed out).
RESULT_ICONS = (":tada:", ":x:", ":alarm_clock:")


@dataclass
class SyncWorld:
    """The e2e world with the webhook trigger wired to the emulator's sync simulator."""

    world: BotWorld
    webhook: SyncWebhook
    dc: SambaDC

    def running(self, **overrides: Any) -> contextlib.AbstractContextManager[Driver]:
        """A bot whose sync trigger is the signed webhook to the simulator."""
        settings: dict[str, Any] = {
            "smtpmatch_sync_trigger": SyncTrigger.WEBHOOK,
            "smtpmatch_sync_webhook_url": self.world.graph.sync_webhook_url,
            "smtpmatch_sync_webhook_secret": SecretStr(WEBHOOK_SECRET),
            "smtpmatch_sync_poll_seconds": POLL_SECONDS,
        }
        return self.world.running(**(settings | overrides))

    def store(self, driver: Driver) -> Store:
        return driver.bot.services.store

    def request(self, driver: Driver, request_id: str) -> MatchRequest:
        request = self.store(driver).get_request(request_id)
        assert request is not None
        return request

    def approve(self, driver: Driver, seeded: Seeded) -> tuple[PostedMessage, str]:
        """Check, request approval, approve; returns once AD is written and sync triggered."""
        message = driver.request_approval(driver.check(seeded.address))
        request_id = driver.request_id(message)
        driver.press(message, ActionId.APPROVE, APPROVER)
        wait_until(lambda: self.request(driver, request_id).state is not RequestState.PENDING)
        wait_until(lambda: self.request(driver, request_id).state is not RequestState.APPROVING)
        assert self.request(driver, request_id).state in (
            RequestState.APPLIED,
            RequestState.MATCHED,
            RequestState.SYNC_FAILED,
        )
        self.webhook.wait_for_calls(1)
        return message, request_id

    def sync_reports(self, request_id: str) -> list[ApiCall]:
        """The sync result posts in the request's thread of the team's channel."""
        return [
            c
            for c in self.world.slack.calls("chat.postMessage")
            if c.args.get("channel") == NOTIFY_CHANNEL
            and c.args.get("thread_ts")
            and str(c.args.get("text")).startswith(RESULT_ICONS)
            and f"`{request_id}`" in str(c.args.get("text"))
        ]

    def wait_for_sync_report(self, request_id: str, timeout: float = 20.0) -> str:
        """Wait for the result in the request's thread; returns its text."""
        call = self.world.slack.wait_for(
            lambda c: c in self.sync_reports(request_id), timeout=timeout
        )
        return str(call.args.get("text"))

    def notify_messages(self, request_id: str) -> list[PostedMessage]:
        """The request's one top-level message in the team's channel."""
        return [
            m
            for m in self.world.slack.messages(NOTIFY_CHANNEL)
            if m.thread_ts is None and request_id in m.all_text
        ]

    def dms_to_requester(self, marker: str) -> list[ApiCall]:
        return [
            c
            for c in self.world.slack.calls("chat.postMessage")
            if c.args.get("channel") == REQUESTER and marker in str(c.args.get("text"))
        ]

    def anchor_in_ad(self, dn: str) -> str:
        """Base64 of the AD user's raw objectGUID, read from Samba."""
        conn = self.dc.connection
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
        guid = conn.response[0]["raw_attributes"]["objectGUID"][0]
        return base64.b64encode(guid).decode("ascii")


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def ad_values(world: BotWorld, dn: str) -> tuple[list[str], list[str]]:
    values = world.ad.read(dn, ["mail", "proxyAddresses"])
    return [str(v) for v in values.get("mail", [])], sorted(
        str(v) for v in values.get("proxyAddresses", [])
    )


def has_action(message: PostedMessage, action: ActionId) -> bool:
    try:
        find_action(message.blocks, action)
    except (KeyError, LookupError, ValueError):
        return False
    return True


def watch_attempts(store: Store, request_id: str) -> int:
    watch = store.get_watch(request_id)  # created just after the webhook call
    return watch.attempts if watch is not None else -1


def watch_outcome(store: Store, request_id: str) -> str | None:
    watch = store.get_watch(request_id)
    return watch.outcome if watch is not None else None


def audit_events(sync: SyncWorld, driver: Driver, request_id: str) -> list[str]:
    return [e.event for e in sync.store(driver).list_audit(request_id=request_id)]


def _sync_world(world: BotWorld, samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> SyncWorld:
    # The bot's webhook client (httpx) trusts SSL_CERT_FILE when it is built, like every
    # HTTPS client of the bot (see the README's configuration table); the emulator's CA is trusted.
    monkeypatch.setenv("SSL_CERT_FILE", str(world.graph.ca_file))
    webhook = world.graph.configure_sync_simulator(
        LdapParams.of_samba(samba_dc), secret=WEBHOOK_SECRET
    )
    return SyncWorld(world, webhook, samba_dc)


@pytest.fixture
def sync(world: BotWorld, samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> SyncWorld:
    """The SQLite world with the simulator behind the webhook trigger."""
    return _sync_world(world, samba_dc, monkeypatch)


@pytest.fixture
def sync_on(world_on: BotWorld, samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> SyncWorld:
    """The same on the database ``store_url`` names."""
    return _sync_world(world_on, samba_dc, monkeypatch)


# -- the outcomes -----------------------------------------------------------------------------


def test_approval_triggers_the_sync_that_binds_the_cloud_user_and_everyone_is_told(
    sync: SyncWorld,
) -> None:
    jane = sync.world.seed("jane")
    with sync.running() as slack:
        message, request_id = sync.approve(slack, jane)

        report = sync.wait_for_sync_report(request_id)
        assert report.startswith(":tada:") and "is now bound to the AD user" in report
        wait_until(lambda: sync.request(slack, request_id).state is RequestState.MATCHED)

        # The webhook was signed, accepted, and ran the simulated sync for the AD user.
        [call] = sync.webhook.calls
        assert call.status == 202 and call.ran
        assert call.body["request_id"] == request_id and call.body["dn"] == jane.dn
        # Graph: the cloud user is bound to the AD user's anchor.
        anchor = sync.anchor_in_ad(jane.dn)
        with sync.world.graph.state.lock:
            user = sync.world.graph.state.users[jane.cloud_id]
            assert user.on_premises_immutable_id == anchor == sync.request(slack, request_id).anchor
            assert user.on_premises_sync_enabled is True
        # One message for the request in the team's channel, now showing the result.
        [notice] = sync.notify_messages(request_id)
        wait_until(lambda: "matched" in sync.notify_messages(request_id)[0].all_text)
        assert ":tada:" in sync.notify_messages(request_id)[0].all_text
        assert [c.args["thread_ts"] for c in sync.sync_reports(request_id)] == [notice.ts]
        sync.world.slack.wait_for(lambda c: bool(sync.dms_to_requester(":tada:")))
        wait_until(
            lambda: (
                "Matched by directory sync"
                in sync.world.slack.message(APPROVAL_CHANNEL, message.ts).all_text
            )
        )
        final = sync.world.slack.message(APPROVAL_CHANNEL, message.ts)
        assert not has_action(final, ActionId.REVERT) and not has_action(final, ActionId.APPROVE)
        events = audit_events(sync, slack, request_id)
        assert events[-2:] == ["sync_triggered", "sync_matched"]


def test_an_admin_role_given_before_sync_fails_with_the_admin_role_conflict(
    sync: SyncWorld,
) -> None:
    jane = sync.world.seed("jane")  # no role: the approval's checks pass
    sync.webhook.hold = True
    with sync.running() as slack:
        message, request_id = sync.approve(slack, jane)
        sync.world.graph.state.set_roles(jane.cloud_id, active=["Global Administrator"])

        [export] = sync.webhook.release()
        assert "Existing Admin Role Conflict" in export.reason

        report = sync.wait_for_sync_report(request_id)
        assert report.startswith(":x:")
        assert "Existing Admin Role Conflict" in report and "Global Administrator" in report
        assert "Remedy:" in report and "remove the admin role" in report
        wait_until(lambda: sync.request(slack, request_id).state is RequestState.SYNC_FAILED)
        sync.world.slack.wait_for(lambda c: bool(sync.dms_to_requester("Admin Role Conflict")))
        wait_until(
            lambda: (
                "Sync did not match"
                in sync.world.slack.message(APPROVAL_CHANNEL, message.ts).all_text
            )
        )
        assert has_action(sync.world.slack.message(APPROVAL_CHANNEL, message.ts), ActionId.REVERT)
        assert audit_events(sync, slack, request_id)[-1] == "sync_failed"


def test_a_cloud_group_taking_the_address_before_sync_fails_with_the_quarantine(
    sync: SyncWorld,
) -> None:
    jane = sync.world.seed("jane")
    sync.webhook.hold = True
    with sync.running() as slack:
        _, request_id = sync.approve(slack, jane)
        sync.world.graph.state.add_group(
            "Jane's list", mail=jane.address, proxy_addresses=[f"smtp:{jane.address}"]
        )

        sync.webhook.release()

        report = sync.wait_for_sync_report(request_id)
        assert report.startswith(":x:") and "quarantined" in report
        assert f"PropertyConflict on ProxyAddresses (SMTP:{jane.address})" in report
        wait_until(lambda: sync.request(slack, request_id).state is RequestState.SYNC_FAILED)
        with sync.world.graph.state.lock:
            target = sync.world.graph.state.users[jane.cloud_id]
            assert target.on_premises_immutable_id is None  # the match did not happen


def test_a_sync_that_never_comes_times_out_with_next_steps(sync: SyncWorld) -> None:
    jane = sync.world.seed("jane")
    sync.webhook.enabled = False
    with sync.running(smtpmatch_sync_timeout_minutes=0.05) as slack:  # 3 s
        _, request_id = sync.approve(slack, jane)

        report = sync.wait_for_sync_report(request_id, timeout=30)

        assert report.startswith(":alarm_clock:") and "has not bound" in report
        assert "Start-ADSyncSyncCycle -PolicyType Delta" in report
        wait_until(lambda: sync.request(slack, request_id).state is RequestState.SYNC_TIMEOUT)
        [call] = sync.webhook.calls
        assert call.status == 202 and not call.ran


# -- durability -------------------------------------------------------------------------------


def test_a_restart_mid_watch_resumes_and_reports_the_match_once(sync: SyncWorld) -> None:
    jane = sync.world.seed("jane")
    sync.webhook.hold = True
    with sync.running() as first:
        _, request_id = sync.approve(first, jane)
        store = sync.store(first)
        wait_until(lambda: watch_attempts(store, request_id) >= 1)
    assert sync.sync_reports(request_id) == []

    with sync.running() as restarted:
        restarted.bot.sync.owner = "restarted-replica"
        sync.webhook.release()

        report = sync.wait_for_sync_report(request_id)

        assert report.startswith(":tada:")
        watch = sync.store(restarted).get_watch(request_id)
        assert watch is not None and watch.outcome == "matched"
        time.sleep(3 * POLL_SECONDS)  # a few more watcher rounds: nothing is told twice
        assert len(sync.sync_reports(request_id)) == 1
        assert len(sync.notify_messages(request_id)) == 1
        assert audit_events(sync, restarted, request_id).count("sync_matched") == 1


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_two_watchers_on_postgresql_settle_a_watch_exactly_once(sync_on: SyncWorld) -> None:
    assert sync_on.world.store_url.startswith("postgresql")
    jane = sync_on.world.seed("jane")
    sync_on.webhook.hold = True
    with sync_on.running() as one, sync_on.running() as two:
        one.bot.sync.owner = "replica-one"
        two.bot.sync.owner = "replica-two"
        _, request_id = sync_on.approve(one, jane)

        sync_on.webhook.release()

        report = sync_on.wait_for_sync_report(request_id)
        assert report.startswith(":tada:")
        time.sleep(5 * POLL_SECONDS)  # both watchers keep polling: nobody settles it again
        assert len(sync_on.sync_reports(request_id)) == 1
        assert len(sync_on.dms_to_requester(":tada:")) == 1
        events = audit_events(sync_on, two, request_id)
        assert events.count("sync_matched") == 1 and events.count("sync_triggered") == 1
        watch = sync_on.store(two).get_watch(request_id)
        assert watch is not None and watch.outcome == "matched"
        assert sync_on.request(two, request_id).state is RequestState.MATCHED


# -- revert -----------------------------------------------------------------------------------


def test_an_approver_reverts_an_unmatched_change_and_a_non_approver_cannot(
    sync: SyncWorld,
) -> None:
    jane = sync.world.seed("jane")
    sync.webhook.enabled = False  # sync never binds, so the change can be undone
    with sync.running() as slack:
        message, request_id = sync.approve(slack, jane)
        assert ad_values(sync.world, jane.dn) == ([jane.address], [f"SMTP:{jane.address}"])
        wait_until(
            lambda: has_action(
                sync.world.slack.message(APPROVAL_CHANNEL, message.ts), ActionId.REVERT
            )
        )
        applied = sync.world.slack.message(APPROVAL_CHANNEL, message.ts)

        slack.press(applied, ActionId.REVERT, OUTSIDER)
        sync.world.slack.wait_for(
            lambda c: (
                c.method == "response_url"
                and "Only the configured approvers can revert" in str(c.args.get("text"))
            )
        )
        assert sync.request(slack, request_id).state is RequestState.APPLIED
        assert ad_values(sync.world, jane.dn) == ([jane.address], [f"SMTP:{jane.address}"])

        slack.press(applied, ActionId.REVERT, APPROVER)
        wait_until(lambda: sync.request(slack, request_id).state is RequestState.REVERTED)

        assert ad_values(sync.world, jane.dn) == ([], [])  # read back from Samba
        reverted = [
            e for e in sync.store(slack).list_audit(request_id=request_id) if e.event == "reverted"
        ]
        assert [e.actor for e in reverted] == [APPROVER]
        sync.world.slack.wait_for(lambda c: bool(sync.dms_to_requester("was reverted")))
        wait_until(
            lambda: "Reverted" in sync.world.slack.message(APPROVAL_CHANNEL, message.ts).all_text
        )
        # The watcher sees the request settled and stops watching; no sync result is told.
        wait_until(lambda: watch_outcome(sync.store(slack), request_id) == "cancelled")
        assert sync.sync_reports(request_id) == []


def test_the_cloud_sync_trigger_provisions_the_ad_user_on_demand_and_it_matches(
    sync: SyncWorld,
) -> None:
    jane = sync.world.seed("jane")
    overrides = {
        "smtpmatch_sync_trigger": SyncTrigger.CLOUD_SYNC,
        "smtpmatch_cloud_sync_service_principal_id": "sp-cloud-sync",
        "smtpmatch_cloud_sync_job_id": "AD2AADProvisioning.abc.def",
        "smtpmatch_cloud_sync_rule_id": "rule-users",
    }
    with sync.world.running(smtpmatch_sync_poll_seconds=POLL_SECONDS, **overrides) as slack:
        message = slack.request_approval(slack.check(jane.address))
        request_id = slack.request_id(message)
        slack.press(message, ActionId.APPROVE, APPROVER)

        report = sync.wait_for_sync_report(request_id)
        assert report.startswith(":tada:")
        provisioned = sync.world.graph.app.provisioned
        assert [(dn, rule) for _, dn, rule in provisioned] == [(jane.dn, "rule-users")]
        assert provisioned[0][0].endswith("/jobs/AD2AADProvisioning.abc.def/provisionOnDemand")
        assert sync.webhook.calls == []  # the webhook trigger was not used
        assert "Cloud Sync provisioned" in str(
            next(
                e.details
                for e in sync.store(slack).list_audit(request_id=request_id)
                if e.event == "sync_triggered"
            )
        )
