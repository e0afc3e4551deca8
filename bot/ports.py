"""Ports: what the services need from the directories. Adapters implement these.

All methods are synchronous; the services run them concurrently on a thread pool. Faults are
raised as the project's errors (:mod:`bot.errors`); a fact that cannot be read for lack of a
permission is returned as :class:`bot.models.Unknown` where the signature allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.models import CloudUser, Holder, OnPremUser, RoleAssignment, Tenant, Unknown


@dataclass(frozen=True, slots=True)
class AttributeChange:
    """One attribute of one AD object: its value before and after.

    Single-valued attributes (``mail``) use a 1-tuple or an empty tuple for "not set", so that
    one shape serves both kinds; the JSON view turns them into a string or ``null``.
    """

    attribute: str
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChangePlan:
    """What smtpmatch would write to the AD object ``dn``."""

    dn: str
    changes: tuple[AttributeChange, ...]

    def inverse(self) -> ChangePlan:
        """The change that restores the before values (for a revert)."""
        return ChangePlan(
            dn=self.dn,
            changes=tuple(AttributeChange(c.attribute, c.after, c.before) for c in self.changes),
        )


class OnPremDirectory(Protocol):
    """On-prem Active Directory, as the rules and the write need it."""

    def find_users(self, address: str, onprem_id: str | None) -> Sequence[OnPremUser]:
        """Identify the AD user(s) for a match.

        Args:
            address: the mailbox address typed (already validated).
            onprem_id: sAMAccountName, UPN or DN given by the requester; when set, only that
                object is looked up (a user, contact or group, so the rules can refuse a
                contact). A DN is looked up only below the base DN and outside the
                configuration and schema partitions; anything else is not found.

        Returns:
            Every candidate; empty when none, several when ambiguous. Each carries what the
            rules need to judge it (``isCriticalSystemObject``, ``adminDescription``,
            ``adminCount``, protected-group membership, names).
        """
        ...

    def find_lookalikes(
        self,
        display_name: str | None,
        given_name: str | None,
        surname: str | None,
        account_name: str | None,
    ) -> Sequence[OnPremUser]:
        """AD users that plausibly are a person under another name: the same ``displayName``,
        the same ``givenName`` AND ``sn``, or ``sAMAccountName`` = ``account_name`` (the cloud
        UPN's prefix). ``None`` values are not searched; none at all finds nothing."""
        ...

    def find_holders(self, address: str) -> Sequence[Holder]:
        """Every AD object of any class holding ``address`` in ``mail``, ``proxyAddresses``
        (any prefix case), ``userPrincipalName`` or ``targetAddress``: one Holder per object and
        attribute."""
        ...

    def apply(self, plan: ChangePlan) -> ChangePlan:
        """Write ``plan`` in one modify that fails if any ``before`` value is no longer current.

        Returns:
            The change as applied (before = what was replaced, after = what is now stored).

        Raises:
            ConcurrentModification: the object changed since it was read; nothing was written.
        """
        ...


class CloudDirectory(Protocol):
    """Entra ID (and Exchange Online) through Microsoft Graph."""

    def find_users(self, address: str) -> Sequence[CloudUser]:
        """Users holding ``address`` as UPN, ``mail`` or any ``proxyAddresses`` value."""
        ...

    def get_user(self, user_id: str) -> CloudUser | None:
        """One user by object id, with the on-prem properties; ``None`` when it is gone."""
        ...

    def has_mailbox(self, user_id: str) -> bool | Unknown:
        """Whether the user has an Exchange Online mailbox."""
        ...

    def roles(self, user_id: str) -> tuple[RoleAssignment, ...] | Unknown:
        """Active directory roles (direct or through groups) and PIM-eligible ones."""
        ...

    def find_holders(self, address: str) -> Sequence[Holder] | Unknown:
        """Every cloud object (users including guests, groups, contacts) holding ``address``;
        ``Unknown`` (naming the permission) when it may not list them."""
        ...

    def find_by_anchor(self, anchor: str, sid: str | None) -> Sequence[CloudUser]:
        """Cloud users carrying this on-prem anchor (immutable id) or SID."""
        ...

    def find_deleted_by_anchor(self, anchor: str, sid: str | None) -> Sequence[CloudUser] | Unknown:
        """Soft-deleted users (``deleted`` set) carrying this anchor or SID; ``Unknown``
        (naming the permission) when the deleted items may not be read."""
        ...

    def find_holders_of(self, addresses: Sequence[str]) -> Sequence[Holder] | Unknown:
        """Every cloud object holding any of ``addresses`` (as :meth:`find_holders`, one
        Holder per object and address), in one round trip where the API allows it."""
        ...

    def find_user_by_upn(self, upn: str) -> CloudUser | None:
        """The cloud user whose UPN is ``upn``, if any."""
        ...

    def tenant(self) -> Tenant:
        """Verified domains and on-prem synchronization flags."""
        ...
