"""Block Kit for reports, requests, decisions, help, errors, modals and App Home.

Pure functions from the typed domain (a :class:`~bot.rules.checks.Report`, a
:class:`~bot.ports.ChangePlan`, a :class:`~bot.domain.MatchRequest`) to Block Kit JSON, the
edge where JSON belongs. A fresh report and one reloaded from the store are the same value, so
they look the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import JsonValue

from bot.domain import MatchRequest
from bot.models import CloudUser, OnPremUser
from bot.ports import ChangePlan
from bot.rules.checks import Report, Verdict
from bot.rules.engine import PASSWORD_CONSEQUENCE
from bot.rules.requests import RequestState
from bot.slack_views.ids import (
    MAX_REASON_LENGTH,
    REASON_ACTION,
    REASON_BLOCK,
    ActionId,
    CallbackId,
)

#: One Block Kit block (or view): JSON, built here and sent as is.
Block = dict[str, JsonValue]

#: Slack's limits: blocks per message and per view (Home tab, modal).
MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100

_STATUS_EMOJI: dict[str, str] = {
    "pass": ":white_check_mark:",
    "fail": ":x:",
    "warn": ":warning:",
    "unknown": ":grey_question:",
    "skip": ":heavy_minus_sign:",
}
#: One line per verdict; keyed by the enum so that a new verdict without a text fails the tests.
VERDICT_TEXT: dict[Verdict, str] = {
    Verdict.ELIGIBLE: ":large_green_circle: *Eligible*: the AD user can be SMTP-matched.",
    Verdict.ALREADY_MATCHED: ":large_blue_circle: *Already matched*: nothing to do.",
    Verdict.BLOCKED: ":red_circle: *Blocked*: fix the failed checks first.",
    Verdict.NEEDS_INPUT: ":large_yellow_circle: *Needs input*",
    Verdict.SYNC_PENDING: ":large_blue_circle: *Sync pending*: nothing to change; run a sync.",
    Verdict.NEEDS_ACCOUNT: ":white_circle: *Needs an AD account*: none exists for this person yet.",
}
_STATE_TEXT = {
    RequestState.PENDING: ":hourglass_flowing_sand: Waiting for an approver",
    RequestState.APPROVING: ":gear: Approved; re-checking and writing…",
    RequestState.APPLIED: ":white_check_mark: Applied; watching directory sync",
    RequestState.MATCHED: ":tada: Matched by directory sync",
    RequestState.SYNC_FAILED: ":x: Sync did not match",
    RequestState.SYNC_TIMEOUT: ":alarm_clock: Sync did not report in time",
    RequestState.REJECTED: ":no_entry: Rejected",
    RequestState.EXPIRED: ":hourglass: Expired without a decision",
    RequestState.FAILED: ":x: Not applied",
    RequestState.REVERTING: ":gear: Reverting; re-checking and restoring…",
    RequestState.REVERTED: ":leftwards_arrow_with_hook: Reverted",
}
_TEXT_LIMIT = 2900  # a section's text may hold 3000 characters
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")


#: Line breaks of any kind: a directory value must never start a line of its own (a fake
#: verdict, a quote) in a message.
_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x85\u2028\u2029]")
#: Other control characters, shown as a replacement mark.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
#: A formatting character (bold, italic, strike) at a word's edge, where Slack would read it
#: as markup; inside a word (``jane_doe``) it is never markup and stays as is (copyable).
_MARKUP_EDGE = re.compile(r"(?<![0-9A-Za-z])[*_~]|[*_~](?![0-9A-Za-z])")
#: A colon that could open an emoji (``:name:``); ``SMTP:jane@…`` stays as is.
_EMOJI_OPEN = re.compile(r":(?=[\w+'-]+:)")
_ZWSP = "\u200b"
#: The icon a message of the bot's own starts with.
_LEADING_ICON = re.compile(r":[a-z0-9_+-]+: ")


def escape(text: str, *, code: bool = False, prose: bool = False) -> str:
    """``text`` shown literally in mrkdwn: the one escaping function for every value that
    comes from a directory or a person.

    No mention, link, emoji, formatting or line break can come from it: ``& < >`` become
    entities, line breaks a visible arrow, control characters a replacement mark, and a
    zero-width space keeps ``* _ ~`` at a word's edge and an emoji's opening colon from being
    read as markup. (A backtick can only make text literal, so free text keeps its own.)

    Args:
        text: the value.
        code: the value goes inside a code span, where Slack applies no formatting: only the
            entities and line breaks need care (a backtick, which would end the span, becomes
            a look-alike), so a copied value stays exact.
        prose: the bot's own sentences with values in them (a service's message, a sync
            status): their line breaks and the leading icon (``:tada: …``) are the bot's and
            stay; everything else is treated as above.
    """
    if not prose:
        text = _LINE_BREAK.sub(" \u21b5 ", text)
    text = _CONTROL.sub("\ufffd", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if code:
        return text.replace("`", "\u02cb")
    icon = _LEADING_ICON.match(text) if prose else None
    head, text = (icon.group(0), text[icon.end() :]) if icon else ("", text)
    text = _MARKUP_EDGE.sub(lambda m: f"{_ZWSP}{m.group(0)}{_ZWSP}", text)
    return head + _EMOJI_OPEN.sub(f":{_ZWSP}", text)


def _escape(text: str) -> str:
    return escape(text)


def _code(text: str) -> str:
    """``text`` as an inline code span, shown literally and exactly."""
    return f"`{escape(text, code=True)}`"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:_TEXT_LIMIT]}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:_TEXT_LIMIT]}]}


def _button(text: str, action: ActionId, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": str(action),
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _chunks(lines: Iterable[str]) -> list[str]:
    chunks: list[str] = []
    current = ""
    for line in lines:
        if current and len(current) + len(line) + 1 > _TEXT_LIMIT:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


def _value(values: tuple[str, ...]) -> str:
    if not values:
        return "_(not set)_"
    return "\n".join(_code(v) for v in values)


def _line(label: str, value: str | Sequence[str] | None) -> str:
    if value is not None and not isinstance(value, str):
        value = ", ".join(value)
    return f"{label}: {_escape(value) if value else '-'}"


def _describe_cloud(user: CloudUser | None) -> str:
    if user is None:
        return "_not identified_"
    return "\n".join(
        [
            _line("UPN", user.user_principal_name),
            _line("Name", user.display_name),
            _line("mail", user.mail),
            _line("Type", user.user_type),
            _line("Immutable id", user.on_premises_immutable_id),
            _line("proxyAddresses", user.proxy_addresses),
        ]
    )


def _describe_onprem(user: OnPremUser | None) -> str:
    if user is None:
        return "_not identified_"
    return "\n".join(
        [
            _line("DN", user.dn),
            _line("Account", user.sam_account_name),
            _line("UPN", user.user_principal_name),
            _line("mail", user.mail),
            _line("Anchor", user.anchor),
            _line("proxyAddresses", user.proxy_addresses),
        ]
    )


def _entries(report: Report) -> list[Block]:
    if report.cloud is None and report.onprem is None:
        return []
    return [
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Entra ID*\n{_describe_cloud(report.cloud)}"[:1990]},
                {
                    "type": "mrkdwn",
                    "text": f"*Active Directory*\n{_describe_onprem(report.onprem)}"[:1990],
                },
            ],
        }
    ]


def plan_blocks(plan: ChangePlan | None, heading: str = "Planned change") -> list[Block]:
    """The change as attribute / before / after."""
    if plan is None or not plan.changes:
        return []
    lines = [f"*{heading}* on {_code(plan.dn)}"]
    for change in plan.changes:
        lines.append(
            f"• *{change.attribute}*\n    before: {_value(change.before)}\n"
            f"    after: {_value(change.after)}"
        )
    return [_section(text) for text in _chunks(lines)]


def _report_body(report: Report) -> list[Block]:
    """Everything of a report but its header and its button."""
    verdict = VERDICT_TEXT[report.verdict]
    blocks: list[Block] = [
        _section(f"{verdict}\n{_escape(report.summary)}"),
        *_entries(report),
        {"type": "divider"},
    ]
    if len(report.candidates) > 1:
        lines = ["*AD candidates* (name one: `/smtpmatch ADDRESS ACCOUNT`)"]
        lines += [
            f"• {_code(c.sam_account_name or '?')}  {_escape(c.dn)}"
            + (f"  UPN {_escape(c.user_principal_name)}" if c.user_principal_name else "")
            for c in report.candidates
        ]
        blocks.append(_section("\n".join(lines)))
    check_lines = []
    for check in report.checks:
        line = (
            f"{_STATUS_EMOJI.get(str(check.status), '')} *{_escape(check.title)}* "
            f"`{check.id}`\n{_escape(check.detail)}"
        )
        if check.remediation and str(check.status) in ("fail", "warn", "unknown"):
            line += f"\n_Remedy: {_escape(check.remediation)}_"
        check_lines.append(line)
    blocks += [_section(text) for text in _chunks(check_lines)]
    eligible = report.verdict is Verdict.ELIGIBLE
    if report.plan is not None and report.plan.creates:
        heading = "AD account to create"
    else:
        heading = "Planned change" if eligible else "Change it would make"
    blocks += plan_blocks(report.plan, heading)
    return blocks


def _offers_creation(report: Report) -> bool:
    return (
        report.verdict is Verdict.NEEDS_ACCOUNT and report.plan is not None and report.plan.creates
    )


def fit(body: Sequence[Block], actions: Sequence[Block], limit: int) -> list[Block]:
    """``body`` then ``actions`` within Slack's block limit: the body is shortened (with a
    note that it was), never the actions, so a long report keeps its buttons."""
    room = limit - len(actions)
    if len(body) > room:
        body = [*body[: room - 1], _context("_Shortened: the full report is in the audit log._")]
    return [*body, *actions]


#: Why an eligible report has no button when the bot has nowhere to send requests.
NO_APPROVAL_CHANNEL = (
    "No approval channel is configured (SMTPMATCH_APPROVAL_CHANNEL), so this report has no "
    "Request approval button: ask the bot's admin."
)


def report_blocks(
    report: Report, *, request_check: int | None = None, approvals: bool = True
) -> list[Block]:
    """The report for the requester: entries, checks, verdict, plan, and, when the report is
    eligible and ``request_check`` (the id of the recorded check) is given, the "Request
    approval" button, which carries that id and nothing else.

    Args:
        report: the report.
        request_check: the id of the recorded check, for the button.
        approvals: whether requests can be sent anywhere; when not, an eligible report says
            why it has no button.
    """
    header: Block = {
        "type": "header",
        "text": {"type": "plain_text", "text": f"SMTP match: {report.address}"[:150]},
    }
    actions: list[Block] = []
    if request_check is not None and report.verdict is Verdict.ELIGIBLE:
        button = _button(
            "Request approval", ActionId.REQUEST_APPROVAL, str(request_check), "primary"
        )
        actions.append({"type": "actions", "elements": [button]})
    elif request_check is not None and _offers_creation(report):
        # KB step 2: the same button and reason modal; the recorded check says "create".
        button = _button(
            "Request account creation", ActionId.REQUEST_APPROVAL, str(request_check), "primary"
        )
        actions.append({"type": "actions", "elements": [button]})
    elif not approvals and (report.verdict is Verdict.ELIGIBLE or _offers_creation(report)):
        actions.append(_context(f":information_source: {NO_APPROVAL_CHANNEL}"))
    return fit([header, *_report_body(report)], actions, MESSAGE_BLOCK_LIMIT)


def _when(at: datetime | None) -> str:
    if at is None:
        return "?"
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at.isoformat()}>"


def request_status_blocks(request: MatchRequest) -> list[Block]:
    """One line of where a request is, with who decided and when."""
    text = _STATE_TEXT[request.state]
    if request.decided_by and request.state is not RequestState.PENDING:
        text += f" · <@{request.decided_by}> at {_when(request.decided_at)}"
    if request.decision_reason:
        text += f"\n> {_escape(request.decision_reason)}"
    return [_section(text)]


def approval_blocks(request: MatchRequest) -> list[Block]:
    """The message in the approvers' channel: the request, its report, its state, its buttons."""
    reason = f"\n*Reason:* {_escape(request.reason)}" if request.reason else ""
    if request.plan.creates:
        ask = (
            f":new: <@{request.requester_id}> asks to *create a new AD account* "
            f"{_code(request.onprem_dn)} for {_code(request.target_address)} (KB 2641663 "
            "step 2), then SMTP-match it. Approving creates the account, enabled.\n"
            f"*Password:* {_escape(PASSWORD_CONSEQUENCE)}"
        )
    else:
        ask = (
            f":envelope: <@{request.requester_id}> asks to SMTP-match "
            f"{_code(request.target_address)} to {_code(request.onprem_dn)}."
        )
    blocks: list[Block] = [
        _section(f"{ask}{reason}\nRequest `{request.id}` · expires {_when(request.expires_at)}"),
        *request_status_blocks(request),
    ]
    if request.applied:
        written = "Created" if request.applied.creates else "Written (before → after)"
        blocks += plan_blocks(request.applied, written)
    blocks += _report_body(request.report)
    actions: list[Block] = []
    if request.state is RequestState.PENDING:
        actions.append(
            {
                "type": "actions",
                "elements": [
                    _button("Approve", ActionId.APPROVE, request.id, "primary"),
                    _button("Reject", ActionId.REJECT, request.id, "danger"),
                ],
            }
        )
    elif request.state in (
        RequestState.APPLIED,
        RequestState.SYNC_FAILED,
        RequestState.SYNC_TIMEOUT,
    ):
        actions.append(
            {"type": "actions", "elements": [_button("Revert", ActionId.REVERT, request.id)]}
        )
    return fit(blocks, actions, MESSAGE_BLOCK_LIMIT)


