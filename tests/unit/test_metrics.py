"""The metrics an operator scrapes: recorders, the timed directory ports, the counting store,
the worker pools' queue depth and the ``/metrics`` endpoint."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route

from bot import metrics
from bot.directories.demo import DemoEntraDirectory, build_demo_directories
from bot.domain import AuditNote
from bot.errors import ConcurrentModification, DirectoryUnavailable
from bot.ports import AttributeChange, ChangePlan
from bot.rules.checks import Verdict
from bot.rules.requests import RequestState
from bot.rules.waves import ItemState, NewWaveItem, WaveEvent, WaveState
from bot.services.check import Directories
from bot.services.requests import (
    Outcome,
    RequestServices,
    approve_request,
    check_for,
    request_match,
)
from bot.store.repository import Store
from bot.store.waves import WaveStore

REQUESTER = "U0HELPDESK"
APPROVER = "U0APPROVER"


class Team:
    def group_members(self, group_id: str) -> Collection[str]:
        return set()


def value(name: str, **labels: str) -> float:
    return metrics.sample(name, labels)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'smtpmatch.db'}")
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def services(store: Store) -> RequestServices:
    ad, cloud, policy = build_demo_directories()
    return RequestServices(
        dirs=metrics.instrument_directories(Directories(ad, cloud, policy)),
        store=metrics.instrument_store(store),
        approvers=(APPROVER,),
    )


# -- the recorders -------------------------------------------------------------------------------


def test_each_recorder_adds_one_to_its_own_labelled_counter() -> None:
    before = {
        "busy": value("smtpmatch_busy_refusals_total", pool="work"),
        "throttled": value("smtpmatch_graph_throttled_total"),
        "sync": value("smtpmatch_sync_outcomes_total", outcome="sync_timeout"),
        "write": value("smtpmatch_writes_total", operation="apply", outcome="error"),
    }
    metrics.record_busy_refusal("work")
    metrics.record_graph_throttled()
    metrics.record_graph_throttled()
    metrics.record_sync_outcome("sync_timeout")
    metrics.record_write("apply", "error")
    metrics.set_queue_depth("scan", 7)

    assert value("smtpmatch_busy_refusals_total", pool="work") == before["busy"] + 1
    assert value("smtpmatch_graph_throttled_total") == before["throttled"] + 2
    assert value("smtpmatch_sync_outcomes_total", outcome="sync_timeout") == before["sync"] + 1
    assert (
        value("smtpmatch_writes_total", operation="apply", outcome="error") == before["write"] + 1
    )
    assert value("smtpmatch_executor_queue_depth", pool="scan") == 7


def test_every_verdict_and_request_state_is_exported_before_it_first_happens() -> None:
    text = metrics.render_metrics().decode()
    for verdict in Verdict:
        assert f'smtpmatch_checks_total{{verdict="{verdict.value}"}}' in text
    for state in RequestState:
        assert f'smtpmatch_requests_total{{state="{state.value}"}}' in text


# -- the edges -----------------------------------------------------------------------------------


def test_a_check_is_counted_by_verdict_and_each_directory_call_is_timed(
    services: RequestServices,
) -> None:
    eligible = value("smtpmatch_checks_total", verdict="eligible")
    lookups = value(
        "smtpmatch_directory_call_seconds_count", directory="entra", operation="find_users"
    )
    report, _ = check_for(services, "paul.primary@contoso.com", None, REQUESTER)

    assert report.verdict == "eligible"
    assert value("smtpmatch_checks_total", verdict="eligible") == eligible + 1
    assert (
        value("smtpmatch_directory_call_seconds_count", directory="entra", operation="find_users")
        == lookups + 1
    )
    assert (
        value(
            "smtpmatch_directory_call_seconds_bucket",
            directory="ad",
            operation="find_users",
            le="+Inf",
        )
        >= 1
    )


def test_the_timed_port_still_is_its_class_and_counts_faults_by_error() -> None:
    _, cloud, _ = build_demo_directories()
    timed = metrics.instrument(cloud, "entra")
    assert isinstance(timed, DemoEntraDirectory)
    assert metrics.instrument(timed, "entra") is timed  # never timed twice

    def down(address: str) -> list[object]:
        raise DirectoryUnavailable("Entra ID", "graph.example", "no answer")

    cloud.find_users = down  # type: ignore[method-assign]
    before = value(
        "smtpmatch_directory_errors_total",
        directory="entra",
        operation="find_users",
        error="DirectoryUnavailable",
    )
    with pytest.raises(DirectoryUnavailable):
        timed.find_users("jane@contoso.com")
    assert (
        value(
            "smtpmatch_directory_errors_total",
            directory="entra",
            operation="find_users",
            error="DirectoryUnavailable",
        )
        == before + 1
    )


def test_an_ad_write_is_counted_as_applied_or_as_a_conflict() -> None:
    class Ad:
        def __init__(self) -> None:
            self.conflict = False
            self.written: list[ChangePlan] = []

        def apply(self, plan: ChangePlan) -> ChangePlan:
            if self.conflict:
                raise ConcurrentModification("Active Directory", "dc", "changed meanwhile")
            self.written.append(plan)
            return plan

    ad = Ad()
    timed = metrics.instrument(ad, "ad")
    plan = ChangePlan("CN=Jane,DC=contoso,DC=com", (AttributeChange("mail", (), ("j@c.com",)),))
    applied = value("smtpmatch_writes_total", operation="apply", outcome="applied")
    conflicts = value("smtpmatch_writes_total", operation="apply", outcome="conflict")

    assert timed.apply(plan) == plan
    ad.conflict = True
    with pytest.raises(ConcurrentModification):
        timed.apply(plan)

    assert ad.written == [plan]
    assert value("smtpmatch_writes_total", operation="apply", outcome="applied") == applied + 1
    assert value("smtpmatch_writes_total", operation="apply", outcome="conflict") == conflicts + 1


def test_request_states_are_counted_when_the_store_changes_them(
    services: RequestServices,
) -> None:
    states = ("pending", "approving", "applied")
    before = {s: value("smtpmatch_requests_total", state=s) for s in states}
    writes = value("smtpmatch_writes_total", operation="apply", outcome="applied")

    result = request_match(
        services,
        address="paul.primary@contoso.com",
        onprem_id=None,
        requester_id=REQUESTER,
        requester_channel=REQUESTER,
        reason="joins on-prem",
    )
    assert result.outcome is Outcome.REQUESTED and result.request is not None
    decided = approve_request(services, result.request.id, APPROVER, Team())

    assert decided.outcome is Outcome.APPLIED
    for state in states:
        assert value("smtpmatch_requests_total", state=state) == before[state] + 1, state
    assert value("smtpmatch_writes_total", operation="apply", outcome="applied") == writes + 1


def test_of_two_replicas_racing_for_a_request_only_the_winner_counts_it(
    services: RequestServices, tmp_path: Path
) -> None:
    created = request_match(
        services,
        address="paul.primary@contoso.com",
        onprem_id=None,
        requester_id=REQUESTER,
        requester_channel=REQUESTER,
        reason="joins on-prem",
    )
    assert created.request is not None
    other = Store(f"sqlite:///{tmp_path / 'smtpmatch.db'}")
    replicas = [services.store, metrics.instrument_store(other)]
    rejected = value("smtpmatch_requests_total", state="rejected")
    barrier = threading.Barrier(2)
    wins: list[object] = []

    def reject(replica: Store) -> None:
        barrier.wait()
        wins.append(
            replica.transition(created.request.id, [RequestState.PENDING], RequestState.REJECTED)
        )

    threads = [threading.Thread(target=reject, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()

    assert sum(w is not None for w in wins) == 1
    assert value("smtpmatch_requests_total", state="rejected") == rejected + 1


# -- worker pools --------------------------------------------------------------------------------


def test_the_queue_depth_counts_tasks_waiting_for_a_worker_and_returns_to_zero() -> None:
    pool = metrics.InstrumentedExecutor(ThreadPoolExecutor(max_workers=1), "test-queue")
    release = threading.Event()
    running = threading.Event()

    def block() -> str:
        running.set()
        release.wait(10)
        return "done"

    first = pool.submit(block)
    running.wait(10)
    waiting = [pool.submit(lambda: "later") for _ in range(3)]
    assert value("smtpmatch_executor_queue_depth", pool="test-queue") == 3
    release.set()
    assert [f.result(10) for f in [first, *waiting]] == ["done", "later", "later", "later"]
    assert value("smtpmatch_executor_queue_depth", pool="test-queue") == 0
    pool.shutdown()


def test_tasks_cancelled_at_shutdown_leave_the_queue_and_run_in_their_submitters_context() -> None:
    pool = metrics.instrument_executor(ThreadPoolExecutor(max_workers=1), "test-cancel")
    assert metrics.instrument_executor(pool, "test-cancel") is pool
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="none")
    release = threading.Event()
    running = threading.Event()

    def block() -> str:
        running.set()
        release.wait(10)
        return marker.get()

    marker.set("submitter")
    first = pool.submit(block)
    running.wait(10)
    queued = pool.submit(marker.get)
    threading.Timer(0.2, release.set).start()
    pool.shutdown(wait=True, cancel_futures=True)

    assert first.result() == "submitter"
    assert queued.cancelled()
    assert value("smtpmatch_executor_queue_depth", pool="test-cancel") == 0


# -- the endpoint --------------------------------------------------------------------------------


def test_the_endpoint_serves_the_prometheus_text_format() -> None:
    metrics.record_check("blocked")
    app = Starlette(routes=[Route("/metrics", metrics.metrics_endpoint)])

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            return await client.get("/metrics")

    response = asyncio.run(get())

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["smtpmatch_directory_call_seconds"].type == "histogram"
    assert families["smtpmatch_checks"].type == "counter"
    checks = {s.labels["verdict"]: s.value for s in families["smtpmatch_checks"].samples}
    assert checks["blocked"] >= 1
    # Only smtpmatch's own figures: not the library's default process collectors.
    assert all(name.startswith("smtpmatch_") for name in families)


def test_wave_and_wave_item_states_are_counted_once_when_their_compare_and_set_wins(
    store: Store,
) -> None:
    waves = metrics.instrument_wave_store(WaveStore(store))
    scan, _ = store.start_scan(APPROVER)

    def item(n: int) -> NewWaveItem:
        return NewWaveItem(
            address=f"u{n}@contoso.com",
            cloud_user_id=f"id-{n}",
            cloud_upn=f"u{n}@contoso.com",
            onprem_dn=f"CN=u{n},DC=contoso,DC=com",
            plan={},
            creates=False,
        )

    def items(state: ItemState) -> float:
        return value("smtpmatch_wave_items_total", state=state.value)

    before = {s: items(s) for s in ItemState}
    waves_before = {s: value("smtpmatch_waves_total", state=s.value) for s in WaveState}
    wave = waves.create_wave(
        scan_id=scan.id,
        requester_id=REQUESTER,
        reason="r",
        criteria={},
        items=[item(n) for n in range(3)],
        audit=AuditNote(WaveEvent.REQUESTED, REQUESTER),
    )
    assert items(ItemState.PENDING) == before[ItemState.PENDING] + 3
    for _ in range(2):  # the second claim loses and is not counted
        waves.transition_item(
            wave.id, 0, [ItemState.PENDING], ItemState.APPLYING, WaveEvent.ITEM_APPLYING
        )
    assert items(ItemState.APPLYING) == before[ItemState.APPLYING] + 1
    waves.transition_wave(
        wave.id, [WaveState.PENDING], WaveState.APPLYING, audit=AuditNote(WaveEvent.APPROVED)
    )
    assert waves.skip_pending(wave.id, APPROVER, "stopped") == 2
    assert items(ItemState.SKIPPED) == before[ItemState.SKIPPED] + 2
    assert value("smtpmatch_waves_total", state="pending") == waves_before[WaveState.PENDING] + 1
    assert value("smtpmatch_waves_total", state="applying") == waves_before[WaveState.APPLYING] + 1
    text = metrics.render_metrics().decode()
    for state in ItemState:
        assert f'smtpmatch_wave_items_total{{state="{state.value}"}}' in text
