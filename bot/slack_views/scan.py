"""Block Kit for the whole-tenant scan: progress, summary (totals and the fix-first list),
"one is running", and the App Home section with the latest scan."""

from __future__ import annotations

from collections.abc import Mapping

from bot.rules.checks import Verdict
from bot.scan.model import ScanResult, StoredScan
from bot.slack_views.blocks import Block, escape

#: How many blocking checks the summary lists (the rest are in the CSV).
TOP_CHECKS = 5
_MAX_TEXT = 2900  # a section's text must stay under 3000 characters


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _plain(text)[:_MAX_TEXT]}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _plain(text)[:_MAX_TEXT]}]}


def _plain(text: str) -> str:
    """The bot's sentences with values in them, through the one escaping function: no
    mention, link or formatting can be smuggled in by a value."""
    return escape(text, prose=True)


def progress_text(stage: str, done: int, total: int) -> str:
    """One line: what the scan is doing."""
    if stage == "read":
        return ":mag: Whole-tenant scan: reading Active Directory and Entra ID…"
    percent = 100 * done // total if total else 100
    filled = percent // 10
    bar = "█" * filled + "░" * (10 - filled)
    return f":mag: Whole-tenant scan: judging users {bar} {done}/{total} ({percent}%)"


def progress_blocks(stage: str, done: int, total: int, requested_by: str) -> list[Block]:
    """The progress message while the scan runs."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": progress_text(stage, done, total)}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"Requested by <@{requested_by}>"}],
        },
    ]


def _verdict_lines(by_verdict: Mapping[str, int], judged: int) -> str:
    lines = []
    for verdict in Verdict:
        count = int(by_verdict.get(str(verdict), 0))
        share = f" ({100 * count / judged:.0f}%)" if judged else ""
        lines.append(f"`{verdict}` {count}{share}")
    return "\n".join(lines)


def _check_lines(by_check: Mapping[str, int], remedies: Mapping[str, str]) -> str:
    if not by_check:
        return "Nothing blocks any user."
    lines = []
    for check, count in list(by_check.items())[:TOP_CHECKS]:
        remedy = remedies.get(check)
        line = f"*{count}* users: `{check}`"
        lines.append(line + (f"\n      {_plain(remedy)[:300]}" if remedy else ""))
    return "\n".join(lines)


def summary_text(totals: Mapping[str, object]) -> str:
    """The fallback text of the summary."""
    by_verdict = totals.get("by_verdict") or {}
    assert isinstance(by_verdict, Mapping)
    eligible = by_verdict.get(str(Verdict.ELIGIBLE), 0)
    judged = sum(int(v) for v in by_verdict.values())
    return f"Whole-tenant scan: {eligible} of {judged} cloud-only users can be matched now"


def summary_blocks(result: ScanResult, requested_by: str) -> list[Block]:
    """Totals by verdict and the top blocking checks with counts and remedies."""
    totals = result.totals()
    judged = len(result.items)
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Whole-tenant scan"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{judged} cloud-only users judged out of {result.cloud_users} cloud "
                f"users (scan `{result.scan_id}`).",
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*By verdict*\n" + _verdict_lines(result.by_verdict, judged),
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": ("*Fix first*\n" + _check_lines(totals["by_check"], result.remedies))[
                    :_MAX_TEXT
                ],
            },
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Requested by <@{requested_by}>. Every user is in the CSV below.",
                }
            ],
        },
    ]


def failed_blocks(error: str, reference: str) -> list[Block]:
    """The progress message when the scan could not finish."""
    return [
        _section(f":warning: The whole-tenant scan did not finish: {error}"),
        _context(f"Nothing was stored. Reference: {reference}"),
    ]


def running_text(scan: StoredScan, link: str | None) -> str:
    """What a second request is told."""
    who = f" by <@{scan.requested_by}>" if scan.requested_by else ""
    started = scan.started_at.strftime("%H:%M UTC")
    where = f": {link}" if link else "."
    return f":hourglass: A scan is already running (started{who} at {started}){where}"


def home_blocks(scan: StoredScan | None) -> list[Block]:
    """The App Home section with the latest scan's summary."""
    header: Block = {"type": "header", "text": {"type": "plain_text", "text": "Latest scan"}}
    if scan is None:
        return [header, _context("No scan yet. Approvers can type `/smtpmatch scan`.")]
    totals = scan.summary.get("totals") or {}
    by_verdict = totals.get("by_verdict") or {}
    judged = sum(int(v) for v in by_verdict.values())
    when = (scan.finished_at or scan.started_at).strftime("%Y-%m-%d %H:%M UTC")
    return [
        header,
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"Scan `{scan.id}` of {when}: {judged} cloud-only users\n"
                + _verdict_lines(by_verdict, judged),
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": (
                    "*Fix first*\n"
                    + _check_lines(totals.get("by_check") or {}, scan.summary.get("remedies") or {})
                )[:_MAX_TEXT],
            },
        },
    ]


__all__ = [
    "TOP_CHECKS",
    "failed_blocks",
    "home_blocks",
    "progress_blocks",
    "progress_text",
    "running_text",
    "summary_blocks",
    "summary_text",
]