def approval_text(request: MatchRequest) -> str:
    """The notification text of the approval message."""
    kind = "AD account creation" if request.plan.creates else "SMTP match"
    return f"{kind} request {request.id} for {escape(request.target_address)}: {request.state}"


def notify_blocks(request: MatchRequest, status: str) -> list[Block]:
    """The one message per request in the team's channel (details go in its thread)."""
    return [
        _section(
            f"*SMTP match{' (new AD account)' if request.plan.creates else ''}* "
            f"`{request.id}`: {_code(request.target_address)} → "
            f"{_code(request.onprem_dn)}\nRequested by <@{request.requester_id}>"
            + (f", approved by <@{request.decided_by}>" if request.decided_by else "")
            + f"\n{escape(status, prose=True)}"
        )
    ]


def reason_modal(callback: CallbackId, private_metadata: str, *, required: bool) -> Block:
    """A modal asking for a reason (optional when requesting, required when rejecting)."""
    title = "Request approval" if callback is CallbackId.REQUEST_REASON else "Reject request"
    label = "Why is this match needed?" if not required else "Why is it rejected?"
    return {
        "type": "modal",
        "callback_id": str(callback),
        "private_metadata": private_metadata,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Send" if not required else "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": not required,
                "label": {"type": "plain_text", "text": label},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_ACTION,
                    "multiline": True,
                    "max_length": MAX_REASON_LENGTH,
                },
            }
        ],
    }


