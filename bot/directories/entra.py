"""``EntraDirectory``: the :class:`bot.ports.CloudDirectory` port on Microsoft Graph.

Graph JSON becomes :mod:`bot.models` here and nowhere else. Each port call costs one HTTP
round trip where Graph allows it: several lookups of one call go into one ``$batch``, and
alternative filters are joined with ``or`` in one query.

Every value placed in a ``$filter`` is an OData string literal with its quotes doubled
(:func:`odata_string`) and the whole option is percent-encoded, so no input can change what a
query means; results are also checked again locally against the address asked for.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.directories.graph import (
    DIRECTORY,
    MAX_BATCH_REQUESTS,
    GraphClient,
    GraphNotFound,
    GraphRequest,
    GraphRequestFailed,
    GraphResponse,
    JsonObject,
    MsalTokenProvider,
    RetryPolicy,
    odata_string,
    quote_segment,
    trust_context,
)
from bot.errors import PermissionMissing
from bot.models import (
    CloudUser,
    Holder,
    ObjectKind,
    ProvisioningError,
    ProxyAddress,
    RoleAssignment,
    Tenant,
    Unknown,
    smtp_values,
)
from bot.settings import Settings

USER_SELECT = ",".join(
    (
        "id",
        "userPrincipalName",
        "displayName",
        "mail",
        "proxyAddresses",
        "userType",
        "accountEnabled",
        "onPremisesImmutableId",
        "onPremisesSyncEnabled",
        "onPremisesSecurityIdentifier",
        "onPremisesProvisioningErrors",
        "givenName",
        "surname",
        "mailNickname",
    )
)
#: Soft-deleted users: the same properties plus when they were deleted.
DELETED_USER_SELECT = f"{USER_SELECT},deletedDateTime"
#: Where Graph lists soft-deleted users (the directory's recycle bin).
DELETED_USERS_PATH = "/directory/deletedItems/microsoft.graph.user"
HOLDER_USER_SELECT = "id,userPrincipalName,displayName,mail,proxyAddresses,userType"
DOMAIN_SELECT = "id,isVerified,isInitial"
ROLE_SELECT = "id,displayName,roleTemplateId"
MEMBER_GROUP_SELECT = "id,displayName,isAssignableToRole"
#: The ``onPremisesDirectorySynchronizationFeature`` flags the rules read.
SYNC_FEATURES = (
    "blockSoftMatchEnabled",
    "softMatchOnUpnEnabled",
    "blockCloudObjectTakeoverThroughHardMatchEnabled",
)
HOLDER_SELECT = "id,displayName,mail,proxyAddresses"
PAGE_SIZE = "999"

#: Values per OData ``in`` (Graph's limit): a wave's watch asks for this many users at once.
WATCH_CHUNK = 15
#: The service plans provisioned to a user (``provisionedPlans``): the Exchange plan says a
#: mailbox was provisioned, without a per-user Exchange call.
PLANS_SELECT = "provisionedPlans"

PERM_PROVISION = "Synchronization.ReadWrite.All"
PERM_USERS = "User.Read.All"
PERM_MAILBOX = "MailboxSettings.Read"
PERM_ROLES = "RoleManagement.Read.Directory"
PERM_GROUPS = "Group.Read.All (or Directory.Read.All)"
PERM_CONTACTS = "OrgContact.Read.All (or Directory.Read.All)"
PERM_DOMAINS = "Domain.Read.All"
PERM_SYNC = "OnPremDirectorySynchronization.Read.All"

#: Error codes Graph gives when the tenant has no Entra ID P2 (no PIM): no eligibility exists.
_NO_PIM_CODES = frozenset({"AadPremiumLicenseRequired", "MissingLicense"})


def _role_name(item: JsonObject) -> str:
    definition = item.get("roleDefinition") or {}
    return str(definition.get("displayName") or item.get("roleDefinitionId") or "?")


def exchange_provisioned(data: JsonObject) -> bool:
    """Whether a user's ``provisionedPlans`` hold the Exchange service, enabled and provisioned
    (``capabilityStatus`` Enabled, ``provisioningStatus`` Success)."""
    for plan in data.get("provisionedPlans") or ():
        if (
            isinstance(plan, dict)
            and str(plan.get("service") or "").casefold() == "exchange"
            and plan.get("capabilityStatus") == "Enabled"
            and plan.get("provisioningStatus") == "Success"
        ):
            return True
    return False


def _smtp_values(values: Any) -> list[ProxyAddress]:
    return list(smtp_values([v for v in values or () if isinstance(v, str)]))


def _same(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.casefold() == b.casefold()


def _address_filter(address: str, *, upn: bool) -> str:
    """``mail``, ``proxyAddresses`` (and ``userPrincipalName``) equal to ``address``, or-ed.

    Graph compares these strings case-insensitively; the ``SMTP:`` and ``smtp:`` forms are
    both listed anyway, so primary and secondary addresses are found even if a prefix were
    compared by case.
    """
    literal = odata_string(address)
    clauses = [
        f"mail eq {literal}",
        f"proxyAddresses/any(p:p eq {odata_string('SMTP:' + address)})",
        f"proxyAddresses/any(p:p eq {odata_string('smtp:' + address)})",
    ]
    if upn:
        clauses.insert(0, f"userPrincipalName eq {literal}")
    return " or ".join(clauses)


def _holds(obj: JsonObject, address: str, *, upn: bool) -> tuple[str, str] | None:
    """Where ``obj`` holds ``address``: ``(attribute, stored value)``, or ``None``."""
    for value in _smtp_values(obj.get("proxyAddresses")):
        if value.holds(address):
            return "proxyAddresses", str(value)
    if _same(obj.get("mail"), address):
        return "mail", str(obj["mail"])
    if upn and _same(obj.get("userPrincipalName"), address):
        return "userPrincipalName", str(obj["userPrincipalName"])
    return None


def holders_among(
    address: str,
    users: Sequence[JsonObject],
    groups: Sequence[JsonObject],
    contacts: Sequence[JsonObject],
) -> list[Holder]:
    """The holders of ``address`` among Graph objects (users including guests, groups,
    organizational contacts), in that order: what :meth:`EntraDirectory.find_holders` reports
    for the objects its filters returned, and what the whole-tenant scan reports from its
    bulk reads."""
    holders: list[Holder] = []
    for user in users:
        where = _holds(user, address, upn=True)
        if where:
            guest = str(user.get("userType") or "").casefold() == "guest"
            holders.append(
                Holder(
                    kind=ObjectKind.GUEST if guest else ObjectKind.USER,
                    id=str(user["id"]),
                    name=str(user.get("displayName") or user.get("userPrincipalName") or ""),
                    attribute=where[0],
                    value=where[1],
                )
            )
    for kind, objects in ((ObjectKind.GROUP, groups), (ObjectKind.CONTACT, contacts)):
        for obj in objects:
            where = _holds(obj, address, upn=False)
            if where:
                holders.append(
                    Holder(
                        kind=kind,
                        id=str(obj["id"]),
                        name=str(obj.get("displayName") or ""),
                        attribute=where[0],
                        value=where[1],
                    )
                )
    return holders


def holds_address(obj: JsonObject, address: str, *, upn: bool) -> tuple[str, str] | None:
    """Where a Graph object holds ``address`` (``(attribute, stored value)``), as the lookups
    by address re-check what Graph's filters returned; ``None`` when it does not."""
    return _holds(obj, address, upn=upn)


