"""`GET /metrics` as Prometheus scrapes it, after a check, an approval and the sync that binds the
user: the counters and the directory latency histograms show what happened."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bot.rules.requests import RequestState
from bot.settings import SyncTrigger
from bot.slack_views.ids import ActionId
from tests.e2e.conftest import APPROVER, NOTIFY_CHANNEL, BotWorld, Driver
from tests.support.graph_emulator import LdapParams
from tests.support.samba import SambaDC

WEBHOOK_SECRET = "metrics-hmac-secret"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(driver: Driver) -> tuple[str, Samples]:
    """One scrape of the bot's /metrics: the content type and every sample."""
    base = driver.slack_driver.url.removesuffix("/slack/events")
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return response.headers["content-type"], found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_metrics_count_a_check_an_approval_a_write_and_the_sync_and_time_the_directories(
    world: BotWorld, samba_dc: SambaDC, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(world.graph.ca_file))
    world.graph.configure_sync_simulator(LdapParams.of_samba(samba_dc), secret=WEBHOOK_SECRET)
    jane = world.seed("jane")
    with world.running(
        smtpmatch_sync_trigger=SyncTrigger.WEBHOOK,
        smtpmatch_sync_webhook_url=world.graph.sync_webhook_url,
        smtpmatch_sync_webhook_secret=SecretStr(WEBHOOK_SECRET),
        smtpmatch_sync_poll_seconds=0.2,
    ) as slack:
        content_type, before = scrape(slack)
        assert content_type.startswith("text/plain") and "version=" in content_type

        # One Graph request of the check is throttled once (Retry-After: 0) and retried.
        world.graph.state.knobs.retry_after = 0
        world.graph.state.knobs.throttle_next = 1
        report = slack.check(jane.address)
        assert "Eligible" in str(report["blocks"])
        message = slack.request_approval(report)
        request_id = slack.request_id(message)
        slack.press(message, ActionId.APPROVE, APPROVER)
        store = slack.bot.services.store
        wait_until(lambda: store.get_request(request_id).state is RequestState.MATCHED)
        world.slack.wait_for(
            lambda c: c.method == "chat.postMessage" and c.args.get("channel") == NOTIFY_CHANNEL
        )
        _, after = scrape(slack)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Checks by verdict: the requester's check (the approval's re-check is not a new check).
    assert delta("smtpmatch_checks_total", verdict="eligible") == 1
    assert delta("smtpmatch_checks_total", verdict="blocked") == 0
    # Requests by state: created pending, claimed, applied, then matched by the sync watch.
    for state in ("pending", "approving", "applied", "matched"):
        assert delta("smtpmatch_requests_total", state=state) == 1, state
    assert delta("smtpmatch_requests_total", state="failed") == 0
    # One write, applied; the sync outcome.
    assert delta("smtpmatch_writes_total", operation="apply", outcome="applied") == 1
    assert delta("smtpmatch_writes_total", operation="apply", outcome="conflict") == 0
    assert delta("smtpmatch_sync_outcomes_total", outcome="matched") == 1
    # The throttled Graph answer.
    assert delta("smtpmatch_graph_throttled_total") >= 1
    # Latency histograms per directory and operation: the AD write, the lookups on both sides
    # (check and re-check), each observation in a bucket up to +Inf.
    histogram = "smtpmatch_directory_call_seconds"
    assert delta(f"{histogram}_count", directory="ad", operation="apply") == 1
    assert delta(f"{histogram}_count", directory="ad", operation="find_users") >= 2
    assert delta(f"{histogram}_count", directory="entra", operation="find_users") >= 2
    assert delta(f"{histogram}_sum", directory="ad", operation="apply") > 0
    assert delta(f"{histogram}_bucket", directory="ad", operation="apply", le="+Inf") == 1
    assert delta(f"{histogram}_count", directory="entra", operation="get_user") >= 1  # watch
    # The worker pools report their queues (empty once everything settled).
    for pool in ("lookup", "check", "decide", "listener"):
        assert ("smtpmatch_executor_queue_depth", frozenset({("pool", pool)})) in after
