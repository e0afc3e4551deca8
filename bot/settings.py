"""Settings from the environment or a ``.env`` file, following the Slack and Azure conventions.

An empty value (``NAME=`` as in ``.env.example``) means unset. Every missing or malformed value
is reported at once, one line per variable naming it. Secrets are ``SecretStr`` and are never
echoed, not even in validation errors; the database URL is one (it may carry a password).
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import ConfigurationError
from bot.rules.plan import DEFAULT_SAM_TEMPLATE, check_sam_template

log = logging.getLogger("smtpmatch")

_SLACK_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_APPROVER_ID = re.compile(r"^[USW][A-Z0-9]{2,}$")
_TEAM_ID = re.compile(r"^T[A-Z0-9]{2,}$")
#: Prefixes of the variables smtpmatch reads: a name with one of them that is not a setting is
#: probably misspelt.
PREFIXES = ("SLACK_", "SMTPMATCH_", "LDAP_", "AZURE_", "GRAPH_")
#: Variables with those prefixes that are not settings but are read elsewhere on purpose.
_NOT_SETTINGS = frozenset({"SMTPMATCH_TEST_POSTGRES_URL"})
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=(.*)$")
DEFAULT_MAX_BODY_BYTES = 256 * 1024
_WARNED: set[str] = set()


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
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    smtpmatch_approval_channel: str | None = None
    smtpmatch_notify_channel: str | None = None
    smtpmatch_approvers: Annotated[tuple[str, ...], NoDecode] = ()
    #: Who may run checks and request a match (user ids U…/W… and user-group ids S…); empty
    #: means anyone in the workspace.
    smtpmatch_requesters: Annotated[tuple[str, ...], NoDecode] = ()
    #: The one workspace (T…) whose requests are served; unset means any.
    slack_team_id: str | None = None
    #: HTTP mode refuses request bodies larger than this before reading them.
    smtpmatch_http_max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=10 * 1024 * 1024
    )
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
    #: KB step 2: the OU where smtpmatch creates missing AD users (inside the sync scope);
    #: unset = the creation is not offered. Its existence is checked at start-up.
    smtpmatch_create_ou: str | None = None
    #: How a new user's sAMAccountName is formed: Python format fields {upn_prefix},
    #: {mail_prefix}, {given}, {sn} ({given:.1} = first letter); made unique, max 20 chars.
    smtpmatch_sam_template: str = DEFAULT_SAM_TEMPLATE

    @field_validator("smtpmatch_create_ou", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("smtpmatch_create_ou")
    @classmethod
    def _check_create_ou(cls, value: str | None, info: ValidationInfo) -> str | None:
        scope = info.data.get("smtpmatch_sync_scope") or ()
        if value is None:
            return None
        if "=" not in value:
            raise ValueError(f"{value!r} is not an OU DN (e.g. OU=New Users,DC=contoso,DC=com)")

        def rdns(dn: str) -> list[str]:
            return [part.strip().casefold() for part in dn.split(",")]

        inner = rdns(value)
        if scope and not any(
            inner[len(inner) - len(rdns(s)) :] == rdns(s) and len(inner) >= len(rdns(s))
            for s in scope
        ):
            raise ValueError(
                f"{value} is not inside SMTPMATCH_SYNC_SCOPE: sync would never export the "
                "accounts created there"
            )
        return value.strip()

    @field_validator("smtpmatch_sam_template")
    @classmethod
    def _check_sam_template(cls, value: str) -> str:
        check_sam_template(value)
        return value

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
    smtpmatch_database_url: SecretStr = SecretStr("sqlite:///smtpmatch.db")

    # Sync
    smtpmatch_sync_trigger: SyncTrigger = SyncTrigger.NONE
    smtpmatch_sync_webhook_url: str | None = None
    smtpmatch_sync_webhook_secret: SecretStr | None = None
    smtpmatch_sync_poll_seconds: float = Field(default=60.0, gt=0)
    smtpmatch_sync_timeout_minutes: float = Field(default=90.0, gt=0)
    #: Waves (bulk hand-over): AD writes per minute; 0 = unlimited.
    smtpmatch_wave_writes_per_minute: int = Field(default=60, ge=0)
    smtpmatch_cloud_sync_service_principal_id: str | None = None
    smtpmatch_cloud_sync_job_id: str | None = None
    smtpmatch_cloud_sync_rule_id: str | None = None

    # Operations (one port for the server and the container healthcheck; log line format)
    smtpmatch_port: int = Field(default=3000, ge=1, le=65535)
    smtpmatch_log_format: str = Field(default="text", pattern="^(text|json)$")

    @field_validator("smtpmatch_approvers", "smtpmatch_requesters", "ldap_url", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        return _split(value, ",")

    @field_validator("smtpmatch_sync_scope", mode="before")
    @classmethod
    def _split_semicolons(cls, value: Any) -> Any:
        return _split(value, ";")

    @field_validator("smtpmatch_approvers", "smtpmatch_requesters")
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

    @field_validator("slack_team_id")
    @classmethod
    def _check_team(cls, value: str | None) -> str | None:
        if value is not None and not _TEAM_ID.match(value):
            raise ValueError(f"{value!r} is not a Slack team (workspace) id (T…)")
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
        if value is None:
            return value
        if not re.match(r"^https?://[^\s/]+", value, re.IGNORECASE):
            raise ValueError(f"{_without_credentials(value)!r} is not an https:// URL")
        parts = urlsplit(value)
        if parts.scheme.lower() != "https" and not _is_loopback(parts.hostname or ""):
            raise ValueError(
                f"{_without_credentials(value)!r} must use https:// (http:// is accepted only "
                "for a loopback host such as 127.0.0.1 or localhost)"
            )
        return value

    @field_validator("smtpmatch_database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr) -> SecretStr:
        if "://" not in value.get_secret_value():
            raise ValueError("not a database URL (sqlite:///PATH or postgresql://…)")
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

    @property
    def database_url(self) -> str:
        """``SMTPMATCH_DATABASE_URL`` in clear, for the store only (never log it)."""
        return self.smtpmatch_database_url.get_secret_value()

    def problems(self) -> list[str]:
        """What is wrong between settings (each field on its own was valid), one line each."""
        found: list[str] = []
        if self.smtpmatch_sync_trigger is SyncTrigger.WEBHOOK:
            if not self.smtpmatch_sync_webhook_url:
                found.append(
                    "SMTPMATCH_SYNC_WEBHOOK_URL: required when SMTPMATCH_SYNC_TRIGGER=webhook"
                )
            if self.smtpmatch_sync_webhook_secret is None:
                found.append(
                    "SMTPMATCH_SYNC_WEBHOOK_SECRET: required when SMTPMATCH_SYNC_TRIGGER=webhook "
                    "(the trigger signs its request with it)"
                )
        return found

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


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _without_credentials(url: str) -> str:
    """``url`` without a user:password part or a query string (which may carry a token)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=host, query="", fragment="").geturl()


