"""A directory sync simulator for the Graph emulator: it reads the Samba AD and exports users
into the emulated tenant the way Entra ID's sync service matches and provisions them.

What it follows (docs/rules.md, and Microsoft's documents named in the comments):

- The source anchor is ``mS-DS-ConsistencyGuid`` when set, else ``objectGUID``; Entra Connect
  1.1.524+ writes objectGUID back into an empty ConsistencyGuid ("Microsoft Entra Connect:
  Design concepts", *Using ms-DS-ConsistencyGuid as sourceAnchor*). ``onPremisesImmutableId`` is
  the Base64 of the 16 raw bytes as LDAP returns them.
- Objects sync never exports ("Microsoft Entra Connect Sync: Understanding the default
  configuration"): ``isCriticalSystemObject``, ``adminDescription`` starting ``User_``, and
  ``sAMAccountName`` starting ``AAD_`` or ``MSOL_``.
- A soft-deleted cloud object carrying the anchor is RESTORED and updated from AD instead of
  anything else ("Microsoft Entra Connect Sync: Understanding and using the recycle bin").
- Hard-match takeover blocks: ``blockCloudObjectTakeoverThroughHardMatchEnabled``, and since
  June 2026 any active Entra role of the cloud user (message center MC1262584).
- The UPN: a suffix that is not a verified domain gives ``<mailNickname>@<initial domain>``
  ("Microsoft Entra UserPrincipalName population"). ``accountEnabled`` follows AD's
  ``userAccountControl``.
- Matching order for an exported object ("Microsoft Entra Connect: When you have an existing
  tenant", *Sync with existing users in Microsoft Entra ID*): a hard match on the source anchor;
  for an object sync has not exported before, a soft match on the primary SMTP address, then
  (``softMatchOnUpnEnabled``) on the UPN; otherwise a new cloud object.
- Soft-match blocks: the tenant's ``blockSoftMatchEnabled`` ("onPremisesDirectorySynchronization
  Feature"); a cloud user that already carries an immutable id (*InvalidSoftMatch*); a cloud user
  holding an active admin role (*Existing Admin Role Conflict*, "Troubleshoot errors during
  synchronization"). In each blocked case Entra ID provisions a NEW object instead.
- Duplicate attribute resiliency ("Identity synchronization and duplicate attribute
  resiliency"): a UserPrincipalName or SMTP ProxyAddress value that another user, group or
  contact already holds is quarantined; a required UPN gets the placeholder
  ``<OriginalPrefix>+<4DigitNumber>@<InitialTenantDomain>.onmicrosoft.com``, and the conflict is
  recorded in ``onPremisesProvisioningErrors`` (category ``PropertyConflict``).

:class:`SyncWebhook` is the receiving end of the bot's signed webhook trigger: it checks the
HMAC headers, records the call and runs the simulator for the DN in the body (at once, after a
delay, when released, or never, as the test chooses).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import random
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import ldap3
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.support.graph_emulator.state import (
    EmulatedUser,
    GraphState,
    ProvisioningErrorEntry,
    new_id,
)

#: The path of the webhook endpoint on the emulator (outside ``/v1.0``: it is not Graph).
WEBHOOK_PATH = "/_simulator/sync-webhook"
#: The headers the bot's webhook trigger signs with (bot/sync_triggers.py).
SIGNATURE_HEADER = "X-Smtpmatch-Signature"
TIMESTAMP_HEADER = "X-Smtpmatch-Timestamp"
#: How old a signed timestamp may be before the webhook is refused as a replay.
MAX_SIGNATURE_AGE_SECONDS = 300

_CONSISTENCY_GUID = "mS-DS-ConsistencyGuid"
_USER_ATTRIBUTES = (
    "objectGUID",
    "objectSid",
    _CONSISTENCY_GUID,
    "mail",
    "proxyAddresses",
    "userPrincipalName",
    "sAMAccountName",
    "displayName",
    "userAccountControl",
    "mailNickname",
)
# Sync exports people, not computers, and never the objects its default rules leave out.
_USER_FILTER = (
    "(&(objectCategory=person)(objectClass=user)(!(isCriticalSystemObject=TRUE))"
    "(!(adminDescription=User_*))(!(sAMAccountName=AAD_*))(!(sAMAccountName=MSOL_*)))"
)


class ExportAction(StrEnum):
    """What one export did in the tenant."""

    #: Hard match: the cloud user already carried the anchor and was updated from AD.
    UPDATED = "updated"
    #: Soft match: an existing cloud user was bound to the AD user.
    MATCHED = "matched"
    #: A new synced cloud user was provisioned (maybe with quarantined values).
    CREATED = "created"
    #: Nothing was written (e.g. cloud object takeover through hard match is blocked).
    BLOCKED = "blocked"
    #: A soft-deleted cloud object carrying the anchor was restored and updated from AD.
    RESTORED = "restored"


@dataclass(frozen=True)
class LdapParams:
    """Where the simulator reads AD: an LDAPS URL, a bind, the CA to trust and the domain."""

    url: str
    bind_dn: str
    password: str
    ca_file: Path | str | None
    base_dn: str

    @classmethod
    def of_samba(cls, dc: Any) -> LdapParams:
        """The parameters of a :class:`tests.support.samba.SambaDC`."""
        return cls(dc.ldaps_url, dc.admin_dn, dc.admin_password, dc.ca_file, dc.base_dn)


@dataclass(frozen=True)
class AdObject:
    """The AD user as sync reads it."""

    dn: str
    anchor: str
    object_guid: bytes
    consistency_guid: bytes | None
    sid: str | None
    upn: str | None
    sam: str | None
    display_name: str | None
    mail: str | None
    proxy_addresses: tuple[str, ...]
    enabled: bool = True
    mail_nickname: str | None = None

    @property
    def primary_smtp(self) -> str | None:
        """The ``SMTP:`` value of proxyAddresses, else ``mail``; onmicrosoft.com is ignored
        (KB 3190357: such addresses are discarded)."""
        for value in self.proxy_addresses:
            if value.startswith("SMTP:") and not _is_onmicrosoft(value[5:]):
                return value[5:]
        if self.mail and not _is_onmicrosoft(self.mail):
            return self.mail
        return None

    def cloud_proxy_addresses(self) -> list[str]:
        """The proxyAddresses Entra ID gives the object: AD's values with exactly one ``SMTP:``
        primary, the one :attr:`primary_smtp` chose (``SMTP:<mail>`` is added when AD's
        proxyAddresses have none: Exchange Online builds the primary from ``mail``)."""
        primary = self.primary_smtp
        values: list[str] = []
        for value in self.proxy_addresses:
            address = _address_of(value)
            if address is not None and _same(address, primary):
                continue  # re-added below as the one primary
            if value.startswith("SMTP:"):
                value = f"smtp:{value[5:]}"  # an ignored (onmicrosoft.com) primary
            values.append(value)
        if primary:
            values.insert(0, f"SMTP:{primary}")
        return values


@dataclass(frozen=True)
class SimulatedExport:
    """What the simulated sync did for one AD user (for assertions).

    Attributes:
        dn: the AD user.
        anchor: its source anchor (Base64).
        action: updated (hard match), matched (soft match), created, or blocked.
        cloud_user_id: the cloud user written (None when blocked).
        matched_on: ``sourceAnchor``, ``proxyAddresses`` or ``userPrincipalName`` for a match.
        reason: a plain explanation, naming the block when a soft match was refused.
        errors: the provisioning errors the export recorded (quarantined values).
    """

    dn: str
    anchor: str
    action: ExportAction
    cloud_user_id: str | None
    reason: str
    matched_on: str | None = None
    errors: tuple[ProvisioningErrorEntry, ...] = ()


def _is_onmicrosoft(address: str) -> bool:
    return address.casefold().endswith(".onmicrosoft.com")


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.casefold() == b.casefold()


def _address_of(proxy: str) -> str | None:
    """The address of an ``smtp:``/``SMTP:`` proxy value; None for other address types."""
    prefix, _, rest = proxy.partition(":")
    return rest if prefix.casefold() == "smtp" and rest else None


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sid_to_string(raw: bytes) -> str:
    """A binary ``objectSid`` in ``S-1-5-21-…`` form (MS-DTYP 2.4.2).

    Written here again rather than imported from the bot, so that the emulator does not share
    a bug with the code under test.
    """
    count = raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = [int.from_bytes(raw[8 + 4 * i : 12 + 4 * i], "little") for i in range(count)]
    return "-".join(["S", str(raw[0]), str(authority), *map(str, subs)])


def _first(raw: dict[str, Any], name: str) -> Any:
    for key, values in raw.items():
        if key.casefold() == name.casefold():
            return values[0] if values else None
    return None


def _all(raw: dict[str, Any], name: str) -> list[Any]:
    for key, values in raw.items():
        if key.casefold() == name.casefold():
            return list(values)
    return []


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class SyncSimulator:
    """Exports AD users from the Samba DC into the emulated tenant, as Entra ID sync would.

    Args:
        state: the emulator's tenant.
        ldap: where to read AD.
        write_consistency_guid: write objectGUID into an empty ``mS-DS-ConsistencyGuid``, as
            Entra Connect 1.1.524+ does when ConsistencyGuid is the source anchor.
    """

    def __init__(
        self, state: GraphState, ldap: LdapParams, *, write_consistency_guid: bool = True
    ) -> None:
        self.state = state
        self.ldap = ldap
        self.write_consistency_guid = write_consistency_guid
        self._random = random.Random()
        #: Every export made, oldest first.
        self.exports: list[SimulatedExport] = []
        self._lock = threading.Lock()

    # -- AD side --------------------------------------------------------------------------

    def _connect(self) -> ldap3.Connection:
        tls = None
        if self.ldap.url.lower().startswith("ldaps://") or self.ldap.ca_file:
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED,
                ca_certs_file=str(self.ldap.ca_file) if self.ldap.ca_file else None,
            )
        server = ldap3.Server(self.ldap.url, tls=tls, connect_timeout=5, get_info=ldap3.NONE)
        conn = ldap3.Connection(
            server, self.ldap.bind_dn, self.ldap.password, receive_timeout=10, raise_exceptions=True
        )
        if self.ldap.url.lower().startswith("ldap://") and tls is not None:
            conn.open()
            conn.start_tls()
        conn.bind()
        return conn

    def read_users(self, dn: str | None = None, scope: str | None = None) -> list[AdObject]:
        """The AD users one DN names, or every user under ``scope`` (default: the domain)."""
        conn = self._connect()
        try:
            if dn is not None:
                base, search_scope = dn, ldap3.BASE
            else:
                base, search_scope = scope or self.ldap.base_dn, ldap3.SUBTREE
            try:
                conn.search(base, _USER_FILTER, search_scope, attributes=list(_USER_ATTRIBUTES))
            except ldap3.core.exceptions.LDAPNoSuchObjectResult:
                return []
            found = [
                self._to_object(e.get("dn"), e.get("raw_attributes")) for e in conn.response or []
            ]
            objects = [o for o in found if o is not None]
            if self.write_consistency_guid:
                for obj in objects:
                    if obj.consistency_guid is None:
                        # Entra Connect stamps the anchor it used into ConsistencyGuid, so the
                        # anchor survives a move to another forest (design concepts doc).
                        conn.modify(
                            obj.dn,
                            {_CONSISTENCY_GUID: [(ldap3.MODIFY_REPLACE, [obj.object_guid])]},
                        )
            return objects
        finally:
            conn.unbind()

    @staticmethod
    def _to_object(dn: str | None, raw: dict[str, Any] | None) -> AdObject | None:
        if not dn or raw is None:
            return None
        guid = _first(raw, "objectGUID")
        if not guid:
            return None
        consistency = _first(raw, _CONSISTENCY_GUID) or None
        sid = _first(raw, "objectSid")
        uac = _text(_first(raw, "userAccountControl"))
        return AdObject(
            dn=dn,
            anchor=base64.b64encode(consistency or guid).decode("ascii"),
            object_guid=bytes(guid),
            consistency_guid=bytes(consistency) if consistency else None,
            sid=sid_to_string(bytes(sid)) if sid else None,
            upn=_text(_first(raw, "userPrincipalName")),
            sam=_text(_first(raw, "sAMAccountName")),
            display_name=_text(_first(raw, "displayName")),
            mail=_text(_first(raw, "mail")),
            proxy_addresses=tuple(t for v in _all(raw, "proxyAddresses") if (t := _text(v))),
            enabled=not (int(uac) & 0x2) if uac else True,
            mail_nickname=_text(_first(raw, "mailNickname")),
        )

    # -- the export -----------------------------------------------------------------------

    def run(self, dn: str | None = None, scope: str | None = None) -> list[SimulatedExport]:
        """Export one AD user (by DN) or every user under ``scope`` into the tenant.

        Returns:
            What happened to each AD user, in LDAP order.
        """
        objects = self.read_users(dn, scope)
        done: list[SimulatedExport] = []
        with self._lock:  # one sync cycle at a time, as the sync engine runs
            for obj in objects:
                with self.state.lock:
                    export = self._export(obj)
                done.append(export)
                self.exports.append(export)
        return done

    def _export(self, obj: AdObject) -> SimulatedExport:
        state = self.state
        # (a) Hard match: an object that carries the anchor is this AD object's cloud twin.
        for user in state.users.values():
            if user.on_premises_immutable_id == obj.anchor:  # Base64: case matters
                return self._hard_match(obj, user)
        # (a') A soft-deleted object with the anchor is restored rather than anything else:
        # typically the quarantined duplicate an earlier failed attempt left behind.
        for user in list(state.deleted_users.values()):
            if user.on_premises_immutable_id == obj.anchor:
                restored = state.restore_user(user.id)
                errors = self._take_over_values(obj, restored)
                return SimulatedExport(
                    obj.dn,
                    obj.anchor,
                    ExportAction.RESTORED,
                    restored.id,
                    f"the soft-deleted {restored.user_principal_name} carries the anchor and was "
                    "restored instead of a match",
                    matched_on="sourceAnchor",
                    errors=tuple(errors),
                )

        blocked: list[str] = []
        # (b) Soft match on the primary SMTP address: only the primary value counts on the
        # AD side; on the cloud side a user holding it as its primary proxy address.
        address = obj.primary_smtp
        tried_smtp = False
        if address:
            candidates = [
                u
                for u in state.users.values()
                if any(p.startswith("SMTP:") and _same(p[5:], address) for p in u.proxy_addresses)
            ]
            if candidates:
                tried_smtp = True
                others = [h for h in self._holders(address) if all(h is not c for c in candidates)]
                if len(candidates) > 1 or others:
                    # The emulator lets a test put one address on two cloud objects, which
                    # Entra ID itself would refuse; a soft match needs one unambiguous object.
                    names = ", ".join(self._describe(h) for h in [*candidates, *others])
                    blocked.append(f"the address {address} is not unique in the tenant ({names})")
                else:
                    result = self._soft_match(obj, candidates[0], "proxyAddresses", blocked)
                    if result is not None:
                        return result
        # (c) Soft match on the UPN, where the tenant enabled it. Tried only when the SMTP
        # address found no object: a refused SMTP match is not retried on another attribute.
        if not tried_smtp and obj.upn and state.features.get("softMatchOnUpnEnabled"):
            for user in state.users.values():
                if _same(user.user_principal_name, obj.upn):
                    result = self._soft_match(obj, user, "userPrincipalName", blocked)
                    if result is not None:
                        return result
                    break
        # (d) A new synced object, with conflicting values quarantined.
        return self._create(obj, blocked)

    def _soft_match(
        self, obj: AdObject, user: EmulatedUser, attribute: str, blocked: list[str]
    ) -> SimulatedExport | None:
        """Bind ``user`` to the AD object, or add why not to ``blocked`` and return None."""
        features = self.state.features
        if features.get("blockSoftMatchEnabled"):
            blocked.append(
                f"soft match is blocked in the tenant (blockSoftMatchEnabled) for "
                f"{user.user_principal_name}"
            )
            return None
        if user.on_premises_immutable_id:
            # InvalidSoftMatch: the cloud user is already bound to another on-prem object.
            blocked.append(
                f"InvalidSoftMatch: {user.user_principal_name} already has the immutable id "
                f"{user.on_premises_immutable_id}"
            )
            return None
        roles = self.active_roles(user)
        if roles:
            # "Existing Admin Role Conflict": Entra ID does not soft-match a user that holds an
            # administrative role (tshoot-connect-sync-errors).
            blocked.append(
                f"Existing Admin Role Conflict: {user.user_principal_name} holds {', '.join(roles)}"
            )
            return None
        user.on_premises_immutable_id = obj.anchor
        user.on_premises_sync_enabled = True
        user.on_premises_security_identifier = obj.sid
        errors = self._take_over_values(obj, user)
        return SimulatedExport(
            obj.dn,
            obj.anchor,
            ExportAction.MATCHED,
            user.id,
            f"soft match on {attribute}: {user.user_principal_name} is bound to the AD user",
            matched_on=attribute,
            errors=tuple(errors),
        )

    def _hard_match(self, obj: AdObject, user: EmulatedUser) -> SimulatedExport:
        takeover = not user.on_premises_sync_enabled
        if takeover and self.state.features.get("blockCloudObjectTakeoverThroughHardMatchEnabled"):
            return SimulatedExport(
                obj.dn,
                obj.anchor,
                ExportAction.BLOCKED,
                None,
                f"cloud object takeover through hard match is blocked "
                f"(blockCloudObjectTakeoverThroughHardMatchEnabled) for {user.user_principal_name}",
                matched_on="sourceAnchor",
            )
        roles = self.active_roles(user) if takeover else []
        if roles:
            # Since June 2026 Entra ID refuses the hard match of a cloud user holding Entra
            # roles (MC1262584); nothing is written.
            return SimulatedExport(
                obj.dn,
                obj.anchor,
                ExportAction.BLOCKED,
                None,
                f"hard match of {user.user_principal_name} is blocked: it holds "
                f"{', '.join(roles)} (MC1262584)",
                matched_on="sourceAnchor",
            )
        user.on_premises_sync_enabled = True
        user.on_premises_security_identifier = obj.sid
        errors = self._take_over_values(obj, user)
        return SimulatedExport(
            obj.dn,
            obj.anchor,
            ExportAction.UPDATED,
            user.id,
            f"hard match on the source anchor: {user.user_principal_name} updated from AD",
            matched_on="sourceAnchor",
            errors=tuple(errors),
        )

    def _take_over_values(self, obj: AdObject, user: EmulatedUser) -> list[ProvisioningErrorEntry]:
        """AD is the source of authority now: its UPN, mail and proxyAddresses replace the
        cloud's (Exchange Online keeps the user's onmicrosoft.com addresses), except values
        another object holds, which are quarantined."""
        errors: list[ProvisioningErrorEntry] = []
        upn = self._cloud_upn(obj, user)
        if upn and not _same(upn, user.user_principal_name):
            if self._upn_taken(upn, user):
                errors.append(self._error("UserPrincipalName", upn))
            else:
                user.user_principal_name = upn
        kept = [p for p in user.proxy_addresses if _is_onmicrosoft(p.split(":", 1)[-1])]
        proxies, quarantined = self._split_quarantined(obj.cloud_proxy_addresses(), user)
        errors += [self._error("ProxyAddresses", p) for p in quarantined]
        user.proxy_addresses = proxies + [p for p in kept if p not in proxies]
        primary = next((p[5:] for p in proxies if p.startswith("SMTP:")), None)
        user.mail = primary
        if obj.display_name:
            user.display_name = obj.display_name
        user.account_enabled = obj.enabled
        # A later export replaces the errors of the earlier one: resolved conflicts vanish.
        user.on_premises_provisioning_errors = errors
        return errors

    def _create(self, obj: AdObject, blocked: Sequence[str]) -> SimulatedExport:
        errors: list[ProvisioningErrorEntry] = []
        wanted_upn = self._cloud_upn(obj, None) or f"{obj.sam}@{self._initial_domain()}"
        upn = wanted_upn
        if self._upn_taken(wanted_upn, None):
            upn = self._placeholder_upn(wanted_upn)
            errors.append(self._error("UserPrincipalName", wanted_upn))
        proxies, quarantined = self._split_quarantined(obj.cloud_proxy_addresses(), None)
        errors += [self._error("ProxyAddresses", p) for p in quarantined]
        user = EmulatedUser(
            id=new_id(),
            user_principal_name=upn,
            display_name=obj.display_name or obj.sam or upn.split("@")[0],
            mail=next((p[5:] for p in proxies if p.startswith("SMTP:")), None),
            proxy_addresses=proxies,
            on_premises_immutable_id=obj.anchor,
            on_premises_sync_enabled=True,
            on_premises_security_identifier=obj.sid,
            on_premises_provisioning_errors=errors,
            # A new synced user has no licence, so no Exchange Online mailbox yet.
            has_mailbox=False,
            account_enabled=obj.enabled,
        )
        self.state.users[user.id] = user
        why = "; ".join(blocked) if blocked else "no cloud object matched"
        return SimulatedExport(
            obj.dn,
            obj.anchor,
            ExportAction.CREATED,
            user.id,
            f"new cloud user {upn} provisioned: {why}",
            errors=tuple(errors),
        )

    # -- the tenant side ------------------------------------------------------------------

    def active_roles(self, user: EmulatedUser) -> list[str]:
        """Active directory roles, direct or through role-assignable groups (PIM-eligible
        roles are not active and do not block)."""
        names = list(user.roles)
        for group in self.state.groups_of(user.id):
            if group.is_assignable_to_role:
                names += [r for r in group.roles if r not in names]
        return names

    def _holders(self, address: str, exclude: object = None) -> list[object]:
        """Every user, group and contact holding ``address`` (UPN, mail or an SMTP proxy)."""
        found: list[object] = []
        objects: Iterable[Any] = [
            *self.state.users.values(),
            *self.state.groups.values(),
            *self.state.contacts.values(),
        ]
        for item in objects:
            if item is exclude:
                continue
            values = [item.mail, *(_address_of(p) for p in item.proxy_addresses)]
            if isinstance(item, EmulatedUser):
                values.append(item.user_principal_name)
            if any(_same(v, address) for v in values):
                found.append(item)
        return found

    def _split_quarantined(
        self, proxies: Sequence[str], owner: EmulatedUser | None
    ) -> tuple[list[str], list[str]]:
        kept: list[str] = []
        quarantined: list[str] = []
        for proxy in proxies:
            address = _address_of(proxy)
            # The resiliency process handles SMTP ProxyAddress values only (resiliency doc).
            if address is not None and self._holders(address, exclude=owner):
                quarantined.append(proxy)
            else:
                kept.append(proxy)
        return kept, quarantined

    def _cloud_upn(self, obj: AdObject, user: EmulatedUser | None) -> str | None:
        """The UPN Entra ID gives the object: AD's, or ``<mailNickname>@<initial domain>`` when
        AD's suffix is not a verified domain of the tenant (the mailNickname is AD's, else the
        cloud user's, else the UPN prefix)."""
        if not obj.upn:
            return None
        suffix = obj.upn.rsplit("@", 1)[-1].casefold()
        verified = {d.casefold() for d, ok in self.state.domains.items() if ok}
        if suffix in verified:
            return obj.upn
        nickname = obj.mail_nickname or (user.mail_nickname if user else None)
        return f"{nickname or obj.upn.split('@', 1)[0]}@{self._initial_domain()}"

    def _upn_taken(self, upn: str, owner: EmulatedUser | None) -> bool:
        return bool(self._holders(upn, exclude=owner))

    def _initial_domain(self) -> str:
        initial = sorted(d for d in self.state.domains if _is_onmicrosoft(d))
        return initial[0] if initial else "contoso.onmicrosoft.com"

    def _placeholder_upn(self, upn: str) -> str:
        """``<OriginalPrefix>+<4DigitNumber>@<InitialTenantDomain>.onmicrosoft.com``."""
        prefix = upn.split("@", 1)[0]
        domain = self._initial_domain()
        while True:
            candidate = f"{prefix}+{self._random.randint(0, 9999):04d}@{domain}"
            if not self._upn_taken(candidate, None):
                return candidate

    @staticmethod
    def _error(property_name: str, value: str) -> ProvisioningErrorEntry:
        return ProvisioningErrorEntry(
            category="PropertyConflict",
            property_causing_error=property_name,
            value=value,
            occurred_date_time=_now_iso(),
        )

    @staticmethod
    def _describe(item: object) -> str:
        kind = type(item).__name__.removeprefix("Emulated").lower()
        name = getattr(item, "user_principal_name", None) or getattr(item, "display_name", "")
        return f"{kind} {name}"


