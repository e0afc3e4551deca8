"""The whole bot, end to end: the real Bolt app served over HTTP and driven by signed Slack
requests, against the fake Slack Web API, the Samba AD DC and the HTTPS Graph emulator."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from bot.directories.ad import ActiveDirectory
from bot.directories.entra import EntraDirectory
from bot.ports import CloudDirectory, OnPremDirectory
from bot.rules.engine import Policy
from bot.server import Bot, build_bot, build_http_app
from bot.services.check import Directories
from bot.settings import Settings
from bot.slack_views.ids import REASON_ACTION, REASON_BLOCK, ActionId, CallbackId
from bot.store.repository import Store
from tests.support.graph_emulator import GraphEmulator
from tests.support.samba import AdSandbox
from tests.support.slack_fake import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlackApi,
    SlackDriver,
    find_action,
    serve_asgi,
)

APPROVAL_CHANNEL = "C0APPROVALS"
NOTIFY_CHANNEL = "C0NOTIFY"
REQUESTER = "U0HELPDESK"
APPROVER = "U0APPROVER"
GROUP = "S0APPROVERS"
GROUP_MEMBER = "U0GROUPIE"
OUTSIDER = "U0RANDOM"


class Slow:
    """A directory adapter whose every call first waits ``delay`` seconds."""

    def __init__(self, inner: object, delay: float) -> None:
        self._inner = inner
        self._delay = delay

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            time.sleep(self._delay)
            return target(*args, **kwargs)

        return call


@dataclass
class Seeded:
    """One user present in both directories, ready to be matched."""

    address: str
    dn: str
    cloud_id: str


@dataclass
class BotWorld:
    """Everything an end-to-end test touches."""

    ad: AdSandbox
    graph: GraphEmulator
    slack: FakeSlackApi
    settings: Settings
    store_url: str
    extra: dict[str, Any] = field(default_factory=dict)
    bots: list[Bot] = field(default_factory=list)

    def seed(self, local: str = "jane", **cloud: Any) -> Seeded:
        """An AD user without mail and a cloud user with a mailbox for the same address."""
        address = self.ad.address(local)
        dn = self.ad.add_user(self.ad.sam(local), upn=address, display_name=local.title())
        user = self.graph.state.add_user(
            address,
            mail=address,
            proxy_addresses=[f"SMTP:{address}"],
            **cloud,
        )
        return Seeded(address, dn, user.id)

    def directories(self) -> Directories:
        return Directories(
            onprem=ActiveDirectory.from_settings(self.settings),
            cloud=EntraDirectory.from_settings(self.settings, ca_file=self.graph.ca_file),
            policy=Policy(sync_scope=(self.ad.ou,)),
        )

    @contextlib.contextmanager
    def running(
        self,
        *,
        slow: float = 0.0,
        onprem: Callable[[OnPremDirectory], OnPremDirectory] | None = None,
        **overrides: Any,
    ) -> Iterator[Driver]:
        """Start a bot (a fresh process-like instance on the same database) and drive it.

        Args:
            slow: seconds every directory call waits first (a slow DC or Graph).
            onprem: wraps the bot's Active Directory (an outage drill).
            overrides: settings to change for this bot.
        """
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        store = Store(self.store_url)
        store.migrate()
        dirs = self.directories()
        if slow:
            dirs = Directories(
                onprem=cast(OnPremDirectory, Slow(dirs.onprem, slow)),
                cloud=cast(CloudDirectory, Slow(dirs.cloud, slow)),
                policy=dirs.policy,
            )
        if onprem is not None:
            dirs = Directories(onprem=onprem(dirs.onprem), cloud=dirs.cloud, policy=dirs.policy)
        bot = build_bot(settings, directories=dirs, store=store)
        self.bots.append(bot)
        bot.start_background()
        try:
            with (
                serve_asgi(build_http_app(bot)) as served,
                SlackDriver(served.events_url, self.slack) as driver,
            ):
                yield Driver(driver, self.slack, bot)
        finally:
            bot.stop()
            store.close()


@dataclass
class Driver:
    """A person's actions in Slack, as signed requests to one running bot."""

    slack_driver: SlackDriver
    slack: FakeSlackApi
    bot: Bot

    def check(self, text: str, user: str = REQUESTER) -> dict[str, Any]:
        """Type `/smtpmatch TEXT`; returns the report message posted to the response_url."""
        response = self.slack_driver.command(text, user_id=user)
        assert response.status_code == 200, response.text
        name = self.slack_driver.last_response_url_name
        call = self.slack.wait_for(
            lambda c: c.method == "response_url" and c.target == name, timeout=30
        )
        return call.args

    def request_approval(self, report: dict[str, Any], reason: str = "joins on-prem") -> Any:
        """Press "Request approval" on a report, fill in the modal; returns the posted request."""
        block_id, button = find_action(report["blocks"], ActionId.REQUEST_APPROVAL)
        before = len(self.slack.messages(APPROVAL_CHANNEL))
        response = self.slack_driver.click(
            ActionId.REQUEST_APPROVAL,
            button["value"],
            REQUESTER,
            channel_id="C_HELPDESK",
            message_ts="1700000000.000001",
            block_id=block_id,
        )
        assert response.status_code == 200
        self.slack.wait_for("views.open")
        response = self.slack_driver.submit_view(
            CallbackId.REQUEST_REASON, REQUESTER, {REASON_BLOCK: {REASON_ACTION: reason}}
        )
        assert response.status_code == 200
        self.slack.wait_for(
            lambda c: len(self.slack.messages(APPROVAL_CHANNEL)) > before, timeout=30
        )
        return self.slack.messages(APPROVAL_CHANNEL)[-1]

    def press(self, message: Any, action: ActionId, user: str) -> None:
        """Press a button of a message in the approvers' channel."""
        response = self.slack_driver.press(message, action, user)
        assert response.status_code == 200, response.text

    def request_id(self, message: Any) -> str:
        _, button = find_action(message.blocks, ActionId.APPROVE)
        return str(button["value"])


