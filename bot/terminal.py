"""The report as text for a terminal: the verdict and what to do first, then the details.

Order: verdict, what to do, both directory entries side by side, the checks that matter (the
ones that do not apply collapsed into one line per reason), the change a match would make.
Lines are wrapped to the terminal's width; a value too long for its column is wrapped and, past
three lines, cut with a ``…`` marker (``--json`` has every value in full). Colour only on a
terminal and never when ``NO_COLOR`` is set. Remedies written for Slack (``/smtpmatch …``) are
shown in their command-line form.
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from typing import TextIO

from bot.rules.checks import Check, Report, Status, Verdict
from bot.rules.codec import SINGLE_VALUED

NOT_SET = "(not set)"
MORE = "…"
_MIN_WIDTH, _MAX_WIDTH, _DEFAULT_WIDTH = 60, 140, 100
_MARK = {
    Status.PASS: "PASS",
    Status.FAIL: "FAIL",
    Status.WARN: "WARN",
    Status.UNKNOWN: "????",
    Status.SKIP: "skip",
}
_VERDICT = {
    Verdict.ELIGIBLE: "ELIGIBLE: the AD user can be SMTP-matched",
    Verdict.ALREADY_MATCHED: "ALREADY MATCHED: nothing to do",
    Verdict.SYNC_PENDING: "SYNC PENDING: nothing to change; run a sync",
    Verdict.NEEDS_ACCOUNT: "NEEDS ACCOUNT: no AD account exists for this person yet",
    Verdict.BLOCKED: "BLOCKED: fix the failed checks first",
    Verdict.NEEDS_INPUT: "NEEDS INPUT",
}
# ANSI SGR codes: bold red, bold green, yellow, magenta, dim, bold.
_RED, _GREEN, _YELLOW, _MAGENTA, _DIM, _BOLD = "1;31", "1;32", "33", "35", "2", "1"
_STATUS_COLOUR = {
    Status.PASS: _GREEN,
    Status.FAIL: _RED,
    Status.WARN: _YELLOW,
    Status.UNKNOWN: _MAGENTA,
    Status.SKIP: _DIM,
}
_VERDICT_COLOUR = {
    Verdict.ELIGIBLE: _GREEN,
    Verdict.ALREADY_MATCHED: _GREEN,
    Verdict.BLOCKED: _RED,
    Verdict.NEEDS_INPUT: _YELLOW,
}
_SLACK_AND_CLI = re.compile(r"`/smtpmatch ([^`]*)` in Slack, `([^`]*)` on the command line")
_SLACK_COMMAND = re.compile(r"`/smtpmatch(?: ([^`]*))?`")


def use_colour(stream: TextIO) -> bool:
    """Colour when ``stream`` is a terminal, ``NO_COLOR`` is unset and the terminal is not dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def terminal_width() -> int:
    """The terminal's width in columns, within sensible bounds (100 when not a terminal)."""
    columns = shutil.get_terminal_size((_DEFAULT_WIDTH, 24)).columns
    return max(_MIN_WIDTH, min(_MAX_WIDTH, columns))


def for_command_line(text: str, address: str) -> str:
    """``text`` with Slack's ``/smtpmatch ADDRESS ACCOUNT`` shown as the command-line form."""

    def command(arguments: str | None) -> str:
        shown = (arguments or address).replace("ADDRESS", address)
        return f"`smtpmatch check {shown}`"

    text = _SLACK_AND_CLI.sub(lambda m: command(m.group(1)), text)
    return _SLACK_COMMAND.sub(lambda m: command(m.group(1)), text)


class _Painter:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and text else text


def _cell(value: str | None, width: int, lines: int = 3) -> list[str]:
    """``value`` wrapped to ``width``; past ``lines`` lines the last one ends with ``…``."""
    text = value if value not in (None, "") else NOT_SET
    assert text is not None
    pieces = [text[i : i + width] for i in range(0, len(text), width)] or [""]
    if len(pieces) > lines:
        pieces = [*pieces[: lines - 1], pieces[lines - 1][: width - 1] + MORE]
    return pieces


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + MORE


