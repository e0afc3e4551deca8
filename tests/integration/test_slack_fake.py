"""The Slack test doubles: the fake Web API answers like Slack, the driver signs like Slack.

The first group drives a tiny real Bolt app (served by uvicorn behind Starlette, as the bot
is) with signed requests; the second talks to the fake with the real ``slack_sdk`` clients;
the last checks the Socket Mode WebSocket with a bare client and with slack_sdk's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.starlette import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.webhook import WebhookClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.support.slack import SlackDriverFactory
from tests.support.slack_fake import (
    APP_ID,
    APP_TOKEN,
    BOT_TOKEN,
    RESPONSE_URL,
    SIGNING_SECRET,
    SOCKET_PATH,
    ApiCall,
    FakeSlackApi,
    SlackDriver,
    find_action,
    serve_asgi,
    slack_signature,
    text_of,
)

HELPDESK = "C_HELPDESK"


# ---------------------------------------------------------------------------------------
# A tiny real Bolt app
# ---------------------------------------------------------------------------------------


@dataclass
class Seen:
    """What the Bolt app's listeners received."""

    clicks: list[tuple[str, str, str]] = field(default_factory=list)
    submissions: list[tuple[str, str, str]] = field(default_factory=list)


def report_blocks(address: str) -> list[dict[str, Any]]:
    """A report-like message with two buttons."""
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "SMTP match report"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{address}* is eligible"}},
        {
            "type": "actions",
            "block_id": "decision",
            "elements": [
                {
                    "type": "button",
                    "action_id": "request_approval",
                    "text": {"type": "plain_text", "text": "Request approval"},
                    "value": "req-1",
                },
                {
                    "type": "button",
                    "action_id": "approve",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": "req-1",
                },
            ],
        },
    ]


