"""No formatting, link, mention or line break from a directory can change what a message
says (issue 15 L5): a crafted displayName and DN show literally in the report, the approval
message and the requester's direct messages."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from bot.rules.requests import RequestState
from bot.slack_views.blocks import (
    Block,
    applied_announcement,
    approval_blocks,
    escape,
    outcome_announcement,
    rejected_announcement,
    report_blocks,
    request_posted_announcement,
    reverted_announcement,
)
from tests.support.slack_fake import render_mrkdwn, rendered_text, text_of
from tests.unit.test_slack_views import a_request

FAKE_VERDICT = ":large_green_circle: *Approved by security*"
CRAFTED = f"x\n{FAKE_VERDICT} <!channel> _see_ ~this~ <https://evil.example|click>"
CRAFTED_DN = f"CN={CRAFTED},OU=Staff,DC=contoso,DC=com"
#: What a person must see: the value, its line break shown as an arrow, nothing rendered.
SHOWN = f"x ↵ {FAKE_VERDICT} <!channel> _see_ ~this~ <https://evil.example|click>"


def _crafted_request(**kw: object):
    request = a_request(**kw)
    report = request.report
    assert report.cloud is not None and report.onprem is not None
    report = replace(
        report,
        cloud=replace(report.cloud, display_name=CRAFTED),
        onprem=replace(report.onprem, display_name=CRAFTED, dn=CRAFTED_DN),
    )
    return replace(request, report=report, onprem_dn=CRAFTED_DN)


def _assert_literal(blocks: list[Block], *, where: str) -> None:
    raw = text_of(blocks)
    lines = raw.split("\n")
    # Nothing from the directory starts a line, or renders as an emoji, bold text, a link or
    # a mention (inside a code span Slack renders nothing, so only the rest is looked at).
    assert not any(line.lstrip().startswith(":large_green_circle: *Approved") for line in lines)
    rendered_as_markup = re.sub(r"`[^`\n]*`", "", raw)
    assert FAKE_VERDICT not in rendered_as_markup, where
    assert "<!channel>" not in raw and "<https://evil" not in raw
    assert SHOWN in rendered_text(blocks), where


def test_the_report_shows_a_crafted_display_name_literally() -> None:
    request = _crafted_request()
    _assert_literal(report_blocks(request.report, request_check=1), where="report")


def test_the_approval_message_shows_a_crafted_display_name_and_dn_literally() -> None:
    _assert_literal(approval_blocks(_crafted_request()), where="approval message")


@pytest.mark.parametrize(
    "announce",
    [
        lambda r: request_posted_announcement(r, "C0APPROVALS"),
        applied_announcement,
        rejected_announcement,
        reverted_announcement,
        lambda r: outcome_announcement(r, f"the DN {CRAFTED_DN} changed"),
    ],
)
def test_the_requesters_direct_messages_show_a_crafted_dn_literally(announce) -> None:
    request = _crafted_request(
        state=RequestState.APPLIED,
        decided_by="U0BOSS",
        decision_reason=CRAFTED,
    )
    plan = replace(request.plan, dn=CRAFTED_DN)
    # Every directory value a direct message can carry is crafted: the address, the DN.
    request = replace(request, plan=plan, applied=plan, target_address=CRAFTED)
    text, blocks = announce(request)
    _assert_literal(blocks, where="direct message")
    assert "\n" not in render_mrkdwn(text)  # the notification is one line, too


def test_values_inside_a_word_stay_exact_for_copying() -> None:
    assert escape("jane_doe@contoso.com") == "jane_doe@contoso.com"
    assert escape("SMTP:jane@contoso.com") == "SMTP:jane@contoso.com"
    assert escape("a`b\nc", code=True) == "a\u02cbb \u21b5 c"
