"""``check_match``: gather facts from both directories concurrently, then apply the rules."""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field

from bot.errors import InvalidInput
from bot.ports import CloudDirectory, OnPremDirectory
from bot.rules.address import parse_address, primary_smtp, same_address
from bot.rules.checks import Report
from bot.rules.engine import Facts, Policy, evaluate

MAX_ONPREM_ID_LENGTH = 1024


@dataclass
class Directories:
    """The two directory ports plus what runs their calls concurrently."""

    onprem: OnPremDirectory
    cloud: CloudDirectory
    policy: Policy = field(default_factory=Policy)
    executor: Executor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=64, thread_name_prefix="lookup")
    )


def parse_onprem_id(text: str | None) -> str | None:
    """Validate the optional AD account name (sAMAccountName, UPN or DN).

    Raises:
        InvalidInput: when it is oversized or contains control characters.
    """
    if text is None or not text.strip():
        return None
    value = text.strip()
    if len(value) > MAX_ONPREM_ID_LENGTH:
        raise InvalidInput(f"the AD account name is longer than {MAX_ONPREM_ID_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidInput("the AD account name contains control characters")
    return value


def check_match(
    dirs: Directories,
    address: str,
    onprem_id: str | None = None,
    *,
    approved_primary: str | None = None,
) -> Report:
    """Look ``address`` up in both directories and explain whether it can be SMTP-matched.

    Two concurrent rounds: first the users on both sides, the tenant and the holders of the
    typed address; then what depends on the users found (mailbox, roles, anchor owners, UPN
    owner, and the holders of the cloud primary when an alias was typed).

    Args:
        dirs: the directory ports.
        address: the address as typed; validated here before anything is looked up.
        onprem_id: the AD account named by the requester, if any.
        approved_primary: at approval time, the cloud primary address the approver saw.

    Raises:
        InvalidInput: the address or account name is malformed (nothing was looked up).
        DirectoryError: a directory could not answer.
    """
    address = parse_address(address)
    onprem_id = parse_onprem_id(onprem_id)
    run = dirs.executor.submit

    cloud_users_f = run(dirs.cloud.find_users, address)
    onprem_users_f = run(dirs.onprem.find_users, address, onprem_id)
    tenant_f = run(dirs.cloud.tenant)
    cloud_holders_f = run(dirs.cloud.find_holders, address)
    onprem_holders_f = run(dirs.onprem.find_holders, address)

    cloud_users = tuple(cloud_users_f.result())
    onprem_users = tuple(onprem_users_f.result())
    cloud = cloud_users[0] if len(cloud_users) == 1 else None
    onprem = onprem_users[0] if len(onprem_users) == 1 else None

    primary = primary_smtp(cloud.proxy_addresses, cloud.mail) if cloud else None
    if primary and not same_address(primary, address):
        cloud_holders_f = run(dirs.cloud.find_holders, primary)
        onprem_holders_f = run(dirs.onprem.find_holders, primary)
    mailbox_f = run(dirs.cloud.has_mailbox, cloud.id) if cloud else None
    roles_f = run(dirs.cloud.roles, cloud.id) if cloud else None
    owners_f = run(dirs.cloud.find_by_anchor, onprem.anchor, onprem.object_sid) if onprem else None
    upn_owner_f = (
        run(dirs.cloud.find_user_by_upn, onprem.user_principal_name)
        if onprem and onprem.user_principal_name
        else None
    )

    facts = Facts(
        address=address,
        onprem_id=onprem_id,
        cloud_users=cloud_users,
        onprem_users=onprem_users,
        tenant=tenant_f.result(),
        mailbox=mailbox_f.result() if mailbox_f else None,
        roles=roles_f.result() if roles_f else None,
        cloud_holders=tuple(cloud_holders_f.result()),
        onprem_holders=tuple(onprem_holders_f.result()),
        anchor_owners=tuple(owners_f.result()) if owners_f else None,
        upn_owner=upn_owner_f.result() if upn_owner_f else None,
        approved_primary=approved_primary,
    )
    return evaluate(facts, dirs.policy)


__all__ = ["Directories", "check_match", "parse_onprem_id"]