def build_bolt_app(api: FakeSlackApi, seen: Seen) -> App:
    """A Bolt app wired like the bot: WebClient on the fake, retrying on 429."""
    client = WebClient(
        token=BOT_TOKEN,
        base_url=api.url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    # The token comes from the client; passing token= as well only makes Bolt warn.
    app = App(signing_secret=SIGNING_SECRET, client=client)

    @app.command("/smtpmatch")
    def check(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        address = command["text"]
        respond(text=f"Checking {address}...")
        client.chat_postMessage(
            channel=command["channel_id"],
            text=f"Report for {address}",
            blocks=report_blocks(address),
        )

    @app.command("/smtpmatch-reason")
    def ask_reason(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        ack()
        client.views_open(
            trigger_id=command["trigger_id"],
            view={
                "type": "modal",
                "callback_id": "reason_modal",
                "private_metadata": "req-7",
                "title": {"type": "plain_text", "text": "Reject"},
                "submit": {"type": "plain_text", "text": "Reject"},
                "blocks": [
                    {
                        "type": "input",
                        "block_id": "reason",
                        "label": {"type": "plain_text", "text": "Reason"},
                        "element": {"type": "plain_text_input", "action_id": "reason_input"},
                    }
                ],
            },
        )

    @app.action("request_approval")
    def request_approval(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        seen.clicks.append((action["action_id"], action["value"], body["user"]["id"]))
        client.chat_update(
            channel=body["container"]["channel_id"],
            ts=body["container"]["message_ts"],
            text="Approval requested",
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "Approval requested"}}],
        )

    @app.action("approve")
    def approve(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        seen.clicks.append((action["action_id"], action["value"], body["user"]["id"]))
        respond(replace_original=True, text=f"Approved by <@{body['user']['id']}>")

    @app.view("reason_modal")
    def reason_submitted(ack: Ack, view: dict[str, Any], body: dict[str, Any]) -> None:
        ack()
        reason = view["state"]["values"]["reason"]["reason_input"]["value"]
        seen.submissions.append((reason, view["private_metadata"], body["user"]["id"]))

    @app.event("app_home_opened")
    def home(event: dict[str, Any], client: WebClient) -> None:
        client.views_publish(
            user_id=event["user"],
            view={
                "type": "home",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": "Your requests"}}
                ],
            },
        )

    return app


def starlette_app(bolt: App) -> Starlette:
    """The HTTP surface the bot serves: POST /slack/events and GET /healthz."""
    handler = SlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


@dataclass
class RunningBot:
    """The served Bolt app, what its listeners saw, and a driver for it."""

    slack: SlackDriver
    seen: Seen


@pytest.fixture
def bot(slack_api: FakeSlackApi, slack_driver: SlackDriverFactory) -> Iterator[RunningBot]:
    """The tiny Bolt app served over HTTP; the fake starts empty (Bolt's auth.test cleared)."""
    seen = Seen()
    with serve_asgi(starlette_app(build_bolt_app(slack_api, seen))) as served:
        slack_api.clear()
        yield RunningBot(slack=slack_driver(served.events_url), seen=seen)


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    """Poll ``condition()`` until it is truthy (listeners run after the ack)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------
# Driving a real Bolt app
# ---------------------------------------------------------------------------------------


def test_a_signed_command_is_acknowledged_then_answered_via_response_url_and_web_api(
    bot: RunningBot, slack_api: FakeSlackApi
) -> None:
    response = bot.slack.command("jane@contoso.com")

    assert response.status_code == 200
    slack_api.wait_for(RESPONSE_URL)
    post = slack_api.wait_for("chat.postMessage")
    [answer] = slack_api.responses(bot.slack.last_response_url_name)
    assert answer.text == "Checking jane@contoso.com..."
    assert post.args["channel"] == HELPDESK
    [message] = slack_api.messages(HELPDESK)
    assert "jane@contoso.com* is eligible" in message.all_text
    assert "Request approval" in text_of(message.blocks)
    assert bot.slack.last.kind == "command"
    assert bot.slack.last.status == 200
    assert bot.slack.last.elapsed < 3.0


def test_a_forged_signature_is_refused_and_nothing_is_posted(
    bot: RunningBot, slack_api: FakeSlackApi
) -> None:
    response = bot.slack.forged().command("jane@contoso.com")

    assert response.status_code == 401
    time.sleep(0.3)
    assert slack_api.calls() == []
    assert bot.slack.last.status == 401


def test_a_request_signed_six_minutes_ago_is_refused_as_a_replay(
    bot: RunningBot, slack_api: FakeSlackApi
) -> None:
    response = bot.slack.replayed(6 * 60).command("jane@contoso.com")

    assert response.status_code == 401
    time.sleep(0.3)
    assert slack_api.calls() == []


def test_an_unsigned_raw_request_is_refused(bot: RunningBot) -> None:
    body = b"command=%2Fsmtpmatch&text=jane%40contoso.com"

    response = bot.slack.send_raw(body, {"Content-Type": "application/x-www-form-urlencoded"})

    assert response.status_code == 401
    assert bot.slack.unsigned().command("jane@contoso.com").status_code == 401


def test_a_button_click_reaches_the_action_handler_with_its_value(
    bot: RunningBot, slack_api: FakeSlackApi
) -> None:
    bot.slack.command("jane@contoso.com")
    slack_api.wait_for("chat.postMessage")
    [message] = slack_api.messages(HELPDESK)

    response = bot.slack.press(message, "request_approval", "U_HELP1")

    assert response.status_code == 200
    slack_api.wait_for("chat.update")
    assert bot.seen.clicks == [("request_approval", "req-1", "U_HELP1")]
    updated = slack_api.message(HELPDESK, message.ts)
    assert updated.edited
    assert updated.text == "Approval requested"
    assert text_of(updated.blocks) == "Approval requested"


def test_a_click_built_by_hand_carries_the_value_given(
    bot: RunningBot, slack_api: FakeSlackApi
) -> None:
    response = bot.slack.click(
        "request_approval", "req-42", "U_APPROVER1", channel_id=HELPDESK, message_ts="1.000100"
    )

    assert response.status_code == 200
    wait_until(lambda: bot.seen.clicks)
    assert bot.seen.clicks == [("request_approval", "req-42", "U_APPROVER1")]


def test_respond_with_replace_original_updates_the_clicked_message(
    bot: RunningBot, slack_api: FakeSlackApi
) -> None:
    bot.slack.command("jane@contoso.com")
    slack_api.wait_for("chat.postMessage")
    [message] = slack_api.messages(HELPDESK)

    bot.slack.press(message, "approve", "U_APPROVER1")
    name = bot.slack.last_response_url_name

    slack_api.wait_for(lambda call: call.method == RESPONSE_URL and call.target == name)
    [answer] = slack_api.responses(name)
    assert answer.replace_original
    assert slack_api.message(HELPDESK, message.ts).text == "Approved by <@U_APPROVER1>"


def test_a_view_submission_reaches_its_handler_with_values_and_metadata(
    bot: RunningBot, slack_api: FakeSlackApi
) -> None:
    bot.slack.command("", command="/smtpmatch-reason")
    slack_api.wait_for("views.open")
    [modal] = slack_api.views_opened()
    assert modal["callback_id"] == "reason_modal"

    response = bot.slack.submit_view(
        "reason_modal", "U_APPROVER1", {"reason": {"reason_input": "wrong person"}}
    )

    assert response.status_code == 200
    wait_until(lambda: bot.seen.submissions)
    assert bot.seen.submissions == [("wrong person", "req-7", "U_APPROVER1")]


def test_an_app_home_opened_event_gets_the_home_tab_published(
    bot: RunningBot, slack_api: FakeSlackApi
) -> None:
    response = bot.slack.home_opened("U_HELP1")

    assert response.status_code == 200
    slack_api.wait_for("views.publish")
    home = slack_api.published_home("U_HELP1")
    assert home is not None
    assert home["type"] == "home"
    assert text_of(home) == "Your requests"


def test_a_rate_limited_post_is_retried_by_the_retry_handler_and_succeeds(
    bot: RunningBot, slack_api: FakeSlackApi
) -> None:
    slack_api.rate_limit_next("chat.postMessage", 1, retry_after=0)

    bot.slack.command("jane@contoso.com")

    slack_api.wait_for("chat.postMessage")
    assert [c.http_status for c in slack_api.calls("chat.postMessage")] == [429, 200]
    assert len(slack_api.messages(HELPDESK)) == 1


def test_the_healthz_route_answers_without_a_signature(bot: RunningBot) -> None:
    base = bot.slack.url.removesuffix("/slack/events")

    assert httpx.get(f"{base}/healthz").text == "ok"


# ---------------------------------------------------------------------------------------
# The driver signs as Slack does
# ---------------------------------------------------------------------------------------


def test_the_driver_signature_is_the_one_slack_sdk_verifies(slack_api: FakeSlackApi) -> None:
    driver = SlackDriver("http://127.0.0.1:9/slack/events", slack_api)
    body = b"token=x&text=jane%40contoso.com"

    headers = driver.signed_headers(body, "application/x-www-form-urlencoded")

    assert headers["X-Slack-Signature"].startswith("v0=")
    assert SignatureVerifier(SIGNING_SECRET).is_valid_request(body, headers)
    assert not SignatureVerifier(SIGNING_SECRET).is_valid_request(
        body, driver.forged().signed_headers(body, "application/x-www-form-urlencoded")
    )
    assert not SignatureVerifier(SIGNING_SECRET).is_valid_request(
        body, driver.replayed().signed_headers(body, "application/x-www-form-urlencoded")
    )
    driver.close()


def test_slack_signature_is_v0_hmac_sha256_of_version_timestamp_and_body() -> None:
    expected = hmac.new(b"secret", b"v0:1700000000:a=b", hashlib.sha256).hexdigest()

    assert slack_signature("secret", "1700000000", b"a=b") == f"v0={expected}"


# ---------------------------------------------------------------------------------------
# The fake Web API, through the real slack_sdk clients
# ---------------------------------------------------------------------------------------


@pytest.fixture
def client(slack_api: FakeSlackApi) -> WebClient:
    """A plain WebClient on the fake, no retries."""
    return WebClient(token=BOT_TOKEN, base_url=slack_api.url)


def test_auth_test_names_the_bot(client: WebClient) -> None:
    answer = client.auth_test()

    assert answer["ok"] is True
    assert answer["user_id"] == "U_SMTPMATCH_BOT"


def test_a_wrong_token_is_refused_with_invalid_auth(slack_api: FakeSlackApi) -> None:
    with pytest.raises(SlackApiError) as refused:
        WebClient(token="xoxb-wrong", base_url=slack_api.url).chat_postMessage(
            channel=HELPDESK, text="hi"
        )

    assert refused.value.response["error"] == "invalid_auth"
    assert slack_api.messages() == []
    [call] = slack_api.calls("chat.postMessage")
    assert not call.ok
    assert "token" not in call.args


def test_a_rate_limited_call_answers_429_with_retry_after(
    slack_api: FakeSlackApi, client: WebClient
) -> None:
    slack_api.rate_limit_next("chat.postMessage", 2, retry_after=3)

    for _ in range(2):
        with pytest.raises(SlackApiError) as limited:
            client.chat_postMessage(channel=HELPDESK, text="hi")
        assert limited.value.response.status_code == 429
        assert limited.value.response.headers["Retry-After"] == "3"
        assert limited.value.response["error"] == "ratelimited"

    assert client.chat_postMessage(channel=HELPDESK, text="hi")["ok"] is True


def test_post_message_returns_unique_increasing_timestamps(client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel=HELPDESK, text=str(i))["ts"] for i in range(3)]

    assert len(set(stamps)) == 3
    assert stamps == sorted(stamps, key=float)
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)


def test_json_and_form_bodies_are_both_recorded_with_blocks_decoded(
    slack_api: FakeSlackApi, client: WebClient
) -> None:
    blocks = report_blocks("jane@contoso.com")

    client.chat_postMessage(channel=HELPDESK, text="json", blocks=blocks)
    client.api_call(
        "chat.postMessage",
        data={"channel": HELPDESK, "text": "form", "blocks": json.dumps(blocks)},
    )

    json_call, form_call = slack_api.calls("chat.postMessage")
    assert "json" in json_call.content_type
    assert "x-www-form-urlencoded" in form_call.content_type
    assert json_call.args["blocks"] == blocks == form_call.args["blocks"]


def test_posting_to_a_user_id_lands_in_the_users_dm(
    slack_api: FakeSlackApi, client: WebClient
) -> None:
    answer = client.chat_postMessage(channel="U_HELP1", text="done")

    assert answer["channel"] == slack_api.dm_channel("U_HELP1")
    assert client.conversations_open(users="U_HELP1")["channel"]["id"] == answer["channel"]
    assert [m.text for m in slack_api.messages(answer["channel"])] == ["done"]


def test_update_keeps_blocks_left_out_and_unknown_messages_are_not_found(
    slack_api: FakeSlackApi, client: WebClient
) -> None:
    ts = client.chat_postMessage(channel=HELPDESK, text="v1", blocks=report_blocks("a@b.c"))["ts"]

    client.chat_update(channel=HELPDESK, ts=ts, text="v2")

    message = slack_api.message(HELPDESK, ts)
    assert message.text == "v2"
    assert message.blocks == report_blocks("a@b.c")
    assert [v["text"] for v in message.versions] == ["v1", "v2"]
    with pytest.raises(SlackApiError) as missing:
        client.chat_update(channel=HELPDESK, ts="1.000001", text="x")
    assert missing.value.response["error"] == "message_not_found"


def test_ephemerals_and_permalinks(slack_api: FakeSlackApi, client: WebClient) -> None:
    ts = client.chat_postMessage(channel=HELPDESK, text="report")["ts"]

    answer = client.chat_postEphemeral(channel=HELPDESK, user="U_HELP1", text="only you")
    link = client.chat_getPermalink(channel=HELPDESK, message_ts=ts)["permalink"]

    assert answer["message_ts"]
    assert [e.text for e in slack_api.ephemerals("U_HELP1")] == ["only you"]
    assert slack_api.ephemerals("U_OTHER") == []
    assert link.endswith(f"/archives/{HELPDESK}/p{ts.replace('.', '')}")


def test_users_info_defaults_to_a_plain_user_and_can_be_seeded(
    slack_api: FakeSlackApi, client: WebClient
) -> None:
    slack_api.seed_user("U_BOSS", real_name="Ada Boss", email="ada@contoso.com", is_admin=True)

    plain = client.users_info(user="U_HELP1")["user"]
    seeded = client.users_info(user="U_BOSS")["user"]

    assert plain["real_name"] == "User U_HELP1"
    assert plain["is_bot"] is False
    assert seeded["real_name"] == "Ada Boss"
    assert seeded["profile"]["email"] == "ada@contoso.com"
    assert seeded["is_admin"] is True


def test_usergroup_members_are_seedable_and_unknown_groups_fail(
    slack_api: FakeSlackApi, client: WebClient
) -> None:
    slack_api.seed_usergroup("S_APPROVERS", ["U_A1", "U_A2"])

    assert client.usergroups_users_list(usergroup="S_APPROVERS")["users"] == ["U_A1", "U_A2"]
    with pytest.raises(SlackApiError) as unknown:
        client.usergroups_users_list(usergroup="S_NOPE")
    assert unknown.value.response["error"] == "no_such_subteam"


def test_views_open_update_and_push_keep_the_latest_state(
    slack_api: FakeSlackApi, client: WebClient
) -> None:
    modal = {"type": "modal", "callback_id": "m", "title": {"type": "plain_text", "text": "One"}}

    opened = client.views_open(trigger_id="1.2.3", view=modal)["view"]
    client.views_update(view_id=opened["id"], view={**modal, "private_metadata": "x"})
    pushed = client.views_push(trigger_id="1.2.4", view={**modal, "callback_id": "m2"})["view"]

    first, second = slack_api.views_opened()
    assert first["id"] == opened["id"]
    assert first["private_metadata"] == "x"
    assert second["root_view_id"] == opened["id"] == pushed["root_view_id"]
    with pytest.raises(SlackApiError) as conflict:
        client.views_update(view_id=opened["id"], view=modal, hash="stale")
    assert conflict.value.response["error"] == "hash_conflict"


def test_other_methods_answer_ok_and_are_recorded(
    slack_api: FakeSlackApi, client: WebClient
) -> None:
    assert client.reactions_add(channel=HELPDESK, timestamp="1.0", name="eyes")["ok"] is True

    [call] = slack_api.calls("reactions.add")
    assert call.args == {"channel": HELPDESK, "timestamp": "1.0", "name": "eyes"}


def test_fail_next_answers_the_given_error_once(slack_api: FakeSlackApi, client: WebClient) -> None:
    slack_api.fail_next("chat.postMessage", "not_in_channel")

    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel=HELPDESK, text="hi")

    assert refused.value.response["error"] == "not_in_channel"
    assert client.chat_postMessage(channel=HELPDESK, text="hi")["ok"] is True


def test_latency_delays_the_answer(slack_api: FakeSlackApi, client: WebClient) -> None:
    slack_api.set_latency(0.2, "auth.test")

    started = time.perf_counter()
    client.auth_test()

    assert time.perf_counter() - started >= 0.2


def test_response_urls_record_webhook_posts(slack_api: FakeSlackApi) -> None:
    WebhookClient(slack_api.response_url("manual")).send(text="hello", response_type="in_channel")

    [post] = slack_api.responses("manual")
    assert post.text == "hello"
    assert post.response_type == "in_channel"
    assert slack_api.responses("other") == []


def test_wait_for_times_out_with_what_was_recorded(
    slack_api: FakeSlackApi, client: WebClient
) -> None:
    client.auth_test()

    with pytest.raises(TimeoutError, match=r"auth.test\(200, ok=True\)"):
        slack_api.wait_for("chat.postMessage", timeout=0.1)


def test_wait_for_returns_the_nth_matching_call(slack_api: FakeSlackApi, client: WebClient) -> None:
    for text in ("one", "two"):
        client.chat_postMessage(channel=HELPDESK, text=text)

    def second_post(call: ApiCall) -> bool:
        return call.method == "chat.postMessage" and call.args["text"] == "two"

    assert slack_api.wait_for("chat.postMessage", count=2).args["text"] == "two"
    assert slack_api.wait_for(second_post).args["text"] == "two"


def test_clear_forgets_records_but_reset_also_forgets_seeds_and_knobs(
    slack_api: FakeSlackApi, client: WebClient
) -> None:
    slack_api.seed_usergroup("S_X", ["U_1"])
    client.chat_postMessage(channel=HELPDESK, text="hi")

    slack_api.clear()
    assert slack_api.calls() == []
    assert slack_api.messages() == []
    assert client.usergroups_users_list(usergroup="S_X")["ok"] is True

    slack_api.reset()
    with pytest.raises(SlackApiError):
        client.usergroups_users_list(usergroup="S_X")


# ---------------------------------------------------------------------------------------
# Block Kit helpers
# ---------------------------------------------------------------------------------------


def test_text_of_flattens_headers_sections_fields_context_and_buttons() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Title"}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "Body"},
            "fields": [{"type": "mrkdwn", "text": "F1"}, {"type": "plain_text", "text": "F2"}],
            "accessory": {
                "type": "button",
                "action_id": "a",
                "value": "hidden",
                "text": {"type": "plain_text", "text": "Go"},
            },
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "ctx"}]},
        {"type": "divider"},
        {
            "type": "actions",
            "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Approve"}}],
        },
    ]

    assert text_of(blocks) == "Title\nBody\nF1\nF2\nGo\nctx\nApprove"
    assert text_of(None) == ""


def test_find_action_returns_the_block_id_and_element() -> None:
    block_id, element = find_action(report_blocks("a@b.c"), "approve")

    assert block_id == "decision"
    assert element["value"] == "req-1"
    with pytest.raises(LookupError, match="request_approval"):
        find_action(report_blocks("a@b.c"), "missing")


# ---------------------------------------------------------------------------------------
# Socket Mode: apps.connections.open and the WebSocket
# ---------------------------------------------------------------------------------------


class RawSocket:
    """A bare WebSocket client (RFC 6455), to see exactly what the fake sends and answers."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        self.stream = self.sock.makefile("rb")
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.status = int(self.stream.readline().split()[1])
        self.headers: dict[str, str] = {}
        while (line := self.stream.readline().decode().strip()) != "":
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        self.accept_ok = (
            self.headers.get("sec-websocket-accept") == base64.b64encode(digest).decode()
        )

    def send(self, opcode: int, data: bytes, *, masked: bool = True) -> None:
        mask = os.urandom(4) if masked else b""
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data)) if masked else data
        self.sock.sendall(bytes([0x80 | opcode, (0x80 if masked else 0) | len(data)]) + mask + body)

    def receive(self) -> tuple[int, bytes]:
        """The next frame: (opcode, payload); the fake never masks and never fragments."""
        first, second = self.stream.read(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self.stream.read(2), "big")
        elif length == 127:
            length = int.from_bytes(self.stream.read(8), "big")
        assert not second & 0x80, "server frames must not be masked"
        return first & 0x0F, self.stream.read(length)

    def receive_json(self) -> dict[str, Any]:
        opcode, data = self.receive()
        assert opcode == 0x1
        return dict(json.loads(data))

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


