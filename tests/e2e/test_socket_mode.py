"""The bot in Socket Mode, end to end: the real Bolt app and slack_sdk's built-in Socket Mode
client, connected over a WebSocket to the fake Slack, with the demo directories (contoso.com).

The first group runs the bot in this process, as ``serve()`` does (``build_bot`` then
``SocketModeHandler(bot.app, app_token)``, with ``connect()`` instead of the blocking
``start()``); the second runs ``smtpmatch serve`` as a separate process and checks which mode
it picks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError

from bot.server import Bot, build_bot
from bot.settings import Settings
from bot.slack_views.ids import ActionId
from bot.store.repository import Store
from tests.support.slack_fake import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlackApi,
    ResponsePost,
    SlackDriver,
    SocketAck,
    block_actions_payload,
    slash_command_payload,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
APPROVAL_CHANNEL = "C0APPROVALS"
APPROVER = "U0APPROVER"
REQUESTER = "U0HELPDESK"
OUTSIDER = "U0RANDOM"
ELIGIBLE = "jane@contoso.com"  # in both demo directories, eligible for an SMTP match

# Slack wants the ack within 3 s; the bot acks before any directory lookup, so far sooner.
ACK_BUDGET_SECONDS = 1.0


@dataclass
class SocketModeBot:
    """A bot connected to the fake Slack in Socket Mode, and Slack's side of the socket."""

    bot: Bot
    handler: SocketModeHandler
    slack: FakeSlackApi

    def command(self, text: str, user: str = REQUESTER, name: str = "command") -> str:
        """Type ``/smtpmatch TEXT``; returns the envelope id (replies go to ``name``)."""
        payload = slash_command_payload(
            self.slack, text, user_id=user, channel_id="C_HELPDESK", response_url_name=name
        )
        return self.slack.send_envelope("slash_commands", payload)

    def click(self, action: ActionId, value: str, user: str, name: str = "click") -> str:
        """Press a button on a message in the approvers' channel; returns the envelope id."""
        payload = block_actions_payload(
            self.slack,
            action.value,
            value,
            user,
            channel_id=APPROVAL_CHANNEL,
            message_ts="1700000000.000100",
            response_url_name=name,
        )
        return self.slack.send_envelope("interactive", payload)

    def reply(self, name: str, timeout: float = 10.0) -> ResponsePost:
        """The first post to the response_url ``name``."""
        self.slack.wait_for(
            lambda c: c.method == "response_url" and c.target == name, timeout=timeout
        )
        return self.slack.responses(name)[0]


def socket_settings(slack: FakeSlackApi, database: Path, app_token: str = APP_TOKEN) -> Settings:
    """Settings for Socket Mode against the fake; nothing is read from the environment."""
    return Settings(
        _env_file=None,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_app_token=app_token,
        slack_api_url=slack.url,
        smtpmatch_approval_channel=APPROVAL_CHANNEL,
        smtpmatch_approvers=(APPROVER,),
        smtpmatch_database_url=f"sqlite:///{database}",
    )


@contextmanager
def built_bot(settings: Settings) -> Iterator[Bot]:
    """The bot as ``serve()`` builds it, on a migrated SQLite store; stopped afterwards."""
    store = Store(settings.database_url)
    store.migrate()
    bot = build_bot(settings, demo=True, store=store)
    bot.start_background()
    try:
        yield bot
    finally:
        bot.stop()
        store.close()


def close_handler(handler: SocketModeHandler, slack: FakeSlackApi) -> None:
    """Close the Socket Mode client without waiting out its 3 s receive timeout.

    Closing only from the app's side leaves its receiver blocked in ``recv`` until the timeout;
    Slack's close frame ends the read at once. Auto-reconnect goes off first, so that close
    does not bring the connection back.
    """
    handler.client.auto_reconnect_enabled = False
    slack.close_sockets()
    handler.close()


@pytest.fixture
def socket_bot(slack_api: FakeSlackApi, tmp_path: Path) -> Iterator[SocketModeBot]:
    """The bot, connected in Socket Mode with the app token."""
    with built_bot(socket_settings(slack_api, tmp_path / "bot.db")) as bot:
        handler = SocketModeHandler(bot.app, APP_TOKEN)
        handler.connect()
        try:
            slack_api.wait_for_socket(timeout=30)
            yield SocketModeBot(bot, handler, slack_api)
        finally:
            close_handler(handler, slack_api)


