"""The documentation says what the code does."""

from __future__ import annotations

import re

from bot.settings import Settings
from tests.unit.cli_helpers import ROOT


def test_the_soft_match_flags_need_a_global_administrator_only() -> None:
    text = (ROOT / "docs" / "permissions.md").read_text()
    section = text[text.index("## Tenant soft") : text.index("## Triggering")]
    assert "Global Administrator" in section
    assert "Hybrid Identity Administrator" not in section


def test_every_variable_in_env_example_is_a_setting() -> None:
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    known = {name.upper() for name in Settings.model_fields}
    assert names and set(names) <= known
    assert {"SLACK_TEAM_ID", "SMTPMATCH_REQUESTERS"} <= set(names)


def test_the_readme_documents_the_commands_exit_codes_and_security() -> None:
    text = (ROOT / "README.md").read_text()
    assert "smtpmatch try" in text
    assert "| 4 | the bot could not serve" in text
    security = text[text.index("## Security") :]
    for name in ("SLACK_TEAM_ID", "SMTPMATCH_REQUESTERS", "SMTPMATCH_HTTP_MAX_BODY_BYTES"):
        assert name in security
    assert "runtime role" in security
