"""Block Kit builders: what the requester and the approvers see."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from bot.directories.demo import build_demo_directories
from bot.rules.checks import Report
from bot.rules.requests import RequestState
from bot.rules.waves import ItemState, Wave, WaveState
from bot.services.check import Directories, check_match
from bot.slack_views import waves as wave_views
from bot.slack_views.blocks import approval_blocks, home_view, report_blocks
from bot.slack_views.ids import ActionId, WaveActionId
from bot.store.repository import MatchRequest


def demo_report(address: str) -> Report:
    return check_match(Directories(*build_demo_directories()), address)


def flat(blocks: list[dict]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def action_ids(blocks: list[dict]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def a_request(**kw) -> MatchRequest:
    report = demo_report("paul.primary@contoso.com")
    now = datetime(2026, 11, 26, 9, tzinfo=UTC)
    values = dict(
        id="r1",
        address="paul.primary@contoso.com",
        onprem_id=None,
        target_address="paul.primary@contoso.com",
        onprem_dn=report.onprem.dn,
        cloud_user_id="c1",
        cloud_upn="paul.primary@contoso.com",
        anchor="x",
        plan=report.plan,
        report=report,
        requester_id="U1",
        requester_name="helpdesk",
        reason="moving <to> AD & more",
        state=RequestState.PENDING,
        created_at=now,
        expires_at=now,
        updated_at=now,
        decided_by=None,
        decided_at=None,
        decision_reason=None,
        applied=None,
        approval_channel="C1",
        approval_ts="1.1",
        requester_channel="U1",
        notify_ts=None,
        version=1,
    )
    values.update(kw)
    return MatchRequest(**values)


def test_an_eligible_report_shows_both_sides_every_check_the_plan_and_the_button() -> None:
    blocks = report_blocks(demo_report("paul.primary@contoso.com"), request_check=42)
    text = flat(blocks)
    for words in (
        "Entra ID",
        "Active Directory",
        "unique.onprem",
        "cloud.primary_unchanged",
        "SMTP:paul@fabrikam.com",
        "paul.primary@contoso.com",
        "Eligible",
    ):
        assert words in text
    assert action_ids(blocks) == [ActionId.REQUEST_APPROVAL]
    assert len(blocks) <= 50


def test_a_blocked_report_offers_no_request_and_shows_the_remedy() -> None:
    blocks = report_blocks(demo_report("alex.admin@contoso.com"), request_check=42)
    assert action_ids(blocks) == []
    assert "Remove the role(s), match, then add them back." in flat(blocks)


def test_the_request_button_carries_only_the_recorded_check_id() -> None:
    blocks = report_blocks(demo_report("jane@contoso.com"), request_check=42)
    assert next(b for b in blocks if b["type"] == "actions")["elements"][0]["value"] == "42"
    assert action_ids(report_blocks(demo_report("jane@contoso.com"))) == []


def test_a_pending_request_has_approve_and_reject_carrying_only_its_id() -> None:
    blocks = approval_blocks(a_request())
    assert action_ids(blocks) == [ActionId.APPROVE, ActionId.REJECT]
    assert {e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]} == {"r1"}
    assert "moving &lt;to&gt; AD &amp; more" in flat(blocks)


def test_a_decided_request_has_no_decision_buttons_and_names_the_approver() -> None:
    request = a_request(
        state=RequestState.REJECTED,
        decided_by="U2",
        decided_at=datetime(2026, 11, 26, 10, tzinfo=UTC),
        decision_reason="not today",
    )
    blocks = approval_blocks(request)
    assert action_ids(blocks) == []
    assert "<@U2>" in flat(blocks) and "not today" in flat(blocks)


def test_an_applied_request_shows_before_and_after_and_offers_revert() -> None:
    request = a_request(
        state=RequestState.APPLIED,
        decided_by="U2",
        decided_at=datetime(2026, 11, 26, 10, tzinfo=UTC),
        applied=a_request().plan,
    )
    blocks = approval_blocks(request)
    assert action_ids(blocks) == [ActionId.REVERT]
    assert "Written (before → after)" in flat(blocks)


def test_home_lists_own_awaiting_and_recent() -> None:
    mine = a_request()
    theirs = replace(a_request(), id="r2", requester_id="U9")
    view = home_view([mine], [theirs], [], is_approver=True)
    text = flat(view["blocks"])
    assert "`r1`" in text and "`r2`" in text and "Awaiting you" in text
    assert "Awaiting you" not in flat(home_view([mine], [], [], is_approver=False)["blocks"])


def test_a_report_too_long_for_one_message_keeps_its_request_button() -> None:
    report = demo_report("jane@contoso.com")
    many = tuple(replace(report.checks[0], detail=f"detail {i} " + "x" * 2900) for i in range(80))
    blocks = report_blocks(replace(report, checks=report.checks + many), request_check=7)
    assert len(blocks) <= 50
    assert action_ids(blocks) == [ActionId.REQUEST_APPROVAL]
    assert "Shortened" in flat(blocks)


def test_a_long_pending_request_keeps_approve_and_reject() -> None:
    request = a_request()
    many = tuple(replace(request.report.checks[0], detail="y" * 2900) for _ in range(80))
    long_report = replace(request.report, checks=request.report.checks + many)
    blocks = approval_blocks(replace(request, report=long_report))
    assert len(blocks) <= 50
    assert action_ids(blocks) == [ActionId.APPROVE, ActionId.REJECT]


def test_announcements_render_mentions_as_people_and_directory_values_literally() -> None:
    from bot.slack_views.blocks import (
        applied_announcement,
        rejected_announcement,
        request_posted_announcement,
        reverted_announcement,
    )
    from tests.support.slack_fake import render_mrkdwn, rendered_text

    decided = a_request(
        state=RequestState.REJECTED,
        decided_by="U0BOSS",
        decided_at=datetime(2026, 11, 26, 10, tzinfo=UTC),
        decision_reason="<@U0EVIL> *bold* & more",
        applied=a_request().plan,
    )
    for text, blocks in (
        applied_announcement(decided),
        rejected_announcement(decided),
        reverted_announcement(decided),
    ):
        shown = rendered_text(blocks)
        assert "@U0BOSS" in shown and "<@U0BOSS" not in shown and "&lt;" not in shown
        assert "@U0BOSS" in render_mrkdwn(text)  # the notification says the same
    assert "<@U0EVIL> *bold* & more" in rendered_text(rejected_announcement(decided)[1])
    _, posted = request_posted_announcement(decided, "C0APPROVALS")
    assert "went to #C0APPROVALS for approval" in rendered_text(posted)


def test_every_verdict_of_the_demo_directories_renders_with_its_own_headline() -> None:
    from bot.rules.checks import Verdict
    from bot.slack_views.blocks import VERDICT_TEXT

    reports = [
        demo_report(address)
        for address in (
            "jane@contoso.com",
            "mia.matched@contoso.com",
            "hank.hard@contoso.com",
            "nora.new@contoso.com",
            "chris@contoso.com",
            "gina.guest@contoso.com",
        )
    ]

    assert {r.verdict for r in reports} == set(Verdict)
    for report in reports:
        assert VERDICT_TEXT[report.verdict] in flat(report_blocks(report))


def a_wave(**kw) -> Wave:
    now = datetime(2026, 11, 26, 9, tzinfo=UTC)
    values = dict(
        id="w1",
        scan_id="s1",
        state=WaveState.WATCHING,
        requester_id="U0HELP",
        reason="hand-over",
        criteria={},
        count=3,
        created_at=now,
        updated_at=now,
        approver_id="U0APPROVER",
    )
    return Wave(**(values | kw))


def test_a_watched_wave_offers_revert_one_and_a_confirmed_revert_of_the_unmatched() -> None:
    counts = {s: 0 for s in ItemState} | {ItemState.APPLIED: 2, ItemState.MATCHED: 1}
    blocks = wave_views.progress_blocks(a_wave(), counts, None)
    assert action_ids(blocks) == [WaveActionId.REVERT_ONE, WaveActionId.REVERT]
    [revert_all] = [
        e for b in blocks if b["type"] == "actions" for e in b["elements"] if "confirm" in e
    ]
    assert revert_all["text"]["text"] == "Revert 2 not-yet-matched"
    assert "2 users" in revert_all["confirm"]["text"]["text"]
    assert all(e["value"] == "w1" for b in blocks if b["type"] == "actions" for e in b["elements"])
    # Nothing to revert once every written user matched.
    matched = counts | {ItemState.APPLIED: 0, ItemState.MATCHED: 3}
    assert action_ids(wave_views.progress_blocks(a_wave(state=WaveState.DONE), matched, None)) == []
    # While it applies only the brake (confirmed); a paused wave can also be resumed now, and
    # its pause note stays on every update.
    applying = wave_views.progress_blocks(a_wave(state=WaveState.APPLYING), counts, None)
    assert action_ids(applying) == [WaveActionId.STOP]
    assert "confirm" in applying[-1]["elements"][0]
    paused = wave_views.progress_blocks(
        a_wave(state=WaveState.PAUSED, note="Active Directory could not be reached"), counts, None
    )
    assert action_ids(paused) == [WaveActionId.RESUME, WaveActionId.STOP]
    assert "could not be reached" in flat(paused)


def test_wave_modals_and_the_rejection_dm_show_values_literally() -> None:
    modal = wave_views.revert_one_modal("w<!here>")
    assert modal["callback_id"] == WaveActionId.REVERT_ONE_SUBMIT
    assert "<!here>" not in flat(modal["blocks"]) and modal["private_metadata"] == "w<!here>"
    reject = wave_views.reject_modal("w1")
    assert reject["callback_id"] == WaveActionId.REJECT_SUBMIT
    [field] = [b for b in reject["blocks"] if b["type"] == "input"]
    assert field.get("optional") is not True  # a rejection always says why
    told = flat(wave_views.closed_blocks(a_wave(state=WaveState.REJECTED, note="<!channel> no")))
    assert "<@U0APPROVER>" in told and "<!channel>" not in told and "&lt;!channel&gt;" in told
    note = "no approver decided within 24 hours"
    expired = flat(
        wave_views.closed_blocks(a_wave(state=WaveState.EXPIRED, approver_id=None, note=note))
    )
    assert "expired: no approver decided within 24 hours" in expired and "<@" not in expired
