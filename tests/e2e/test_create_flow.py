"""KB step 2 end to end: a cloud-only user with no AD account. The real Bolt app (signed
requests), the Samba AD DC and the Graph emulator with its sync simulator: the requester asks
for the account, an approver approves, the bot creates it once with the planned values, the
simulated sync binds the cloud user to it and the team is told "matched". The generated
password is captured through the bot's password seam and searched for everywhere it must
never appear: every Slack call, every log line, the audit export."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.audit_export import export_audit
from bot.directories.ad import ActiveDirectory
from bot.directories.entra import EntraDirectory
from bot.rules.engine import Policy
from bot.rules.requests import RequestState
from bot.services.check import Directories
from bot.slack_views.ids import REASON_ACTION, REASON_BLOCK, ActionId, CallbackId
from tests.e2e.conftest import (
    APPROVAL_CHANNEL,
    APPROVER,
    GROUP_MEMBER,
    NOTIFY_CHANNEL,
    REQUESTER,
    BotWorld,
    Driver,
    report_text,
)
from tests.e2e.test_sync_flow import SyncWorld, _sync_world, has_action, wait_until
from tests.support.bot_process import demo_bot_process
from tests.support.samba import SambaDC
from tests.support.slack_fake import (
    RESPONSE_URL,
    FakeSlackApi,
    SlackDriver,
    find_action,
)

#: The password the bot's seam hands out: strong (AD complexity) and unique to this run.
PASSWORD = f"Zx9!{uuid.uuid4().hex[:12]}-Qp"

_ATTRIBUTES = (
    "sAMAccountName",
    "userPrincipalName",
    "givenName",
    "sn",
    "displayName",
    "mail",
    "proxyAddresses",
    "userAccountControl",
)


@dataclass
class Nora:
    """A cloud-only user with a mailbox and no AD account."""

    address: str
    alias: str
    cloud_id: str
    display_name: str


def _nora(world: BotWorld) -> Nora:
    address = world.ad.address("nora")
    alias = world.ad.address("n.new")
    name = f"Nora New {world.ad.tag}"
    user = world.graph.state.add_user(
        address,
        mail=address,
        proxy_addresses=[f"SMTP:{address}", f"smtp:{alias}"],
        display_name=name,
        given_name="Nora",
        surname=f"New{world.ad.tag}",
    )
    return Nora(address, alias, user.id, name)


@pytest.fixture
def sync(world: BotWorld, samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch) -> SyncWorld:
    """The sync world whose bots may create AD users in the test's own OU."""

    def directories() -> Directories:
        return Directories(
            onprem=ActiveDirectory.from_settings(world.settings),
            cloud=EntraDirectory.from_settings(world.settings, ca_file=world.graph.ca_file),
            policy=Policy(sync_scope=(world.ad.ou,), create_ou=world.ad.ou),
        )

    monkeypatch.setattr(world, "directories", directories)
    return _sync_world(world, samba_dc, monkeypatch)


def _with_password_seam(driver: Driver) -> list[str]:
    made: list[str] = []

    def new_password() -> str:
        made.append(PASSWORD)
        return PASSWORD

    driver.bot.services.new_password = new_password
    return made


def _request_creation(driver: Driver, nora: Nora) -> tuple[Any, str]:
    report = driver.check(nora.address)
    assert "needs_account" in report_text(report) or "Needs an AD account" in report_text(report)
    _, button = find_action(report["blocks"], ActionId.REQUEST_APPROVAL)
    assert button["text"]["text"] == "Request account creation"
    message = driver.request_approval(report, reason="new starter from the acquisition")
    return message, driver.request_id(message)


def _accounts(world: BotWorld, nora: Nora) -> list[str]:
    """Every AD object carrying Nora's address (the created account, once)."""
    return world.ad.dc.find(f"(mail={nora.address})")


def _everything_said(world: BotWorld) -> str:
    return json.dumps([c.args for c in world.slack.calls()], default=str)