# -- the webhook ------------------------------------------------------------------------------


@dataclass
class WebhookCall:
    """One request the webhook endpoint received.

    Attributes:
        status: what it answered (202 accepted, 401 bad signature, 400 bad body, 500 fault).
        body: the parsed JSON body (None when it was not JSON).
        ran: whether the simulator has run for it.
        exports: what the simulated sync did (filled once it ran).
        error: the fault, when the simulator failed.
    """

    status: int
    body: dict[str, Any] | None
    headers: dict[str, str]
    received_at: float = field(default_factory=time.time)
    ran: bool = False
    exports: list[SimulatedExport] = field(default_factory=list)
    error: str | None = None


def _signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">``, the bot's signing scheme."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class SyncWebhook:
    """The runbook end of the bot's webhook trigger, backed by the simulator.

    Args:
        simulator: what runs the sync.
        secret: when set, requests must carry a valid, fresh HMAC signature (else 401).
        delay: seconds between accepting a call and the simulated sync cycle (in a thread).
        enabled: False accepts and records calls but never syncs (to test a timeout).
        hold: True queues accepted calls until :meth:`release` (to change the tenant between
            the approval and the sync).
    """

    def __init__(
        self,
        simulator: SyncSimulator,
        *,
        secret: str | None = None,
        delay: float = 0.0,
        enabled: bool = True,
        hold: bool = False,
    ) -> None:
        self.simulator = simulator
        self.secret = secret
        self.delay = delay
        self.enabled = enabled
        self.hold = hold
        self.calls: list[WebhookCall] = []
        self._held: list[WebhookCall] = []
        self._timers: list[threading.Timer] = []
        self._cond = threading.Condition()
        self._closed = False

    # -- HTTP -----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """``POST /_simulator/sync-webhook``: verify, record, run (or queue); answer 202."""
        if request.method != "POST":
            return JSONResponse({"error": "method not allowed"}, status_code=405)
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not self.verify(headers, raw):
            self._record(WebhookCall(401, None, headers))
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("dn"), str) or not body["dn"]:
            self._record(WebhookCall(400, None, headers))
            return JSONResponse({"error": "a JSON body with a dn is required"}, status_code=400)
        call = WebhookCall(202, body, headers)
        self._record(call)
        if not self.enabled:
            return JSONResponse({"status": "accepted", "sync": "disabled"}, status_code=202)
        if self.hold:
            with self._cond:
                self._held.append(call)
            return JSONResponse({"status": "accepted", "sync": "held"}, status_code=202)
        if self.delay > 0:
            timer = threading.Timer(self.delay, self._run, args=(call,))
            timer.daemon = True
            with self._cond:
                self._timers.append(timer)
            timer.start()
            return JSONResponse({"status": "accepted", "sync": "scheduled"}, status_code=202)
        await asyncio.to_thread(self._run, call)
        if call.error is not None:
            call.status = 500
            return JSONResponse({"error": call.error}, status_code=500)
        return JSONResponse({"status": "accepted", "sync": "done"}, status_code=202)

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        """Whether the request is signed with the secret (always True without a secret)."""
        if not self.secret:
            return True
        timestamp = headers.get(TIMESTAMP_HEADER.lower(), "")
        signature = headers.get(SIGNATURE_HEADER.lower(), "")
        try:
            age = abs(time.time() - int(timestamp))
        except ValueError:
            return False
        if age > MAX_SIGNATURE_AGE_SECONDS:
            return False
        return hmac.compare_digest(signature, _signature(self.secret, timestamp, body))

    # -- running ----------------------------------------------------------------------------

    def _record(self, call: WebhookCall) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _run(self, call: WebhookCall) -> None:
        if self._closed:
            return
        assert call.body is not None
        try:
            call.exports = self.simulator.run(dn=str(call.body["dn"]))
        except Exception as exc:  # recorded for the test, answered as 500
            call.error = f"{type(exc).__name__}: {exc}"
        with self._cond:
            call.ran = True
            self._cond.notify_all()

    def release(self) -> list[SimulatedExport]:
        """Run every held call now (in this thread); returns what the syncs did."""
        with self._cond:
            held, self._held = self._held, []
        exports: list[SimulatedExport] = []
        for call in held:
            self._run(call)
            exports += call.exports
        return exports

    @property
    def held(self) -> int:
        """How many accepted calls wait for :meth:`release`."""
        with self._cond:
            return len(self._held)

    def wait_for_calls(self, count: int = 1, timeout: float = 10.0) -> list[WebhookCall]:
        """Wait until ``count`` calls arrived (any status); returns every call so far.

        Raises:
            TimeoutError: fewer calls arrived within ``timeout`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.calls) >= count, timeout):
                raise TimeoutError(f"{len(self.calls)}/{count} webhook calls after {timeout}s")
            return list(self.calls)

    def wait_for_runs(self, count: int = 1, timeout: float = 10.0) -> list[WebhookCall]:
        """Wait until the simulator ran for ``count`` calls; returns those calls.

        Raises:
            TimeoutError: fewer syncs ran within ``timeout`` seconds.
        """
        with self._cond:
            ok = self._cond.wait_for(lambda: sum(c.ran for c in self.calls) >= count, timeout)
            ran = [c for c in self.calls if c.ran]
        if not ok:
            raise TimeoutError(f"{len(ran)}/{count} simulated syncs after {timeout}s")
        return ran

    def close(self) -> None:
        """Cancel scheduled runs and drop held calls (the emulator's reset)."""
        self._closed = True
        with self._cond:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self._held.clear()


__all__ = [
    "WEBHOOK_PATH",
    "AdObject",
    "ExportAction",
    "LdapParams",
    "SimulatedExport",
    "SyncSimulator",
    "SyncWebhook",
    "WebhookCall",
    "sid_to_string",
]