def _side_by_side(report: Report, width: int, paint: _Painter) -> list[str]:
    cloud, onprem = report.cloud, report.onprem
    label_width = 15
    column = max(20, (width - label_width - 2) // 2)

    def pair(label: str, left: str | None, right: str | None) -> tuple[str, str | None, str | None]:
        return label, left, right

    rows = [
        pair(
            "Name", cloud.display_name if cloud else None, onprem.display_name if onprem else None
        ),
        pair(
            "UPN",
            cloud.user_principal_name if cloud else None,
            onprem.user_principal_name if onprem else None,
        ),
        pair("mail", cloud.mail if cloud else None, onprem.mail if onprem else None),
        pair(
            "Account",
            cloud.user_type if cloud else None,
            onprem.sam_account_name if onprem else None,
        ),
        pair(
            "Anchor",
            cloud.on_premises_immutable_id if cloud else None,
            onprem.anchor if onprem else None,
        ),
        pair("Object", cloud.id if cloud else None, onprem.dn if onprem else None),
    ]
    cloud_proxies = list(cloud.proxy_addresses) if cloud else []
    onprem_proxies = list(onprem.proxy_addresses) if onprem else []
    count = max(len(cloud_proxies), len(onprem_proxies), 1)
    for i in range(count):
        rows.append(
            pair(
                "proxyAddresses" if i == 0 else "",
                cloud_proxies[i] if i < len(cloud_proxies) else (NOT_SET if i == 0 else ""),
                onprem_proxies[i] if i < len(onprem_proxies) else (NOT_SET if i == 0 else ""),
            )
        )
    left_title = f"{_fit('Entra ID', column):{column}}"
    right_title = _fit("Active Directory", column)
    lines = [
        f"{'':{label_width}} {paint(left_title, _BOLD)} {paint(right_title, _BOLD)}",
        f"{'':{label_width}} {'-' * column} {'-' * column}",
    ]
    missing = "(no single user found)"
    for index, (label, left, right) in enumerate(rows):
        if left == "" and right == "":
            continue
        left_cells = _cell(left, column) if cloud and left != "" else [""]
        right_cells = _cell(right, column) if onprem and right != "" else [""]
        if index == 0:
            left_cells = left_cells if cloud else _cell(missing, column)
            right_cells = right_cells if onprem else _cell(missing, column)
        for i in range(max(len(left_cells), len(right_cells))):
            left_text = left_cells[i] if i < len(left_cells) else ""
            right_text = right_cells[i] if i < len(right_cells) else ""
            shown_label = label if i == 0 else ""
            lines.append(f"{shown_label:{label_width}} {left_text:{column}} {right_text}".rstrip())
    return lines


def _wrapped(text: str, width: int, first: str, rest: str) -> list[str]:
    return textwrap.wrap(
        text,
        width,
        initial_indent=first,
        subsequent_indent=rest,
        break_on_hyphens=False,
        break_long_words=True,
    ) or [first.rstrip()]


def _next_steps(report: Report) -> list[str]:
    """What to do first, in the order the checks are listed."""
    failing = [c for c in report.checks if c.status is Status.FAIL and c.remediation]
    if failing:
        return [for_command_line(str(c.remediation), report.address) for c in failing]
    if report.verdict is Verdict.ELIGIBLE:
        steps = [
            f"Run `/smtpmatch {report.address}` in Slack and press Request approval; an approver "
            "confirms, then the bot writes the change below."
        ]
        if any(c.status in (Status.WARN, Status.UNKNOWN) for c in report.checks):
            steps.append("Read the warnings below first: they are shown to the approver too.")
        return steps
    return []


def _check_lines(check: Check, width: int, paint: _Painter, address: str) -> list[str]:
    mark = paint(f"[{_MARK[check.status]}]", _STATUS_COLOUR[check.status])
    head = f"{check.id:28} {check.title}"
    if 9 + len(head) <= width:
        lines = [f"  {mark} {head}"]
    else:  # a narrow terminal: the title goes under the id
        lines = [f"  {mark} {check.id}", *_wrapped(check.title, width, " " * 9, " " * 9)]
    lines += _wrapped(check.detail, width, " " * 9, " " * 9)
    if check.remediation and check.status in (Status.FAIL, Status.WARN, Status.UNKNOWN):
        remedy = for_command_line(check.remediation, address)
        lines += _wrapped(remedy, width, " " * 9 + "Remedy: ", " " * 17)
    return lines


def _skipped_lines(skipped: list[Check], width: int, paint: _Painter) -> list[str]:
    """One entry per reason: ``[skip] N checks: reason`` and their ids."""
    by_reason: dict[str, list[str]] = {}
    for check in skipped:
        by_reason.setdefault(check.detail, []).append(str(check.id))
    lines = []
    for reason, ids in by_reason.items():
        head = f"{len(ids)} checks" if len(ids) > 1 else ids[0]
        mark = paint("[skip]", _STATUS_COLOUR[Status.SKIP])
        lines += _wrapped(f"{head}: {reason}", width, f"  {mark} ", " " * 9)
        if len(ids) > 1:
            lines += _wrapped(", ".join(ids), width, " " * 9, " " * 9)
    return lines


def _plan_lines(report: Report, width: int) -> list[str]:
    plan = report.plan
    if plan is None or not plan.changes:
        return []
    heading = "Planned change" if report.verdict is Verdict.ELIGIBLE else "Change it would make"
    out = ["", *_wrapped(f"{heading} on {plan.dn}:", width, "", "  ")]
    for change in plan.changes:
        out.append(f"  {change.attribute}")
        if change.attribute in SINGLE_VALUED:
            before = change.before[0] if change.before else NOT_SET
            after = change.after[0] if change.after else NOT_SET
        else:
            before = ", ".join(change.before) or NOT_SET
            after = ", ".join(change.after) or NOT_SET
        out += _wrapped(before, width, "    before: ", " " * 12)
        out += _wrapped(after, width, "    after:  ", " " * 12)
    return out


def render_report(report: Report, *, width: int | None = None, colour: bool = False) -> str:
    """The report as text: verdict and what to do first, then entries, checks and plan.

    Args:
        report: the report to show.
        width: the terminal's width (default: measured, 100 when not a terminal).
        colour: use ANSI colours (see :func:`use_colour`).
    """
    width = width or terminal_width()
    paint = _Painter(colour)
    verdict_text = _VERDICT.get(report.verdict, str(report.verdict).replace("_", " ").upper())
    colour_code = _VERDICT_COLOUR.get(report.verdict, _BOLD)
    out = [f"smtpmatch report for {report.address}", ""]
    out.append(paint(f"Verdict: {verdict_text}", colour_code))
    out += _wrapped(for_command_line(report.summary, report.address), width, "  ", "  ")
    steps = _next_steps(report)
    if steps:
        out += ["", paint("What to do first:", _BOLD)]
        for step in steps:
            out += _wrapped(step, width, "  - ", "    ")
    out.append("")
    if report.cloud or report.onprem:
        out += _side_by_side(report, width, paint)
        out.append("")
    if len(report.candidates) > 1 or (report.onprem is None and report.candidates):
        out.append("AD candidates:")
        for user in report.candidates:
            upn = f"  UPN {user.user_principal_name}" if user.user_principal_name else ""
            line = f"{user.sam_account_name or '?'}  {user.dn}{upn}"
            out += _wrapped(line, width, "  - ", "    ")
        out.append("")
    out.append(paint("Checks:", _BOLD))
    shown = [c for c in report.checks if c.status is not Status.SKIP]
    for check in shown:
        out += _check_lines(check, width, paint, report.address)
    out += _skipped_lines([c for c in report.checks if c.status is Status.SKIP], width, paint)
    out += _plan_lines(report, width)
    return "\n".join(out) + "\n"