def message_blocks(text: str) -> list[Block]:
    """A short message of the bot's words, with the values in it shown literally."""
    return [_section(escape(text, prose=True))]


def mention(user_id: str | None) -> str:
    """A mention Slack renders as the person's name; anything but a user id is shown as is."""
    if user_id and _USER_ID.fullmatch(user_id):
        return f"<@{user_id}>"
    return _escape(user_id or "someone")


def channel_link(channel_id: str | None) -> str:
    """A link Slack renders as ``#channel``."""
    if channel_id and _CHANNEL_ID.fullmatch(channel_id):
        return f"<#{channel_id}>"
    return _escape(channel_id or "the approvers' channel")


Announcement = tuple[str, list[Block]]
"""A message as (notification text, blocks): both mrkdwn, so mentions render in both."""


def _announce(mrkdwn: str, extra: list[Block] | None = None) -> Announcement:
    return mrkdwn, [_section(mrkdwn), *(extra or [])]


def request_posted_announcement(request: MatchRequest, channel: str | None) -> Announcement:
    """To the requester: the request went to the approvers."""
    if request.plan.creates:
        return _announce(
            f"Your request {_code(request.id)} to create the AD account "
            f"{_code(request.onprem_dn)} for {_escape(request.target_address)} went to "
            f"{channel_link(channel)} for approval. {_escape(PASSWORD_CONSEQUENCE)}"
        )
    return _announce(
        f"Your request {_code(request.id)} to match {_escape(request.target_address)} went "
        f"to {channel_link(channel)} for approval."
    )