def read_env_file(path: Path) -> dict[str, str]:
    """The ``NAME=value`` assignments of a ``.env`` file, checked line by line.

    Only the names matter here (pydantic-settings reads the values); this pass exists to name
    the file and line of anything the dotenv parser would silently skip or fail on.

    Raises:
        ConfigurationError: the file is not UTF-8 text or a line is not an assignment.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = data[: exc.start].count(b"\n") + 1
        raise ConfigurationError(
            f"{path}, line {bad_line}: not UTF-8 text (save the file as UTF-8)"
        ) from None
    found: dict[str, str] = {}
    open_quote: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if open_quote is not None:  # inside a quoted value that spans lines
            if line.rstrip().endswith(open_quote):
                open_quote = None
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ASSIGNMENT.match(line)
        if match is None:
            raise ConfigurationError(
                f"{path}, line {number}: expected NAME=value, found {_shown(stripped)}"
            )
        value = match.group(2).strip()
        # A quote opened and not closed on this line (a comment may follow a closed one).
        if value[:1] in ("'", '"') and value.count(value[0]) == 1:
            open_quote = value[0]
        found[match.group(1)] = value
    if open_quote is not None:
        raise ConfigurationError(f"{path}: a quoted value ({open_quote}) is never closed")
    return found


def _shown(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def misspelt_names(names: list[str]) -> list[str]:
    """A "did you mean" line for each name with the project's prefixes that is not a setting."""
    known = [name.upper() for name in Settings.model_fields]
    lines = []
    for name in sorted({n.upper() for n in names}):
        if not name.startswith(PREFIXES) or name in known or name in _NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if close:
            lines.append(f"{name} is not a setting smtpmatch reads; did you mean {close[0]}?")
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, reporting every problem at once, one line per variable.

    A ``.env`` in the working directory is checked first (UTF-8, one assignment per line); a
    variable with the project's prefixes that is not a setting is logged with the setting it
    probably means.

    Raises:
        ConfigurationError: one line per problem, e.g. ``SMTPMATCH_SYNC_POLL_SECONDS: ...``. The
            offending value is not repeated for secret fields.
    """
    env_file = Path(".env")
    names = list(os.environ)
    if env_file.is_file():
        names += list(read_env_file(env_file))
    for line in misspelt_names(names):
        if line not in _WARNED:  # the bot reads its settings more than once at start-up
            _WARNED.add(line)
            log.warning("%s", line)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            line = f"{name}: {message}"
            if line not in lines:
                lines.append(line)
        raise ConfigurationError("\n".join(lines)) from None
    problems = settings.problems()
    if problems:
        raise ConfigurationError("\n".join(problems))
    return settings
