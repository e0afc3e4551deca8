"""Issue 14 leftovers in Slack: an eligible report without an approval channel says why it
has no button, and `/smtpmatch help` mentions the scan."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.directories.demo import build_demo_directories
from bot.services.check import Directories
from bot.services.requests import RequestServices
from bot.slack_views.ids import ActionId
from bot.store.repository import Store
from bot.workers import WorkPool
from handlers.context import BotContext
from tests.support.slack_fake import rendered_text
from tests.unit.test_slack_surface import command


def _context(tmp_path, approval_channel: str | None) -> Iterator[BotContext]:
    store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
    store.migrate()
    services = RequestServices(dirs=Directories(*build_demo_directories()), store=store)
    context = BotContext(
        services=services, approval_channel=approval_channel, checks=WorkPool("check", 1, 0)
    )
    yield context
    for pool in context.pools():
        pool.shutdown()
    store.close()


@pytest.fixture
def no_channel(tmp_path) -> Iterator[BotContext]:
    yield from _context(tmp_path, None)


@pytest.fixture
def with_channel(tmp_path) -> Iterator[BotContext]:
    yield from _context(tmp_path, "C0APPROVALS")


def _buttons(blocks: list[dict]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_without_an_approval_channel_an_eligible_report_says_why_there_is_no_button(
    no_channel: BotContext,
) -> None:
    _, respond = command(no_channel, "jane@contoso.com")
    assert respond.called.wait(10)
    blocks = respond.calls[0]["blocks"]
    shown = rendered_text(blocks)
    assert "No approval channel is configured (SMTPMATCH_APPROVAL_CHANNEL)" in shown
    assert "Request approval button" in shown
    assert ActionId.REQUEST_APPROVAL.value not in _buttons(blocks)


def test_a_blocked_report_does_not_talk_about_the_missing_channel(
    no_channel: BotContext,
) -> None:
    _, respond = command(no_channel, "alex.admin@contoso.com")
    assert respond.called.wait(10)
    assert "SMTPMATCH_APPROVAL_CHANNEL" not in rendered_text(respond.calls[0]["blocks"])


def test_with_an_approval_channel_the_button_is_there_and_no_note(
    with_channel: BotContext,
) -> None:
    _, respond = command(with_channel, "jane@contoso.com")
    assert respond.called.wait(10)
    blocks = respond.calls[0]["blocks"]
    assert ActionId.REQUEST_APPROVAL.value in _buttons(blocks)
    assert "SMTPMATCH_APPROVAL_CHANNEL" not in rendered_text(blocks)


def test_help_mentions_the_scan(with_channel: BotContext) -> None:
    ack, _ = command(with_channel, "help")
    assert "`/smtpmatch scan`" in rendered_text(ack.calls[0]["blocks"])
