"""Embedded demo directories (contoso.com), in memory, so the product works with no setup.

Each account exercises one outcome of the rules; the README's table lists them. Writes go to
the in-memory AD only, with the same concurrency check as the real adapter.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from bot.errors import ConcurrentModification, NameTaken, NotFound
from bot.models import (
    CloudUser,
    Holder,
    ObjectKind,
    OnPremUser,
    ProxyAddress,
    RoleAssignment,
    Tenant,
    Unknown,
    is_service_domain,
    smtp_values,
)
from bot.ports import AccountNames, ChangePlan
from bot.rules.address import same_address, smtp_addresses
from bot.rules.engine import Policy
from bot.sync_triggers import SyncSubject

DEMO_BASE_DN = "DC=contoso,DC=com"
DEMO_SYNC_SCOPE = (f"OU=Staff,{DEMO_BASE_DN}",)
_STAFF = f"OU=Staff,{DEMO_BASE_DN}"
#: Where the demo creates AD accounts (KB step 2): inside the sync scope.
DEMO_CREATE_OU = _STAFF


def _guid(name: str) -> bytes:
    """A stable objectGUID for a demo name (raw little-endian bytes, as LDAP returns it)."""
    return uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.demo.contoso.com").bytes_le


def _anchor(name: str) -> str:
    return base64.b64encode(_guid(name)).decode("ascii")


def _ad_user(sam: str, name: str, upn: str | None = None, **kw: object) -> OnPremUser:
    return OnPremUser(
        dn=f"CN={name},{_STAFF}",
        object_guid=_guid(sam),
        sam_account_name=sam,
        user_principal_name=upn or f"{sam}@contoso.com",
        display_name=name,
        object_sid=f"S-1-5-21-1004336348-1177238915-682003330-{1100 + len(sam) * 7}",
        exchange_schema=True,
        **kw,  # type: ignore[arg-type]
    )


def _cloud_user(
    local: str, name: str, mailbox_aliases: Sequence[str] = (), **kw: object
) -> CloudUser:
    address = f"{local}@contoso.com"
    proxies = (
        f"SMTP:{address}",
        *(f"smtp:{a}" for a in mailbox_aliases),
        f"smtp:{local}@contoso.onmicrosoft.com",
    )
    values: dict[str, object] = {
        "user_principal_name": address,
        "display_name": name,
        "mail": address,
        "proxy_addresses": proxies,
    }
    values.update(kw)
    return CloudUser(id=str(uuid.uuid5(uuid.NAMESPACE_URL, local)), **values)  # type: ignore[arg-type]


def _seed_onprem() -> tuple[list[OnPremUser], list[Holder]]:
    users = [
        _ad_user("jane.doe", "Jane Doe", upn="jane@contoso.com"),
        _ad_user("alex.admin", "Alex Admin"),
        _ad_user("dana.dup", "Dana Dup"),
        _ad_user(
            "mia.matched",
            "Mia Matched",
            mail="mia.matched@contoso.com",
            proxy_addresses=("SMTP:mia.matched@contoso.com",),
        ),
        _ad_user("nina.nobox", "Nina Nobox"),
        _ad_user("sam.synced", "Sam Synced"),
        _ad_user("chris", "Chris Anders", upn="chris.anders@contoso.com"),
        _ad_user("cbrown", "Chris Brown", upn="chris@contoso.com"),
        _ad_user("gina.guest", "Gina Guest"),
        # Round 2 (docs/rules.md): one account per new outcome.
        _ad_user(
            "rita.rich", "Rita Rich", upn="rita@contoso.com", given_name="Rita", surname="Rich"
        ),
        _ad_user(
            "hank.hard",
            "Hank Hard",
            mail="hank.hard@contoso.com",
            proxy_addresses=("SMTP:hank.hard@contoso.com",),
        ),
        _ad_user("olga.onms", "Olga Onms"),
        _ad_user("dora.deleted", "Dora Deleted"),
        _ad_user("lli", "Lucas Li", given_name="Lucas", surname="Li"),
        _ad_user("mallory.test", "Mallory Test"),
        _ad_user(
            "adam.ops",
            "Adam Ops",
            admin_count=1,
            privileged_groups=("Domain Admins",),
        ),
        _ad_user(
            "paul.primary",
            "Paul Primary",
            mail="paul@fabrikam.com",
            proxy_addresses=(
                "SMTP:paul@fabrikam.com",
                "smtp:paul.primary@contoso.com",
                "X500:/o=Fabrikam/ou=Users/cn=paul",
            ),
        ),
    ]
    contact = Holder(
        kind=ObjectKind.CONTACT,
        id=f"CN=Dana Dup (external),OU=Contacts,{DEMO_BASE_DN}",
        name="Dana Dup (external)",
        attribute="mail",
        value="dana.dup@contoso.com",
    )
    return users, [contact]


def _seed_cloud() -> tuple[list[CloudUser], dict[str, bool], dict[str, tuple[RoleAssignment, ...]]]:
    sam_twin = CloudUser(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, "sam.synced-twin")),
        user_principal_name="sam.synced5821@contoso.onmicrosoft.com",
        display_name="Sam Synced (exported 2024)",
        on_premises_immutable_id=_anchor("sam.synced"),
        on_premises_sync_enabled=True,
    )
    users = [
        _cloud_user("jane", "Jane Doe", mailbox_aliases=("jane.doe@contoso.com",)),
        _cloud_user("alex.admin", "Alex Admin"),
        _cloud_user("dana.dup", "Dana Dup"),
        _cloud_user(
            "mia.matched",
            "Mia Matched",
            on_premises_immutable_id=_anchor("mia.matched"),
            on_premises_sync_enabled=True,
        ),
        _cloud_user("nina.nobox", "Nina Nobox", proxy_addresses=()),
        _cloud_user("sam.synced", "Sam Synced"),
        sam_twin,
        _cloud_user("chris", "Chris Brown"),
        _cloud_user(
            "gina.guest",
            "Gina Guest",
            user_type="Guest",
            user_principal_name="gina.guest_fabrikam.com#EXT#@contoso.onmicrosoft.com",
        ),
        _cloud_user("paul.primary", "Paul Primary"),
        _cloud_user(
            "rita",
            "Rita Rich",
            mailbox_aliases=(
                "rita.rich@contoso.com",
                "r.rich@contoso.com",
                "sales.emea@contoso.com",
            ),
            given_name="Rita",
            surname="Rich",
        ),
        _cloud_user(
            "hank.hard",
            "Hank Hard",
            on_premises_immutable_id=_anchor("hank.hard"),
        ),
        _cloud_user(
            "olga.onms",
            "Olga Onms",
            mail="olga@contoso.onmicrosoft.com",
            proxy_addresses=("SMTP:olga@contoso.onmicrosoft.com", "smtp:olga.onms@contoso.com"),
        ),
        _cloud_user("dora.deleted", "Dora Deleted"),
        _cloud_user("nora.new", "Nora New", given_name="Nora", surname="New"),
        _cloud_user("lucas", "Lucas Li", given_name="Lucas", surname="Li"),
        _cloud_user("ceo", "Carla Chief", given_name="Carla", surname="Chief"),
        _cloud_user("adam.ops", "Adam Ops"),
    ]
    by_upn = {u.user_principal_name: u.id for u in users}
    no_mailbox = {by_upn["nina.nobox@contoso.com"], sam_twin.id}
    mailboxes = {u.id: u.id not in no_mailbox for u in users}
    roles: dict[str, tuple[RoleAssignment, ...]] = {
        by_upn["alex.admin@contoso.com"]: (RoleAssignment("Exchange Administrator"),)
    }
    return users, mailboxes, roles


def _seed_deleted() -> list[CloudUser]:
    """Soft-deleted users: the quarantined duplicate an earlier failed attempt for dora.deleted
    left behind (it carries her AD anchor, so the next sync would restore it)."""
    return [
        CloudUser(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, "dora.deleted-duplicate")),
            user_principal_name="dora.deleted4711@contoso.onmicrosoft.com",
            display_name="Dora Deleted",
            on_premises_immutable_id=_anchor("dora.deleted"),
            on_premises_sync_enabled=True,
            deleted="2026-10-30T08:15:00Z",
        )
    ]


@dataclass
class DemoActiveDirectory:
    """In-memory AD implementing :class:`bot.ports.OnPremDirectory`."""

    users: list[OnPremUser] = field(default_factory=list)
    other_objects: list[Holder] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def find_users(self, address: str, onprem_id: str | None) -> Sequence[OnPremUser]:
        """See :meth:`bot.ports.OnPremDirectory.find_users`."""
        with self._lock:
            if onprem_id is not None:
                named = [
                    u
                    for u in self.users
                    if onprem_id.casefold()
                    in {
                        u.dn.casefold(),
                        (u.sam_account_name or "").casefold(),
                        (u.user_principal_name or "").casefold(),
                    }
                ]
                # A DN names an object of any class, as the real adapter finds it (so that the
                # rules can refuse a contact or a group with onprem.is_person).
                named += [
                    OnPremUser(
                        dn=o.id,
                        object_guid=_guid(o.id),
                        kind=o.kind,
                        display_name=o.name,
                        mail=o.value if o.attribute == "mail" else None,
                    )
                    for o in self.other_objects
                    if o.id.casefold() == onprem_id.casefold()
                ]
                return named
            local = address.split("@", 1)[0]
            return [
                u
                for u in self.users
                if same_address(u.user_principal_name, address)
                or same_address(u.mail, address)
                or any(same_address(a, address) for a in smtp_addresses(u.proxy_addresses))
                or same_address(u.sam_account_name, local)
            ]

    def find_lookalikes(
        self,
        display_name: str | None,
        given_name: str | None,
        surname: str | None,
        account_name: str | None,
    ) -> Sequence[OnPremUser]:
        """See :meth:`bot.ports.OnPremDirectory.find_lookalikes`."""

        def same(a: str | None, b: str | None) -> bool:
            return bool(a and b and a.casefold() == b.casefold())

        with self._lock:
            return [
                u
                for u in self.users
                if same(u.display_name, display_name)
                or (same(u.given_name, given_name) and same(u.surname, surname))
                or same(u.sam_account_name, account_name)
            ]

    def find_holders(self, address: str) -> Sequence[Holder]:
        """See :meth:`bot.ports.OnPremDirectory.find_holders`."""
        with self._lock:
            found = [h for h in self.other_objects if same_address(h.value, address)]
            for u in self.users:
                name = u.display_name or u.dn
                for attribute, values in (
                    ("userPrincipalName", [u.user_principal_name]),
                    ("mail", [u.mail]),
                    ("proxyAddresses", [str(v) for v in smtp_values(u.proxy_addresses)]),
                ):
                    for value in values:
                        if value and same_address(_address_of(value), address):
                            found.append(Holder(u.kind, u.dn, name, attribute, value))
            return found

    def apply(self, plan: ChangePlan) -> ChangePlan:
        """See :meth:`bot.ports.OnPremDirectory.apply`."""
        with self._lock:
            index = next((i for i, u in enumerate(self.users) if u.dn == plan.dn), None)
            if index is None:
                raise NotFound("Active Directory", "demo", f"{plan.dn} does not exist")
            user = self.users[index]
            for change in plan.changes:
                if set(_values(user, change.attribute)) != set(change.before):
                    raise ConcurrentModification(
                        "Active Directory",
                        "demo",
                        f"{change.attribute} of {plan.dn} changed since it was read; "
                        "nothing was written",
                    )
            for change in plan.changes:
                if change.attribute == "mail":
                    user = replace(user, mail=change.after[0] if change.after else None)
                elif change.attribute == "proxyAddresses":
                    user = replace(user, proxy_addresses=change.after)
            self.users[index] = user
            return plan

    def container_exists(self, dn: str) -> bool:
        """Whether ``dn`` is one of the demo's OUs."""
        return dn.casefold() in {_STAFF.casefold(), DEMO_BASE_DN.casefold()}

    def account_names(
        self, ou: str, cns: Sequence[str], sams: Sequence[str], upn: str
    ) -> AccountNames:
        """See :meth:`bot.ports.OnPremDirectory.account_names`."""
        with self._lock:
            in_ou = {
                u.dn.split(",", 1)[0].split("=", 1)[1].casefold()
                for u in self.users
                if u.dn.split(",", 1)[1].casefold() == ou.casefold()
            }
            used_sams = {(u.sam_account_name or "").casefold() for u in self.users}
            return AccountNames(
                taken_cns=frozenset(c for c in cns if c.casefold() in in_ou),
                taken_sams=frozenset(n for n in sams if n.casefold() in used_sams),
                upn_taken=any(same_address(u.user_principal_name, upn) for u in self.users),
                upn_suffixes=("contoso.com",),
                dns_domain="contoso.com",
            )

    def create(self, plan: ChangePlan, password: str) -> uuid.UUID:
        """See :meth:`bot.ports.OnPremDirectory.create` (the password is not kept)."""
        with self._lock:
            sam = plan.value("sAMAccountName") or ""
            for user in self.users:
                if user.dn.casefold() == plan.dn.casefold():
                    raise NameTaken("Active Directory", "demo", "cn", plan.dn)
                if (user.sam_account_name or "").casefold() == sam.casefold():
                    raise NameTaken("Active Directory", "demo", "sAMAccountName", sam)
            guid = uuid.uuid4()
            mail = plan.value("mail")
            proxies = next((c.after for c in plan.changes if c.attribute == "proxyAddresses"), ())
            self.users.append(
                OnPremUser(
                    dn=plan.dn,
                    object_guid=guid.bytes_le,
                    sam_account_name=sam,
                    user_principal_name=plan.value("userPrincipalName"),
                    display_name=plan.value("displayName"),
                    given_name=plan.value("givenName"),
                    surname=plan.value("sn"),
                    mail=mail,
                    proxy_addresses=proxies,
                    user_account_control=int(plan.value("userAccountControl") or 0x200),
                    exchange_schema=True,
                )
            )
            return guid

    def delete(self, dn: str, guid: uuid.UUID) -> None:
        """See :meth:`bot.ports.OnPremDirectory.delete`."""
        with self._lock:
            user = next((u for u in self.users if u.object_guid == guid.bytes_le), None)
            if user is None:
                raise NotFound("Active Directory", "demo", f"no object has objectGUID {guid}")
            if user.dn.casefold() != dn.casefold():
                raise ConcurrentModification(
                    "Active Directory", "demo", f"{guid} is now {user.dn}; nothing was deleted"
                )
            self.users.remove(user)


