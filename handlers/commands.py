"""`/smtpmatch ADDRESS [ONPREM]` and `/smtpmatch help`: ack at once, then look up and report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, Respond

from bot.errors import InvalidInput
from bot.rules.address import parse_address
from bot.rules.codec import report_to_dict
from bot.services.check import parse_onprem_id
from bot.services.requests import check_for
from bot.slack_views.blocks import help_blocks, report_blocks
from handlers.context import BotContext, reply_on_fault

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
    ack: Ack, command: dict[str, Any], respond: Respond, ctx: BotContext
) -> None:
    """Ack within Slack's 3 s (nothing slow happens before), then answer with the report."""
    try:
        parsed = parse_command(str(command.get("text") or ""))
    except InvalidInput as exc:
        ack(response_type="ephemeral", text=f":warning: {exc}. Type `/smtpmatch help` for usage.")
        return
    if parsed is None:
        ack(response_type="ephemeral", blocks=help_blocks(), text="smtpmatch help")
        return
    ack(
        response_type="ephemeral",
        text=f"Checking {parsed.address} in Active Directory and Entra ID…",
    )

    ctx.background.submit(_report, parsed, str(command.get("user_id", "")), respond, ctx)


def _report(parsed: CheckCommand, user: str, respond: Respond, ctx: BotContext) -> None:
    """Look the address up in both directories and answer the requester with the report."""
    with reply_on_fault(respond, f"the check of {parsed.address}"):
        report, check_id = check_for(ctx.services, parsed.address, parsed.onprem_id, user)
        data = report_to_dict(report)
        respond(
            response_type="ephemeral",
            text=f"{report.address}: {report.verdict}",
            blocks=report_blocks(
                data, request_check=check_id if ctx.approval_channel is not None else None
            ),
        )
