"""A scan as JSON, CSV, a terminal table, and what changed since the previous scan."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from bot.rules.checks import Verdict
from bot.scan.model import ScanItem, ScanResult
from bot.terminal import for_command_line

#: The CSV columns, one row per item.
CSV_COLUMNS = (
    "address",
    "cloud_id",
    "userPrincipalName",
    "onprem_dn",
    "verdict",
    "failing",
    "warnings",
    "plan",
)


def render_json(result: ScanResult) -> str:
    """The stable JSON document (see :meth:`ScanResult.to_dict`)."""
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"


def render_csv(result: ScanResult) -> str:
    """One row per item; lists are ``;``-separated, the plan is its JSON."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in result.items:
        writer.writerow(
            [
                item.address,
                item.cloud_id,
                item.cloud_upn,
                item.onprem_dn or "",
                str(item.verdict),
                ";".join(item.failing),
                ";".join(item.warnings),
                json.dumps(item.plan, ensure_ascii=False) if item.plan else "",
            ]
        )
    return out.getvalue()


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def render_table(result: ScanResult, width: int = 100) -> str:
    """Totals by verdict, the fix-first list (blocking checks, counts, remedy), then the items,
    every line within ``width`` columns."""
    width = max(60, width)
    judged = len(result.items)
    generated = result.generated.strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        _cut(
            f"smtpmatch scan, {generated}: {result.cloud_users} cloud users, "
            f"{judged} cloud-only members judged",
            width,
        ),
        "",
        "By verdict:",
    ]
    for verdict, count in result.by_verdict.items():
        share = f"{100 * count / judged:5.1f}%" if judged else "    -"
        lines.append(f"  {verdict:16} {count:7}  {share}")
    by_check = result.by_check
    lines += ["", "Fix first (checks blocking the most users):"]
    if not by_check:
        lines.append("  nothing blocks any user")
    for check, count in by_check.items():
        lines.append(_cut(f"  {check:28} {count:7}", width))
        remedy = result.remedies.get(check)
        if remedy:
            # Remedies are written for Slack; the terminal shows the command-line form.
            remedy = for_command_line(remedy, "ADDRESS")
            wrapped = textwrap.wrap(remedy, width - 18) or [""]
            for index, part in enumerate(wrapped[:3]):
                lines.append(f"{'':10}{'Remedy: ' if index == 0 else '':8}{part}")
    lines += ["", "Items:"]
    rest = width - 16 - 2 - 4
    address_w = max(20, rest * 2 // 5)
    dn_w = max(10, rest - address_w - 2) // 2
    fail_w = max(8, rest - address_w - dn_w - 2)
    lines.append(f"  {'ADDRESS':{address_w}} {'VERDICT':16} {'AD USER':{dn_w}} FAILING")
    for item in result.items:
        lines.append(
            f"  {_cut(item.address, address_w):{address_w}} {item.verdict!s:16} "
            f"{_cut(item.onprem_dn or '-', dn_w):{dn_w}} "
            f"{_cut(','.join(item.failing) or '-', fail_w)}"
        )
    return "\n".join(line.rstrip() for line in lines) + "\n"


# -- changes since the previous scan ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One cloud user whose outcome differs between two scans (``None``: not in that scan)."""

    cloud_id: str
    address: str
    before: Verdict | None
    after: Verdict | None
    failing_before: tuple[str, ...] = ()
    failing_after: tuple[str, ...] = ()


def changes_between(before: Sequence[ScanItem], after: Sequence[ScanItem]) -> list[Change]:
    """Users new, gone, or with another verdict or other failing checks, in ``after``'s
    order (then the gone ones)."""
    old = {i.cloud_id: i for i in before}
    new = {i.cloud_id: i for i in after}
    out: list[Change] = []
    for item in after:
        was = old.get(item.cloud_id)
        if was is None:
            out.append(Change(item.cloud_id, item.address, None, item.verdict, (), item.failing))
        elif was.verdict != item.verdict or set(was.failing) != set(item.failing):
            out.append(
                Change(
                    item.cloud_id,
                    item.address,
                    was.verdict,
                    item.verdict,
                    was.failing,
                    item.failing,
                )
            )
    for item in before:
        if item.cloud_id not in new:
            out.append(Change(item.cloud_id, item.address, item.verdict, None, item.failing, ()))
    return out


def render_changes(
    changes: Sequence[Change], previous: ScanResult | None, current: ScanResult, fmt: str
) -> str:
    """What changed since ``previous`` (``None``: there was no earlier scan), as ``fmt``."""
    since = previous.generated.isoformat().replace("+00:00", "Z") if previous else None
    if fmt == "json":
        doc = {
            "since": {"id": previous.scan_id, "generated": since} if previous else None,
            "generated": current.generated.isoformat().replace("+00:00", "Z"),
            "totals": current.totals(),
            "changes": [
                {
                    "address": c.address,
                    "cloud": {"id": c.cloud_id},
                    "before": str(c.before) if c.before else None,
                    "after": str(c.after) if c.after else None,
                    "failing_before": list(c.failing_before),
                    "failing_after": list(c.failing_after),
                }
                for c in changes
            ],
        }
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ("address", "cloud_id", "before", "after", "failing_before", "failing_after")
        )
        for c in changes:
            writer.writerow(
                (
                    c.address,
                    c.cloud_id,
                    c.before or "",
                    c.after or "",
                    ";".join(c.failing_before),
                    ";".join(c.failing_after),
                )
            )
        return out.getvalue()
    if previous is None:
        head = "No earlier scan is stored: every user is new."
    else:
        head = f"Changes since the scan of {previous.generated.strftime('%Y-%m-%d %H:%M UTC')}:"
    lines = [head]
    if not changes:
        lines.append("  nothing changed")
    for c in changes:
        lines.append(f"  {c.address}: {c.before or '(new)'} -> {c.after or '(gone)'}")
    return "\n".join(lines) + "\n"


__all__ = [
    "CSV_COLUMNS",
    "Change",
    "changes_between",
    "render_changes",
    "render_csv",
    "render_json",
    "render_table",
]
