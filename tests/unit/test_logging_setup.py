"""Logs: libraries quiet unless -v, no URL credentials or looked-up addresses, no Bolt bodies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.logging_setup import redact
from tests.unit.cli_helpers import clean_env

GRAPH_FILTER = (
    "HTTP Request: GET https://graph.microsoft.com/v1.0/users?$filter=mail%20eq%20"
    "'jane%40contoso.com' \"HTTP/1.1 200 OK\""
)
WEBHOOK = "POST https://ops:Pa55@hooks.contoso.com/sync?token=T0ken"
SCRIPT = f"""
import logging, sys
from bot.logging_setup import configure_logging
configure_logging(verbose=sys.argv[1] == "-v", service=True)
logging.getLogger("httpx").info({GRAPH_FILTER!r})
logging.getLogger("httpx").warning({WEBHOOK!r})
logging.getLogger("msal.application").info("token acquired for tenant")
logging.getLogger("slack_sdk.web.base_client").info("Sending a request to chat.postMessage")
logging.getLogger("slack_bolt.App").info("Invalid request signature detected (body: secret-body)")
logging.getLogger("slack_bolt.App").warning("As you gave `client` as well, `token` will be unused.")
logging.getLogger("smtpmatch").info("smtpmatch serving HTTP on port 3000")
"""


def run(flag: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, flag],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stderr


def test_library_info_is_hidden_and_our_own_shows() -> None:
    log = run("")
    assert "smtpmatch serving HTTP on port 3000" in log
    assert "graph.microsoft.com" not in log and "token acquired" not in log
    assert "chat.postMessage" not in log


def test_a_url_at_warning_loses_its_credentials_and_query() -> None:
    log = run("")
    assert "https://***@hooks.contoso.com/sync?…" in log
    assert "Pa55" not in log and "T0ken" not in log


def test_bolt_never_logs_a_request_body_nor_the_unused_token_warning() -> None:
    for flag in ("", "-v"):
        log = run(flag)
        assert "secret-body" not in log
        assert "will be unused" not in log


def test_verbose_shows_library_logs_without_the_addresses_looked_up() -> None:
    log = run("-v")
    assert "token acquired for tenant" in log and "chat.postMessage" in log
    assert "https://graph.microsoft.com/v1.0/users?…" in log
    assert "jane" not in log


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("postgresql://bot:pw@db/smtpmatch", "postgresql://***@db/smtpmatch"),
        ("see https://x.test/a?b=c for", "see https://x.test/a?… for"),
        ("no url here", "no url here"),
    ],
)
def test_redact(text: str, clean: str) -> None:
    assert redact(text) == clean


def test_the_cli_is_quiet_by_default_and_verbose_with_v(tmp_path: Path) -> None:
    from tests.unit.cli_helpers import smtpmatch

    quiet = smtpmatch("check", "--demo", "jane@contoso.com", cwd=tmp_path)
    assert quiet.stderr == ""
    loud = smtpmatch("-v", "check", "--demo", "jane@contoso.com", cwd=tmp_path)
    assert loud.returncode == 0 and "DEBUG" in loud.stderr
