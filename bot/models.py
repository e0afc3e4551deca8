"""Frozen domain models: what the two directories tell us, in the project's own terms.

Adapters turn vendor data (ldap3 entries, Graph JSON) into these at the edge. The rules take
them and nothing else.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from enum import StrEnum


class ObjectKind(StrEnum):
    """What kind of directory object holds a value."""

    USER = "user"
    CONTACT = "contact"
    GROUP = "group"
    COMPUTER = "computer"
    PUBLIC_FOLDER = "publicFolder"
    GUEST = "guest"
    SERVICE_PRINCIPAL = "servicePrincipal"
    DEVICE = "device"
    OTHER = "other"


#: Domains whose addresses sync discards on-prem and Entra ID re-adds itself (KB 3190357).
_SERVICE_DOMAINS = (".onmicrosoft.com", ".microsoftonline.com")


def is_service_domain(address: str) -> bool:
    """Whether ``address`` is in ``*.onmicrosoft.com`` / ``*.microsoftonline.com``."""
    domain = "." + address.rsplit("@", 1)[-1].lower()
    return domain.endswith(_SERVICE_DOMAINS)


@dataclass(frozen=True, slots=True)
class ProxyAddress:
    """One ``proxyAddresses`` value: ``PREFIX:address``.

    The prefix's case alone marks the primary: ``SMTP:`` is the primary SMTP address, ``smtp:``
    a secondary one (an alias); other types (``X500:``, ``SIP:``, ...) are kept as they are.

    Args:
        prefix: the address type as stored (``SMTP``, ``smtp``, ``X500``, ...).
        address: what follows the first colon.
    """

    prefix: str
    address: str

    @classmethod
    def parse(cls, value: str) -> ProxyAddress:
        """Split a stored value; a value without a colon has an empty prefix."""
        prefix, sep, rest = value.partition(":")
        return cls(prefix, rest) if sep else cls("", value)

    @classmethod
    def smtp(cls, address: str, *, primary: bool = False) -> ProxyAddress:
        """An SMTP value: ``SMTP:address`` when ``primary``, else ``smtp:address``."""
        return cls("SMTP" if primary else "smtp", address)

    @property
    def is_smtp(self) -> bool:
        """Whether this is an SMTP address (either case of the prefix)."""
        return self.prefix.lower() == "smtp" and bool(self.address)

    @property
    def primary(self) -> bool:
        """Whether this is THE primary SMTP address (uppercase ``SMTP:``)."""
        return self.prefix == "SMTP" and bool(self.address)

    def holds(self, address: str) -> bool:
        """Whether this is an SMTP value for ``address`` (compared case-insensitively)."""
        return self.is_smtp and self.address.casefold() == address.casefold()

    def demoted(self) -> ProxyAddress:
        """The same value as a secondary address (``smtp:``) when it is SMTP."""
        return ProxyAddress("smtp", self.address) if self.is_smtp else self

    def __str__(self) -> str:
        return f"{self.prefix}:{self.address}" if self.prefix else self.address


def smtp_values(values: tuple[str, ...] | list[str]) -> tuple[ProxyAddress, ...]:
    """The SMTP values of a ``proxyAddresses`` list, parsed, in order."""
    return tuple(p for p in map(ProxyAddress.parse, values) if p.is_smtp)


@dataclass(frozen=True, slots=True)
class Unknown:
    """A fact that could not be read, with the reason (e.g. the missing permission)."""

    reason: str


@dataclass(frozen=True, slots=True)
class OnPremUser:
    """An AD object considered as the on-prem side of the match (normally a user).

    ``object_guid`` and ``consistency_guid`` are the raw 16 bytes as LDAP returns them
    (the little-endian ``uuid.UUID.bytes_le`` layout).
    """

    dn: str
    object_guid: bytes
    kind: ObjectKind = ObjectKind.USER
    sam_account_name: str | None = None
    user_principal_name: str | None = None
    display_name: str | None = None
    mail: str | None = None
    proxy_addresses: tuple[str, ...] = ()
    user_account_control: int = 0x200
    object_sid: str | None = None
    consistency_guid: bytes | None = None
    #: False when the server's schema has no Exchange attributes at all.
    exchange_schema: bool = False
    exchange_mailbox_guid: str | None = None
    exchange_recipient_type_details: int | None = None
    given_name: str | None = None
    surname: str | None = None
    #: ``isCriticalSystemObject`` TRUE: built-in accounts (Administrator, krbtgt, ...).
    critical_system_object: bool = False
    #: ``adminDescription``; sync skips objects whose value starts with ``User_``.
    admin_description: str | None = None
    #: ``adminCount`` (1 once SDProp protected the account as privileged).
    admin_count: int | None = None
    #: Protected groups (Domain Admins, ...) the account is in, directly or nested.
    privileged_groups: tuple[str, ...] = ()
    #: ``mailNickname`` when the schema has it (Exchange).
    mail_nickname: str | None = None

    @property
    def anchor(self) -> str:
        """The sourceAnchor Entra Connect uses: ConsistencyGuid if set, else objectGUID (Base64)."""
        raw = self.consistency_guid or self.object_guid
        return base64.b64encode(raw).decode("ascii")

    @property
    def enabled(self) -> bool:
        """Whether the account is enabled (ACCOUNTDISABLE bit 0x2 clear)."""
        return not self.user_account_control & 0x2


@dataclass(frozen=True, slots=True)
class CloudUser:
    """An Entra ID user as Graph describes it (only what the rules need)."""

    id: str
    user_principal_name: str
    display_name: str | None = None
    mail: str | None = None
    proxy_addresses: tuple[str, ...] = ()
    user_type: str = "Member"
    account_enabled: bool = True
    on_premises_immutable_id: str | None = None
    on_premises_sync_enabled: bool | None = None
    on_premises_security_identifier: str | None = None
    provisioning_errors: tuple[ProvisioningError, ...] = ()
    given_name: str | None = None
    surname: str | None = None
    mail_nickname: str | None = None
    #: When the user was soft-deleted (``deletedDateTime``); ``None`` for an active user.
    deleted: str | None = None


@dataclass(frozen=True, slots=True)
class ProvisioningError:
    """One entry of ``onPremisesProvisioningErrors``."""

    category: str
    property_causing_error: str
    value: str
    occurred: str | None = None


@dataclass(frozen=True, slots=True)
class Holder:
    """Another directory object that holds an address (a would-be duplicate).

    Args:
        kind: what the object is (user, contact, group, ...).
        id: the DN (AD) or object id (Entra ID).
        name: a display name for people.
        attribute: where the address was found (``mail``, ``proxyAddresses``, ...).
        value: the value as stored.
    """

    kind: ObjectKind
    id: str
    name: str
    attribute: str
    value: str


@dataclass(frozen=True, slots=True)
class RoleAssignment:
    """A directory role held by a cloud user, actively or as a PIM eligibility."""

    role: str
    via_group: str | None = None
    eligible: bool = False


@dataclass(frozen=True, slots=True)
class Tenant:
    """Tenant-wide facts.

    ``block_soft_match`` is ``Unknown`` when the flag could not be read (it needs a delegated
    Global Administrator permission) and no admin stated it in configuration.
    """

    verified_domains: tuple[str, ...] | Unknown
    block_soft_match: bool | Unknown
    soft_match_on_upn: bool | Unknown = field(default_factory=lambda: Unknown("not read"))
    #: ``blockCloudObjectTakeoverThroughHardMatchEnabled`` (or SMTPMATCH_BLOCK_HARD_MATCH).
    block_hard_match: bool | Unknown = field(default_factory=lambda: Unknown("not read"))
    #: The tenant's initial ``*.onmicrosoft.com`` domain (``isInitial``), when read.
    initial_domain: str | None = None
