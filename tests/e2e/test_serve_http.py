"""`python app.py --http --demo` as an operator starts it: its own process, configured by the
environment, answering signed Slack requests and /healthz."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.bot_process import ROOT, demo_bot_process, free_port
from tests.support.slack_fake import (
    BOT_TOKEN,
    RESPONSE_URL,
    SIGNING_SECRET,
    FakeSlackApi,
    SlackDriver,
)


@pytest.fixture
def demo_bot(slack_api: FakeSlackApi, tmp_path: Path) -> Iterator[str]:
    """The bot process; yields its base URL."""
    with demo_bot_process(slack_api, tmp_path) as bot:
        yield bot.url
    assert "xoxb-" not in bot.log.read_text()  # no token in the log


def test_the_demo_bot_reports_on_a_signed_command(demo_bot: str, slack_api: FakeSlackApi) -> None:
    assert httpx.get(f"{demo_bot}/healthz").json() == {"status": "ok"}
    with SlackDriver(f"{demo_bot}/slack/events", slack_api) as driver:
        response = driver.command("paul.primary@contoso.com")
        assert response.status_code == 200
        assert "Checking paul.primary@contoso.com" in response.json()["text"]
        name = driver.last_response_url_name
        call = slack_api.wait_for(lambda c: c.method == RESPONSE_URL and c.target == name)
        assert "Eligible" in str(call.args["blocks"]) and "smtp:paul@fabrikam.com" in str(
            call.args["blocks"]
        )
        assert driver.forged().command("jane@contoso.com").status_code == 401


def test_an_approval_channel_without_approvers_stops_start_up_naming_the_variable(
    slack_api: FakeSlackApi, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SMTPMATCH_"))}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_api.url,
        SMTPMATCH_APPROVAL_CHANNEL="C0APPROVALS",
        SMTPMATCH_DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--http", "--port", str(free_port()), "--demo"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("smtpmatch: SMTPMATCH_APPROVERS:")
    assert SIGNING_SECRET not in result.stderr
