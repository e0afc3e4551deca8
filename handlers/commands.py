"""`/smtpmatch ADDRESS [ONPREM]` and `/smtpmatch help`: ack at once, then look up and report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.errors import InvalidInput
from bot.rules.address import parse_address
from bot.services.check import parse_onprem_id
from bot.services.requests import NOT_A_REQUESTER, check_for, may_request, requester_known
from bot.slack_views.blocks import Block, help_blocks, message_blocks, report_blocks
from handlers.context import BUSY, BotContext, SlackTeamDirectory, run_telling_faults
from handlers.payloads import parse_command as parse_command_payload
from handlers.scan import handle_scan_command, is_scan_command

MAX_COMMAND_TEXT = 1100


@dataclass(frozen=True)
class CheckCommand:
    """A parsed `/smtpmatch` command."""

    address: str
    onprem_id: str | None


def parse_command(text: str) -> CheckCommand | None:
    """Parse the command text; ``None`` means help.

    Raises:
        InvalidInput: malformed, oversized or with too many words.
    """
    if len(text) > MAX_COMMAND_TEXT:
        raise InvalidInput(f"the command is longer than {MAX_COMMAND_TEXT} characters")
    words = text.split()
    if not words or words[0].lower() in ("help", "-h", "--help"):
        return None
    if len(words) > 2:
        raise InvalidInput("give one address and, optionally, one AD account name")
    return CheckCommand(
        parse_address(words[0]), parse_onprem_id(words[1] if len(words) > 1 else None)
    )


def handle_smtpmatch_command(
    ack: Ack,
    command: Mapping[str, object],
    respond: Respond,
    ctx: BotContext,
    client: WebClient | None = None,
) -> None:
    """Ack within Slack's 3 s (nothing slow happens before), then answer with the report.

    The ack itself carries every answer that needs no lookup: usage errors, help, the rate
    limit and "busy" when the check executor is full.
    """
    payload = parse_command_payload(command)
    if client is not None and is_scan_command(payload.text):
        handle_scan_command(ack, command, respond, client, ctx)
        return
    try:
        parsed = parse_command(payload.text)
    except InvalidInput as exc:
        ack(response_type="ephemeral", text=f":warning: {exc}. Type `/smtpmatch help` for usage.")
        return
    if parsed is None:
        ack(response_type="ephemeral", blocks=help_blocks(), text="smtpmatch help")
        return
    if requester_known(ctx.services, payload.user_id) is False:
        ack(response_type="ephemeral", text=NOT_A_REQUESTER)
        return
    wait = ctx.rate_limit.allow(payload.user_id)
    if wait is not None:
        ack(
            response_type="ephemeral",
            text=f":raised_hand: You ran {ctx.rate_limit.limit} checks in the last minute; "
            f"try again in {max(math.ceil(wait), 1)} s.",
        )
        return
    slot = ctx.checks.reserve()
    if slot is None:
        ack(response_type="ephemeral", text=BUSY)
        return
    ack(
        response_type="ephemeral",
        text=f"Checking {parsed.address} in Active Directory and Entra ID…",
    )
    slot.run(_report, parsed, payload.user_id, respond, ctx, client)


def _report(
    parsed: CheckCommand,
    user: str,
    respond: Respond,
    ctx: BotContext,
    client: WebClient | None = None,
) -> None:
    """Look the address up in both directories and answer the requester with the report."""

    def reply(text: str, blocks: list[Block]) -> None:
        respond(response_type="ephemeral", text=text, blocks=blocks)

    def work() -> None:
        # Requesters given as user groups are resolved now, off the listener thread.
        team = SlackTeamDirectory(client) if client is not None else None
        if not may_request(ctx.services, user, team):
            reply(NOT_A_REQUESTER, message_blocks(NOT_A_REQUESTER))
            return
        report, check_id = check_for(ctx.services, parsed.address, parsed.onprem_id, user)
        reply(
            f"{report.address}: {report.verdict}",
            report_blocks(
                report,
                request_check=check_id if ctx.approval_channel is not None else None,
                approvals=ctx.approval_channel is not None,
            ),
        )

    run_telling_faults(reply, f"the check of {parsed.address}", work)