def address_keys(obj: JsonObject, *, upn: bool) -> set[str]:
    """Every address (case-folded) a Graph filter by address could find ``obj`` by."""
    keys = {v.address.casefold() for v in _smtp_values(obj.get("proxyAddresses"))}
    for name in ("mail", "userPrincipalName") if upn else ("mail",):
        value = obj.get(name)
        if isinstance(value, str) and value:
            keys.add(value.casefold())
    return keys


def _mailbox_request(user_id: str) -> GraphRequest:
    return GraphRequest(f"/users/{quote_segment(user_id)}/mailboxSettings", {}, PERM_MAILBOX)


def to_cloud_user(data: JsonObject) -> CloudUser:
    """A Graph ``user`` (selected with :data:`USER_SELECT`) as a :class:`CloudUser`."""
    errors = tuple(
        ProvisioningError(
            category=str(e.get("category") or ""),
            property_causing_error=str(e.get("propertyCausingError") or ""),
            value=str(e.get("value") or ""),
            occurred=e.get("occurredDateTime"),
        )
        for e in data.get("onPremisesProvisioningErrors") or ()
        if isinstance(e, dict)
    )
    sync = data.get("onPremisesSyncEnabled")
    enabled = data.get("accountEnabled")
    return CloudUser(
        id=str(data["id"]),
        user_principal_name=str(data.get("userPrincipalName") or ""),
        display_name=data.get("displayName"),
        mail=data.get("mail"),
        proxy_addresses=tuple(str(v) for v in data.get("proxyAddresses") or ()),
        user_type=str(data.get("userType") or "Member"),
        account_enabled=enabled if isinstance(enabled, bool) else True,
        on_premises_immutable_id=data.get("onPremisesImmutableId") or None,
        on_premises_sync_enabled=sync if isinstance(sync, bool) else None,
        on_premises_security_identifier=data.get("onPremisesSecurityIdentifier") or None,
        provisioning_errors=errors,
        given_name=data.get("givenName") or None,
        surname=data.get("surname") or None,
        mail_nickname=data.get("mailNickname") or None,
        deleted=data.get("deletedDateTime") or None,
    )


