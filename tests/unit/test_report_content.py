"""What the report says, read as an admin reads it (issue 14, finding 8): details name the right
objects, remedies say how, candidates show why they were found."""

from __future__ import annotations

import json

from bot.directories.demo import build_demo_directories
from bot.rules.checks import Check, CheckId, Report, Status
from bot.services.check import Directories, check_match
from bot.slack_views.blocks import report_blocks
from bot.terminal import render_report


def demo_report(address: str, onprem: str | None = None) -> Report:
    return check_match(Directories(*build_demo_directories()), address, onprem)


def check(report: Report, check_id: CheckId) -> Check:
    return next(c for c in report.checks if c.id is check_id)


def test_a_matched_user_is_told_no_other_object_carries_her_anchor() -> None:
    report = demo_report("mia.matched@contoso.com")
    detail = check(report, CheckId.ONPREM_NOT_YET_SYNCED).detail
    assert report.cloud is not None and report.onprem is not None
    assert report.cloud.on_premises_immutable_id == report.onprem.anchor
    assert "No other cloud object" in detail


def test_the_candidates_show_the_upn_that_made_them_candidates() -> None:
    report = demo_report("chris@contoso.com")
    text = render_report(report, width=120)
    found = check(report, CheckId.ONPREM_USER_FOUND).detail

    slack = json.dumps(report_blocks(report))

    assert "UPN chris@contoso.com" in found
    assert "UPN chris@contoso.com" in text[text.index("AD candidates") :]
    assert "UPN chris@contoso.com" in slack[slack.index("AD candidates") :]


def test_an_earlier_cloud_twin_is_removed_step_by_step() -> None:
    remedy = check(demo_report("sam.synced@contoso.com"), CheckId.ONPREM_NOT_YET_SYNCED)
    assert remedy.status is Status.FAIL
    text = remedy.remediation or ""
    for step in ("out of sync scope", "run a sync", "purge", "Deleted users"):
        assert step in text


def test_a_guest_can_be_converted_to_a_member() -> None:
    remedy = check(demo_report("gina.guest@contoso.com"), CheckId.CLOUD_MEMBER_USER)
    assert remedy.status is Status.FAIL
    assert "Convert the guest to an internal member user" in (remedy.remediation or "")


def test_a_contact_named_by_its_dn_is_found_and_refused_as_not_a_person() -> None:
    contact = "CN=Dana Dup (external),OU=Contacts,DC=contoso,DC=com"
    report = demo_report("dana.dup@contoso.com", contact)

    assert report.onprem is not None and report.onprem.dn == contact
    assert check(report, CheckId.ONPREM_IS_PERSON).status is Status.FAIL
