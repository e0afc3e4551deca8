"""What people are told about a directory fault names the directory, never a host or an
account (issue 15 M5); the Bolt error handler and every pool's fault reply use it."""

from __future__ import annotations

import logging

import pytest

from bot.errors import (
    AuthenticationFailed,
    ConcurrentModification,
    DirectoryError,
    DirectoryUnavailable,
    PermissionMissing,
)
from bot.services.faults import public_fault
from handlers import handle_listener_fault

SERVER = "dc1.corp.example:636"
BIND_DN = "CN=svc-smtpmatch,OU=Service,DC=corp,DC=example"


@pytest.mark.parametrize(
    ("error", "sentence"),
    [
        (
            DirectoryUnavailable("Active Directory", SERVER, f"ldaps://{SERVER} refused"),
            "Active Directory could not be reached",
        ),
        (
            AuthenticationFailed("Active Directory", SERVER, f"bind as {BIND_DN} refused"),
            "Active Directory refused the bot's sign-in",
        ),
        (
            PermissionMissing("Entra ID", "graph.example", f"{BIND_DN} lacks User.Read.All"),
            "Entra ID refused the bot a permission it needs",
        ),
    ],
)
def test_connection_faults_are_told_without_server_or_account(
    error: DirectoryError, sentence: str
) -> None:
    assert public_fault(error) == sentence


def test_a_fault_about_the_object_keeps_its_detail_but_not_the_server() -> None:
    error = ConcurrentModification("Active Directory", SERVER, "mail changed since the read")
    assert public_fault(error) == "Active Directory: mail changed since the read"


def test_the_bolt_error_handler_tells_a_reference_and_logs_the_full_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = AuthenticationFailed("Active Directory", SERVER, f"bind as {BIND_DN} refused")
    with caplog.at_level(logging.WARNING):
        response = handle_listener_fault(error, {"type": "block_actions"})
    assert "Active Directory could not answer" in response.body
    assert "dc1.corp" not in response.body and "CN=svc" not in response.body
    reference = response.body.split("ref ")[1][:8]
    assert any(reference in r.getMessage() and BIND_DN in r.getMessage() for r in caplog.records)