class EntraDirectory:
    """Entra ID (and Exchange Online's mailbox existence) through Microsoft Graph.

    Args:
        client: the Graph client; closed by :meth:`close`.
        block_soft_match: the tenant's ``blockSoftMatchEnabled`` as an admin stated it
            (``SMTPMATCH_BLOCK_SOFT_MATCH``); it wins over what Graph says or cannot say.
        block_hard_match: likewise ``blockCloudObjectTakeoverThroughHardMatchEnabled``
            (``SMTPMATCH_BLOCK_HARD_MATCH``).
        close_client: whether :meth:`close` closes ``client`` (and ``on_close`` runs).
    """

    def __init__(
        self,
        client: GraphClient,
        *,
        block_soft_match: bool | None = None,
        block_hard_match: bool | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self._block_soft_match = block_soft_match
        self._block_hard_match = block_hard_match
        self._on_close = on_close

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        ca_file: Path | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> EntraDirectory:
        """Build the adapter from settings (no network I/O happens here).

        Args:
            settings: needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or
                AZURE_CLIENT_CERTIFICATE_PATH; AZURE_AUTHORITY_HOST and GRAPH_URL are used.
            ca_file: a CA bundle to trust instead of SSL_CERT_FILE / REQUESTS_CA_BUNDLE.
            retry: attempt budget and backoff; ``sleep`` waits between attempts.

        Raises:
            ConfigurationError: a required setting is missing (the message names it).
        """
        settings.require("azure_tenant_id", "azure_client_id")
        assert settings.azure_tenant_id is not None and settings.azure_client_id is not None
        tokens = MsalTokenProvider(
            tenant_id=settings.azure_tenant_id,
            client_id=settings.azure_client_id,
            authority_host=settings.azure_authority_host,
            graph_url=settings.graph_url,
            client_secret=settings.azure_client_secret,
            certificate_path=settings.azure_client_certificate_path,
            ca_file=ca_file,
            timeout=settings.graph_timeout_seconds,
        )
        client = GraphClient(
            settings.graph_url,
            tokens,
            timeout=settings.graph_timeout_seconds,
            verify=trust_context(ca_file),
            retry=retry or RetryPolicy(),
            sleep=sleep,
            rng=rng,
        )

        def close() -> None:
            client.close()
            tokens.close()

        return cls(
            client,
            block_soft_match=settings.smtpmatch_block_soft_match,
            block_hard_match=settings.smtpmatch_block_hard_match,
            on_close=close,
        )

    def close(self) -> None:
        """Release the HTTP connections."""
        if self._on_close is not None:
            self._on_close()
        else:
            self.client.close()

    # -- users ------------------------------------------------------------------------

    def find_users(self, address: str) -> Sequence[CloudUser]:
        """Users (members and guests) holding ``address`` as UPN, ``mail`` or proxy address.

        One request: ``GET /users?$filter=userPrincipalName eq .. or mail eq .. or
        proxyAddresses/any(..)``.
        """
        found = self.client.get_all(
            GraphRequest(
                "/users",
                {
                    "$filter": _address_filter(address, upn=True),
                    "$select": USER_SELECT,
                    "$top": PAGE_SIZE,
                },
                PERM_USERS,
            )
        )
        return [to_cloud_user(u) for u in found if _holds(u, address, upn=True)]

    def provision_on_demand(
        self, service_principal_id: str, job_id: str, rule_id: str, dn: str
    ) -> str:
        """Ask Entra Cloud Sync to provision one AD user now (``provisionOnDemand``).

        For AD-to-Entra jobs the subject is the user's distinguished name with type ``user``
        (Graph's synchronizationJobSubject). The API allows 5 calls per 10 seconds; a 429 is
        retried by the client like any other.

        Returns:
            A line for the audit log.
        """
        path = (
            f"/servicePrincipals/{quote_segment(service_principal_id)}/synchronization/jobs/"
            f"{quote_segment(job_id)}/provisionOnDemand"
        )
        body: JsonObject = {
            "parameters": [
                {"ruleId": rule_id, "subjects": [{"objectId": dn, "objectTypeName": "user"}]}
            ]
        }
        request = GraphRequest(path, permission=PERM_PROVISION, method="POST", body=body)
        self.client.check(self.client.send(request))
        return f"Cloud Sync provisioned {dn} on demand"

    def get_user(self, user_id: str) -> CloudUser | None:
        """One user by object id, with the on-prem properties; ``None`` when it is gone."""
        try:
            data = self.client.get(
                GraphRequest(
                    f"/users/{quote_segment(user_id)}", {"$select": USER_SELECT}, PERM_USERS
                )
            )
        except GraphNotFound:
            return None
        return to_cloud_user(data)

    def watch_users(
        self, pairs: Sequence[tuple[str, str]]
    ) -> dict[str, tuple[CloudUser | None, tuple[CloudUser, ...]]]:
        """For each ``(user id, anchor)``: the user now and the users holding the anchor, asked
        in bulk: ONE ``/users?$filter=id in (...) or onPremisesImmutableId in (...)`` per
        :data:`WATCH_CHUNK` pairs (Graph allows 15 values in an ``in``). A wave's sync watch
        uses it, so a poll costs one Graph request per 15 users, not two per user.
        """
        found: list[CloudUser] = []
        for start in range(0, len(pairs), WATCH_CHUNK):
            chunk = pairs[start : start + WATCH_CHUNK]
            ids = ",".join(odata_string(i) for i, _ in chunk)
            anchors = ",".join(odata_string(a) for _, a in chunk if a)
            flt = f"id in ({ids})" + (
                f" or onPremisesImmutableId in ({anchors})" if anchors else ""
            )
            found.extend(
                to_cloud_user(u)
                for u in self.client.get_all(
                    GraphRequest(
                        "/users",
                        {"$filter": flt, "$select": USER_SELECT, "$top": PAGE_SIZE},
                        PERM_USERS,
                    )
                )
            )
        by_id = {u.id: u for u in found}
        return {
            user_id: (
                by_id.get(user_id),
                tuple(u for u in by_id.values() if anchor and u.on_premises_immutable_id == anchor),
            )
            for user_id, anchor in pairs
        }

    def find_user_by_upn(self, upn: str) -> CloudUser | None:
        """The user whose UPN is ``upn`` (compared case-insensitively, as Entra ID does)."""
        found = self.client.get_all(
            GraphRequest(
                "/users",
                {"$filter": f"userPrincipalName eq {odata_string(upn)}", "$select": USER_SELECT},
                PERM_USERS,
            )
        )
        users = [to_cloud_user(u) for u in found if _same(u.get("userPrincipalName"), upn)]
        return users[0] if users else None

    def find_by_anchor(self, anchor: str, sid: str | None) -> Sequence[CloudUser]:
        """Users whose ``onPremisesImmutableId`` is ``anchor`` or whose on-prem SID is ``sid``.

        The immutable id is Base64, where case matters, so results are re-checked exactly.
        """
        clauses = [f"onPremisesImmutableId eq {odata_string(anchor)}"]
        if sid:
            clauses.append(f"onPremisesSecurityIdentifier eq {odata_string(sid)}")
        found = self.client.get_all(
            GraphRequest(
                "/users",
                {"$filter": " or ".join(clauses), "$select": USER_SELECT, "$top": PAGE_SIZE},
                PERM_USERS,
            )
        )
        return [
            to_cloud_user(u)
            for u in found
            if u.get("onPremisesImmutableId") == anchor
            or (sid and _same(u.get("onPremisesSecurityIdentifier"), sid))
        ]

    def find_deleted_by_anchor(self, anchor: str, sid: str | None) -> Sequence[CloudUser] | Unknown:
        """Soft-deleted users carrying ``anchor`` (or ``sid``), e.g. the quarantined duplicate
        of an earlier failed attempt, which the next sync would restore.

        ``GET /directory/deletedItems/microsoft.graph.user`` with the same filter as
        :meth:`find_by_anchor`; ``Unknown`` when the application may not read deleted items.
        """
        clauses = [f"onPremisesImmutableId eq {odata_string(anchor)}"]
        if sid:
            clauses.append(f"onPremisesSecurityIdentifier eq {odata_string(sid)}")
        try:
            found = self.client.get_all(
                GraphRequest(
                    DELETED_USERS_PATH,
                    {"$filter": " or ".join(clauses), "$select": DELETED_USER_SELECT},
                    PERM_USERS,
                )
            )
        except PermissionMissing:
            return Unknown(
                f"Graph denied listing deleted users: the application needs {PERM_USERS}"
            )
        return [
            to_cloud_user(u)
            for u in found
            if u.get("onPremisesImmutableId") == anchor
            or (sid and _same(u.get("onPremisesSecurityIdentifier"), sid))
        ]

    # -- mailbox and roles ------------------------------------------------------------

    def has_mailbox(self, user_id: str) -> bool | Unknown:
        """Whether Exchange Online has a mailbox for the user.

        ``GET /users/{id}/mailboxSettings``: readable means a mailbox exists; Exchange answers
        404 ``MailboxNotEnabledForRESTAPI`` for a user without one (or with an on-prem one).
        """
        return self._mailbox_answer(self.client.send(_mailbox_request(user_id)))

    def _mailbox_answer(self, response: GraphResponse) -> bool | Unknown:
        """What a ``mailboxSettings`` answer says about the mailbox."""
        try:
            self.client.check(response)
        except GraphNotFound as exc:
            if exc.code == "MailboxNotEnabledForRESTAPI":
                return False
            return Unknown(f"Graph answered 404 ({exc.code or 'not found'}) for mailboxSettings")
        except PermissionMissing:
            return Unknown(
                f"Graph denied reading mailboxSettings: the application needs {PERM_MAILBOX}"
            )
        return True

    def roles(self, user_id: str) -> tuple[RoleAssignment, ...] | Unknown:
        """Active directory roles (direct or through role-assignable groups) and PIM ones.

        One ``$batch``: the user's transitive directory roles, transitive groups, and
        eligibility schedule instances. Only when the user holds a role and is in a
        role-assignable group does a second batch ask which of those groups carry which role,
        to name the group in the report.
        """
        uid = quote_segment(user_id)
        active_r, groups_r, eligible_r = self.client.batch(
            [
                GraphRequest(
                    f"/users/{uid}/transitiveMemberOf/microsoft.graph.directoryRole",
                    {"$select": ROLE_SELECT},
                    PERM_ROLES,
                ),
                GraphRequest(
                    f"/users/{uid}/transitiveMemberOf/microsoft.graph.group",
                    {"$select": MEMBER_GROUP_SELECT},
                    PERM_ROLES,
                ),
                GraphRequest(
                    "/roleManagement/directory/roleEligibilityScheduleInstances",
                    {
                        "$filter": f"principalId eq {odata_string(user_id)}",
                        "$expand": "roleDefinition",
                    },
                    PERM_ROLES,
                ),
            ]
        )
        try:
            active = self.client.collect(active_r)
        except PermissionMissing:
            return Unknown(
                f"Graph denied reading the user's directory roles: the application needs "
                f"{PERM_ROLES}"
            )
        names = [str(r.get("displayName") or r.get("roleTemplateId") or "?") for r in active]
        via = self._role_groups(names, groups_r)
        assignments = [RoleAssignment(role=name, via_group=via.get(name)) for name in names]

        try:
            eligible = self.client.collect(eligible_r)
        except PermissionMissing:
            if assignments:
                # Active roles already block the match; the eligible ones would only add a warning.
                return tuple(assignments)
            return Unknown(
                f"Graph denied reading PIM eligibilities: the application needs {PERM_ROLES}"
            )
        except GraphRequestFailed as exc:
            if exc.code not in _NO_PIM_CODES:
                raise
            eligible = []  # no Entra ID P2: PIM, hence eligibility, does not exist
        for item in eligible:
            definition = item.get("roleDefinition") or {}
            name = str(definition.get("displayName") or item.get("roleDefinitionId") or "?")
            if name not in names:
                assignments.append(RoleAssignment(role=name, eligible=True))
        return tuple(assignments)

    def _role_groups(self, roles: list[str], groups_r: GraphResponse) -> dict[str, str]:
        """Which role-assignable group each active role came through (best effort).

        A role both assigned directly and through a group is reported as through the group.
        Unreadable group data only loses the group's name, never the role.
        """
        if not roles:
            return {}
        try:
            groups = [g for g in self.client.collect(groups_r) if g.get("isAssignableToRole")]
        except PermissionMissing:
            return {}
        if not groups:
            return {}
        answers = self.client.batch(
            [
                GraphRequest(
                    "/roleManagement/directory/roleAssignments",
                    {
                        "$filter": f"principalId eq {odata_string(str(g['id']))}",
                        "$expand": "roleDefinition",
                    },
                    PERM_ROLES,
                )
                for g in groups
            ]
        )
        via: dict[str, str] = {}
        for group, answer in zip(groups, answers, strict=True):
            try:
                assigned = self.client.collect(answer)
            except PermissionMissing:
                continue
            for item in assigned:
                name = (item.get("roleDefinition") or {}).get("displayName")
                if name in roles and name not in via:
                    via[str(name)] = str(group.get("displayName") or group["id"])
        return via

    # -- holders ----------------------------------------------------------------------

    def find_holders(self, address: str) -> Sequence[Holder] | Unknown:
        """Every user (guests too), group and organizational contact holding ``address``.

        Without the permission to list one of them the answer is ``Unknown`` naming it, so
        ``unique.cloud`` says what could not be verified instead of the check failing.
        """
        try:
            return self._find_holders(address)
        except PermissionMissing as exc:
            return Unknown(str(exc))

    def find_holders_of(self, addresses: Sequence[str]) -> Sequence[Holder] | Unknown:
        """Every cloud object holding any of ``addresses``: one ``$batch`` of three filtered
        lists per address (the client splits batches at Graph's limit of 20)."""
        if not addresses:
            return []
        try:
            return self._find_holders(*addresses)
        except PermissionMissing as exc:
            return Unknown(str(exc))

    @staticmethod
    def _holder_requests(address: str) -> list[GraphRequest]:
        return [
            GraphRequest(
                "/users",
                {
                    "$filter": _address_filter(address, upn=True),
                    "$select": HOLDER_USER_SELECT,
                    "$top": PAGE_SIZE,
                },
                PERM_USERS,
            ),
            GraphRequest(
                "/groups",
                {
                    "$filter": _address_filter(address, upn=False),
                    "$select": HOLDER_SELECT,
                    "$top": PAGE_SIZE,
                },
                PERM_GROUPS,
            ),
            GraphRequest(
                "/contacts",
                {
                    "$filter": _address_filter(address, upn=False),
                    "$select": HOLDER_SELECT,
                    "$top": PAGE_SIZE,
                },
                PERM_CONTACTS,
            ),
        ]

    def _find_holders(self, *addresses: str) -> list[Holder]:
        """Every user (guests too), group and organizational contact holding an address.

        One ``$batch`` of three filtered lists per address. The target user is among them when
        it holds the address; the rules leave it out.
        """
        requests = [r for address in addresses for r in self._holder_requests(address)]
        answers = self.client.batch(requests)
        holders: list[Holder] = []
        for index, address in enumerate(addresses):
            users_r, groups_r, contacts_r = answers[3 * index : 3 * index + 3]
            holders += self._holders_in(address, users_r, groups_r, contacts_r)
        return holders

    def _holders_in(
        self,
        address: str,
        users_r: GraphResponse,
        groups_r: GraphResponse,
        contacts_r: GraphResponse,
    ) -> list[Holder]:
        return holders_among(
            address,
            self.client.collect(users_r),
            self.client.collect(groups_r),
            self.client.collect(contacts_r),
        )

    # -- bulk reads (whole-tenant scan) -----------------------------------------------

    def list_users(self) -> list[tuple[JsonObject, CloudUser]]:
        """Every user (members and guests): ``GET /users?$select=..,provisionedPlans&$top=999``,
        paged. Each comes as its Graph JSON (for holder matching) and as a :class:`CloudUser`.
        """
        found = self.client.get_all(
            GraphRequest(
                "/users",
                {"$select": f"{USER_SELECT},{PLANS_SELECT}", "$top": PAGE_SIZE},
                PERM_USERS,
            )
        )
        return [(u, to_cloud_user(u)) for u in found]

    def list_deleted_users(self) -> list[CloudUser] | Unknown:
        """Every soft-deleted user; ``Unknown`` when the application may not read them."""
        try:
            found = self.client.get_all(
                GraphRequest(
                    DELETED_USERS_PATH,
                    {"$select": DELETED_USER_SELECT, "$top": PAGE_SIZE},
                    PERM_USERS,
                )
            )
        except PermissionMissing:
            return Unknown(
                f"Graph denied listing deleted users: the application needs {PERM_USERS}"
            )
        return [to_cloud_user(u) for u in found]

    def list_groups(self) -> list[JsonObject]:
        """Every group with what holder matching and role attribution need (one paged list;
        a group holds an address only when it is mail-enabled, which the matching checks).

        Raises:
            PermissionMissing: naming the permission.
        """
        return self.client.get_all(
            GraphRequest(
                "/groups",
                {"$select": f"{HOLDER_SELECT},isAssignableToRole", "$top": PAGE_SIZE},
                PERM_GROUPS,
            )
        )

    def list_contacts(self) -> list[JsonObject]:
        """Every organizational contact (one paged list).

        Raises:
            PermissionMissing: naming the permission.
        """
        return self.client.get_all(
            GraphRequest("/contacts", {"$select": HOLDER_SELECT, "$top": PAGE_SIZE}, PERM_CONTACTS)
        )

    def list_role_assignments(self) -> list[tuple[str, str]] | Unknown:
        """Every active directory role assignment as ``(principal id, role name)``:
        ``GET /roleManagement/directory/roleAssignments?$expand=roleDefinition``, paged."""
        try:
            found = self.client.get_all(
                GraphRequest(
                    "/roleManagement/directory/roleAssignments",
                    {"$expand": "roleDefinition"},
                    PERM_ROLES,
                )
            )
        except PermissionMissing:
            return Unknown(
                f"Graph denied reading the user's directory roles: the application needs "
                f"{PERM_ROLES}"
            )
        return [(str(a.get("principalId")), _role_name(a)) for a in found]

    def list_role_eligibilities(self) -> list[tuple[str, str]] | Unknown:
        """Every PIM eligibility as ``(principal id, role name)`` (empty without Entra ID P2)."""
        try:
            found = self.client.get_all(
                GraphRequest(
                    "/roleManagement/directory/roleEligibilityScheduleInstances",
                    {"$expand": "roleDefinition"},
                    PERM_ROLES,
                )
            )
        except PermissionMissing:
            return Unknown(
                f"Graph denied reading PIM eligibilities: the application needs {PERM_ROLES}"
            )
        except GraphRequestFailed as exc:
            if exc.code not in _NO_PIM_CODES:
                raise
            return []
        return [(str(a.get("principalId")), _role_name(a)) for a in found]

    def group_user_members(self, group_ids: Sequence[str]) -> dict[str, list[str]] | Unknown:
        """The users in each group, nested groups included
        (``/groups/{id}/transitiveMembers/microsoft.graph.user``), in ``$batch`` requests."""
        if not group_ids:
            return {}
        answers = self.client.batch(
            [
                GraphRequest(
                    f"/groups/{quote_segment(g)}/transitiveMembers/microsoft.graph.user",
                    {"$select": "id", "$top": PAGE_SIZE},
                    PERM_GROUPS,
                )
                for g in group_ids
            ]
        )
        members: dict[str, list[str]] = {}
        try:
            for group, answer in zip(group_ids, answers, strict=True):
                members[group] = [str(u["id"]) for u in self.client.collect(answer)]
        except PermissionMissing as exc:
            return Unknown(str(exc))
        return members

    def mailboxes(self, user_ids: Sequence[str]) -> dict[str, bool | Unknown]:
        """Whether each user has an Exchange Online mailbox, asked as :meth:`has_mailbox` does
        (``mailboxSettings``), 20 users per ``$batch``."""
        found: dict[str, bool | Unknown] = {}
        # One $batch per 20 users, each with its own retry budget: under throttling the
        # whole set would otherwise share one budget of attempts.
        for start in range(0, len(user_ids), MAX_BATCH_REQUESTS):
            chunk = list(user_ids[start : start + MAX_BATCH_REQUESTS])
            answers = self.client.batch([_mailbox_request(u) for u in chunk])
            found.update((u, self._mailbox_answer(a)) for u, a in zip(chunk, answers, strict=True))
        return found

    # -- tenant -----------------------------------------------------------------------

    def tenant(self) -> Tenant:
        """Verified domains and the on-prem synchronization flags, in one ``$batch``.

        ``GET /directory/onPremisesSynchronization`` needs the delegated-only permission
        OnPremDirectorySynchronization.Read.All, so an app-only bot usually gets 403 there:
        the flags are then :class:`Unknown`, unless SMTPMATCH_BLOCK_SOFT_MATCH states one.
        """
        domains_r, sync_r = self.client.batch(
            [
                GraphRequest("/domains", {"$select": DOMAIN_SELECT}, PERM_DOMAINS),
                GraphRequest("/directory/onPremisesSynchronization", {}, PERM_SYNC),
            ]
        )
        verified: tuple[str, ...] | Unknown
        initial: str | None = None
        try:
            domains = self.client.collect(domains_r)
            verified = tuple(str(d["id"]).lower() for d in domains if d.get("isVerified"))
            initial = next((str(d["id"]).lower() for d in domains if d.get("isInitial")), None)
        except PermissionMissing:
            verified = Unknown(
                f"Graph denied listing domains: the application needs {PERM_DOMAINS}"
            )

        block: bool | Unknown
        on_upn: bool | Unknown
        hard: bool | Unknown
        try:
            body = self.client.check(sync_r)
        except PermissionMissing:
            reason = Unknown(
                "Graph denied reading /directory/onPremisesSynchronization: it needs "
                f"{PERM_SYNC}, a delegated permission an app-only bot cannot hold; an admin can "
                "state the settings in SMTPMATCH_BLOCK_SOFT_MATCH and SMTPMATCH_BLOCK_HARD_MATCH"
            )
            block, on_upn, hard = reason, reason, reason
        else:
            # The list form answers a collection (one entry per tenant); accept a bare object.
            entries = body.get("value") if isinstance(body.get("value"), list) else [body]
            features: JsonObject = (entries[0] or {}).get("features") or {} if entries else {}
            block = self._flag(features, "blockSoftMatchEnabled")
            on_upn = self._flag(features, "softMatchOnUpnEnabled")
            hard = self._flag(features, "blockCloudObjectTakeoverThroughHardMatchEnabled")
        if self._block_soft_match is not None:
            block = self._block_soft_match
        if self._block_hard_match is not None:
            hard = self._block_hard_match
        return Tenant(
            verified_domains=verified,
            block_soft_match=block,
            soft_match_on_upn=on_upn,
            block_hard_match=hard,
            initial_domain=initial,
        )

    @staticmethod
    def _flag(features: JsonObject, name: str) -> bool | Unknown:
        value = features.get(name)
        if isinstance(value, bool):
            return value
        return Unknown(f"Graph did not report {name}")


__all__ = [
    "DIRECTORY",
    "EntraDirectory",
    "address_keys",
    "exchange_provisioned",
    "holders_among",
    "holds_address",
    "to_cloud_user",
]
