"""`smtpmatch scan` on the embedded demo directories, its outputs, and stored scans."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.directories.demo import build_demo_directories
from bot.rules.checks import Status, Verdict
from bot.scan.model import ScanItem, ScanResult, ScanState
from bot.scan.render import changes_between, render_changes, render_table
from bot.scan.sources import DemoScanSource
from bot.scan_cli import ProgressBar
from bot.services.check import Directories, check_match
from bot.services.scan import (
    ScanServices,
    Snapshot,
    candidate_address,
    complete_scan,
    is_candidate,
    run_scan,
)
from bot.store.repository import Store
from bot.store.tables import ScanRow

JSON_KEYS = {"generated", "totals", "items"}
ITEM_KEYS = {"address", "cloud", "onprem", "verdict", "failing", "warnings", "plan"}


def demo_scan() -> ScanResult:
    onprem, cloud, policy = build_demo_directories()
    return run_scan(DemoScanSource(onprem, cloud), policy)


def test_every_cloud_only_member_of_the_demo_gets_the_verdict_check_gives_its_address() -> None:
    onprem, cloud, policy = build_demo_directories()
    result = run_scan(DemoScanSource(onprem, cloud), policy)
    dirs = Directories(onprem, cloud, policy)

    candidates = [u for u in cloud.users if is_candidate(u)]
    assert [i.cloud_id for i in result.items] == [u.id for u in candidates]
    for item, user in zip(result.items, candidates, strict=True):
        report = check_match(dirs, candidate_address(user))
        assert item.verdict is report.verdict
        assert list(item.failing) == [c.id for c in report.checks if c.status is Status.FAIL]
        assert list(item.warnings) == [
            c.id for c in report.checks if c.status in (Status.WARN, Status.UNKNOWN)
        ]


def test_guests_and_synced_users_are_not_candidates() -> None:
    _, cloud, _ = build_demo_directories()
    judged = {i.cloud_id for i in demo_scan().items}
    for user in cloud.users:
        if user.user_type == "Guest" or user.on_premises_immutable_id:
            assert user.id not in judged


def test_the_json_document_has_the_stable_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--demo", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)

    assert set(doc) == JSON_KEYS
    assert set(doc["totals"]) == {"cloud_users", "by_verdict", "by_check"}
    assert set(doc["totals"]["by_verdict"]) == {str(v) for v in Verdict}
    assert sum(doc["totals"]["by_verdict"].values()) == len(doc["items"])
    for item in doc["items"]:
        assert set(item) == ITEM_KEYS
        assert set(item["cloud"]) == {"id", "userPrincipalName"}
        assert item["onprem"] is None or set(item["onprem"]) == {"dn"}
    failing = [c for item in doc["items"] for c in item["failing"]]
    assert doc["totals"]["by_check"] == {c: failing.count(c) for c in set(failing)}
    datetime.fromisoformat(doc["generated"])


def test_csv_has_one_row_per_item(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--demo", "--format", "json"]) == 0
    items = json.loads(capsys.readouterr().out)["items"]
    assert main(["scan", "--demo", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))

    assert [(r["address"], r["verdict"]) for r in rows] == [
        (i["address"], i["verdict"]) for i in items
    ]
    assert [r["failing"].split(";") if r["failing"] else [] for r in rows] == [
        i["failing"] for i in items
    ]


def test_the_table_leads_with_totals_and_the_fix_first_list_within_the_width() -> None:
    result = demo_scan()
    text = render_table(result, width=80)
    lines = text.splitlines()

    assert all(len(line) <= 80 for line in lines)
    assert lines.index("By verdict:") < lines.index("Fix first (checks blocking the most users):")
    assert lines.index("Fix first (checks blocking the most users):") < lines.index("Items:")
    worst, count = next(iter(result.by_check.items()))
    fix_first = lines[lines.index("Fix first (checks blocking the most users):") + 1]
    assert fix_first.split() == [worst, str(count)]
    assert "Remedy: " in text


def test_limit_judges_the_first_n_users(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--demo", "--format", "json", "--limit", "2"]) == 0
    items = json.loads(capsys.readouterr().out)["items"]
    assert [i["cloud"]["id"] for i in items] == [i.cloud_id for i in demo_scan().items[:2]]


def test_out_writes_the_report_to_a_file_and_nothing_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scan.json"
    assert main(["scan", "--demo", "--format", "json", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""  # piped: no progress bar
    assert len(json.loads(out.read_text())["items"]) == len(demo_scan().items)
    assert [p.name for p in tmp_path.iterdir()] == ["scan.json"]


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["scan", "--demo", "--limit", "-1"]) == 2
    assert main(["scan", "--demo", "--since-last"]) == 2
    missing = tmp_path / "no" / "such" / "dir" / "scan.json"
    assert main(["scan", "--demo", "--out", str(missing)]) == 2
    assert "--out" in capsys.readouterr().err


def item(cloud_id: str, verdict: Verdict, *failing: str) -> ScanItem:
    return ScanItem(
        f"{cloud_id}@contoso.com", cloud_id, f"{cloud_id}@contoso.com", None, verdict, failing
    )


def test_changes_since_the_previous_scan_name_new_gone_and_changed_users() -> None:
    before = [
        item("a", Verdict.BLOCKED, "cloud.has_mailbox"),
        item("b", Verdict.ELIGIBLE),
        item("c", Verdict.ELIGIBLE),
    ]
    after = [item("a", Verdict.ELIGIBLE), item("b", Verdict.ELIGIBLE), item("d", Verdict.BLOCKED)]

    changes = changes_between(before, after)

    assert [(c.cloud_id, c.before, c.after) for c in changes] == [
        ("a", Verdict.BLOCKED, Verdict.ELIGIBLE),
        ("d", None, Verdict.BLOCKED),
        ("c", Verdict.ELIGIBLE, None),
    ]
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    text = render_changes(
        changes, ScanResult(now, 3, tuple(before)), ScanResult(now, 3, tuple(after)), "table"
    )
    assert "a@contoso.com: blocked -> eligible" in text
    assert "c@contoso.com: eligible -> (gone)" in text


def test_a_stored_scan_reads_back_with_its_items_and_only_one_runs_at_a_time(
    tmp_path: Path,
) -> None:
    clock = [datetime(2026, 11, 29, 9, tzinfo=UTC)]
    store = Store(f"sqlite:///{tmp_path / 'scans.db'}", clock=lambda: clock[0])
    store.migrate()
    result = demo_scan()

    scan, started = store.start_scan("U0APPROVER")
    again, second = store.start_scan("U0OTHER")
    assert started and not second and again.id == scan.id

    done = store.finish_scan(scan.id, result)
    assert done.state is ScanState.DONE
    assert done.summary["totals"] == result.totals()
    assert store.scan_items(scan.id) == result.items
    assert [s.id for s in store.latest_scans()] == [scan.id]
    assert store.latest_scans()[0].result(store.scan_items(scan.id)).by_verdict == (
        result.by_verdict
    )

    next_scan, started = store.start_scan("U0OTHER")
    assert started
    store.fail_scan(next_scan.id, "Active Directory unreachable")
    failed = store.get_scan(next_scan.id)
    assert failed is not None and failed.state is ScanState.FAILED
    assert store.scan_items(next_scan.id) == ()
    store.close()


def test_a_scan_left_running_by_a_dead_process_does_not_block_the_next(tmp_path: Path) -> None:
    clock = [datetime(2026, 11, 29, 9, tzinfo=UTC)]
    store = Store(f"sqlite:///{tmp_path / 'scans.db'}", clock=lambda: clock[0])
    store.migrate()
    stuck, _ = store.start_scan("U0APPROVER")
    clock[0] += timedelta(hours=3)

    fresh, started = store.start_scan("U0APPROVER")

    assert started and fresh.id != stuck.id
    dead = store.get_scan(stuck.id)
    assert dead is not None and dead.state is ScanState.FAILED
    store.close()


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_running_scan_keeps_the_lock_while_its_heartbeat_is_fresh_and_loses_it_when_silent(
    tmp_path: Path,
) -> None:
    clock = [datetime(2026, 11, 29, 9, tzinfo=UTC)]
    store = Store(f"sqlite:///{tmp_path / 'scans.db'}", clock=lambda: clock[0])
    store.migrate()
    long_scan, _ = store.start_scan("U0APPROVER")
    for _ in range(30):  # a long scan: 30 minutes, one beat a minute
        clock[0] += timedelta(minutes=1)
        assert store.beat_scan(long_scan.id)
    current, started = store.start_scan("U0OTHER")
    assert not started and current.id == long_scan.id

    clock[0] += timedelta(minutes=9)  # silent, but not long enough
    assert not store.start_scan("U0OTHER")[1]
    clock[0] += timedelta(minutes=2)  # its process died: the lock is free
    fresh, started = store.start_scan("U0OTHER")
    assert started and fresh.id != long_scan.id
    dead = store.get_scan(long_scan.id)
    assert dead is not None and dead.state is ScanState.FAILED
    assert store.get_scan(fresh.id).state is not ScanState.FAILED  # type: ignore[union-attr]
    store.close()


def test_a_scan_renews_its_heartbeat_while_it_runs(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'scans.db'}")
    store.migrate()
    onprem, cloud, policy = build_demo_directories()
    scan, _ = store.start_scan("U0APPROVER")
    beats = threading.Event()
    real_beat = store.beat_scan

    def beat(scan_id: str) -> bool:
        stored = real_beat(scan_id)
        beats.set()
        return stored

    class SlowSource(DemoScanSource):
        def read(self) -> Snapshot:
            assert beats.wait(10), "no heartbeat while the scan ran"
            return super().read()

    store.beat_scan = beat  # type: ignore[method-assign]
    svc = ScanServices(
        dirs=Directories(onprem, cloud, policy),
        store=store,
        source=lambda: SlowSource(onprem, cloud),
        heartbeat=timedelta(milliseconds=20),
    )
    stored, _ = complete_scan(svc, scan.id)
    assert stored.state is ScanState.DONE
    with store.connection() as conn:
        heartbeat = conn.execute(
            select(ScanRow.heartbeat_at).where(ScanRow.id == scan.id)
        ).scalar_one()
    assert heartbeat is not None
    store.close()


def test_the_progress_bar_draws_on_a_terminal_and_stays_quiet_when_piped() -> None:
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = ProgressBar(stream)
        bar("read", 0, 0)
        for done in range(1, 201):
            bar("judge", done, 200)
        bar.close()

    assert pipe.getvalue() == ""
    drawn = terminal.getvalue()
    assert "reading both directories" in drawn
    assert drawn.count("\r") <= 1 + 101  # at most one redraw per percent
    assert "200/200 users" in drawn.rsplit("\r", 1)[-1]


def test_the_table_gives_remedies_in_the_command_line_form_not_slack_syntax() -> None:
    result = demo_scan()
    assert any("/smtpmatch" in remedy for remedy in result.remedies.values())

    text = render_table(result, width=100)

    assert "/smtpmatch" not in text
    assert "smtpmatch check ADDRESS ACCOUNT" in text