@pytest.fixture
def raw_socket(slack_api: FakeSlackApi) -> Iterator[RawSocket]:
    """A connected bare WebSocket client, its ``hello`` already read."""
    url = WebClient(base_url=slack_api.url).apps_connections_open(app_token=APP_TOKEN)["url"]
    raw = RawSocket(url)
    assert raw.status == 101 and raw.accept_ok
    assert raw.receive_json()["type"] == "hello"
    yield raw
    raw.close()


def test_apps_connections_open_takes_only_the_app_token(slack_api: FakeSlackApi) -> None:
    client = WebClient(base_url=slack_api.url)

    url = client.apps_connections_open(app_token=APP_TOKEN)["url"]
    with pytest.raises(SlackApiError) as bot_token:
        client.apps_connections_open(app_token=BOT_TOKEN)
    with pytest.raises(SlackApiError) as unknown:
        client.apps_connections_open(app_token="xapp-1-revoked")
    with pytest.raises(SlackApiError) as app_token_elsewhere:
        WebClient(token=APP_TOKEN, base_url=slack_api.url).chat_postMessage(channel="C1", text="x")

    assert url.startswith(f"ws://127.0.0.1:{slack_api.port}{SOCKET_PATH}?ticket=")
    assert bot_token.value.response["error"] == "not_allowed_token_type"
    assert unknown.value.response["error"] == "invalid_auth"
    assert app_token_elsewhere.value.response["error"] == "not_allowed_token_type"


