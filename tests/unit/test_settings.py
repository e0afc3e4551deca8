"""Settings: read from the environment and .env; a bad value names its variable, never a secret."""

from __future__ import annotations

import pytest

from bot.errors import ConfigurationError
from bot.settings import SyncTrigger, load_settings


def test_lists_are_split_and_defaults_follow_design(monkeypatch) -> None:
    monkeypatch.setenv("SMTPMATCH_APPROVERS", "U012AB3CD, S0614TZR7")
    monkeypatch.setenv("LDAP_URL", "ldaps://dc1.contoso.com,ldaps://dc2.contoso.com")
    monkeypatch.setenv("SMTPMATCH_SYNC_SCOPE", "OU=Staff,DC=contoso,DC=com;OU=IT,DC=contoso,DC=com")
    settings = load_settings()
    assert settings.smtpmatch_approvers == ("U012AB3CD", "S0614TZR7")
    assert settings.ldap_url == ("ldaps://dc1.contoso.com", "ldaps://dc2.contoso.com")
    assert len(settings.smtpmatch_sync_scope) == 2
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.azure_authority_host == "https://login.microsoftonline.com"
    assert settings.smtpmatch_sync_trigger is SyncTrigger.NONE


def test_dot_env_is_read(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("GRAPH_URL=https://graph.microsoft.us\n")
    monkeypatch.delenv("GRAPH_URL", raising=False)
    assert load_settings().graph_url == "https://graph.microsoft.us"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LDAP_URL", "http://dc1"),
        ("SMTPMATCH_APPROVERS", "jane"),
        ("SMTPMATCH_APPROVAL_CHANNEL", "#approvals"),
        ("SMTPMATCH_SYNC_TRIGGER", "sometimes"),
        ("SMTPMATCH_SYNC_TIMEOUT_MINUTES", "-5"),
    ],
)
def test_a_malformed_value_names_the_variable(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=f"^{name}:"):
        load_settings()


def test_secrets_are_masked(monkeypatch) -> None:
    monkeypatch.setenv("LDAP_BIND_PASSWORD", "Hunter2!secret")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "s3cr3t-value")
    settings = load_settings()
    assert "Hunter2" not in repr(settings) and "s3cr3t" not in str(settings)