def _address_of(value: str) -> str:
    """The address of a ``smtp:`` value, or the value itself (UPN, mail)."""
    parsed = ProxyAddress.parse(value)
    return parsed.address if parsed.is_smtp else value


def _values(user: OnPremUser, attribute: str) -> tuple[str, ...]:
    if attribute == "mail":
        return (user.mail,) if user.mail else ()
    if attribute == "proxyAddresses":
        return user.proxy_addresses
    raise ValueError(f"the demo directory does not hold {attribute}")


@dataclass
class DemoEntraDirectory:
    """In-memory Entra ID implementing :class:`bot.ports.CloudDirectory`."""

    users: list[CloudUser] = field(default_factory=list)
    mailboxes: dict[str, bool] = field(default_factory=dict)
    role_assignments: dict[str, tuple[RoleAssignment, ...]] = field(default_factory=dict)
    other_objects: list[Holder] = field(default_factory=list)
    verified_domains: tuple[str, ...] = ("contoso.com", "contoso.onmicrosoft.com")
    block_soft_match: bool | Unknown = False
    block_hard_match: bool | Unknown = False
    deleted_users: list[CloudUser] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _holds(self, user: CloudUser, address: str) -> list[tuple[str, str]]:
        hits = [("userPrincipalName", user.user_principal_name), ("mail", user.mail or "")]
        hits += [("proxyAddresses", v) for v in user.proxy_addresses]
        return [(a, v) for a, v in hits if v and same_address(_address_of(v), address)]

    def find_users(self, address: str) -> Sequence[CloudUser]:
        """See :meth:`bot.ports.CloudDirectory.find_users`."""
        with self._lock:
            return [u for u in self.users if self._holds(u, address)]

    def get_user(self, user_id: str) -> CloudUser | None:
        """See :meth:`bot.ports.CloudDirectory.get_user`."""
        with self._lock:
            return next((u for u in self.users if u.id == user_id), None)

    def has_mailbox(self, user_id: str) -> bool | Unknown:
        """See :meth:`bot.ports.CloudDirectory.has_mailbox`."""
        return self.mailboxes.get(user_id, False)

    def roles(self, user_id: str) -> tuple[RoleAssignment, ...] | Unknown:
        """See :meth:`bot.ports.CloudDirectory.roles`."""
        return self.role_assignments.get(user_id, ())

    def find_holders(self, address: str) -> Sequence[Holder]:
        """See :meth:`bot.ports.CloudDirectory.find_holders`."""
        with self._lock:
            found = [h for h in self.other_objects if same_address(h.value, address)]
            for user in self.users:
                kind = ObjectKind.GUEST if user.user_type == "Guest" else ObjectKind.USER
                name = user.display_name or user.user_principal_name
                found += [Holder(kind, user.id, name, a, v) for a, v in self._holds(user, address)]
            return found

    def find_by_anchor(self, anchor: str, sid: str | None) -> Sequence[CloudUser]:
        """See :meth:`bot.ports.CloudDirectory.find_by_anchor`."""
        with self._lock:
            return [
                u
                for u in self.users
                if u.on_premises_immutable_id == anchor
                or (sid is not None and u.on_premises_security_identifier == sid)
            ]

    def find_deleted_by_anchor(self, anchor: str, sid: str | None) -> Sequence[CloudUser]:
        """See :meth:`bot.ports.CloudDirectory.find_deleted_by_anchor`."""
        with self._lock:
            return [
                u
                for u in self.deleted_users
                if u.on_premises_immutable_id == anchor
                or (sid is not None and u.on_premises_security_identifier == sid)
            ]

    def find_holders_of(self, addresses: Sequence[str]) -> Sequence[Holder]:
        """See :meth:`bot.ports.CloudDirectory.find_holders_of`."""
        return [h for address in addresses for h in self.find_holders(address)]

    def find_user_by_upn(self, upn: str) -> CloudUser | None:
        """See :meth:`bot.ports.CloudDirectory.find_user_by_upn`."""
        with self._lock:
            return next((u for u in self.users if same_address(u.user_principal_name, upn)), None)

    def tenant(self) -> Tenant:
        """See :meth:`bot.ports.CloudDirectory.tenant`."""
        return Tenant(
            verified_domains=self.verified_domains,
            block_soft_match=self.block_soft_match,
            soft_match_on_upn=True,
            block_hard_match=self.block_hard_match,
            initial_domain=next((d for d in self.verified_domains if is_service_domain(d)), None),
        )

    def update_user(self, user: CloudUser) -> None:
        """Replace a user (used by the demo sync and by tests)."""
        with self._lock:
            self.users = [user if u.id == user.id else u for u in self.users]


