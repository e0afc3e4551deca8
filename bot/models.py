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