def assert_prompt(ack: SocketAck) -> None:
    assert ack.elapsed is not None
    assert ack.elapsed < ACK_BUDGET_SECONDS, f"acked after {ack.elapsed:.3f}s"


# ---------------------------------------------------------------------------------------
# The bot in this process
# ---------------------------------------------------------------------------------------


def test_the_bot_opens_its_connection_with_the_app_token_and_is_greeted(
    socket_bot: SocketModeBot,
) -> None:
    opens = socket_bot.slack.calls("apps.connections.open")

    assert [call.ok for call in opens] == [True]
    assert [c.closed for c in socket_bot.slack.sockets()] == [False]
    assert socket_bot.handler.client.is_connected()


def test_a_slash_command_is_acked_at_once_and_the_report_follows_at_the_response_url(
    socket_bot: SocketModeBot,
) -> None:
    envelope_id = socket_bot.command(ELIGIBLE, name="check-jane")

    ack = socket_bot.slack.wait_for_ack(envelope_id, timeout=30)
    assert_prompt(ack)
    assert ack.text == f"Checking {ELIGIBLE} in Active Directory and Entra ID…"
    assert ack.payload is not None and ack.payload["response_type"] == "ephemeral"

    report = socket_bot.reply("check-jane", timeout=15)
    assert report.response_type == "ephemeral"
    assert report.text == f"{ELIGIBLE}: eligible"
    assert "Eligible" in report.all_text
    assert "jane.doe" in report.all_text
    assert report.at > ack.at


def test_help_is_answered_in_the_ack_itself(socket_bot: SocketModeBot) -> None:
    envelope_id = socket_bot.command("help", name="help")

    ack = socket_bot.slack.wait_for_ack(envelope_id, timeout=30)

    assert_prompt(ack)
    assert ack.text == "smtpmatch help"
    assert "/smtpmatch" in ack.all_text
    assert socket_bot.slack.responses("help") == []


def test_approve_on_an_unknown_request_by_a_non_approver_is_acked_and_refused(
    socket_bot: SocketModeBot,
) -> None:
    envelope_id = socket_bot.click(ActionId.APPROVE, "nope", OUTSIDER, name="approve-nope")

    ack = socket_bot.slack.wait_for_ack(envelope_id, timeout=30)
    assert_prompt(ack)
    assert ack.payload is None  # a bare ack: the refusal goes to the response_url

    refusal = socket_bot.reply("approve-nope")
    assert refusal.response_type == "ephemeral"
    assert not refusal.replace_original
    assert refusal.text == "This request does not exist (any more)."
    assert socket_bot.slack.calls("chat.update") == []
    assert socket_bot.slack.messages() == []


def test_the_bot_reconnects_when_slack_asks_it_to_refresh_and_keeps_answering(
    socket_bot: SocketModeBot,
) -> None:
    socket_bot.slack.send_disconnect("refresh_requested")

    second = socket_bot.slack.wait_for_socket(timeout=10, count=2)
    envelope_id = socket_bot.command("help")
    ack = socket_bot.slack.wait_for_ack(envelope_id, timeout=30)

    first, reconnected = socket_bot.slack.sockets()
    assert reconnected is second and ack.connection == second.id
    assert first.wait_closed(timeout=30)
    assert [c.ok for c in socket_bot.slack.calls("apps.connections.open")] == [True, True]


def test_a_refused_app_token_fails_start_up_at_once_instead_of_hanging(
    slack_api: FakeSlackApi, tmp_path: Path
) -> None:
    settings = socket_settings(slack_api, tmp_path / "bot.db", app_token="xapp-1-revoked")
    with built_bot(settings) as bot:
        handler = SocketModeHandler(bot.app, "xapp-1-revoked")
        started = time.monotonic()
        try:
            with pytest.raises(SlackApiError) as refused:
                handler.connect()
        finally:
            handler.close()

    assert time.monotonic() - started < 5
    assert refused.value.response["error"] == "invalid_auth"
    assert slack_api.sockets() == []