def applied_announcement(request: MatchRequest) -> Announcement:
    """To the requester: approved and written (or, KB step 2, the account created)."""
    if request.applied is not None and request.applied.creates:
        return _announce(
            f"Your request {_code(request.id)} was approved by {mention(request.decided_by)}: "
            f"the AD account {_code(request.onprem_dn)} was created, enabled. Directory sync "
            f"will now bind {_escape(request.target_address)}. {_escape(PASSWORD_CONSEQUENCE)}",
            plan_blocks(request.applied, "Created"),
        )
    return _announce(
        f"Your SMTP match {_code(request.id)} was approved by {mention(request.decided_by)} "
        f"and written to AD. Directory sync will now bind {_escape(request.target_address)}.",
        plan_blocks(request.applied, "Written"),
    )


def rejected_announcement(request: MatchRequest) -> Announcement:
    """To the requester: rejected, with the approver's reason."""
    return _announce(
        f"Your SMTP match {_code(request.id)} for {_escape(request.target_address)} was "
        f"rejected by {mention(request.decided_by)}: {_escape(request.decision_reason or '')}"
    )


def reverted_announcement(request: MatchRequest) -> Announcement:
    """To the requester and the team's thread: the old AD values are back (or the account
    the bot created is deleted)."""
    if request.applied is not None and request.applied.creates:
        return _announce(
            f"SMTP match {_code(request.id)} for {_escape(request.target_address)} was "
            f"reverted by {mention(request.decided_by)}: the AD account "
            f"{_code(request.onprem_dn)} the bot created was deleted."
        )
    restored = request.applied.inverse() if request.applied else None
    return _announce(
        f"SMTP match {_code(request.id)} for {_escape(request.target_address)} was reverted "
        f"by {mention(request.decided_by)}: the old AD values are back.",
        plan_blocks(restored, "Restored"),
    )


