"""`smtpmatch check` runs are audited like Slack checks (actor ``cli:<OS user>``), but only
where the bot's database already is: a ``--demo`` run, or a machine without the database,
creates nothing (issue 14 finding 10)."""

from __future__ import annotations

import getpass
import json
import sqlite3

import pytest

from bot import bootstrap
from bot.actors import acting
from bot.cli import main
from bot.directories.demo import build_demo_directories
from bot.services.check import Directories
from bot.store.repository import Store


@pytest.fixture
def demo_directories(monkeypatch) -> None:
    """A plain (not ``--demo``) run, against the demo directories as if they were real."""
    monkeypatch.setattr(
        bootstrap,
        "build_directories",
        lambda settings, demo=False: Directories(*build_demo_directories()),
    )


def test_a_check_is_recorded_with_the_os_user_and_shown_by_audit(
    tmp_path, monkeypatch, capsys, demo_directories
) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    monkeypatch.setenv("SMTPMATCH_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    store = Store(url)
    store.migrate()
    store.close()
    assert main(["check", "jane@contoso.com"]) == 0
    capsys.readouterr()
    assert main(["audit", "--format", "json"]) == 0
    [event] = json.loads(capsys.readouterr().out)
    assert event["event"] == "checked"
    assert event["actor"] == f"cli:{getpass.getuser()}"
    assert event["details"]["address"] == "jane@contoso.com"
    assert event["details"]["verdict"] == "eligible" and event["details"]["via"] == "cli"


def test_without_the_bots_database_nothing_is_created(
    tmp_path, monkeypatch, capsys, demo_directories
) -> None:
    monkeypatch.setenv("SMTPMATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'absent.db'}")
    monkeypatch.chdir(tmp_path)
    assert main(["check", "jane@contoso.com"]) == 0
    assert capsys.readouterr().err == ""
    assert list(tmp_path.iterdir()) == []


def test_a_demo_run_is_never_recorded(tmp_path, monkeypatch, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    monkeypatch.setenv("SMTPMATCH_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    store = Store(url)
    store.migrate()
    try:
        assert main(["check", "--demo", "jane@contoso.com"]) == 0
        assert store.list_audit() == []
    finally:
        store.close()


def test_a_database_that_cannot_take_the_event_is_told_and_the_check_stands(
    tmp_path, monkeypatch, capsys, demo_directories
) -> None:
    path = tmp_path / "bot.db"
    monkeypatch.setenv("SMTPMATCH_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.chdir(tmp_path)
    # A database that says it is the bot's but has lost its audit table.
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version VALUES ('0004')")
    assert main(["check", "jane@contoso.com"]) == 0
    err = capsys.readouterr().err
    assert "this check was not recorded in the audit log" in err


def test_audit_shows_the_actors_name_at_the_time_next_to_the_id(
    tmp_path, monkeypatch, capsys
) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    monkeypatch.setenv("SMTPMATCH_DATABASE_URL", url)
    store = Store(url)
    store.migrate()
    with acting("U1", "helpdesk.hannah"):
        store.append_audit("checked", actor="U1", details={"address": "jane@contoso.com"})
        store.append_audit("applied", actor="U2", details={"dn": "CN=Jane"})  # someone else
    store.close()
    assert main(["audit", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert (rows[0]["actor"], rows[0]["actor_name"]) == ("U1", "helpdesk.hannah")
    assert rows[0]["details"] == {"address": "jane@contoso.com"}
    assert rows[1]["actor_name"] is None
    assert main(["audit", "--format", "csv"]) == 0
    assert "U1,helpdesk.hannah," in capsys.readouterr().out
