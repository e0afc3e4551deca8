"""The bot end to end: signed Slack requests in, Slack messages and AD writes out."""

from __future__ import annotations

import threading
import time

from bot.rules.requests import RequestState
from bot.slack_views.ids import REASON_ACTION, REASON_BLOCK, ActionId, CallbackId
from tests.e2e.conftest import (
    APPROVAL_CHANNEL,
    APPROVER,
    GROUP_MEMBER,
    OUTSIDER,
    REQUESTER,
    BotWorld,
    report_text,
)
from tests.support.slack_fake import find_action, rendered_text


def ad_values(world: BotWorld, dn: str) -> tuple[list[str], list[str]]:
    values = world.ad.read(dn, ["mail", "proxyAddresses"])
    return [str(v) for v in values.get("mail", [])], sorted(
        str(v) for v in values.get("proxyAddresses", [])
    )


def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_whole_happy_path_writes_ad_once_and_tells_everyone(world: BotWorld) -> None:
    jane = world.seed("jane")
    with world.running() as slack:
        report = slack.check(jane.address)
        text = report_text(report)
        assert "Eligible" in text and "unique.onprem" in text and jane.dn in text
        assert ad_values(world, jane.dn) == ([], [])  # checking changes nothing

        message = slack.request_approval(report, reason="moving Jane under AD")
        assert "moving Jane under AD" in message.all_text
        request_id = slack.request_id(message)
        world.slack.wait_for(
            lambda c: (
                c.method == "chat.postMessage"
                and c.args.get("channel") == REQUESTER
                and APPROVAL_CHANNEL in str(c.args.get("text"))
            )
        )

        slack.press(message, ActionId.APPROVE, APPROVER)
        wait_until(
            lambda: (
                slack.bot.services.store.get_request(request_id).state
                in (RequestState.APPLIED, RequestState.MATCHED)
            )
        )
        assert ad_values(world, jane.dn) == ([jane.address], [f"SMTP:{jane.address}"])

        request = slack.bot.services.store.get_request(request_id)
        assert request.decided_by == APPROVER
        assert {c.attribute: c.before for c in request.applied.changes} == {
            "mail": (),
            "proxyAddresses": (),
        }
        wait_until(lambda: "Applied" in world.slack.message(APPROVAL_CHANNEL, message.ts).all_text)
        updated = world.slack.message(APPROVAL_CHANNEL, message.ts)
        assert f"<@{APPROVER}>" in updated.all_text
        assert not find_action_or_none(updated.blocks, ActionId.APPROVE)
        world.slack.wait_for(
            lambda c: (
                c.method == "chat.postMessage"
                and c.args.get("channel") == REQUESTER
                and "written to AD" in str(c.args.get("text"))
            )
        )
        events = [e.event for e in slack.bot.services.store.list_audit(request_id=request_id)]
        assert events[:3] == ["requested", "approved", "applied"]


def find_action_or_none(blocks, action):
    try:
        return find_action(blocks, action)
    except (KeyError, LookupError, ValueError):
        return None


def test_the_requester_cannot_approve_their_own_request(world: BotWorld) -> None:
    jane = world.seed("jane")
    with world.running() as slack:
        message = slack.request_approval(slack.check(jane.address))
        slack.press(message, ActionId.APPROVE, REQUESTER)
        call = world.slack.wait_for(
            lambda c: c.method == "response_url" and "another approver" in str(c.args.get("text"))
        )
        assert call.args["response_type"] == "ephemeral"
        assert slack.bot.services.store.get_request(slack.request_id(message)).state is (
            RequestState.PENDING
        )
        assert ad_values(world, jane.dn) == ([], [])