def test_a_websocket_url_admits_one_connection_only(slack_api: FakeSlackApi) -> None:
    url = WebClient(base_url=slack_api.url).apps_connections_open(app_token=APP_TOKEN)["url"]

    first, second = RawSocket(url), RawSocket(url)
    forged = RawSocket(url.replace("ticket=", "ticket=forged"))
    try:
        assert first.status == 101 and first.accept_ok
        assert (second.status, forged.status) == (401, 401)
        assert len(slack_api.sockets()) == 1
    finally:
        for raw in (first, second, forged):
            raw.close()


def test_the_socket_greets_answers_pings_and_pushes_envelopes(
    slack_api: FakeSlackApi, raw_socket: RawSocket
) -> None:
    raw_socket.send(0x9, b"are you there")
    pong = raw_socket.receive()
    command_id = slack_api.send_envelope("slash_commands", {"command": "/smtpmatch"})
    command = raw_socket.receive_json()
    event_id = slack_api.send_envelope("events_api", {"type": "event_callback"})
    event = raw_socket.receive_json()

    assert pong == (0xA, b"are you there")
    assert slack_api.sockets()[0].pings == 1
    assert command == {
        "envelope_id": command_id,
        "type": "slash_commands",
        "payload": {"command": "/smtpmatch"},
        "accepts_response_payload": True,
    }
    assert event["envelope_id"] == event_id and event["accepts_response_payload"] is False
    assert (event["retry_attempt"], event["retry_reason"]) == (0, "")


