"""Settings from the environment or a ``.env`` file, following the Slack and Azure conventions.

A missing or malformed value stops start-up with one clear line that names the variable.
Secrets are ``SecretStr`` and are never echoed, not even in validation errors.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import ConfigurationError

_SLACK_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_APPROVER_ID = re.compile(r"^[USW][A-Z0-9]{2,}$")


class SyncTrigger(StrEnum):
    """How a sync is started after a write."""

    NONE = "none"
    WEBHOOK = "webhook"
    CLOUD_SYNC = "cloud-sync"


def _split(value: Any, sep: str) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(sep) if part.strip())
    return value


class Settings(BaseSettings):
    """Every setting smtpmatch reads. Field names are the variable names, lower-cased."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    smtpmatch_approval_channel: str | None = None
    smtpmatch_notify_channel: str | None = None
    smtpmatch_approvers: Annotated[tuple[str, ...], NoDecode] = ()
    smtpmatch_request_ttl_hours: float = Field(default=24.0, gt=0)

    # Active Directory
    ldap_url: Annotated[tuple[str, ...], NoDecode] = ()
    ldap_bind_dn: str | None = None
    ldap_bind_password: SecretStr | None = None
    ldap_base_dn: str | None = None
    ldap_ca_file: Path | None = None
    ldap_gc_url: str | None = None
    ldap_timeout_seconds: float = Field(default=10.0, gt=0)
    smtpmatch_sync_scope: Annotated[tuple[str, ...], NoDecode] = ()

    # Entra ID / Microsoft Graph
    azure_tenant_id: str | None = None
    azure_client_id: str | None = None
    azure_client_secret: SecretStr | None = None
    azure_client_certificate_path: Path | None = None
    azure_authority_host: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com"
    graph_timeout_seconds: float = Field(default=15.0, gt=0)
    #: An admin may state the tenant's blockSoftMatchEnabled flag, which app-only cannot read.
    smtpmatch_block_soft_match: bool | None = None
    #: Likewise blockCloudObjectTakeoverThroughHardMatchEnabled (the hard-match block).
    smtpmatch_block_hard_match: bool | None = None

    # Storage
    smtpmatch_database_url: str = "sqlite:///smtpmatch.db"

    # Sync
    smtpmatch_sync_trigger: SyncTrigger = SyncTrigger.NONE
    smtpmatch_sync_webhook_url: str | None = None
    smtpmatch_sync_webhook_secret: SecretStr | None = None
    smtpmatch_sync_poll_seconds: float = Field(default=60.0, gt=0)
    smtpmatch_sync_timeout_minutes: float = Field(default=90.0, gt=0)
    smtpmatch_cloud_sync_service_principal_id: str | None = None
    smtpmatch_cloud_sync_job_id: str | None = None
    smtpmatch_cloud_sync_rule_id: str | None = None

    # Operations (one port for the server and the container healthcheck; log line format)
    smtpmatch_port: int = Field(default=3000, ge=1, le=65535)
    smtpmatch_log_format: str = Field(default="text", pattern="^(text|json)$")

    @field_validator("smtpmatch_approvers", "ldap_url", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        return _split(value, ",")

    @field_validator("smtpmatch_sync_scope", mode="before")
    @classmethod
    def _split_semicolons(cls, value: Any) -> Any:
        return _split(value, ";")

    @field_validator("smtpmatch_approvers")
    @classmethod
    def _check_approvers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not _APPROVER_ID.match(item):
                raise ValueError(f"{item!r} is not a Slack user id (U…) or user-group id (S…)")
        return value

    @field_validator("smtpmatch_approval_channel", "smtpmatch_notify_channel")
    @classmethod
    def _check_channel(cls, value: str | None) -> str | None:
        if value is not None and not _SLACK_ID.match(value):
            raise ValueError(f"{value!r} is not a Slack channel id (C…, G… or D…)")
        return value

    @field_validator("ldap_url")
    @classmethod
    def _check_ldap_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not re.match(r"^ldaps?://[^/\s]+/?$", url, re.IGNORECASE):
                raise ValueError(f"{url!r} is not an ldap:// or ldaps:// URL")
        return value

    @field_validator(
        "slack_api_url", "azure_authority_host", "graph_url", "smtpmatch_sync_webhook_url"
    )
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    # -- groups of settings a feature needs -------------------------------------------------

    @property
    def ldap_configured(self) -> bool:
        """Whether any LDAP setting was given."""
        return bool(self.ldap_url)

    @property
    def graph_configured(self) -> bool:
        """Whether any Entra ID setting was given."""
        return bool(self.azure_tenant_id or self.azure_client_id)

    def require(self, *names: str) -> None:
        """Raise ConfigurationError naming every variable in ``names`` that is not set."""
        missing = [name.upper() for name in names if getattr(self, name) in (None, "", ())]
        if missing:
            raise ConfigurationError(
                f"missing setting(s): {', '.join(missing)} (set them in the environment or "
                ".env, see .env.example)"
            )

    def require_directories(self) -> None:
        """Check that both directories are configured, naming what to set."""
        hint = "; or try the embedded sample directories with --demo"
        try:
            self.require(
                "ldap_url",
                "ldap_bind_dn",
                "ldap_bind_password",
                "ldap_base_dn",
                "azure_tenant_id",
                "azure_client_id",
            )
        except ConfigurationError as exc:
            raise ConfigurationError(f"{exc}{hint}") from None
        if self.azure_client_secret is None and self.azure_client_certificate_path is None:
            raise ConfigurationError(
                f"missing setting: AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH{hint}"
            )

    # Slack surface: the bot's own bounded executors and the per-user rate limit (issue 9).
    #: Threads that run reports (directory lookups) after a slash command is acked.
    smtpmatch_check_workers: int = Field(default=32, ge=1, le=256)
    #: Threads that run decisions: request submissions, approvals (re-check, write), reverts.
    smtpmatch_decision_workers: int = Field(default=8, ge=1, le=256)
    #: Threads for quick Slack and database work: opening modals, App Home, notices.
    smtpmatch_quick_workers: int = Field(default=4, ge=1, le=256)
    #: Work items that may wait for a thread in each executor; beyond it users are told "busy".
    smtpmatch_queue_limit: int = Field(default=200, ge=0, le=10_000)
    #: `/smtpmatch` checks one user may run per minute (0 = unlimited).
    smtpmatch_checks_per_minute: int = Field(default=10, ge=0)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning a validation error into one line naming the variable.

    Raises:
        ConfigurationError: with a message such as ``SMTPMATCH_SYNC_POLL_SECONDS: ...``. The
            offending value is not repeated for secret fields.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(f"{name}: {message}") from None
