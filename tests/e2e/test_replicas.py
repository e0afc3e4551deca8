"""Two replicas as an operator runs them: two real `smtpmatch serve` processes, configured only by
the environment, on one PostgreSQL database, behind one Slack app. A request asked on one is
decided on the other; two approvers clicking at once on different replicas write AD once; both
watchers poll the sync and the result is told once. Their /metrics, summed, count each thing
once, and every log line is JSON."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.rules.requests import RequestState
from bot.slack_views.ids import REASON_ACTION, REASON_BLOCK, ActionId, CallbackId
from bot.store.repository import Store
from tests.support.environment import directory_environment
from tests.support.graph_emulator import GraphEmulator, LdapParams
from tests.support.samba import AdSandbox, SambaDC
from tests.support.slack_fake import (
    BOT_TOKEN,
    RESPONSE_URL,
    SIGNING_SECRET,
    FakeSlackApi,
    SlackDriver,
    find_action,
)

APPROVAL_CHANNEL = "C0APPROVALS"
NOTIFY_CHANNEL = "C0NOTIFY"
REQUESTER = "U0HELPDESK"
APPROVER = "U0APPROVER"
OTHER_APPROVER = "U0APPROVER2"
WEBHOOK_SECRET = "replica-hmac-secret"
RESULT_ICONS = (":tada:", ":x:", ":alarm_clock:")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@dataclass
class Replica:
    """One `smtpmatch serve` process."""

    name: str
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.base}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0


@pytest.fixture
def replica_env(
    ad: AdSandbox,
    graph: GraphEmulator,
    slack_api: FakeSlackApi,
    samba_dc: SambaDC,
    postgres_url: str,
    store_url: str,
) -> dict[str, str]:
    """The environment both replicas share (what a ConfigMap and a Secret would hold)."""
    assert store_url.startswith("postgresql")
    return directory_environment(
        samba_dc,
        graph,
        scope=ad.ou,
        ldap_timeout=5,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_api.url,
        SMTPMATCH_APPROVAL_CHANNEL=APPROVAL_CHANNEL,
        SMTPMATCH_NOTIFY_CHANNEL=NOTIFY_CHANNEL,
        SMTPMATCH_APPROVERS=f"{APPROVER},{OTHER_APPROVER}",
        SMTPMATCH_DATABASE_URL=store_url,
        SMTPMATCH_SYNC_TRIGGER="webhook",
        SMTPMATCH_SYNC_WEBHOOK_URL=graph.sync_webhook_url,
        SMTPMATCH_SYNC_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SMTPMATCH_SYNC_POLL_SECONDS="0.2",
        SMTPMATCH_LOG_FORMAT="json",
    )


def start_replica(name: str, env: dict[str, str], folder: Path) -> Replica:
    """Start `smtpmatch serve --http` on the port SMTPMATCH_PORT names."""
    folder.mkdir()
    port = free_port()
    log = folder / "bot.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--http"],
            env={**env, "SMTPMATCH_PORT": str(port)},
            cwd=folder,  # no .env there
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Replica(name, f"http://127.0.0.1:{port}", process, log)


def wait_ready(replica: Replica) -> None:
    """Until /healthz says ready: schema migrated, both directories answered."""

    def ready() -> bool:
        assert replica.process.poll() is None, replica.log.read_text()
        try:
            return httpx.get(f"{replica.base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, timeout=60, what=f"{replica.name} to be ready")
    except AssertionError:
        try:
            health = httpx.get(f"{replica.base}/healthz", timeout=5).text
        except httpx.HTTPError as exc:
            health = f"unreachable ({exc})"
        raise AssertionError(
            f"{replica.name}: /healthz {health}\n{replica.log.read_text()}"
        ) from None


@pytest.fixture
def replicas(replica_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    """Two replicas started together (they migrate the empty database concurrently)."""
    started = [start_replica(n, replica_env, tmp_path / n) for n in ("one", "two")]
    try:
        for replica in started:
            wait_ready(replica)
        yield started[0], started[1]
    finally:
        for replica in started:
            replica.process.terminate()
        for replica in started:
            replica.process.wait(timeout=15)


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_two_serve_processes_on_one_postgresql_share_requests_and_watches_without_double_work(
    replicas: tuple[Replica, Replica],
    ad: AdSandbox,
    graph: GraphEmulator,
    slack_api: FakeSlackApi,
    samba_dc: SambaDC,
    store_url: str,
) -> None:
    one, two = replicas
    webhook = graph.configure_sync_simulator(
        LdapParams.of_samba(samba_dc), secret=WEBHOOK_SECRET, hold=True
    )
    address = ad.address("jane")
    dn = ad.add_user(ad.sam("jane"), upn=address, display_name="Jane")
    graph.state.add_user(address, mail=address, proxy_addresses=[f"SMTP:{address}"])

    with ExitStack() as stack:
        on_one = stack.enter_context(SlackDriver(f"{one.base}/slack/events", slack_api))
        on_two = stack.enter_context(SlackDriver(f"{two.base}/slack/events", slack_api))
        store = Store(store_url)
        stack.callback(store.close)

        # The check runs on replica one; the modal is opened there and submitted to two.
        assert on_one.command(address, user_id=REQUESTER).status_code == 200
        name = on_one.last_response_url_name
        report = slack_api.wait_for(
            lambda c: c.method == RESPONSE_URL and c.target == name, timeout=30
        ).args
        block_id, button = find_action(report["blocks"], ActionId.REQUEST_APPROVAL)
        clicked = on_one.click(
            ActionId.REQUEST_APPROVAL,
            button["value"],
            REQUESTER,
            channel_id="C_HELPDESK",
            message_ts="1700000000.000001",
            block_id=block_id,
        )
        assert clicked.status_code == 200
        slack_api.wait_for("views.open", timeout=30)
        submitted = on_two.submit_view(
            CallbackId.REQUEST_REASON, REQUESTER, {REASON_BLOCK: {REASON_ACTION: "joins AD"}}
        )
        assert submitted.status_code == 200
        wait_until(lambda: bool(slack_api.messages(APPROVAL_CHANNEL)), what="the request")
        message = slack_api.messages(APPROVAL_CHANNEL)[-1]
        _, approve = find_action(message.blocks, ActionId.APPROVE)
        request_id = str(approve["value"])

        # Two approvers click Approve at the same moment, each on another replica.
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        def press(driver: SlackDriver, user: str) -> None:
            barrier.wait()
            statuses.append(driver.press(message, ActionId.APPROVE, user).status_code)

        clicks = [
            threading.Thread(target=press, args=(on_one, APPROVER)),
            threading.Thread(target=press, args=(on_two, OTHER_APPROVER)),
        ]
        for click in clicks:
            click.start()
        for click in clicks:
            click.join()
        assert statuses == [200, 200]

        def state() -> RequestState:
            request = store.get_request(request_id)
            assert request is not None
            return request.state

        wait_until(lambda: state() is RequestState.APPLIED, what="the write")
        written = samba_dc.connection
        written.search(dn, "(objectClass=*)", "BASE", attributes=["mail", "proxyAddresses"])
        attributes = written.response[0]["attributes"]
        assert [str(v) for v in attributes["mail"]] == [address]
        assert [str(v) for v in attributes["proxyAddresses"]] == [f"SMTP:{address}"]

        # Both replicas' watchers poll the one watch; the sync binds the user; told once.
        wait_until(lambda: store.get_watch(request_id) is not None, what="the watch")
        webhook.release()
        wait_until(lambda: state() is RequestState.MATCHED, what="the match")

        def sync_reports() -> list[object]:
            return [
                c
                for c in slack_api.calls("chat.postMessage")
                if c.args.get("channel") == NOTIFY_CHANNEL
                and str(c.args.get("text")).startswith(RESULT_ICONS)
                and request_id in str(c.args.get("text"))
            ]

        wait_until(lambda: len(sync_reports()) == 1, what="the sync report")
        time.sleep(1.5)  # several more rounds of both watchers: nothing is done twice
        assert len(sync_reports()) == 1

        events = [e.event for e in store.list_audit(request_id=request_id)]
        assert events.count("approved") == 1 and events.count("applied") == 1
        assert events.count("sync_triggered") == 1 and events.count("sync_matched") == 1
        assert len(webhook.calls) == 1

        # The replicas' own counters, summed as Prometheus would, count each thing once.
        def total(name: str, **labels: str) -> float:
            return one.metric(name, **labels) + two.metric(name, **labels)

        assert total("smtpmatch_checks_total", verdict="eligible") == 1
        assert total("smtpmatch_requests_total", state="pending") == 1
        assert total("smtpmatch_requests_total", state="approving") == 1
        assert total("smtpmatch_requests_total", state="applied") == 1
        assert total("smtpmatch_requests_total", state="matched") == 1
        assert total("smtpmatch_writes_total", operation="apply", outcome="applied") == 1
        assert total("smtpmatch_sync_outcomes_total", outcome="matched") == 1
        assert (
            total("smtpmatch_directory_call_seconds_count", directory="entra", operation="get_user")
            >= 1
        )

    # Every line either replica logged is one JSON object; none carries a secret.
    for replica in (one, two):
        replica.process.terminate()
        replica.process.wait(timeout=15)
        text = replica.log.read_text()
        assert text.strip(), f"{replica.name} logged nothing"
        for line in text.splitlines():
            assert isinstance(json.loads(line), dict), line
        assert BOT_TOKEN not in text and SIGNING_SECRET not in text
        assert str(samba_dc.admin_password) not in text
