"""`/smtpmatch scan` (approvers only): ack at once; on the bot's own executors check the
right, start the one scan, post a progress message that follows the scan, then the summary
with the CSV attached. App Home shows the latest scan."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from pydantic import JsonValue
from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.scan.model import ScanResult
from bot.scan.render import render_csv
from bot.services.requests import is_approver
from bot.services.scan import abandon_scan, begin_scan, complete_scan, latest_scan, place_scan
from bot.slack_views.blocks import Block
from bot.slack_views.scan import (
    home_blocks,
    progress_blocks,
    progress_text,
    running_text,
    summary_blocks,
    summary_text,
)
from bot.slack_views.waves import open_button_blocks
from handlers.context import (
    BUSY,
    BotContext,
    SlackTeamDirectory,
    describe_fault,
    run_telling_faults,
)

log = logging.getLogger("smtpmatch.handlers")

#: The word after `/smtpmatch` that asks for a scan.
SCAN_WORD = "scan"
#: At most one progress update per this many seconds (chat.update is rate-limited).
UPDATE_EVERY = 2.0
#: Blocks App Home may hold.
_HOME_LIMIT = 100


def is_scan_command(text: str) -> bool:
    """Whether `/smtpmatch TEXT` asks for a scan."""
    words = text.split()
    return bool(words) and words[0].lower() == SCAN_WORD


def handle_scan_command(
    ack: Ack, command: Mapping[str, object], respond: Respond, client: WebClient, ctx: BotContext
) -> None:
    """Ack at once (nothing slow happens before); the rest runs on the bot's executors."""
    text = str(command.get("text") or "")
    user = str(command.get("user_id") or "")
    channel = str(command.get("channel_id") or "") or user
    if len(text.split()) > 1:
        ack(response_type="ephemeral", text=":warning: `/smtpmatch scan` takes no arguments.")
        return
    if ctx.scans is None:
        ack(response_type="ephemeral", text="Whole-tenant scans are not set up in this bot.")
        return
    slot = ctx.quick.reserve()
    if slot is None:
        ack(response_type="ephemeral", text=BUSY)
        return
    ack(response_type="ephemeral", text="Starting a whole-tenant scan…")
    slot.run(_start, user, channel, respond, client, ctx)


def _start(user: str, channel: str, respond: Respond, client: WebClient, ctx: BotContext) -> None:
    """Check the right, take the one-scan lock, post the progress message, hand the scan over."""
    assert ctx.scans is not None
    scans = ctx.scans

    def reply(text: str, blocks: list[Block]) -> None:
        respond(response_type="ephemeral", text=text, blocks=blocks)

    def work() -> None:
        if not is_approver(ctx.services, user, SlackTeamDirectory(client)):
            respond(
                response_type="ephemeral",
                text=":no_entry: Only the configured approvers can run a whole-tenant scan.",
            )
            return
        scan, started = begin_scan(scans, user)
        if not started:
            respond(response_type="ephemeral", text=running_text(scan, _permalink(client, scan)))
            return
        try:
            where, ts = _post_progress(client, channel, user)
        except Exception:
            abandon_scan(scans, scan.id, "the progress message could not be posted")
            raise
        place_scan(scans, scan.id, where, ts)
        if not ctx.scan_pool.submit(_run, scan.id, user, where, ts, client, ctx):
            abandon_scan(scans, scan.id, "the bot is busy")
            client.chat_update(channel=where, ts=ts, text=BUSY, blocks=[])

    run_telling_faults(reply, "the whole-tenant scan", work)


def _post_progress(client: WebClient, channel: str, user: str) -> tuple[str, str]:
    """Post the progress message where the command was typed, else in the requester's DM
    (the bot may not be in that channel)."""
    text, blocks = progress_text("read", 0, 0), progress_blocks("read", 0, 0, user)
    try:
        posted = client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    except SlackApiError as exc:
        if channel == user:
            raise
        log.info("scan progress not posted in %s (%s); posting to the DM", channel, exc)
        posted = client.chat_postMessage(channel=user, text=text, blocks=blocks)
    return str(posted["channel"]), str(posted["ts"])


def _permalink(client: WebClient, scan: object) -> str | None:
    channel, ts = getattr(scan, "slack_channel", None), getattr(scan, "slack_ts", None)
    if not channel or not ts:
        return None
    try:
        return str(client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"])
    except SlackApiError as exc:
        log.info("no permalink for the running scan's message: %s", exc)
        return None


def _run(
    scan_id: str, user: str, channel: str, ts: str, client: WebClient, ctx: BotContext
) -> None:
    """The scan itself (on the scan executor): progress updates, then summary and CSV."""
    assert ctx.scans is not None
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage == "judge" and done != total and now - last[0] < UPDATE_EVERY:
            return
        last[0] = now
        try:
            client.chat_update(
                channel=channel,
                ts=ts,
                text=progress_text(stage, done, total),
                blocks=progress_blocks(stage, done, total, user),
            )
        except SlackApiError as exc:  # progress is a courtesy: the scan goes on
            log.warning("scan %s: progress not updated: %s", scan_id, exc)

    try:
        _, result = complete_scan(ctx.scans, scan_id, progress)
    except Exception as exc:  # noqa: BLE001 - told in the progress message, with a reference
        text, blocks = describe_fault(exc, "the whole-tenant scan")
        client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        return
    _post_summary(client, channel, ts, result, user)


def _post_summary(client: WebClient, channel: str, ts: str, result: ScanResult, user: str) -> None:
    totals = result.totals()
    blocks = summary_blocks(result, user)
    if result.scan_id and result.by_verdict.get("eligible"):  # the wave picker (bulk hand-over)
        blocks = [*blocks, *open_button_blocks(result.scan_id)]
    client.chat_update(channel=channel, ts=ts, text=summary_text(totals), blocks=blocks)
    client.files_upload_v2(
        channel=channel,
        thread_ts=ts,
        filename=f"smtpmatch-scan-{result.scan_id}.csv",
        content=render_csv(result),
        title=f"Whole-tenant scan {result.scan_id}: one row per cloud-only user",
        initial_comment="Every judged user, with verdict, failing checks and planned change.",
    )


def with_latest_scan(view: Block, ctx: BotContext) -> Block:
    """App Home with the latest scan's summary after its first lines."""
    if ctx.scans is None:
        return view
    current = view.get("blocks")
    blocks: list[JsonValue] = list(current) if isinstance(current, list) else []
    latest = latest_scan(ctx.scans)
    section: list[JsonValue] = [*home_blocks(latest)]
    if latest is not None and ctx.waves is not None:  # the wave picker (bulk hand-over)
        section.extend(open_button_blocks(latest.id))
    return {**view, "blocks": [*blocks[:2], *section, *blocks[2:]][:_HOME_LIMIT]}


__all__ = ["SCAN_WORD", "handle_scan_command", "is_scan_command", "with_latest_scan"]
