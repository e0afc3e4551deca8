"""The Slack listeners ack before any slow work: usage, the rate limit and "busy" are all
answered in the ack itself; the report follows from the bot's own executor."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.directories.demo import build_demo_directories
from bot.services.check import Directories
from bot.services.requests import RequestServices
from bot.store.repository import Store
from bot.workers import RateLimit, WorkPool
from handlers.actions import handle_request_reason_submission
from handlers.commands import handle_smtpmatch_command
from handlers.context import BotContext


class Recorder:
    """Stands in for Bolt's ack and respond: keeps what the listener sent."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.called = threading.Event()

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        self.called.set()


@pytest.fixture
def ctx(tmp_path) -> Iterator[BotContext]:
    store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
    store.migrate()
    services = RequestServices(dirs=Directories(*build_demo_directories()), store=store)
    context = BotContext(
        services=services,
        approval_channel="C0APPROVALS",
        checks=WorkPool("check", 1, 0),
        decisions=WorkPool("decide", 1, 0),
        rate_limit=RateLimit(2),
    )
    yield context
    for pool in context.pools():
        pool.shutdown()
    store.close()


def command(ctx: BotContext, text: str, user: str = "U1") -> tuple[Recorder, Recorder]:
    ack, respond = Recorder(), Recorder()
    handle_smtpmatch_command(ack, {"user_id": user, "text": text}, respond, ctx)  # type: ignore[arg-type]
    return ack, respond


def test_a_check_is_acked_first_and_reported_from_the_bots_own_executor(ctx) -> None:
    ack, respond = command(ctx, "jane@contoso.com")
    assert ack.calls[0]["text"].startswith("Checking jane@contoso.com")
    assert respond.called.wait(10)
    assert respond.calls[0]["text"] == "jane@contoso.com: eligible"
    assert respond.calls[0]["response_type"] == "ephemeral"


def test_the_rate_limit_answers_in_the_ack_and_starts_nothing(ctx) -> None:
    for _ in range(2):
        _, respond = command(ctx, "jane@contoso.com")
        assert respond.called.wait(10)
        # The one-place pool frees its place just after the reply: wait, so the next command
        # meets the rate limit and not a busy executor.
        deadline = time.monotonic() + 10
        while ctx.checks.in_use and time.monotonic() < deadline:
            time.sleep(0.01)
    ack, respond = command(ctx, "jane@contoso.com")
    assert "You ran 2 checks in the last minute" in ack.calls[0]["text"]
    assert not respond.called.wait(0.3)
    help_ack, _ = command(ctx, "help")  # help costs nothing and is never limited
    assert help_ack.calls[0]["text"] == "smtpmatch help"


def test_a_full_check_executor_answers_busy_in_the_ack(ctx) -> None:
    blocker = threading.Event()
    assert ctx.checks.submit(blocker.wait, 5)  # the one worker is taken
    try:
        ack, respond = command(ctx, "jane@contoso.com", user="U2")
        assert "busy" in ack.calls[0]["text"]
        assert not respond.called.wait(0.3)
    finally:
        blocker.set()


def test_a_submission_when_busy_keeps_the_modal_open_saying_so(ctx) -> None:
    blocker = threading.Event()
    assert ctx.decisions.submit(blocker.wait, 5)
    try:
        ack = Recorder()
        body = {
            "user": {"id": "U1"},
            "view": {"private_metadata": "1", "state": {"values": {}}},
        }
        handle_request_reason_submission(ack, body, None, ctx)  # type: ignore[arg-type]
        assert ack.calls[0]["response_action"] == "errors"
        assert "busy" in next(iter(ack.calls[0]["errors"].values()))
        assert ctx.services.store.list_requests() == []
    finally:
        blocker.set()


class Broken:
    """A rate limit that fails: stands in for a bug in a listener."""

    limit = 1

    def allow(self, user: str) -> float | None:
        raise RuntimeError("boom: a bug")


def test_a_fault_in_a_listener_answers_briefly_with_a_reference_that_is_in_the_log(
    ctx, caplog
) -> None:
    from urllib.parse import urlencode

    from slack_bolt import App
    from slack_bolt.request import BoltRequest

    from handlers import register

    ctx.rate_limit = Broken()  # type: ignore[assignment]
    app = App(
        token="xoxb-test",
        signing_secret="secret",
        token_verification_enabled=False,
        request_verification_enabled=False,
    )
    register(app, ctx)
    body = urlencode(
        {
            "command": "/smtpmatch",
            "text": "jane@contoso.com",
            "user_id": "U1",
            "team_id": "T1",
            "channel_id": "C1",
            "response_url": "http://127.0.0.1:9/none",
            "trigger_id": "1.2.3",
        }
    )
    response = app.dispatch(
        BoltRequest(body=body, headers={"content-type": ["application/x-www-form-urlencoded"]})
    )

    assert response.status == 200
    assert "Something went wrong; nothing was changed. (ref " in response.body
    reference = response.body.rsplit("ref ", 1)[1].rstrip(")")
    assert any(reference in r.getMessage() for r in caplog.records)
    assert "boom" not in response.body
