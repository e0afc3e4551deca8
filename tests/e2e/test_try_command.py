"""`smtpmatch try`: the bot end to end on one machine, no Slack account, as a new admin runs it."""

from __future__ import annotations

from pathlib import Path

from tests.unit.cli_helpers import clean_env, smtpmatch


def test_try_walks_an_eligible_address_from_report_to_sync(tmp_path: Path) -> None:
    # Even with a token in the environment (Bolt would warn that it is unused).
    env = clean_env(SLACK_BOT_TOKEN="xoxb-from-the-environment")
    result = smtpmatch("try", "jane@contoso.com", cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    steps = [
        "1. @helpdesk.hannah types /smtpmatch jane@contoso.com",
        "*Eligible*",
        "[ Request approval ]",
        "2. They press Request approval",
        "3. They submit a reason",
        "asks to SMTP-match `jane@contoso.com`",
        "[ Approve ]",
        "4. @approver.alex presses Approve",
        "gets a direct message",
        "written to AD",
        "5. Directory sync runs",
        "6. The bot watches Entra ID",
        "is now bound to the AD user",
    ]
    positions = [out.index(step) for step in steps]
    assert positions == sorted(positions)
    assert result.stderr == ""  # no Bolt warning, no request body, no traceback
    assert list(tmp_path.iterdir()) == []  # the trial's database lives in a temp folder


def test_try_with_an_ineligible_address_stops_after_the_report(tmp_path: Path) -> None:
    result = smtpmatch("try", "gina.guest@contoso.com", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "*Blocked*" in result.stdout
    assert "There is no Request approval button for this report" in result.stdout
    assert "2. They press Request approval" not in result.stdout


def test_try_refuses_a_malformed_address_with_usage_exit_code(tmp_path: Path) -> None:
    result = smtpmatch("try", "not-an-address", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("smtpmatch: 'not-an-address' is not a mailbox address")