@pytest.fixture
def world(
    ad: AdSandbox,
    graph: GraphEmulator,
    slack_api: FakeSlackApi,
    samba_dc: Any,
    tmp_path: Any,
) -> Iterator[BotWorld]:
    """A bot world on SQLite; tests that need PostgreSQL use ``world_on`` with ``store_url``."""
    yield from _world(ad, graph, slack_api, samba_dc, f"sqlite:///{tmp_path / 'bot.db'}")


def _world(
    ad: AdSandbox, graph: GraphEmulator, slack_api: FakeSlackApi, samba_dc: Any, store_url: str
) -> Iterator[BotWorld]:
    slack_api.seed_usergroup(GROUP, [GROUP_MEMBER])
    settings = Settings(
        _env_file=None,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack_api.url,
        smtpmatch_approval_channel=APPROVAL_CHANNEL,
        smtpmatch_notify_channel=NOTIFY_CHANNEL,
        smtpmatch_approvers=(APPROVER, GROUP),
        ldap_url=(samba_dc.ldaps_url,),
        ldap_bind_dn=samba_dc.admin_dn,
        ldap_bind_password=samba_dc.admin_password,
        ldap_base_dn=samba_dc.base_dn,
        ldap_ca_file=samba_dc.ca_file,
        ldap_timeout_seconds=5,
        smtpmatch_sync_scope=(ad.ou,),
        smtpmatch_database_url=store_url,
        smtpmatch_sync_poll_seconds=1,
        **graph.settings_overrides(),
    )
    world = BotWorld(ad, graph, slack_api, settings, store_url)
    yield world
    for bot in world.bots:
        bot.stop()


@pytest.fixture
def world_on(
    ad: AdSandbox, graph: GraphEmulator, slack_api: FakeSlackApi, samba_dc: Any, store_url: str
) -> Iterator[BotWorld]:
    """A bot world on each database (SQLite and PostgreSQL)."""
    yield from _world(ad, graph, slack_api, samba_dc, store_url)


def report_text(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks") or message, ensure_ascii=False)
