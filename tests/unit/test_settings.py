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


@pytest.mark.parametrize(
    "name", ["GRAPH_URL", "SLACK_API_URL", "AZURE_AUTHORITY_HOST", "SMTPMATCH_SYNC_WEBHOOK_URL"]
)
def test_service_urls_must_use_https_except_on_loopback(monkeypatch, name: str) -> None:
    monkeypatch.setenv("SMTPMATCH_SYNC_WEBHOOK_SECRET", "webhook-secret")
    monkeypatch.setenv(name, "http://graph.contoso.com/")
    with pytest.raises(ConfigurationError, match=f"^{name}: .* must use https://"):
        load_settings()
    for loopback in ("http://127.0.0.1:8443/", "http://localhost:3000/", "http://[::1]:80/"):
        monkeypatch.setenv(name, loopback)
        assert getattr(load_settings(), name.lower()) == loopback


def test_a_rejected_url_does_not_echo_its_credentials_or_query(monkeypatch) -> None:
    monkeypatch.setenv(
        "SMTPMATCH_SYNC_WEBHOOK_URL", "http://ops:pa55@hooks.contoso.com/x?token=t0k"
    )
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "pa55" not in str(caught.value) and "t0k" not in str(caught.value)


def test_the_webhook_trigger_requires_its_secret(monkeypatch) -> None:
    monkeypatch.setenv("SMTPMATCH_SYNC_TRIGGER", "webhook")
    monkeypatch.setenv("SMTPMATCH_SYNC_WEBHOOK_URL", "https://hooks.contoso.com/sync")
    with pytest.raises(ConfigurationError, match=r"^SMTPMATCH_SYNC_WEBHOOK_SECRET: required"):
        load_settings()
    monkeypatch.setenv("SMTPMATCH_SYNC_WEBHOOK_SECRET", "s3cret")
    assert load_settings().smtpmatch_sync_webhook_secret is not None


def test_the_database_url_is_a_secret(monkeypatch) -> None:
    url = "postgresql+psycopg://smtpmatch:Db-Pa55word@db.contoso.com/smtpmatch"
    monkeypatch.setenv("SMTPMATCH_DATABASE_URL", url)
    settings = load_settings()
    assert "Db-Pa55word" not in repr(settings) and "Db-Pa55word" not in str(settings)
    assert settings.database_url == url
    monkeypatch.setenv("SMTPMATCH_DATABASE_URL", "Db-Pa55word")
    with pytest.raises(ConfigurationError, match=r"^SMTPMATCH_DATABASE_URL:") as caught:
        load_settings()
    assert "Db-Pa55word" not in str(caught.value)


def test_team_id_and_requesters_are_validated(monkeypatch) -> None:
    monkeypatch.setenv("SLACK_TEAM_ID", "T0123ABCD")
    monkeypatch.setenv("SMTPMATCH_REQUESTERS", "U012AB3CD, S0614TZR7")
    settings = load_settings()
    assert settings.slack_team_id == "T0123ABCD"
    assert settings.smtpmatch_requesters == ("U012AB3CD", "S0614TZR7")
    monkeypatch.setenv("SLACK_TEAM_ID", "contoso")
    monkeypatch.setenv("SMTPMATCH_REQUESTERS", "helpdesk")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["SMTPMATCH_REQUESTERS", "SLACK_TEAM_ID"]


def test_unset_requesters_and_team_mean_anyone(monkeypatch) -> None:
    monkeypatch.delenv("SMTPMATCH_REQUESTERS", raising=False)
    monkeypatch.delenv("SLACK_TEAM_ID", raising=False)
    settings = load_settings()
    assert settings.smtpmatch_requesters == () and settings.slack_team_id is None


def test_the_http_body_limit_is_a_few_hundred_kb_by_default(monkeypatch) -> None:
    assert load_settings().smtpmatch_http_max_body_bytes == 256 * 1024
    monkeypatch.setenv("SMTPMATCH_HTTP_MAX_BODY_BYTES", "12")
    with pytest.raises(ConfigurationError, match=r"^SMTPMATCH_HTTP_MAX_BODY_BYTES:"):
        load_settings()