def build_demo_directories() -> tuple[DemoActiveDirectory, DemoEntraDirectory, Policy]:
    """A fresh copy of the demo directories and the demo policy (sync scope OU=Staff)."""
    ad_users, ad_others = _seed_onprem()
    cloud_users, mailboxes, roles = _seed_cloud()
    return (
        DemoActiveDirectory(users=ad_users, other_objects=ad_others),
        DemoEntraDirectory(
            users=cloud_users,
            mailboxes=mailboxes,
            role_assignments=roles,
            deleted_users=_seed_deleted(),
        ),
        Policy(sync_scope=DEMO_SYNC_SCOPE, create_ou=DEMO_CREATE_OU),
    )


class DemoSyncTrigger:
    """`serve --demo`'s stand-in for directory sync: binds the cloud user that holds the
    written address to the AD anchor (a successful soft match), so a trial shows the whole
    flow through to "matched"."""

    name = "demo"

    def __init__(self, cloud: DemoEntraDirectory) -> None:
        self._cloud = cloud

    def trigger(self, subject: SyncSubject) -> str:
        """Soft-match now."""
        for user in self._cloud.find_users(subject.address):
            self._cloud.update_user(
                replace(
                    user, on_premises_immutable_id=subject.anchor, on_premises_sync_enabled=True
                )
            )
        return "demo directories: soft match simulated at once"

    def close(self) -> None:
        """Nothing to release."""
