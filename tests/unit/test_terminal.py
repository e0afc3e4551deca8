"""The terminal report: verdict and what to do first, fits the terminal, colour only on a TTY."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from pathlib import Path

import pytest

from bot.directories.demo import build_demo_directories
from bot.rules.checks import Report
from bot.services.check import Directories, check_match
from bot.terminal import render_report
from tests.unit.cli_helpers import clean_env, console_script, smtpmatch

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def demo_report(address: str, onprem: str | None = None) -> Report:
    onprem_dir, cloud, policy = build_demo_directories()
    return check_match(Directories(onprem_dir, cloud, policy), address, onprem)


def test_the_verdict_and_what_to_do_come_before_the_details() -> None:
    text = render_report(demo_report("gina.guest@contoso.com"), width=100)
    lines = text.splitlines()
    assert lines[2].startswith("Verdict: BLOCKED")
    assert text.index("What to do first:") < text.index("Entra ID") < text.index("Checks:")
    steps = text[text.index("What to do first:") : text.index("Entra ID")]
    assert "guest" in steps.lower()


@pytest.mark.parametrize("width", [60, 80, 100, 140])
@pytest.mark.parametrize(
    "address", ["jane@contoso.com", "gina.guest@contoso.com", "chris@contoso.com"]
)
def test_every_line_fits_the_terminal(width: int, address: str) -> None:
    text = render_report(demo_report(address), width=width)
    too_long = [line for line in text.splitlines() if len(line) > width]
    assert too_long == []


def test_the_width_follows_the_terminal(tmp_path: Path) -> None:
    narrow = smtpmatch(
        "check", "--demo", "chris@contoso.com", cwd=tmp_path, env=clean_env(COLUMNS="64")
    )
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 64
    wide = smtpmatch(
        "check", "--demo", "chris@contoso.com", cwd=tmp_path, env=clean_env(COLUMNS="140")
    )
    assert max(len(line) for line in wide.stdout.splitlines()) > 100


def test_a_value_too_long_for_its_column_is_cut_with_a_marker() -> None:
    report = demo_report("gina.guest@contoso.com")
    assert report.cloud is not None
    upn = report.cloud.user_principal_name
    narrow = render_report(report, width=60)
    upn_rows = narrow[narrow.index("UPN") : narrow.index("mail")].splitlines()
    cells = [row[16:].split(" ")[0] for row in upn_rows]
    joined = "".join(cells)
    assert joined == upn or (joined.endswith("…") and upn.startswith(joined[:-1]))
    wide = render_report(report, width=140)
    assert upn in wide


def test_skips_for_the_same_reason_are_collapsed() -> None:
    report = demo_report("nobody@contoso.com")
    same = [c for c in report.checks if c.detail == "No single AD user to check."]
    text = render_report(report, width=100)
    assert len(same) >= 8
    assert text.count("[skip]") <= 4
    assert f"{len(same)} checks: No single AD user to check." in text
    assert "onprem.is_person" in text  # the ids are still listed


def test_an_unset_value_reads_the_same_in_the_table_and_the_plan() -> None:
    text = render_report(demo_report("jane@contoso.com"), width=100)
    mail_row = next(line for line in text.splitlines() if line.startswith("mail "))
    assert mail_row.rstrip().endswith("(not set)")  # AD mail is empty for jane
    plan = text[text.index("Planned change") :]
    assert "before: (not set)" in plan
    assert "(empty)" not in text


def test_remedies_show_the_command_line_form_not_slack_syntax() -> None:
    text = render_report(demo_report("chris@contoso.com"), width=100)
    assert "/smtpmatch" not in text
    assert "`smtpmatch check chris@contoso.com ACCOUNT`" in text


def run_in_a_terminal(tmp_path: Path, **env: str) -> str:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*console_script(), "check", "--demo", "alex.admin@contoso.com"],
        cwd=tmp_path,
        env=clean_env(**env),
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_only_and_never_with_no_color(tmp_path: Path) -> None:
    coloured = run_in_a_terminal(tmp_path, TERM="xterm")
    assert "\x1b[1;31m[FAIL]\x1b[0m" in coloured
    assert "\x1b[1;32m[PASS]\x1b[0m" in coloured
    assert "\x1b[" not in run_in_a_terminal(tmp_path, TERM="xterm", NO_COLOR="1")
    piped = smtpmatch("check", "--demo", "alex.admin@contoso.com", cwd=tmp_path)
    assert "\x1b[" not in piped.stdout
    assert ANSI.sub("", coloured).replace("\r\n", "\n").startswith(piped.stdout[:40])
