"""Who may use the bot (issue 15 M5), end to end through signed requests to the real Bolt
app with the demo directories: the workspace is pinned by ``SLACK_TEAM_ID``, checks and
requests are limited to ``SMTPMATCH_REQUESTERS``, App Home shows nobody else's requests, and
fault replies name the directory and a reference but never a host or a bind DN."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.bootstrap import build_bot
from bot.directories.demo import build_demo_directories
from bot.errors import DirectoryUnavailable
from bot.server import build_http_app
from bot.services.check import Directories
from bot.settings import Settings
from bot.slack_views.ids import REASON_ACTION, REASON_BLOCK, ActionId, CallbackId
from bot.store.repository import Store
from tests.support.slack_fake import (
    BOT_TOKEN,
    SIGNING_SECRET,
    TEAM_ID,
    FakeSlackApi,
    SlackDriver,
    find_action,
    rendered_text,
    serve_asgi,
)

APPROVALS = "C0APPROVALS"
APPROVER = "U0APPROVER"
REQUESTER = "U0HELPDESK"
OUTSIDER = "U0OUTSIDER"
GROUP = "S0REQUESTERS"
ADDRESS = "jane@contoso.com"


@dataclass
class Running:
    driver: SlackDriver
    slack: FakeSlackApi
    store: Store

    def command(self, text: str, user: str) -> tuple[Any, dict[str, Any] | None]:
        """`/smtpmatch TEXT`: the HTTP answer (the ack) and the report posted later, if any."""
        response = self.driver.command(text, user_id=user)
        assert response.status_code == 200, response.text
        name = self.driver.last_response_url_name
        try:
            call = self.slack.wait_for(
                lambda c: c.method == "response_url" and c.target == name, timeout=5
            )
        except TimeoutError:
            return response, None
        return response, call.args


@pytest.fixture
def run(slack_api: FakeSlackApi, tmp_path: Any) -> Iterator[Any]:
    @contextlib.contextmanager
    def start(directories: Directories | None = None, **overrides: Any) -> Iterator[Running]:
        settings = Settings(
            _env_file=None,
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack_api.url,
            smtpmatch_approval_channel=APPROVALS,
            smtpmatch_approvers=(APPROVER,),
            smtpmatch_database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        ).model_copy(update=overrides)
        store = Store(settings.database_url)
        store.migrate()
        bot = build_bot(settings, demo=True, store=store, directories=directories)
        try:
            with (
                serve_asgi(build_http_app(bot)) as served,
                SlackDriver(served.events_url, slack_api) as driver,
            ):
                yield Running(driver, slack_api, store)
        finally:
            bot.stop()
            store.close()

    yield start


def _events(store: Store) -> list[str]:
    return [e.event for e in store.list_audit()]


def test_a_request_from_another_workspace_is_refused_and_nothing_runs(run: Any) -> None:
    with run(slack_team_id="T0OURS") as bot:
        response, report = bot.command(ADDRESS, REQUESTER)
        assert "serves another Slack workspace" in response.json()["text"]
        assert report is None  # no lookup, no report
        assert (
            bot.driver.click(
                ActionId.REQUEST_APPROVAL, "1", REQUESTER, channel_id="C1", message_ts="1.1"
            ).status_code
            == 200
        )
        assert bot.driver.home_opened(REQUESTER).status_code == 200
        with pytest.raises(TimeoutError):
            bot.slack.wait_for(lambda c: c.method in ("views.open", "views.publish"), timeout=1)
        assert bot.slack.responses() == []
        assert _events(bot.store) == []


def test_the_pinned_workspace_is_served(run: Any) -> None:
    with run(slack_team_id=TEAM_ID) as bot:
        _, report = bot.command(ADDRESS, REQUESTER)
        assert report is not None and report["text"] == f"{ADDRESS}: eligible"


def test_only_requesters_may_check_and_request(run: Any) -> None:
    with run(smtpmatch_requesters=(REQUESTER,)) as bot:
        response, report = bot.command(ADDRESS, OUTSIDER)
        assert "not one of the people allowed" in response.json()["text"]
        assert "SMTPMATCH_REQUESTERS" in response.json()["text"]
        assert report is None
        assert "checked" not in _events(bot.store)
        _, report = bot.command(ADDRESS, REQUESTER)
        assert report is not None and report["text"] == f"{ADDRESS}: eligible"
        assert bot.command("help", OUTSIDER)[0].status_code == 200  # help stays open


def test_a_requester_group_is_resolved_at_click_time(run: Any) -> None:
    bot_slack: FakeSlackApi
    with run(smtpmatch_requesters=(GROUP,)) as bot:
        bot_slack = bot.slack
        bot_slack.seed_usergroup(GROUP, [REQUESTER])
        _, refused = bot.command(ADDRESS, OUTSIDER)
        assert refused is not None and "not one of the people allowed" in refused["text"]
        _, report = bot.command(ADDRESS, REQUESTER)
        assert report is not None and report["text"] == f"{ADDRESS}: eligible"
        # Removed from the group after the check: the report's button no longer works.
        bot_slack.seed_usergroup(GROUP, [])
        block_id, button = find_action(report["blocks"], ActionId.REQUEST_APPROVAL)
        bot.driver.click(
            ActionId.REQUEST_APPROVAL,
            button["value"],
            REQUESTER,
            channel_id="C1",
            message_ts="1.1",
            block_id=block_id,
            response_url_name="click",
        )
        told = bot_slack.wait_for(
            lambda c: c.method == "response_url" and c.target == "click", timeout=10
        )
        assert "not one of the people allowed" in rendered_text(told.args["blocks"])
        assert bot_slack.views_opened() == []
        assert bot.store.list_requests() == []


def test_app_home_shows_nobody_elses_requests(run: Any) -> None:
    with run() as bot:
        _, report = bot.command(ADDRESS, REQUESTER)
        assert report is not None
        block_id, button = find_action(report["blocks"], ActionId.REQUEST_APPROVAL)
        bot.driver.click(
            ActionId.REQUEST_APPROVAL,
            button["value"],
            REQUESTER,
            channel_id="C1",
            message_ts="1.1",
            block_id=block_id,
        )
        bot.slack.wait_for("views.open", timeout=30)
        bot.driver.submit_view(
            CallbackId.REQUEST_REASON, REQUESTER, {REASON_BLOCK: {REASON_ACTION: "x"}}
        )
        bot.slack.wait_for(lambda c: bool(bot.slack.messages(APPROVALS)), timeout=30)
        [request] = bot.store.list_requests()

        homes = {}
        for user in (REQUESTER, OUTSIDER, APPROVER):
            bot.driver.home_opened(user)
            bot.slack.wait_for(
                lambda c, u=user: c.method == "views.publish" and c.args.get("user_id") == u,
                timeout=10,
            )
            homes[user] = rendered_text(bot.slack.published_home(user)["blocks"])
        assert request.id in homes[REQUESTER]
        assert request.id in homes[APPROVER] and "Awaiting you" in homes[APPROVER]
        assert request.id not in homes[OUTSIDER]
        assert ADDRESS not in homes[OUTSIDER] and "Recent results" not in homes[OUTSIDER]


class _Unreachable:
    """An AD adapter whose every call fails the way ldap3 reports a dead DC and a bad bind."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise DirectoryUnavailable(
                "Active Directory",
                "dc1.corp.example:636",
                "bind as CN=svc-smtpmatch,OU=Service,DC=corp,DC=example failed: "
                "ldaps://dc1.corp.example:636 refused the connection",
            )

        return fail