def test_a_non_approver_is_refused_and_a_group_member_may_approve(world: BotWorld) -> None:
    jane = world.seed("jane")
    with world.running() as slack:
        message = slack.request_approval(slack.check(jane.address))
        slack.press(message, ActionId.APPROVE, OUTSIDER)
        world.slack.wait_for(
            lambda c: (
                c.method == "response_url"
                and "Only the configured approvers" in str(c.args.get("text"))
            )
        )
        assert ad_values(world, jane.dn) == ([], [])
        slack.press(message, ActionId.APPROVE, GROUP_MEMBER)
        wait_until(lambda: ad_values(world, jane.dn)[0] == [jane.address])


def test_two_concurrent_approve_clicks_make_exactly_one_write(world: BotWorld) -> None:
    jane = world.seed("jane")
    with world.running() as slack:
        message = slack.request_approval(slack.check(jane.address))
        request_id = slack.request_id(message)
        clicks = [
            threading.Thread(target=slack.press, args=(message, ActionId.APPROVE, user))
            for user in (APPROVER, GROUP_MEMBER)
        ]
        for click in clicks:
            click.start()
        for click in clicks:
            click.join()
        store = slack.bot.services.store

        def events(name: str) -> list[object]:
            return [e for e in store.list_audit(request_id=request_id) if e.event == name]

        wait_until(lambda: bool(events("applied")))
        world.slack.wait_for(
            lambda c: c.method == "response_url" and "already" in str(c.args.get("text"))
        )
        assert len(events("approved")) == 1
        assert len(events("applied")) == 1
        assert store.get_request(request_id).state in (RequestState.APPLIED, RequestState.MATCHED)
        assert ad_values(world, jane.dn) == ([jane.address], [f"SMTP:{jane.address}"])


def test_a_restart_between_request_and_approval_loses_nothing(world_on: BotWorld) -> None:
    world = world_on  # on SQLite and on PostgreSQL
    jane = world.seed("jane")
    with world.running() as slack:
        message = slack.request_approval(slack.check(jane.address))
    with world.running() as restarted:
        restarted.press(message, ActionId.APPROVE, APPROVER)
        wait_until(lambda: ad_values(world, jane.dn)[0] == [jane.address])
        request = restarted.bot.services.store.get_request(restarted.request_id(message))
        assert request.requester_id == REQUESTER and request.reason == "joins on-prem"


def test_a_directory_fault_during_a_check_answers_with_a_reference_in_the_log(
    world: BotWorld, caplog
) -> None:
    jane = world.seed("jane")
    world.graph.state.knobs.unavailable_next = 1000
    with world.running() as slack:
        report = slack.check(jane.address)
    world.graph.state.knobs.unavailable_next = 0
    text = str(report.get("text"))
    assert "Entra ID could not answer; nothing was changed." in text
    reference = text.rsplit("ref ", 1)[1].rstrip(")")
    assert any(reference in r.getMessage() for r in caplog.records)
    assert world.graph.client_secret not in report_text(report)


def test_an_expired_request_cannot_be_approved_and_says_so(world: BotWorld) -> None:
    jane = world.seed("jane")
    with world.running(smtpmatch_request_ttl_hours=0.0001) as slack:
        message = slack.request_approval(slack.check(jane.address))
        time.sleep(0.5)
        slack.press(message, ActionId.APPROVE, APPROVER)
        world.slack.wait_for(
            lambda c: c.method == "response_url" and "expired" in str(c.args.get("text"))
        )
        wait_until(lambda: "Expired" in world.slack.message(APPROVAL_CHANNEL, message.ts).all_text)
        assert ad_values(world, jane.dn) == ([], [])


def test_reject_takes_a_reason_and_tells_the_requester(world: BotWorld) -> None:
    jane = world.seed("jane")
    with world.running() as slack:
        message = slack.request_approval(slack.check(jane.address))
        slack.press(message, ActionId.REJECT, APPROVER)
        world.slack.wait_for("views.open", count=2)  # the request's modal, then the reject one
        response = slack.slack_driver.submit_view(
            CallbackId.REJECT_REASON, APPROVER, {REASON_BLOCK: {REASON_ACTION: "wrong OU"}}
        )
        assert response.status_code == 200
        world.slack.wait_for(
            lambda c: (
                c.method == "chat.postMessage"
                and c.args.get("channel") == REQUESTER
                and "was rejected" in str(c.args.get("text"))
                and "wrong OU" in str(c.args.get("text"))
            )
        )
        updated = world.slack.message(APPROVAL_CHANNEL, message.ts)
        assert "wrong OU" in updated.all_text and "Rejected" in updated.all_text
        assert ad_values(world, jane.dn) == ([], [])