def test_an_approved_creation_makes_the_account_once_sync_binds_it_and_no_password_leaks(
    sync: SyncWorld,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    world = sync.world
    nora = _nora(world)
    with sync.running() as slack:
        made = _with_password_seam(slack)
        message, request_id = _request_creation(slack, nora)
        approval = message.all_text
        assert "create a new AD account" in approval
        assert "current cloud password stops working" in approval
        request = sync.request(slack, request_id)
        assert request.plan.creates and request.state is RequestState.PENDING
        assert _accounts(world, nora) == []  # nothing is created before the approval

        slack.press(message, ActionId.APPROVE, APPROVER)
        report = sync.wait_for_sync_report(request_id)
        assert report.startswith(":tada:")
        wait_until(lambda: sync.request(slack, request_id).state is RequestState.MATCHED)

        # AD: exactly one account, with every planned value, enabled.
        [dn] = _accounts(world, nora)
        assert dn.lower() == request.onprem_dn.lower()
        stored = world.ad.read(dn, list(_ATTRIBUTES))
        for change in request.plan.changes:
            values = sorted(str(v) for v in stored[change.attribute])
            assert values == sorted(change.after), change.attribute
        assert int(stored["userAccountControl"][0]) & 0x2 == 0
        assert f"smtp:{nora.alias}" in [str(v) for v in stored["proxyAddresses"]]
        assert made == [PASSWORD]
        # Graph: the cloud user is bound to the new account's anchor.
        anchor = sync.anchor_in_ad(dn)
        with world.graph.state.lock:
            user = world.graph.state.users[nora.cloud_id]
            assert user.on_premises_immutable_id == anchor == sync.request(slack, request_id).anchor
            assert user.on_premises_sync_enabled is True
        # The team's channel says matched; the requester heard of the creation and the password.
        wait_until(lambda: "matched" in sync.notify_messages(request_id)[0].all_text)
        world.slack.wait_for(lambda c: bool(sync.dms_to_requester("was created")))
        [created_dm] = sync.dms_to_requester("was created")
        assert "password" in str(created_dm.args.get("text"))
        # Audit: the creation with its DN, GUID and attributes.
        events = sync.store(slack).list_audit(request_id=request_id)
        [applied] = [e for e in events if e.event == "applied"]
        assert applied.details["action"] == "create" and applied.details["dn"] == request.onprem_dn
        guid = uuid.UUID(str(applied.details["guid"]))
        assert anchor == base64.b64encode(guid.bytes_le).decode("ascii")
        assert [c["attribute"] for c in applied.details["changes"]] == list(_ATTRIBUTES)

    # The password is nowhere: Slack, logs, audit export.
    assert PASSWORD not in _everything_said(world)
    assert PASSWORD not in caplog.text
    monkeypatch.setenv("SMTPMATCH_DATABASE_URL", world.store_url)
    exported = io.StringIO()
    assert export_audit(since=None, fmt="json", out=exported) == 0
    assert '"action": "create"' in exported.getvalue()
    assert PASSWORD not in exported.getvalue()


def test_the_requester_cannot_approve_their_own_creation_and_nothing_is_created(
    sync: SyncWorld,
) -> None:
    nora = _nora(sync.world)
    with sync.running() as slack:
        message, request_id = _request_creation(slack, nora)
        slack.press(message, ActionId.APPROVE, REQUESTER)
        sync.world.slack.wait_for(
            lambda c: c.method == "response_url" and "another approver" in str(c.args.get("text"))
        )
        assert sync.request(slack, request_id).state is RequestState.PENDING
        assert _accounts(sync.world, nora) == []
        events = [e.event for e in sync.store(slack).list_audit(request_id=request_id)]
        assert "approve_refused" in events and "applied" not in events


def test_two_approve_clicks_at_once_create_one_account(sync: SyncWorld) -> None:
    nora = _nora(sync.world)
    sync.webhook.hold = True
    with sync.running() as slack:
        _with_password_seam(slack)
        message, request_id = _request_creation(slack, nora)
        clicks = [
            threading.Thread(target=slack.press, args=(message, ActionId.APPROVE, user))
            for user in (APPROVER, GROUP_MEMBER)
        ]
        for click in clicks:
            click.start()
        for click in clicks:
            click.join()
        store = sync.store(slack)
        wait_until(
            lambda: any(e.event == "applied" for e in store.list_audit(request_id=request_id))
        )
        events = [e.event for e in store.list_audit(request_id=request_id)]
        assert events.count("approved") == 1 and events.count("applied") == 1
        assert len(_accounts(sync.world, nora)) == 1
        sync.webhook.release()


def test_a_name_taken_by_someone_else_between_request_and_approval_changes_nothing(
    sync: SyncWorld,
) -> None:
    nora = _nora(sync.world)
    with sync.running() as slack:
        _with_password_seam(slack)
        message, request_id = _request_creation(slack, nora)
        sam = sync.request(slack, request_id).plan.value("sAMAccountName") or ""
        # Someone creates an account with that sAMAccountName in another OU meanwhile.
        elsewhere = sync.world.ad.add_ou("manual")
        sync.world.ad.add_user(sam, ou=elsewhere, display_name="Somebody Else")

        slack.press(message, ActionId.APPROVE, APPROVER)
        wait_until(lambda: sync.request(slack, request_id).state is RequestState.FAILED)
        request = sync.request(slack, request_id)
        assert "No account was created" in (request.decision_reason or "")
        assert _accounts(sync.world, nora) == []
        assert sync.world.ad.dc.find(f"(sAMAccountName={sam})") != []
        wait_until(
            lambda: (
                "No account was created"
                in sync.world.slack.message(APPROVAL_CHANNEL, message.ts).all_text
            )
        )


def test_revert_before_the_match_deletes_exactly_the_created_account_and_after_it_is_refused(
    sync: SyncWorld,
) -> None:
    nora = _nora(sync.world)
    sync.webhook.hold = True
    with sync.running() as slack:
        _with_password_seam(slack)
        message, request_id = _request_creation(slack, nora)
        slack.press(message, ActionId.APPROVE, APPROVER)
        wait_until(lambda: sync.request(slack, request_id).state is RequestState.APPLIED)
        [dn] = _accounts(sync.world, nora)
        other = sync.world.ad.add_user(sync.world.ad.sam("bystander"))

        wait_until(
            lambda: has_action(
                sync.world.slack.message(APPROVAL_CHANNEL, message.ts), ActionId.REVERT
            )
        )
        applied = sync.world.slack.message(APPROVAL_CHANNEL, message.ts)
        slack.press(applied, ActionId.REVERT, APPROVER)
        wait_until(lambda: sync.request(slack, request_id).state is RequestState.REVERTED)

        assert (
            _accounts(sync.world, nora) == []
            and sync.world.ad.dc.find(f"(mail={nora.address})") == []
        )
        assert sync.world.ad.read(other, ["cn"])["cn"]  # nothing else was touched
        [reverted] = [
            e for e in sync.store(slack).list_audit(request_id=request_id) if e.event == "reverted"
        ]
        assert reverted.details["action"] == "delete" and reverted.details["dn"] == dn
        assert reverted.details["guid"]
        sync.webhook.release()

    # A second creation that sync binds before anyone reverts: the revert is refused, with why.
    with sync.running(smtpmatch_sync_poll_seconds=60) as slack:
        _with_password_seam(slack)
        message, request_id = _request_creation(slack, nora)
        slack.press(message, ActionId.APPROVE, APPROVER)
        wait_until(lambda: sync.request(slack, request_id).state is RequestState.APPLIED)
        # The sync trigger follows the write on the bot's executor: wait until it has arrived.
        wait_until(lambda: sync.webhook.held >= 1)
        sync.webhook.release()  # the simulated sync binds the cloud user to the new account
        wait_until(
            lambda: has_action(
                sync.world.slack.message(APPROVAL_CHANNEL, message.ts), ActionId.REVERT
            )
        )
        applied = sync.world.slack.message(APPROVAL_CHANNEL, message.ts)
        slack.press(applied, ActionId.REVERT, APPROVER)
        sync.world.slack.wait_for(
            lambda c: c.method == "response_url" and "already bound" in str(c.args.get("text"))
        )
        assert len(_accounts(sync.world, nora)) == 1
        assert sync.request(slack, request_id).state is RequestState.MATCHED
        events = sync.store(slack).list_audit(request_id=request_id)
        assert any(e.event == "revert_refused" for e in events)


# -- `smtpmatch serve --demo`: the demo carries a creation through to "matched" -----------------


@pytest.fixture
def demo_bot(slack_api: FakeSlackApi, tmp_path: Path) -> Iterator[str]:
    """`python app.py --http --demo` in its own process, with approvers and a team channel."""
    with demo_bot_process(
        slack_api,
        tmp_path,
        SMTPMATCH_APPROVAL_CHANNEL=APPROVAL_CHANNEL,
        SMTPMATCH_NOTIFY_CHANNEL=NOTIFY_CHANNEL,
        SMTPMATCH_APPROVERS=APPROVER,
        SMTPMATCH_SYNC_POLL_SECONDS="0.2",
    ) as bot:
        yield bot.url


def test_serve_demo_carries_nora_s_account_creation_through_to_matched(
    demo_bot: str, slack_api: FakeSlackApi
) -> None:
    with SlackDriver(f"{demo_bot}/slack/events", slack_api) as driver:
        assert driver.command("nora.new@contoso.com", user_id=REQUESTER).status_code == 200
        name = driver.last_response_url_name
        report = slack_api.wait_for(lambda c: c.method == RESPONSE_URL and c.target == name)
        block_id, button = find_action(report.args["blocks"], ActionId.REQUEST_APPROVAL)
        assert button["text"]["text"] == "Request account creation"
        driver.click(
            ActionId.REQUEST_APPROVAL,
            button["value"],
            REQUESTER,
            channel_id="C_HELPDESK",
            message_ts="1700000000.000001",
            block_id=block_id,
        )
        slack_api.wait_for("views.open")
        driver.submit_view(
            CallbackId.REQUEST_REASON, REQUESTER, {REASON_BLOCK: {REASON_ACTION: "new starter"}}
        )
        slack_api.wait_for(lambda c: bool(slack_api.messages(APPROVAL_CHANNEL)), timeout=30)
        [message] = slack_api.messages(APPROVAL_CHANNEL)
        assert "create a new AD account" in message.all_text

        assert driver.press(message, ActionId.APPROVE, APPROVER).status_code == 200

        slack_api.wait_for(
            lambda c: any(
                "matched" in m.all_text and "nora.new@contoso.com" in m.all_text
                for m in slack_api.messages(NOTIFY_CHANNEL)
            ),
            timeout=30,
        )
        wait_until(lambda: "Matched" in slack_api.message(APPROVAL_CHANNEL, message.ts).all_text)
