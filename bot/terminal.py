"""The report as text for a terminal: both entries side by side, checks, verdict, plan."""

from __future__ import annotations

import textwrap

from bot.rules.checks import Report, Status, Verdict
from bot.rules.codec import SINGLE_VALUED

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
_WIDTH = 100


def _side_by_side(report: Report) -> list[str]:
    cloud, onprem = report.cloud, report.onprem
    rows: list[tuple[str, str, str]] = [
        (
            "Name",
            (cloud.display_name or "") if cloud else "",
            (onprem.display_name or "") if onprem else "",
        ),
        (
            "UPN",
            cloud.user_principal_name if cloud else "",
            (onprem.user_principal_name or "") if onprem else "",
        ),
        ("mail", (cloud.mail or "") if cloud else "", (onprem.mail or "") if onprem else ""),
        (
            "Account",
            cloud.user_type if cloud else "",
            (onprem.sam_account_name or "") if onprem else "",
        ),
        (
            "Anchor",
            (cloud.on_premises_immutable_id or "(none)") if cloud else "",
            onprem.anchor if onprem else "",
        ),
        ("Object", cloud.id if cloud else "", onprem.dn if onprem else ""),
    ]
    cloud_proxies = list(cloud.proxy_addresses) if cloud else []
    onprem_proxies = list(onprem.proxy_addresses) if onprem else []
    for i in range(max(len(cloud_proxies), len(onprem_proxies))):
        rows.append(
            (
                "proxyAddresses" if i == 0 else "",
                cloud_proxies[i] if i < len(cloud_proxies) else "",
                onprem_proxies[i] if i < len(onprem_proxies) else "",
            )
        )
    lines = [f"{'':15} {'Entra ID':42} Active Directory", f"{'':15} {'-' * 42} {'-' * 42}"]
    lines += [f"{label:15} {left[:42]:42} {right}" for label, left, right in rows]
    return lines


def render_report(report: Report) -> str:
    """A readable, plain-text report."""
    out = [f"smtpmatch report for {report.address}", ""]
    if report.cloud or report.onprem:
        out += _side_by_side(report)
        out.append("")
    if len(report.candidates) > 1 or (report.onprem is None and report.candidates):
        out.append("AD candidates:")
        out += [f"  - {u.sam_account_name or '?'}  {u.dn}" for u in report.candidates]
        out.append("")
    out.append("Checks:")
    for check in report.checks:
        out.append(f"  [{_MARK[check.status]}] {check.id:28} {check.title}")
        for line in textwrap.wrap(check.detail, _WIDTH - 10):
            out.append(f"{'':9}{line}")
        if check.remediation and check.status in (Status.FAIL, Status.WARN, Status.UNKNOWN):
            for i, line in enumerate(textwrap.wrap(check.remediation, _WIDTH - 16)):
                out.append(f"{'':9}{'Remedy: ' if i == 0 else '        '}{line}")
    out += ["", f"Verdict: {_VERDICT[report.verdict]}", f"  {report.summary}"]
    if report.plan and report.plan.changes:
        heading = "Planned change" if report.verdict is Verdict.ELIGIBLE else "Change it would make"
        out += ["", f"{heading} on {report.plan.dn}:"]
        for change in report.plan.changes:
            out.append(f"  {change.attribute}")
            if change.attribute in SINGLE_VALUED:
                before = change.before[0] if change.before else "(not set)"
                after = change.after[0] if change.after else "(not set)"
                out += [f"    before: {before}", f"    after:  {after}"]
            else:
                out.append(f"    before: {', '.join(change.before) or '(empty)'}")
                out.append(f"    after:  {', '.join(change.after) or '(empty)'}")
    return "\n".join(out) + "\n"
