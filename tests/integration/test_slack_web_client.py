"""The bot's Slack Web API client: SLACK_API_URL honoured, 429 retried after Retry-After."""

from __future__ import annotations

from bot.server import build_web_client
from bot.settings import Settings
from tests.support.slack_fake import BOT_TOKEN, FakeSlackApi


def settings_for(slack_api: FakeSlackApi) -> Settings:
    return Settings(_env_file=None, slack_bot_token=BOT_TOKEN, slack_api_url=slack_api.url)


def test_the_client_posts_to_the_configured_api_url(slack_api: FakeSlackApi) -> None:
    client = build_web_client(settings_for(slack_api))
    client.chat_postMessage(channel="C0APPROVALS", text="hello")
    assert [m.text for m in slack_api.messages("C0APPROVALS")] == ["hello"]


def test_a_rate_limited_call_is_retried_and_lands_once(slack_api: FakeSlackApi) -> None:
    slack_api.rate_limit_next("chat.postMessage", 2, retry_after=1)
    client = build_web_client(settings_for(slack_api))
    response = client.chat_postMessage(channel="C0NOTIFY", text="sync result")
    assert response["ok"] is True
    statuses = [c.http_status for c in slack_api.calls() if c.method == "chat.postMessage"]
    assert statuses == [429, 429, 200]
    assert len(slack_api.messages("C0NOTIFY")) == 1
