"""In-memory adapters of the directory ports, backed by one bulk read of each directory.

The whole-tenant scan reads Entra ID and AD once (see :func:`read_cloud` and
:meth:`bot.directories.ad.ActiveDirectory.read_all`), indexes what it read by address, anchor,
SID and name, and then answers the very questions :func:`bot.services.check.check_match` asks
through :class:`bot.ports.CloudDirectory` and :class:`bot.ports.OnPremDirectory`. So a scan's
verdict for an address is ``check``'s verdict: identification, holders and every rule are the
same code; only where the answers come from differs.

Each lookup re-checks its candidates with the same functions the live adapters use on what
Graph's filters or LDAP's searches return (:func:`bot.directories.entra.holds_address`,
:meth:`bot.directories.ad.AddressCarrier.holders`), so matching semantics cannot drift.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from ldap3.core import exceptions as ldap_exc
from ldap3.utils.dn import parse_dn

from bot.directories.ad import DirectoryContents
from bot.directories.entra import (
    EntraDirectory,
    address_keys,
    exchange_provisioned,
    holders_among,
    holds_address,
)
from bot.directories.graph import JsonObject
from bot.errors import PermissionMissing
from bot.models import CloudUser, Holder, OnPremUser, RoleAssignment, Tenant, Unknown
from bot.ports import AccountNames, ChangePlan

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: Why a mailbox is Unknown when the scan did not ask about it (it always asks for targets).
_NOT_READ = Unknown("the scan did not read this user's mailbox")


class InlineExecutor(Executor):
    """Runs each submitted call at once, in the caller's thread.

    In-memory lookups take microseconds: handing each to a thread pool would cost more than
    the lookup, and a scan of 10,000 users makes about 100,000 of them.
    """

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, as a pool does
            future.set_exception(exc)
        return future


def _index(keys: dict[str, list[int]], position: int, values: set[str]) -> None:
    for key in values:
        keys.setdefault(key, []).append(position)


# -- Entra ID ---------------------------------------------------------------------------------


@dataclass
class CloudContents:
    """What one bulk read of Entra ID returned.

    Args:
        users: every user (members and guests) as Graph JSON and as a model.
        groups: every group (JSON), or why they could not be listed.
        contacts: every organizational contact (JSON), or why not.
        deleted: every soft-deleted user, or why not.
        tenant: the tenant facts (domains, sync flags).
        roles: active roles per user id (all users without an entry hold none), or why not.
        eligible_unknown: why PIM eligibilities could not be read, if they could not.
        mailboxes: per user id, what is known about the mailbox (the Exchange plan says yes;
            the others are confirmed with ``mailboxSettings`` before they are judged).
    """

    users: list[tuple[JsonObject, CloudUser]]
    groups: list[JsonObject] | Unknown
    contacts: list[JsonObject] | Unknown
    deleted: list[CloudUser] | Unknown
    tenant: Tenant
    roles: dict[str, tuple[RoleAssignment, ...]] | Unknown
    eligible_unknown: Unknown | None = None
    mailboxes: dict[str, bool | Unknown] = field(default_factory=dict)


class IndexedCloudDirectory:
    """:class:`bot.ports.CloudDirectory` answered from :class:`CloudContents`.

    Args:
        contents: the bulk read.
        confirm_mailboxes: asks Exchange about the mailboxes of some users (a ``$batch`` of
            ``mailboxSettings``); used by :meth:`confirm_mailboxes`.
    """

    def __init__(
        self,
        contents: CloudContents,
        confirm_mailboxes: Callable[[Sequence[str]], dict[str, bool | Unknown]] | None = None,
    ) -> None:
        self.contents = contents
        self._confirm = confirm_mailboxes
        self._users = contents.users
        self._by_address: dict[str, list[int]] = {}
        self._by_id: dict[str, int] = {}
        self._by_upn: dict[str, list[int]] = {}
        self._by_anchor: dict[str, list[int]] = {}
        self._by_sid: dict[str, list[int]] = {}
        for position, (data, user) in enumerate(self._users):
            _index(self._by_address, position, address_keys(data, upn=True))
            self._by_id[user.id] = position
            _index(self._by_upn, position, {user.user_principal_name.casefold()})
            if user.on_premises_immutable_id:
                _index(self._by_anchor, position, {user.on_premises_immutable_id})
            if user.on_premises_security_identifier:
                _index(self._by_sid, position, {user.on_premises_security_identifier.casefold()})
        self._groups_by_address: dict[str, list[int]] = {}
        self._contacts_by_address: dict[str, list[int]] = {}
        for objects, keys in (
            (contents.groups, self._groups_by_address),
            (contents.contacts, self._contacts_by_address),
        ):
            if not isinstance(objects, Unknown):
                for position, obj in enumerate(objects):
                    _index(keys, position, address_keys(obj, upn=False))
        self._deleted_by_anchor: dict[str, list[int]] = {}
        self._deleted_by_sid: dict[str, list[int]] = {}
        if not isinstance(contents.deleted, Unknown):
            for position, user in enumerate(contents.deleted):
                if user.on_premises_immutable_id:
                    _index(self._deleted_by_anchor, position, {user.on_premises_immutable_id})
                if user.on_premises_security_identifier:
                    sid = user.on_premises_security_identifier.casefold()
                    _index(self._deleted_by_sid, position, {sid})

    # -- what the scan prepares -----------------------------------------------------------

    def unconfirmed_mailboxes(self, user_ids: Sequence[str]) -> list[str]:
        """Those of ``user_ids`` whose mailbox the bulk read did not settle."""
        known = self.contents.mailboxes
        return [u for u in dict.fromkeys(user_ids) if u not in known]

    def confirm_mailboxes(self, user_ids: Sequence[str]) -> None:
        """Ask Exchange about the mailboxes of ``user_ids`` (in ``$batch`` requests)."""
        if user_ids and self._confirm is not None:
            self.contents.mailboxes.update(self._confirm(user_ids))

    # -- the port -------------------------------------------------------------------------

    def _users_at(self, positions: Sequence[int] | None) -> list[tuple[JsonObject, CloudUser]]:
        return [self._users[i] for i in sorted(set(positions or ()))]

    def find_users(self, address: str) -> Sequence[CloudUser]:
        """See :meth:`bot.ports.CloudDirectory.find_users`."""
        found = self._users_at(self._by_address.get(address.casefold()))
        return [user for data, user in found if holds_address(data, address, upn=True)]

    def get_user(self, user_id: str) -> CloudUser | None:
        """See :meth:`bot.ports.CloudDirectory.get_user`."""
        position = self._by_id.get(user_id)
        return None if position is None else self._users[position][1]

    def has_mailbox(self, user_id: str) -> bool | Unknown:
        """See :meth:`bot.ports.CloudDirectory.has_mailbox`."""
        return self.contents.mailboxes.get(user_id, _NOT_READ)

    def roles(self, user_id: str) -> tuple[RoleAssignment, ...] | Unknown:
        """See :meth:`bot.ports.CloudDirectory.roles`."""
        roles = self.contents.roles
        if isinstance(roles, Unknown):
            return roles
        held = roles.get(user_id, ())
        if self.contents.eligible_unknown is not None and not held:
            # As the live adapter: active roles already block; without them, unknown.
            return self.contents.eligible_unknown
        return held

    def find_holders(self, address: str) -> Sequence[Holder] | Unknown:
        """See :meth:`bot.ports.CloudDirectory.find_holders`."""
        groups, contacts = self.contents.groups, self.contents.contacts
        if isinstance(groups, Unknown):
            return groups
        if isinstance(contacts, Unknown):
            return contacts
        key = address.casefold()
        users = [data for data, _ in self._users_at(self._by_address.get(key))]
        return holders_among(
            address,
            users,
            [groups[i] for i in sorted(set(self._groups_by_address.get(key, ())))],
            [contacts[i] for i in sorted(set(self._contacts_by_address.get(key, ())))],
        )

    def find_holders_of(self, addresses: Sequence[str]) -> Sequence[Holder] | Unknown:
        """See :meth:`bot.ports.CloudDirectory.find_holders_of`."""
        holders: list[Holder] = []
        for address in addresses:
            found = self.find_holders(address)
            if isinstance(found, Unknown):
                return found
            holders += found
        return holders

    def find_by_anchor(self, anchor: str, sid: str | None) -> Sequence[CloudUser]:
        """See :meth:`bot.ports.CloudDirectory.find_by_anchor`."""
        positions = list(self._by_anchor.get(anchor, ()))
        if sid:
            positions += self._by_sid.get(sid.casefold(), ())
        return [user for _, user in self._users_at(positions)]

    def find_deleted_by_anchor(self, anchor: str, sid: str | None) -> Sequence[CloudUser] | Unknown:
        """See :meth:`bot.ports.CloudDirectory.find_deleted_by_anchor`."""
        deleted = self.contents.deleted
        if isinstance(deleted, Unknown):
            return deleted
        positions = list(self._deleted_by_anchor.get(anchor, ()))
        if sid:
            positions += self._deleted_by_sid.get(sid.casefold(), ())
        return [deleted[i] for i in sorted(set(positions))]

    def find_user_by_upn(self, upn: str) -> CloudUser | None:
        """See :meth:`bot.ports.CloudDirectory.find_user_by_upn`."""
        found = self._users_at(self._by_upn.get(upn.casefold()))
        return found[0][1] if found else None

    def tenant(self) -> Tenant:
        """See :meth:`bot.ports.CloudDirectory.tenant`."""
        return self.contents.tenant


def _roles_by_user(
    users: Sequence[CloudUser],
    groups: list[JsonObject] | Unknown,
    assignments: list[tuple[str, str]] | Unknown,
    eligibilities: list[tuple[str, str]] | Unknown,
    members_of: Callable[[Sequence[str]], dict[str, list[str]] | Unknown],
) -> tuple[dict[str, tuple[RoleAssignment, ...]] | Unknown, Unknown | None]:
    """Active and eligible roles per user, as :meth:`EntraDirectory.roles` reports them for
    one user: direct roles, roles of the role-assignable groups the user is in (named), then
    the eligible roles not already active."""
    if isinstance(assignments, Unknown):
        return assignments, None
    by_principal: dict[str, list[str]] = {}
    for principal, name in assignments:
        by_principal.setdefault(principal, []).append(name)
    user_ids = {u.id for u in users}
    role_groups: list[JsonObject] = []
    if any(p not in user_ids for p in by_principal):
        if isinstance(groups, Unknown):
            return groups, None
        role_groups = [
            g for g in groups if g.get("isAssignableToRole") and str(g["id"]) in by_principal
        ]
    members = members_of([str(g["id"]) for g in role_groups])
    if isinstance(members, Unknown):
        return members, None
    via_groups: dict[str, list[JsonObject]] = {}
    for group in role_groups:
        for member in members.get(str(group["id"]), ()):
            via_groups.setdefault(member, []).append(group)
    eligible_of: dict[str, list[str]] = {}
    if not isinstance(eligibilities, Unknown):
        for principal, name in eligibilities:
            eligible_of.setdefault(principal, []).append(name)
    out: dict[str, tuple[RoleAssignment, ...]] = {}
    for user in users:
        names = list(dict.fromkeys(by_principal.get(user.id, ())))
        via: dict[str, str] = {}
        for group in via_groups.get(user.id, ()):
            for name in by_principal.get(str(group["id"]), ()):
                if name not in names:
                    names.append(name)
                via.setdefault(name, str(group.get("displayName") or group["id"]))
        held = [RoleAssignment(role=name, via_group=via.get(name)) for name in names]
        held += [
            RoleAssignment(role=name, eligible=True)
            for name in eligible_of.get(user.id, ())
            if name not in names
        ]
        if held:
            out[user.id] = tuple(held)
    return out, eligibilities if isinstance(eligibilities, Unknown) else None


def read_cloud(entra: EntraDirectory, executor: Executor) -> IndexedCloudDirectory:
    """Read Entra ID in bulk (independent lists concurrently) and index it.

    Users, groups, contacts, deleted users, role assignments, PIM eligibilities and the
    tenant are read at the same time; then the members of the role-assignable groups that
    hold a role. Mailboxes: a user whose Exchange plan is provisioned has one; the others are
    confirmed later, only for the users a report is about (:meth:`confirm_mailboxes`).

    Raises:
        DirectoryError: Graph could not be read (users, tenant), or a permission the scan
            cannot do without is missing.
    """

    def guarded(fn: Callable[[], list[JsonObject]]) -> Callable[[], list[JsonObject] | Unknown]:
        def call() -> list[JsonObject] | Unknown:
            try:
                return fn()
            except PermissionMissing as exc:
                return Unknown(str(exc))

        return call

    futures: dict[str, Future[Any]] = {
        "users": executor.submit(entra.list_users),
        "groups": executor.submit(guarded(entra.list_groups)),
        "contacts": executor.submit(guarded(entra.list_contacts)),
        "deleted": executor.submit(entra.list_deleted_users),
        "assignments": executor.submit(entra.list_role_assignments),
        "eligibilities": executor.submit(entra.list_role_eligibilities),
        "tenant": executor.submit(entra.tenant),
    }
    got = {name: future.result() for name, future in futures.items()}
    users: list[tuple[JsonObject, CloudUser]] = got["users"]
    roles, eligible_unknown = _roles_by_user(
        [u for _, u in users],
        got["groups"],
        got["assignments"],
        got["eligibilities"],
        entra.group_user_members,
    )
    mailboxes: dict[str, bool | Unknown] = {
        user.id: True for data, user in users if exchange_provisioned(data)
    }
    contents = CloudContents(
        users=users,
        groups=got["groups"],
        contacts=got["contacts"],
        deleted=got["deleted"],
        tenant=got["tenant"],
        roles=roles,
        eligible_unknown=eligible_unknown,
        mailboxes=mailboxes,
    )
    return IndexedCloudDirectory(contents, entra.mailboxes)


# -- Active Directory -------------------------------------------------------------------------


def _rdns(value: str) -> list[tuple[str, str]] | None:
    try:
        return [(a.lower(), v.casefold()) for a, v, _sep in parse_dn(value)]
    except (ldap_exc.LDAPInvalidDnError, ValueError, IndexError):
        return None


def _within(dn: str, base: str) -> bool:
    inner, outer = _rdns(dn), _rdns(base)
    if inner is None or outer is None:
        return False
    return len(inner) >= len(outer) and inner[len(inner) - len(outer) :] == outer


class IndexedActiveDirectory:
    """:class:`bot.ports.OnPremDirectory` answered from one :class:`DirectoryContents`.

    Read-only: :meth:`apply` refuses (a scan never writes).
    """

    def __init__(
        self,
        contents: DirectoryContents,
        *,
        upn_suffixes: tuple[str, ...] = (),
        dns_domain: str = "",
    ) -> None:
        self.contents = contents
        self._upn_suffixes = upn_suffixes
        self._dns_domain = dns_domain
        self._by_address: dict[str, list[int]] = {}
        self._by_sam: dict[str, list[int]] = {}
        self._by_upn: dict[str, list[int]] = {}
        self._by_dn: dict[str, int] = {}
        self._by_display: dict[str, list[int]] = {}
        self._by_names: dict[tuple[str, str], list[int]] = {}
        for position, user in enumerate(contents.objects):
            self._by_dn.setdefault(user.dn.casefold(), position)
            if user.sam_account_name:
                _index(self._by_sam, position, {user.sam_account_name.casefold()})
            if user.user_principal_name:
                _index(self._by_upn, position, {user.user_principal_name.casefold()})
            if not contents.people[position]:
                continue
            keys = {
                p.partition(":")[2].casefold()
                for p in user.proxy_addresses
                if p.partition(":")[0].casefold() == "smtp"
            }
            keys |= {v.casefold() for v in (user.user_principal_name, user.mail) if v}
            _index(self._by_address, position, keys)
            if user.display_name:
                _index(self._by_display, position, {user.display_name.strip().casefold()})
            if user.given_name and user.surname:
                key = (user.given_name.strip().casefold(), user.surname.strip().casefold())
                self._by_names.setdefault(key, []).append(position)
        self._holders_by_address: dict[str, list[int]] = {}
        for position, carrier in enumerate(contents.holders):
            _index(self._holders_by_address, position, carrier.keys())

    def _at(self, positions: Sequence[int]) -> list[OnPremUser]:
        return [self.contents.objects[i] for i in sorted(set(positions))]

    def find_users(self, address: str, onprem_id: str | None) -> Sequence[OnPremUser]:
        """See :meth:`bot.ports.OnPremDirectory.find_users`."""
        if onprem_id is not None:
            return self._named(onprem_id)
        local = address.rsplit("@", 1)[0].casefold()
        sam = [i for i in self._by_sam.get(local, ()) if self.contents.people[i]]
        return self._at([*self._by_address.get(address.casefold(), ()), *sam])

    def _named(self, onprem_id: str) -> Sequence[OnPremUser]:
        if "=" in onprem_id and _rdns(onprem_id):
            contents = self.contents
            if not _within(onprem_id, contents.base_dn) or any(
                _within(onprem_id, other) for other in contents.excluded
            ):
                return []
            position = self._by_dn.get(onprem_id.casefold())
            if position is None:
                # DNs may be spelled with other spacing: compare RDN by RDN.
                wanted = _rdns(onprem_id)
                position = next(
                    (i for i, u in enumerate(contents.objects) if _rdns(u.dn) == wanted), None
                )
            return [] if position is None else [contents.objects[position]]
        if "@" in onprem_id:
            return self._at(self._by_upn.get(onprem_id.casefold(), []))
        name = onprem_id.rsplit("\\", 1)[1] if "\\" in onprem_id else onprem_id
        return self._at(self._by_sam.get(name.casefold(), []))

    def find_lookalikes(
        self,
        display_name: str | None,
        given_name: str | None,
        surname: str | None,
        account_name: str | None,
    ) -> Sequence[OnPremUser]:
        """See :meth:`bot.ports.OnPremDirectory.find_lookalikes`."""
        positions: list[int] = []
        if display_name and display_name.strip():
            positions += self._by_display.get(display_name.strip().casefold(), ())
        if given_name and surname and given_name.strip() and surname.strip():
            key = (given_name.strip().casefold(), surname.strip().casefold())
            positions += self._by_names.get(key, ())
        if account_name and account_name.strip():
            sam = self._by_sam.get(account_name.strip().casefold(), ())
            positions += [i for i in sam if self.contents.people[i]]
        return tuple(self._at(positions))

    def find_holders(self, address: str) -> Sequence[Holder]:
        """See :meth:`bot.ports.OnPremDirectory.find_holders`."""
        carriers = self.contents.holders
        positions = sorted(set(self._holders_by_address.get(address.casefold(), ())))
        return tuple(h for i in positions for h in carriers[i].holders(address))

    def account_names(
        self, ou: str, cns: Sequence[str], sams: Sequence[str], upn: str
    ) -> AccountNames:
        """See :meth:`bot.ports.OnPremDirectory.account_names`, from the snapshot (so that a
        scan's creation plan equals the one ``check`` makes)."""
        parent = ou.casefold().replace(", ", ",")
        in_ou = set()
        for user in self.contents.objects:
            rdn, _, rest = user.dn.partition(",")
            if rest.casefold().replace(", ", ",") == parent:
                in_ou.add(rdn.partition("=")[2].casefold())
        return AccountNames(
            taken_cns=frozenset(c for c in cns if c.casefold() in in_ou),
            taken_sams=frozenset(n for n in sams if n.casefold() in self._by_sam),
            upn_taken=upn.casefold() in self._by_upn,
            upn_suffixes=self._upn_suffixes,
            dns_domain=self._dns_domain,
        )

    def apply(self, plan: ChangePlan) -> ChangePlan:
        """A scan never writes: always refused."""
        raise RuntimeError(f"a scan's directory snapshot is read-only (asked to change {plan.dn})")

    def create(self, plan: ChangePlan, password: str) -> uuid.UUID:
        """A scan never writes: always refused."""
        raise RuntimeError(f"a scan's directory snapshot is read-only (asked to create {plan.dn})")

    def delete(self, dn: str, guid: uuid.UUID) -> None:
        """A scan never writes: always refused."""
        raise RuntimeError(f"a scan's directory snapshot is read-only (asked to delete {dn})")


__all__ = [
    "CloudContents",
    "IndexedActiveDirectory",
    "IndexedCloudDirectory",
    "InlineExecutor",
    "read_cloud",
]