def test_acks_are_recorded_with_their_payload_and_delay(
    slack_api: FakeSlackApi, raw_socket: RawSocket
) -> None:
    envelope_id = slack_api.send_envelope("interactive", {"type": "block_actions"})
    raw_socket.receive_json()
    ack = {"envelope_id": envelope_id, "payload": {"text": "On it"}}
    raw_socket.send(0x1, json.dumps(ack).encode())

    recorded = slack_api.wait_for_ack(envelope_id, timeout=5)

    assert recorded.text == "On it"
    assert recorded.elapsed is not None and 0 <= recorded.elapsed < 5
    assert recorded.connection == slack_api.sockets()[0].id
    assert slack_api.acks == [recorded]
    with pytest.raises(TimeoutError, match="no ack of envelope nope"):
        slack_api.wait_for_ack("nope", timeout=0.1)


def test_an_unmasked_client_frame_is_a_protocol_error(
    slack_api: FakeSlackApi, raw_socket: RawSocket
) -> None:
    raw_socket.send(0x1, b"{}", masked=False)

    opcode, data = raw_socket.receive()

    assert (opcode, int.from_bytes(data[:2], "big")) == (0x8, 1002)
    assert slack_api.sockets()[0].wait_closed(timeout=5)


def test_the_sdk_socket_mode_client_connects_and_acks(slack_api: FakeSlackApi) -> None:
    received: list[dict[str, Any]] = []
    client = SocketModeClient(
        app_token=APP_TOKEN, web_client=WebClient(token=BOT_TOKEN, base_url=slack_api.url)
    )
    client.message_listeners.append(lambda _client, message, _raw: received.append(message))

    def ack(client: SocketModeClient, request: SocketModeRequest) -> None:
        client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload={"text": "got it"})
        )

    client.socket_mode_request_listeners.append(ack)
    client.connect()
    try:
        envelope_id = slack_api.send_envelope("slash_commands", {"text": "hi"}, timeout=5)
        acked = slack_api.wait_for_ack(envelope_id, timeout=5)
        hello = next(m for m in received if m.get("type") == "hello")
    finally:
        client.auto_reconnect_enabled = False
        slack_api.close_sockets()
        client.close()

    assert acked.text == "got it"
    assert hello["num_connections"] == 1 and hello["connection_info"] == {"app_id": APP_ID}
    assert client.current_session is None or not client.is_connected()


def test_reset_closes_the_open_connections(slack_api: FakeSlackApi, raw_socket: RawSocket) -> None:
    connection = slack_api.sockets()[0]

    slack_api.reset()

    assert connection.wait_closed(timeout=5)
    assert raw_socket.receive()[0] == 0x8
    assert slack_api.sockets() == [] and slack_api.acks == []
    with pytest.raises(TimeoutError, match="0/1 Socket Mode connections"):
        slack_api.send_envelope("events_api", {}, timeout=0.1)
