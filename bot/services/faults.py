"""What a person is told about a directory fault: the directory's name and a plain sentence,
never the host, port, URL or bind DN the full error carries (those go to the log only)."""

from __future__ import annotations

from bot.errors import (
    AuthenticationFailed,
    ConcurrentModification,
    DirectoryError,
    DirectoryUnavailable,
    InsecureTransport,
    NameTaken,
    NotFound,
    PermissionMissing,
)

#: Faults about the object being changed (its values or its name), not about the connection:
#: their detail names only the user's own directory values and is safe to show.
_ABOUT_THE_OBJECT = (ConcurrentModification, NameTaken, NotFound)


def public_fault(exc: DirectoryError) -> str:
    """One sentence for people about ``exc``, naming the directory but no server or account.

    Args:
        exc: the directory fault (its full text, with the server, belongs in the log).

    Returns:
        For example "Active Directory could not be reached".
    """
    name = exc.directory
    if isinstance(exc, _ABOUT_THE_OBJECT):
        detail = str(exc).removeprefix(f"{name} ({exc.server}): ")
        return f"{name}: {detail}"
    if isinstance(exc, DirectoryUnavailable):
        return f"{name} could not be reached"
    if isinstance(exc, AuthenticationFailed):
        return f"{name} refused the bot's sign-in"
    if isinstance(exc, PermissionMissing):
        return f"{name} refused the bot a permission it needs"
    if isinstance(exc, InsecureTransport):
        return f"{name} could not be reached over an encrypted connection"
    return f"{name} could not answer"
