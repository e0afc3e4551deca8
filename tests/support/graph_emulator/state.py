"""The emulated tenant: directory objects, roles, mailboxes, tenant flags, and test knobs.

Objects are plain mutable dataclasses held under one lock, so tests (and, later, a sync
simulator running in another thread) can create users and change their on-prem properties
(``on_premises_immutable_id``, ``on_premises_sync_enabled``, ``on_premises_provisioning_errors``)
while the server answers requests.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: Role template ids of a few built-in roles (the real, documented ids).
ROLE_TEMPLATES: dict[str, str] = {
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "Exchange Administrator": "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "Helpdesk Administrator": "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
}


def role_template_id(name: str) -> str:
    """The template id of a built-in role, or a stable made-up one for other names."""
    return ROLE_TEMPLATES.get(name) or str(uuid.uuid5(uuid.NAMESPACE_URL, f"role:{name}"))


def new_id() -> str:
    """A fresh object id (a GUID, as Entra ID uses)."""
    return str(uuid.uuid4())


@dataclass
class ProvisioningErrorEntry:
    """One ``onPremisesProvisioningErrors`` entry (Graph's ``onPremisesProvisioningError``)."""

    category: str
    property_causing_error: str
    value: str
    occurred_date_time: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Graph's JSON shape."""
        return {
            "category": self.category,
            "propertyCausingError": self.property_causing_error,
            "value": self.value,
            "occurredDateTime": self.occurred_date_time,
        }


@dataclass
class EmulatedUser:
    """An Entra ID user, with the mailbox and roles Exchange Online and RBAC would add."""

    id: str
    user_principal_name: str
    display_name: str | None = None
    mail: str | None = None
    proxy_addresses: list[str] = field(default_factory=list)
    user_type: str = "Member"
    account_enabled: bool = True
    on_premises_immutable_id: str | None = None
    on_premises_sync_enabled: bool | None = None
    on_premises_security_identifier: str | None = None
    on_premises_provisioning_errors: list[ProvisioningErrorEntry] = field(default_factory=list)
    has_mailbox: bool = True
    #: Whether an Exchange Online licence provisions the mailbox (``provisionedPlans`` then
    #: lists the Exchange plan). False for a mailbox without a licence (a shared mailbox).
    exchange_licensed: bool = True
    #: Directory roles assigned to the user directly (active).
    roles: list[str] = field(default_factory=list)
    #: PIM-eligible directory roles.
    eligible_roles: list[str] = field(default_factory=list)
    given_name: str | None = None
    surname: str | None = None
    mail_nickname: str | None = None
    #: Set when the user is soft-deleted (in the directory's recycle bin).
    deleted_date_time: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Every property the emulator knows, in Graph's names."""
        return {
            "id": self.id,
            "userPrincipalName": self.user_principal_name,
            "displayName": self.display_name,
            "mail": self.mail,
            "proxyAddresses": list(self.proxy_addresses),
            "userType": self.user_type,
            "accountEnabled": self.account_enabled,
            "onPremisesImmutableId": self.on_premises_immutable_id,
            "onPremisesSyncEnabled": self.on_premises_sync_enabled,
            "onPremisesSecurityIdentifier": self.on_premises_security_identifier,
            "onPremisesProvisioningErrors": [
                e.to_json() for e in self.on_premises_provisioning_errors
            ],
            "givenName": self.given_name,
            "surname": self.surname,
            "mailNickname": self.mail_nickname,
            "deletedDateTime": self.deleted_date_time,
            "provisionedPlans": self.provisioned_plans(),
        }

    def provisioned_plans(self) -> list[dict[str, str]]:
        """``provisionedPlans``: the Exchange plan once a licence provisioned the mailbox."""
        if not (self.has_mailbox and self.exchange_licensed):
            return []
        return [
            {"capabilityStatus": "Enabled", "provisioningStatus": "Success", "service": "exchange"}
        ]


@dataclass
class EmulatedGroup:
    """A group; role-assignable groups may hold directory roles their members then hold."""

    id: str
    display_name: str
    mail: str | None = None
    proxy_addresses: list[str] = field(default_factory=list)
    is_assignable_to_role: bool = False
    members: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Graph's JSON shape."""
        return {
            "id": self.id,
            "displayName": self.display_name,
            "mail": self.mail,
            "proxyAddresses": list(self.proxy_addresses),
            "isAssignableToRole": self.is_assignable_to_role,
            "mailEnabled": self.mail is not None,
        }


@dataclass
class EmulatedContact:
    """An organizational contact (``orgContact``, Graph's ``/contacts``)."""

    id: str
    display_name: str
    mail: str | None = None
    proxy_addresses: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Graph's JSON shape."""
        return {
            "id": self.id,
            "displayName": self.display_name,
            "mail": self.mail,
            "proxyAddresses": list(self.proxy_addresses),
        }


@dataclass
class RecordedRequest:
    """One request the emulator answered (HTTP or inside a ``$batch``)."""

    method: str
    path: str
    query: str
    status: int
    in_batch: bool = False


@dataclass
class Knobs:
    """Behaviour tests switch on. Counters count down as requests consume them."""

    #: Seconds every HTTP request (token and Graph) waits before it is answered.
    latency: float = 0.0
    #: The next N Graph HTTP requests answer 429 with ``Retry-After: retry_after``.
    throttle_next: int = 0
    #: Seconds, or an HTTP-date string (``Retry-After`` allows both forms).
    retry_after: int | str = 1
    #: The next N requests inside ``$batch`` bodies answer 429 (the outer batch answers 200).
    throttle_next_in_batch: int = 0
    #: The next N Graph HTTP requests answer 503.
    unavailable_next: int = 0
    #: The next N Graph HTTP requests answer 401 even with a valid token (token revoked).
    reject_tokens_next: int = 0
    #: Endpoint keys that answer 403 (see ``GraphApp.endpoint_key``), e.g. ``mailboxSettings``.
    denied: set[str] = field(default_factory=set)
    #: Lifetime of issued tokens, in seconds.
    token_lifetime: int = 3599
    #: Graph-like throttling (opt-in): a token bucket per application of this many requests
    #: per second (each request inside a ``$batch`` counts, the batch itself does not), with
    #: ``throttle_burst`` requests of burst; an empty bucket answers 429 with ``Retry-After``.
    throttle_rate: float | None = None
    throttle_burst: int = 100


class GraphState:
    """The mutable tenant. Every public method takes the lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, EmulatedUser] = {}
        #: Soft-deleted users (``/directory/deletedItems``), restorable for 30 days.
        self.deleted_users: dict[str, EmulatedUser] = {}
        self.groups: dict[str, EmulatedGroup] = {}
        self.contacts: dict[str, EmulatedContact] = {}
        #: Domain name -> isVerified.
        self.domains: dict[str, bool] = {}
        #: ``onPremisesDirectorySynchronization.features`` flags.
        self.features: dict[str, bool] = {}
        self.knobs = Knobs()
        self.requests: list[RecordedRequest] = []
        self.token_requests = 0
        self.reset()

    def reset(self) -> None:
        """Back to an empty tenant with ``contoso.com`` verified and default flags."""
        with self.lock:
            self.users.clear()
            self.deleted_users.clear()
            self.groups.clear()
            self.contacts.clear()
            self.domains = {"contoso.com": True, "contoso.onmicrosoft.com": True}
            self.features = {
                "blockSoftMatchEnabled": False,
                "softMatchOnUpnEnabled": True,
                "blockCloudObjectTakeoverThroughHardMatchEnabled": False,
            }
            self.knobs = Knobs()
            self.requests.clear()
            self.token_requests = 0

    # -- seeding ------------------------------------------------------------------------

    def add_user(
        self,
        user_principal_name: str,
        *,
        mail: str | None = None,
        proxy_addresses: Iterable[str] = (),
        display_name: str | None = None,
        user_type: str = "Member",
        account_enabled: bool = True,
        has_mailbox: bool = True,
        on_premises_immutable_id: str | None = None,
        on_premises_sync_enabled: bool | None = None,
        on_premises_security_identifier: str | None = None,
        id: str | None = None,
        given_name: str | None = None,
        surname: str | None = None,
        mail_nickname: str | None = None,
    ) -> EmulatedUser:
        """Create a user and return it (mutate it freely under ``state.lock``)."""
        user = EmulatedUser(
            id=id or new_id(),
            user_principal_name=user_principal_name,
            display_name=display_name or user_principal_name.split("@")[0],
            mail=mail,
            proxy_addresses=list(proxy_addresses),
            user_type=user_type,
            account_enabled=account_enabled,
            has_mailbox=has_mailbox,
            on_premises_immutable_id=on_premises_immutable_id,
            on_premises_sync_enabled=on_premises_sync_enabled,
            on_premises_security_identifier=on_premises_security_identifier,
            given_name=given_name,
            surname=surname,
            mail_nickname=mail_nickname or user_principal_name.split("@")[0],
        )
        with self.lock:
            self.users[user.id] = user
        return user

    def delete_user(self, user_id: str, when: str = "2026-11-01T09:00:00Z") -> EmulatedUser:
        """Soft-delete a user: it leaves ``/users`` (and stops holding its addresses) and
        appears in ``/directory/deletedItems/microsoft.graph.user``."""
        with self.lock:
            user = self.users.pop(user_id)
            user.deleted_date_time = when
            self.deleted_users[user.id] = user
            return user

    def restore_user(self, user_id: str) -> EmulatedUser:
        """Restore a soft-deleted user with its properties (as sync does for an anchor)."""
        with self.lock:
            user = self.deleted_users.pop(user_id)
            user.deleted_date_time = None
            self.users[user.id] = user
            return user

    def add_group(
        self,
        display_name: str,
        *,
        mail: str | None = None,
        proxy_addresses: Iterable[str] = (),
        is_assignable_to_role: bool = False,
        members: Iterable[str] = (),
        roles: Iterable[str] = (),
    ) -> EmulatedGroup:
        """Create a group (member ids are user ids)."""
        group = EmulatedGroup(
            id=new_id(),
            display_name=display_name,
            mail=mail,
            proxy_addresses=list(proxy_addresses),
            is_assignable_to_role=is_assignable_to_role,
            members=list(members),
            roles=list(roles),
        )
        with self.lock:
            self.groups[group.id] = group
        return group

    def add_contact(
        self, display_name: str, *, mail: str | None = None, proxy_addresses: Iterable[str] = ()
    ) -> EmulatedContact:
        """Create an organizational contact."""
        contact = EmulatedContact(
            id=new_id(), display_name=display_name, mail=mail, proxy_addresses=list(proxy_addresses)
        )
        with self.lock:
            self.contacts[contact.id] = contact
        return contact

    def set_roles(
        self, user_id: str, active: Iterable[str] = (), eligible: Iterable[str] = ()
    ) -> None:
        """Replace a user's direct active roles and PIM-eligible roles."""
        with self.lock:
            user = self.users[user_id]
            user.roles = list(active)
            user.eligible_roles = list(eligible)

    def set_mailbox(self, user_id: str, has_mailbox: bool) -> None:
        """Give a user an Exchange Online mailbox, or take it away."""
        with self.lock:
            self.users[user_id].has_mailbox = has_mailbox

    def set_domain(self, name: str, verified: bool = True) -> None:
        """Add (or change) a tenant domain."""
        with self.lock:
            self.domains[name] = verified

    def set_feature(self, name: str, enabled: bool) -> None:
        """Set an ``onPremisesDirectorySynchronization`` feature flag."""
        with self.lock:
            self.features[name] = enabled

    # -- queries used by the server and the sync simulator ---------------------------------

    def groups_of(self, user_id: str) -> list[EmulatedGroup]:
        """Groups the user is a member of, directly or through nested groups."""
        with self.lock:
            found: dict[str, EmulatedGroup] = {}
            frontier = {user_id}
            while frontier:
                nxt: set[str] = set()
                for group in self.groups.values():
                    if group.id not in found and frontier.intersection(group.members):
                        found[group.id] = group
                        nxt.add(group.id)
                frontier = nxt
            return list(found.values())

    def transitive_members(self, group_id: str) -> list[str]:
        """Ids of the users and groups in a group, directly or through nested groups."""
        with self.lock:
            found: dict[str, None] = {}
            frontier = [group_id]
            while frontier:
                group = self.groups.get(frontier.pop(0))
                for member in group.members if group else ():
                    if member not in found:
                        found[member] = None
                        frontier.append(member)
            return list(found)

    def record(self, request: RecordedRequest) -> None:
        """Append to the request log."""
        with self.lock:
            self.requests.append(request)