def outcome_announcement(request: MatchRequest, message: str) -> Announcement:
    """To the requester: any other outcome, in the service's plain words."""
    return _announce(
        f"Your SMTP match {_code(request.id)} for {_escape(request.target_address)}: "
        f"{_escape(message)}"
    )


def error_blocks(message: str, reference: str | None) -> list[Block]:
    """A fault, with the reference id that is also in the log."""
    ref = f"\n_Reference: `{reference}`_" if reference else ""
    return [_section(f":warning: {escape(message, prose=True)}{ref}")]


def help_blocks() -> list[Block]:
    """What `/smtpmatch help` shows."""
    return [
        _section(
            "*smtpmatch* checks whether an on-prem AD user can be SMTP-matched to a Microsoft "
            "365 user, and does it after approval.\n"
            "• `/smtpmatch jane@contoso.com`: check the address in both directories\n"
            "• `/smtpmatch jane@contoso.com jdoe`: name the AD account (sAMAccountName, UPN or "
            "DN)\n• `/smtpmatch scan`: a whole-tenant readiness scan, every cloud-only user "
            "judged, with a CSV (approvers only)\n• `/smtpmatch help`: this text\n"
            "When the verdict is *eligible*, press *Request approval*; an approver (not you) "
            "decides, the bot re-checks everything, writes `mail` and `proxyAddresses`, and "
            "tells you when directory sync has matched the accounts. When no AD account exists "
            "(*needs account*), *Request account creation* asks an approver to let the bot "
            "create it, then match it the same way."
        )
    ]


def _request_line(request: MatchRequest) -> str:
    new = " (new AD account)" if request.plan.creates else ""
    return (
        f"• `{request.id}` {_escape(request.target_address)} → {_escape(request.onprem_dn)}"
        f"{new}\n"
        f"   {_STATE_TEXT[request.state]} · requested by <@{request.requester_id}> "
        f"{_when(request.created_at)}"
    )


def home_view(
    own: Sequence[MatchRequest],
    awaiting: Sequence[MatchRequest],
    recent: Sequence[MatchRequest],
    *,
    is_approver: bool,
) -> Block:
    """App Home: my requests; for approvers also those awaiting my decision and recent
    results (nobody else sees other people's requests)."""
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "smtpmatch"}},
        _context("Type `/smtpmatch ADDRESS` in any channel to check an address."),
        {"type": "header", "text": {"type": "plain_text", "text": "My requests"}},
    ]
    blocks += [_section(t) for t in _chunks(_request_line(r) for r in own)] or [
        _context("You have not requested any match yet.")
    ]
    if is_approver:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Awaiting you"}})
        blocks += [_section(t) for t in _chunks(_request_line(r) for r in awaiting)] or [
            _context("Nothing waits for your decision.")
        ]
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Recent results"}})
        blocks += [_section(t) for t in _chunks(_request_line(r) for r in recent)] or [
            _context("No results yet.")
        ]
    shown: list[JsonValue] = [*fit(blocks, [], VIEW_BLOCK_LIMIT)]
    return {"type": "home", "blocks": shown}


__all__ = [
    "Announcement",
    "applied_announcement",
    "approval_blocks",
    "approval_text",
    "channel_link",
    "error_blocks",
    "escape",
    "fit",
    "help_blocks",
    "home_view",
    "mention",
    "message_blocks",
    "notify_blocks",
    "outcome_announcement",
    "plan_blocks",
    "reason_modal",
    "rejected_announcement",
    "report_blocks",
    "request_posted_announcement",
    "request_status_blocks",
    "reverted_announcement",
]
