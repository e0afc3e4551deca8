"""A new admin's .env: copied from .env.example it works, and every problem is named at once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bot.errors import ConfigurationError
from bot.settings import load_settings
from tests.unit.cli_helpers import PREFIXES, ROOT, clean_env, smtpmatch


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder, with smtpmatch's variables removed from the environment."""
    for name in list(os.environ):
        if name.startswith(PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_copy_of_env_example_lets_the_demo_run(folder: Path) -> None:
    shutil.copy(ROOT / ".env.example", folder / ".env")
    result = smtpmatch("check", "--demo", "jane@contoso.com", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "ELIGIBLE" in result.stdout
    assert result.stderr == ""


def test_an_empty_value_means_unset_for_every_variable(folder: Path) -> None:
    shutil.copy(ROOT / ".env.example", folder / ".env")
    settings = load_settings()
    assert settings.slack_app_token is None  # "leave empty for HTTP mode" means HTTP mode
    assert settings.ldap_bind_password is None
    assert settings.azure_client_secret is None
    assert settings.smtpmatch_approval_channel is None
    assert settings.smtpmatch_approvers == ()


def test_every_problem_is_reported_at_once_one_line_each(folder: Path) -> None:
    (folder / ".env").write_text(
        "SMTPMATCH_APPROVAL_CHANNEL=#approvals\n"
        "SMTPMATCH_APPROVERS=jane\n"
        "SMTPMATCH_SYNC_POLL_SECONDS=soon\n"
    )
    result = smtpmatch("check", "--demo", "jane@contoso.com", cwd=folder)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    named = {line.split(":")[1].strip() for line in lines}
    assert named == {
        "SMTPMATCH_APPROVAL_CHANNEL",
        "SMTPMATCH_APPROVERS",
        "SMTPMATCH_SYNC_POLL_SECONDS",
    }
    assert all(line.startswith("smtpmatch: ") for line in lines)
    assert "Traceback" not in result.stderr


def test_a_misspelt_variable_gets_a_did_you_mean_warning(folder: Path) -> None:
    (folder / ".env").write_text("SLACK_BOT_TOKN=xoxb-123\nLDAP_BASEDN=DC=contoso,DC=com\n")
    result = smtpmatch("check", "--demo", "jane@contoso.com", cwd=folder)
    assert result.returncode == 0
    assert "SLACK_BOT_TOKN" in result.stderr and "did you mean SLACK_BOT_TOKEN?" in result.stderr
    assert "did you mean LDAP_BASE_DN?" in result.stderr
    assert "xoxb-123" not in result.stderr


def test_a_misspelt_variable_in_the_environment_is_warned_about_too(folder: Path) -> None:
    env = clean_env(SMTPMATCH_APROVERS="U0123")
    result = smtpmatch("check", "--demo", "jane@contoso.com", cwd=folder, env=env)
    assert "did you mean SMTPMATCH_APPROVERS?" in result.stderr


def test_a_dot_env_that_is_not_utf8_names_the_file_and_line(folder: Path) -> None:
    (folder / ".env").write_bytes(b"# settings\nLDAP_BIND_DN=CN=J\xfcrgen,DC=contoso,DC=com\n")
    result = smtpmatch("check", "--demo", "jane@contoso.com", cwd=folder)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "smtpmatch: .env, line 2: not UTF-8 text (save the file as UTF-8)"
    )


def test_a_line_that_is_not_an_assignment_names_the_file_and_line(folder: Path) -> None:
    (folder / ".env").write_text("GRAPH_URL=https://graph.microsoft.com\nLDAP_URL ldaps://dc1\n")
    with pytest.raises(ConfigurationError, match=r"^\.env, line 2: expected NAME=value"):
        load_settings()


def test_quoted_values_over_several_lines_and_comments_are_accepted(folder: Path) -> None:
    (folder / ".env").write_text(
        '# comment\n\nexport GRAPH_URL="https://graph.microsoft.us"\n'
        'SMTPMATCH_SYNC_SCOPE="OU=Staff,DC=contoso,DC=com;\nOU=IT,DC=contoso,DC=com"\n'
    )
    settings = load_settings()
    assert settings.graph_url == "https://graph.microsoft.us"
    assert len(settings.smtpmatch_sync_scope) == 2
