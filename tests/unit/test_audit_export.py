"""`smtpmatch audit`: the trail as JSON or CSV, from a given date, from the configured store."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from pydantic import JsonValue

from bot.audit_export import of_wave
from bot.cli import main
from bot.domain import AuditEvent
from bot.store.repository import Store, new_request_id


@pytest.fixture
def audited(tmp_path, monkeypatch) -> Store:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    monkeypatch.setenv("SMTPMATCH_DATABASE_URL", url)
    store = Store(url)
    store.migrate()
    store.append_audit("checked", actor="U1", details={"address": "jane@contoso.com"})
    store.append_audit("applied", actor="U2", details={"dn": "CN=Jane"})
    yield store
    store.close()


def test_json_export_lists_every_event_oldest_first(audited, capsys) -> None:
    assert main(["audit", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["event"] for r in rows] == ["checked", "applied"]
    assert rows[1]["actor"] == "U2" and rows[1]["details"] == {"dn": "CN=Jane"}


def test_csv_export_has_a_header_and_json_details(audited, capsys) -> None:
    assert main(["audit", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["event"] for r in rows] == ["checked", "applied"]
    assert json.loads(rows[0]["details"]) == {"address": "jane@contoso.com"}


def test_since_in_the_future_exports_nothing(audited, capsys) -> None:
    assert main(["audit", "--since", "2999-01-01"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_malformed_date_exits_2(audited, capsys) -> None:
    assert main(["audit", "--since", "yesterday"]) == 2
    assert "ISO 8601" in capsys.readouterr().err


def test_export_never_creates_a_database(tmp_path, monkeypatch, capsys) -> None:
    missing = tmp_path / "nothing-here.db"
    monkeypatch.setenv("SMTPMATCH_DATABASE_URL", f"sqlite:///{missing}")
    assert main(["audit"]) == 2
    assert "no database" in capsys.readouterr().err
    assert not missing.exists()


def test_export_never_migrates_an_older_database(tmp_path, monkeypatch, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with Store(url) as old:
        old.migrate("0002")
        old.append_audit("checked", actor="U1", details={"address": "jane@contoso.com"})
    monkeypatch.setenv("SMTPMATCH_DATABASE_URL", url)
    assert main(["audit"]) == 0
    assert [r["event"] for r in json.loads(capsys.readouterr().out)] == ["checked"]
    with Store(url) as reopened:
        assert reopened.schema_revision() == "0002"


def test_a_wave_filter_keeps_the_wave_and_its_users_requests_only() -> None:
    at = datetime(2026, 11, 30, tzinfo=UTC)

    def event(n: int, name: str, request: str | None, **details: JsonValue) -> AuditEvent:
        return AuditEvent(n, at, name, request, "U1", dict(details))

    events = [
        event(1, "wave_requested", None, wave="W1"),
        event(2, "checked", None, address="x@contoso.com"),
        event(3, "applied", "R1", dn="CN=Ann"),  # before its item event: still the wave's
        event(4, "wave_item_applied", "R1", wave="W1", position=0),
        event(5, "applied", "R2", dn="CN=Bob"),  # a single request
        event(6, "wave_requested", None, wave="W2"),
    ]
    assert [e.id for e in of_wave(events, "W1")] == [1, 3, 4]
    assert of_wave(events, "W3") == []


def test_ids_never_start_with_a_dash_so_they_can_follow_an_option() -> None:
    # One id in 64 started with "-" before, and `audit --request -Xy…` was an argparse error.
    ids = [new_request_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids) and {len(i) for i in ids} == {12}
