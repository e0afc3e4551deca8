"""The project's own errors.

A "no" from the rules is a result (a failed check), never an exception. These are faults:
a directory that cannot be reached, a permission that is missing, bad configuration or input.
Messages never contain secrets; they name the server, the variable or the attribute involved.
"""

from __future__ import annotations


class SmtpMatchError(Exception):
    """Base class of every error smtpmatch raises on purpose."""


class ConfigurationError(SmtpMatchError):
    """A setting is missing or malformed. The message names the variable."""


class InvalidInput(SmtpMatchError):
    """User input (an address, an on-prem identifier, a reason) was rejected before any lookup."""


class DirectoryError(SmtpMatchError):
    """A fault while talking to a directory.

    Args:
        directory: ``"Active Directory"`` or ``"Entra ID"``.
        server: host (or URL without credentials) that was being talked to.
        message: what went wrong, safe to show to a user.
    """

    def __init__(self, directory: str, server: str, message: str) -> None:
        self.directory = directory
        self.server = server
        super().__init__(f"{directory} ({server}): {message}")


class DirectoryUnavailable(DirectoryError):
    """The directory could not be reached, timed out or kept failing."""


class AuthenticationFailed(DirectoryError):
    """The service account or application credentials were refused."""


class PermissionMissing(DirectoryError):
    """The service account or application lacks a right. The message names it."""


class SchemaViolation(DirectoryError):
    """The directory refused a write because of its schema (or a constraint)."""


class ConcurrentModification(DirectoryError):
    """The object changed between the read and the write; nothing was overwritten."""


class NotFound(DirectoryError):
    """An object the caller expected to exist does not."""


class NameTaken(DirectoryError):
    """A new object's name (``cn`` in its OU, ``sAMAccountName``, UPN) is already used.

    Args:
        attribute: the attribute whose value clashes.
        value: the value that is taken.
    """

    def __init__(self, directory: str, server: str, attribute: str, value: str) -> None:
        self.attribute = attribute
        self.value = value
        super().__init__(directory, server, f"{attribute} {value!r} is already taken")


class InsecureTransport(DirectoryError):
    """A password would travel without TLS; nothing was sent."""