def test_a_changed_cloud_primary_is_refused_at_approval(world: BotWorld) -> None:
    jane = world.seed("jane")
    with world.running() as slack:
        message = slack.request_approval(slack.check(jane.address))
        with world.graph.state.lock:
            user = world.graph.state.users[jane.cloud_id]
            new = world.ad.address("jane.new")
            user.proxy_addresses = [f"SMTP:{new}", f"smtp:{jane.address}"]
            user.mail = new
        slack.press(message, ActionId.APPROVE, APPROVER)
        world.slack.wait_for(
            lambda c: (
                c.method == "chat.postMessage"
                and c.args.get("channel") == REQUESTER
                and "cloud.primary_unchanged" in str(c.args.get("text"))
            )
        )
        assert slack.bot.services.store.get_request(slack.request_id(message)).state is (
            RequestState.FAILED
        )
        assert ad_values(world, jane.dn) == ([], [])


def test_a_directory_outage_mid_approval_changes_nothing_and_says_so(world: BotWorld) -> None:
    jane = world.seed("jane")
    with world.running() as slack:
        message = slack.request_approval(slack.check(jane.address))
        world.graph.state.knobs.unavailable_next = 1000
        slack.press(message, ActionId.APPROVE, APPROVER)
        call = world.slack.wait_for(
            lambda c: (
                c.method == "response_url" and "nothing was changed" in str(c.args.get("text"))
            ),
            timeout=60,
        )
        assert "ref " in str(call.args.get("text"))
        world.graph.state.knobs.unavailable_next = 0
        assert slack.bot.services.store.get_request(slack.request_id(message)).state is (
            RequestState.PENDING
        )
        assert ad_values(world, jane.dn) == ([], [])


def test_forged_and_replayed_requests_get_401_and_change_nothing(world: BotWorld) -> None:
    jane = world.seed("jane")
    with world.running() as slack:
        assert slack.slack_driver.forged().command(jane.address).status_code == 401
        assert slack.slack_driver.replayed(age_seconds=360).command(jane.address).status_code == 401
        time.sleep(0.3)
        assert world.slack.calls() == []


def test_bad_input_gets_a_short_ephemeral_explanation(world: BotWorld) -> None:
    with world.running() as slack:
        response = slack.slack_driver.command("*)(mail=*@contoso.com")
        assert response.status_code == 200
        assert "not a mailbox address" in response.json()["text"]
        response = slack.slack_driver.command("x" * 5000)
        assert "longer than" in response.json()["text"]


def test_help_explains_usage(world: BotWorld) -> None:
    with world.running() as slack:
        response = slack.slack_driver.command("help")
        assert "/smtpmatch jane@contoso.com" in str(response.json())


def test_app_home_lists_the_users_requests(world: BotWorld) -> None:
    jane = world.seed("jane")
    with world.running() as slack:
        message = slack.request_approval(slack.check(jane.address))
        slack.slack_driver.home_opened(APPROVER)
        world.slack.wait_for("views.publish")
        home = report_text(world.slack.published_home(APPROVER))
        assert slack.request_id(message) in home and "Awaiting you" in home


def test_a_request_approval_click_by_someone_else_is_refused(world: BotWorld) -> None:
    jane = world.seed("jane")
    with world.running() as slack:
        report = slack.check(jane.address)
        block_id, button = find_action(report["blocks"], ActionId.REQUEST_APPROVAL)
        assert button["value"].isdigit()  # the id of the recorded check, nothing else
        response = slack.slack_driver.click(
            ActionId.REQUEST_APPROVAL,
            button["value"],
            OUTSIDER,
            channel_id="C_HELPDESK",
            message_ts="1700000000.000001",
            block_id=block_id,
        )
        assert response.status_code == 200
        world.slack.wait_for(
            lambda c: c.method == "response_url" and "Only the person" in str(c.args.get("text"))
        )
        assert world.slack.views_opened() == []
        assert world.slack.messages(APPROVAL_CHANNEL) == []


