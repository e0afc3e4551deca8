"""`/smtpmatch scan` end to end: signed slash commands to the real Bolt app, the fake Slack
Web API (messages, updates, file uploads), the Samba DC and the Graph emulator."""

from __future__ import annotations

import csv
import io
import json
import time

from bot.scan.model import ScanState
from bot.store.repository import Store
from tests.e2e.conftest import APPROVER, GROUP_MEMBER, OUTSIDER, BotWorld, report_text

HELPDESK = "C_HELPDESK"


def wait_until(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_non_approver_is_refused_and_nothing_runs(world: BotWorld) -> None:
    world.seed("jane")
    with world.running() as slack:
        started = time.monotonic()
        response = slack.slack_driver.command("scan", user_id=OUTSIDER)
        assert response.status_code == 200
        assert time.monotonic() - started < 3
        name = slack.slack_driver.last_response_url_name
        refusal = world.slack.wait_for(
            lambda c: (
                c.method == "response_url"
                and c.target == name
                and "approvers" in str(c.args.get("text"))
            ),
            timeout=30,
        )
        assert "Only the configured approvers" in refusal.args["text"]
    assert world.slack.messages(HELPDESK) == []
    assert world.slack.files() == []
    store = Store(world.store_url)
    assert store.latest_scans() == []
    assert store.start_scan(APPROVER)[1]  # the failed scan no longer holds the lock
    store.close()


def test_an_approver_gets_progress_then_the_summary_with_the_csv_attached(
    world: BotWorld,
) -> None:
    jane = world.seed("jane")
    lonely = world.ad.address("lonely")
    world.graph.state.add_user(lonely, mail=lonely, proxy_addresses=[f"SMTP:{lonely}"])
    nobox = world.seed("nobox", has_mailbox=False)

    with world.running() as slack:
        response = slack.slack_driver.command("scan", user_id=GROUP_MEMBER)
        assert response.status_code == 200
        assert "Starting a whole-tenant scan" in response.text
        world.slack.wait_for("files.completeUploadExternal", timeout=60)

        [message] = world.slack.messages(HELPDESK)
        texts = [v.get("text", "") for v in message.versions]
        assert "reading Active Directory and Entra ID" in texts[0]
        assert any("judging users" in t for t in texts[1:-1])
        summary = report_text(message.args)
        assert "Whole-tenant scan" in summary and "Fix first" in summary
        assert "`eligible` 1" in summary and "`needs_account` 1" in summary
        assert "cloud.has_mailbox" in summary and "onprem.user_found" in summary

        [upload] = world.slack.files(HELPDESK)
        assert upload.thread_ts == message.ts
        rows = list(csv.DictReader(io.StringIO((upload.content or b"").decode())))
        assert {r["address"]: r["verdict"] for r in rows} == {
            jane.address: "eligible",
            lonely: "needs_account",
            nobox.address: "blocked",
        }

        slack.slack_driver.home_opened(APPROVER)
        wait_until(lambda: world.slack.published_home(APPROVER) is not None)
        home = report_text(world.slack.published_home(APPROVER))  # type: ignore[arg-type]
        assert "Latest scan" in home and "`eligible` 1" in home

    store = Store(world.store_url)
    [scan] = store.latest_scans()
    assert scan.requested_by == GROUP_MEMBER and scan.slack_ts == message.ts
    assert {i.address for i in store.scan_items(scan.id)} == {jane.address, lonely, nobox.address}
    store.close()


def test_a_second_scan_request_says_one_is_running_and_links_it(world: BotWorld) -> None:
    world.seed("jane")
    store = Store(world.store_url)
    store.migrate()
    running, _ = store.start_scan(APPROVER)
    with world.running() as slack:
        posted = slack.bot.app.client.chat_postMessage(channel=HELPDESK, text="scan running")
        store.set_scan_message(running.id, HELPDESK, str(posted["ts"]))

        slack.slack_driver.command("scan", user_id=APPROVER)
        name = slack.slack_driver.last_response_url_name
        answer = world.slack.wait_for(
            lambda c: (
                c.method == "response_url"
                and c.target == name
                and "already running" in str(c.args.get("text"))
            ),
            timeout=30,
        )
    assert f"p{str(posted['ts']).replace('.', '')}" in answer.args["text"]
    assert len(world.slack.messages(HELPDESK)) == 1
    scan = store.get_scan(running.id)
    assert scan is not None and scan.state is ScanState.RUNNING
    store.close()


def test_an_unreachable_directory_is_told_in_the_progress_message_and_nothing_is_stored(
    world: BotWorld,
) -> None:
    world.seed("jane")
    with world.running() as slack:
        world.graph.state.knobs.unavailable_next = 1000  # Graph answers 503, again and again
        slack.slack_driver.command("scan", user_id=APPROVER)
        wait_until(
            lambda: any(
                "could not answer" in json.dumps(m.args) for m in world.slack.messages(HELPDESK)
            )
        )
    assert world.slack.files() == []
    store = Store(world.store_url)
    assert store.latest_scans() == []
    assert store.start_scan(APPROVER)[1]  # the failed scan no longer holds the lock
    store.close()
