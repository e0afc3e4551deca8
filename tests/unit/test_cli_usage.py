"""The command line as a new admin meets it: usage, help, version, exit codes, one-line errors."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from bot import __version__
from tests.unit.cli_helpers import clean_env, smtpmatch

COMMANDS = ("check", "serve", "try", "audit")


def test_the_ad_account_is_an_optional_second_argument_as_in_slack(tmp_path: Path) -> None:
    result = smtpmatch("check", "--demo", "--json", "chris@contoso.com", "cbrown", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "eligible"
    assert report["onprem"]["sAMAccountName"] == "cbrown"


def test_naming_the_account_twice_is_a_usage_error(tmp_path: Path) -> None:
    result = smtpmatch(
        "check", "--demo", "chris@contoso.com", "cbrown", "--onprem", "chris", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage: smtpmatch check")


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["check"], "usage: smtpmatch check"),
        (["check", "--demo", "a@contoso.com", "b", "c"], "usage: smtpmatch check"),
        (["serve", "--port", "soon"], "usage: smtpmatch serve"),
        (["audit", "--format", "xml"], "usage: smtpmatch audit"),
        (["try", "--what"], "usage: smtpmatch try"),
    ],
)
def test_a_usage_error_shows_that_commands_own_usage(
    tmp_path: Path, args: list[str], usage: str
) -> None:
    result = smtpmatch(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(usage)
    assert "Traceback" not in result.stderr


def test_version(tmp_path: Path) -> None:
    result = smtpmatch("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"smtpmatch {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_and_option_has_help(tmp_path: Path, command: str) -> None:
    result = smtpmatch(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    text = result.stdout
    assert text.startswith(f"usage: smtpmatch {command}")
    description = text.split("\n\n")[1]
    assert len(description.split()) >= 5  # a sentence, not a bare name
    options = [line.strip() for line in text.splitlines() if line.strip().startswith("-")]
    for line in options:  # "-v, --verbose   log what ..." : each option is explained
        assert len(line.split("  ")) > 1 or line.endswith(("ID", "DATE", "PORT", "N")), line
    assert "exit codes:" in text


def test_the_top_level_help_lists_every_command(tmp_path: Path) -> None:
    text = smtpmatch("--help", cwd=tmp_path).stdout
    for command in COMMANDS:
        assert f"\n    {command} " in text


def test_verbose_is_accepted_before_or_after_the_command(tmp_path: Path) -> None:
    for args in (
        ["-v", "check", "--demo", "jane@contoso.com"],
        ["check", "-v", "--demo", "jane@contoso.com"],
    ):
        assert smtpmatch(*args, cwd=tmp_path).returncode == 0


def test_a_port_out_of_range_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = smtpmatch("serve", "--demo", "--port", "70000", cwd=tmp_path)
    assert result.returncode == 2
    assert "70000 is not a port number (1-65535)" in result.stderr
    assert "Traceback" not in result.stderr


def slack_env(tmp_path: Path, **values: str) -> dict[str, str]:
    defaults = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "signing-secret",
        "SMTPMATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
    }
    return clean_env(**{**defaults, **values})


def test_a_port_in_use_exits_4_and_never_claims_to_serve(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = smtpmatch(
            "serve", "--http", "--demo", "--port", str(port), cwd=tmp_path, env=slack_env(tmp_path)
        )
    assert result.returncode == 4
    assert result.stderr.strip().splitlines()[-1].startswith(f"smtpmatch: port {port} ")
    assert "serving HTTP" not in result.stderr and "Traceback" not in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_socket_mode_with_slack_unreachable_is_one_line_and_exit_4(tmp_path: Path) -> None:
    env = slack_env(
        tmp_path,
        SLACK_APP_TOKEN="xapp-1-test",
        SLACK_API_URL=f"http://127.0.0.1:{free_port()}/api/",
    )
    result = smtpmatch("serve", "--demo", "--port", str(free_port()), cwd=tmp_path, env=env)
    assert result.returncode == 4
    assert "smtpmatch: Slack could not be reached at 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_postgresql_url_without_the_driver_says_which_extra_to_install(tmp_path: Path) -> None:
    # Run the CLI in a process where the PostgreSQL driver cannot be imported.
    code = (
        "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg2'] = None;"
        "from bot.cli import main; raise SystemExit(main(sys.argv[1:]))"
    )
    import subprocess

    env = clean_env(SMTPMATCH_DATABASE_URL="postgresql://bot:pw@127.0.0.1:1/smtpmatch")
    result = subprocess.run(
        [sys.executable, "-c", code, "audit"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "smtpmatch: SMTPMATCH_DATABASE_URL: PostgreSQL needs the driver: "
        "pip install 'smtpmatch[postgres]'"
    )


@pytest.mark.parametrize("command", [["audit"], ["serve", "--http", "--demo"]])
def test_a_sqlite_file_in_a_missing_folder_is_one_line(tmp_path: Path, command: list[str]) -> None:
    env = slack_env(tmp_path, SMTPMATCH_DATABASE_URL=f"sqlite:///{tmp_path}/nowhere/bot.db")
    if command[0] == "serve":
        command = [*command, "--port", str(free_port())]
    result = smtpmatch(*command, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"smtpmatch: SMTPMATCH_DATABASE_URL: the folder {tmp_path}/nowhere does not exist "
        "(create it, or point the URL to another folder)"
    )
    assert not (tmp_path / "nowhere").exists()


def test_audit_without_a_database_says_so_and_creates_nothing(tmp_path: Path) -> None:
    result = smtpmatch("audit", cwd=tmp_path)
    assert result.returncode == 2
    assert "no audit log at" in result.stderr and "smtpmatch.db" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_audit_reads_an_existing_database(tmp_path: Path) -> None:
    from bot.store.repository import Store

    store = Store(f"sqlite:///{tmp_path / 'smtpmatch.db'}")
    store.migrate()
    store.close()
    result = smtpmatch("audit", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