def test_slow_approvals_never_hold_up_a_check_and_a_full_bot_says_busy_losing_nothing(
    world: BotWorld,
) -> None:
    people = [world.seed(name) for name in ("ann", "ben", "cat")]
    with world.running() as slack:
        messages = [slack.request_approval(slack.check(p.address)) for p in people]
        ids = [slack.request_id(m) for m in messages]

    # Every directory call now takes 1 s; one decision worker and one waiting place.
    with world.running(slow=1.0, smtpmatch_decision_workers=1, smtpmatch_queue_limit=1) as slack:
        acks = []
        for message in messages:
            started = time.perf_counter()
            slack.press(message, ActionId.APPROVE, APPROVER)
            acks.append(time.perf_counter() - started)
        # The third approval found both places taken: told at once, nothing started.
        busy = world.slack.wait_for(
            lambda c: c.method == "response_url" and "busy" in str(c.args.get("text")),
            timeout=30,
        )
        assert busy.args.get("response_type") == "ephemeral"
        assert slack.bot.services.store.get_request(ids[2]).state is RequestState.PENDING

        # Meanwhile a check is acknowledged at once and answered.
        started = time.perf_counter()
        response = slack.slack_driver.command(people[0].address, user_id=OUTSIDER)
        command_ack = time.perf_counter() - started
        assert response.status_code == 200
        name = slack.slack_driver.last_response_url_name
        world.slack.wait_for(
            lambda c: c.method == "response_url" and c.target == name and c.args.get("blocks"),
            timeout=30,
        )
        assert max(acks) < 1.0 and command_ack < 1.0

        for request_id in ids[:2]:
            wait_until(
                lambda rid=request_id: (
                    slack.bot.services.store.get_request(rid).state
                    in (RequestState.APPLIED, RequestState.MATCHED)
                ),
                timeout=60,
            )
        # Nothing was lost: the refused approval simply works when pressed again.
        slack.press(
            world.slack.message(APPROVAL_CHANNEL, messages[2].ts), ActionId.APPROVE, APPROVER
        )
        wait_until(
            lambda: (
                slack.bot.services.store.get_request(ids[2]).state
                in (RequestState.APPLIED, RequestState.MATCHED)
            ),
            timeout=60,
        )

    # Nothing was written twice: one write per request, AD holds each address once.
    with world.running() as slack:
        store = slack.bot.services.store
        for person, request_id in zip(people, ids, strict=True):
            events = [e.event for e in store.list_audit(request_id=request_id)]
            assert events.count("applied") == 1 and events.count("approved") == 1
            assert ad_values(world, person.dn) == ([person.address], [f"SMTP:{person.address}"])


def test_the_requesters_direct_messages_show_people_not_markup(world: BotWorld) -> None:
    jane = world.seed("jane")
    with world.running() as slack:
        message = slack.request_approval(slack.check(jane.address))
        slack.press(message, ActionId.APPROVE, APPROVER)
        wait_until(
            lambda: any(
                "approved by" in m.text
                for m in world.slack.messages(world.slack.dm_channel(REQUESTER))
            ),
            timeout=30,
        )
    shown = [
        rendered_text(m.blocks) for m in world.slack.messages(world.slack.dm_channel(REQUESTER))
    ]
    approved = next(s for s in shown if "approved by" in s)
    assert f"approved by @{APPROVER}" in approved
    posted = next(s for s in shown if "for approval" in s)
    assert f"went to #{APPROVAL_CHANNEL} for approval" in posted
    assert not any("<@" in s or "<#" in s or "&lt;" in s for s in shown)