def test_a_fault_reply_names_the_directory_and_a_reference_but_no_host_or_bind_dn(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, cloud, policy = build_demo_directories()
    dirs = Directories(onprem=_Unreachable(), cloud=cloud, policy=policy)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING), run(directories=dirs) as bot:
        _, reply = bot.command(ADDRESS, REQUESTER)
    assert reply is not None
    shown = reply["text"] + rendered_text(reply["blocks"])
    assert "Active Directory could not be reached" in shown
    assert "dc1.corp" not in shown and "CN=svc" not in shown and "636" not in shown
    reference = shown.split("ref ")[1][:8]
    assert any(reference in r.getMessage() and "dc1.corp" in r.getMessage() for r in caplog.records)


def test_audit_events_record_the_actors_name_next_to_their_id(run: Any, capsys: Any) -> None:
    with run() as bot:
        response = bot.driver.command(ADDRESS, user_id=REQUESTER, user_name="helpdesk.hannah")
        assert response.status_code == 200
        name = bot.driver.last_response_url_name
        call = bot.slack.wait_for(
            lambda c: c.method == "response_url" and c.target == name, timeout=10
        )
        block_id, button = find_action(call.args["blocks"], ActionId.REQUEST_APPROVAL)
        bot.driver.click(
            ActionId.REQUEST_APPROVAL,
            button["value"],
            REQUESTER,
            channel_id="C1",
            message_ts="1.1",
            block_id=block_id,
            user_name="helpdesk.hannah",
        )
        bot.slack.wait_for("views.open", timeout=30)
        bot.driver.submit_view(
            CallbackId.REQUEST_REASON,
            REQUESTER,
            {REASON_BLOCK: {REASON_ACTION: "x"}},
            user_name="helpdesk.hannah",
        )
        bot.slack.wait_for(lambda c: bool(bot.slack.messages(APPROVALS)), timeout=30)
        events = {e.event: e for e in bot.store.list_audit()}
    assert events["checked"].actor == REQUESTER
    assert events["checked"].details["actor_name"] == "helpdesk.hannah"
    assert events["requested"].details["actor_name"] == "helpdesk.hannah"