def test_the_bot_token_cannot_open_a_socket_mode_connection(
    slack_api: FakeSlackApi, tmp_path: Path
) -> None:
    with built_bot(socket_settings(slack_api, tmp_path / "bot.db")) as bot:
        handler = SocketModeHandler(bot.app, BOT_TOKEN)
        try:
            with pytest.raises(SlackApiError) as refused:
                handler.connect()
        finally:
            handler.close()

    assert refused.value.response["error"] == "not_allowed_token_type"
    assert slack_api.sockets() == []


# ---------------------------------------------------------------------------------------
# `smtpmatch serve` as a process: which mode it picks
# ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_env(slack: FakeSlackApi, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of an admin's ``smtpmatch serve``: Slack is the fake, data in tmp."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LDAP_", "AZURE_", "GRAPH_", "SMTPMATCH_", "SLACK_"))
    }
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.url,
        SMTPMATCH_DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}",
    )
    env.update(extra)
    return env


@dataclass
class Served:
    """A running ``smtpmatch serve`` process."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def healthz(self, timeout: float = 30.0) -> dict[str, Any]:
        """Poll ``GET /healthz`` until it answers (the process must stay up meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"serve exited early:\n{self.output}"
            try:
                response = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
                if response.status_code == 200:
                    return dict(response.json())
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"no /healthz after {timeout}s:\n{self.output}"
            time.sleep(0.1)


@contextmanager
def serving(env: dict[str, str], tmp_path: Path, *args: str) -> Iterator[Served]:
    """Run ``python -m bot.cli serve --demo --port N ARGS``; terminated afterwards."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--demo", "--port", str(port), *args],
            env=env,
            cwd=tmp_path,  # no stray .env file
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Served(process, port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_serve_runs_in_socket_mode_when_an_app_token_is_set(
    slack_api: FakeSlackApi, tmp_path: Path
) -> None:
    env = serve_env(slack_api, tmp_path, SLACK_APP_TOKEN=APP_TOKEN)
    with serving(env, tmp_path) as served:
        slack_api.wait_for_socket(timeout=30)
        health = served.healthz()
        payload = slash_command_payload(slack_api, "help", response_url_name="help")
        ack = slack_api.wait_for_ack(slack_api.send_envelope("slash_commands", payload))
        # The side server is the operator's, as in HTTP mode: readiness (the database is
        # migrated and both directories answered), liveness and metrics; no Slack endpoint.
        base = f"http://127.0.0.1:{served.port}"
        live = httpx.get(f"{base}/healthz/live", timeout=5)
        scraped = httpx.get(f"{base}/metrics", timeout=5)
        events = httpx.post(f"{base}/slack/events", content=b"{}", timeout=5)

    assert health == {"status": "ok"}  # readiness, not merely "the process is up"
    assert ack.text == "smtpmatch help"
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    assert scraped.status_code == 200 and "smtpmatch_checks_total" in scraped.text
    assert events.status_code == 404


@pytest.mark.parametrize(
    ("app_token", "args"),
    [(None, ()), (APP_TOKEN, ("--http",))],
    ids=["without-an-app-token", "with-http-flag"],
)
def test_serve_runs_http_without_an_app_token_or_with_the_http_flag(
    slack_api: FakeSlackApi, tmp_path: Path, app_token: str | None, args: tuple[str, ...]
) -> None:
    env = serve_env(slack_api, tmp_path, **({"SLACK_APP_TOKEN": app_token} if app_token else {}))
    with serving(env, tmp_path, *args) as served:
        health = served.healthz()
        with SlackDriver(f"http://127.0.0.1:{served.port}/slack/events", slack_api) as slack:
            response = slack.command("help")

    assert health == {"status": "ok"}
    assert response.status_code == 200
    assert response.json()["text"] == "smtpmatch help"
    assert slack_api.calls("apps.connections.open") == []
    assert slack_api.sockets() == []


def test_serve_exits_with_the_error_when_slack_refuses_the_app_token(
    slack_api: FakeSlackApi, tmp_path: Path
) -> None:
    env = serve_env(slack_api, tmp_path, SLACK_APP_TOKEN="xapp-1-revoked")
    with serving(env, tmp_path) as served:
        code = served.process.wait(timeout=30)

    assert code == 2  # a configuration problem, told in one line
    assert "SLACK_APP_TOKEN: Slack refused the app token (invalid_auth)" in served.output
    assert "Traceback" not in served.output
    assert "xapp-1-revoked" not in served.output
    assert slack_api.sockets() == []
