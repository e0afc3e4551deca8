"""The rules engine: facts from both directories -> checks -> verdict -> change plan."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bot.models import CloudUser, Holder, ObjectKind, OnPremUser, RoleAssignment, Tenant, Unknown
from bot.rules.address import domain_of, primary_smtp, same_address
from bot.rules.checks import Check, CheckId, Report, Status, Verdict
from bot.rules.plan import plan_change

T = TypeVar("T")

_TITLES: dict[CheckId, str] = {
    CheckId.CLOUD_USER_FOUND: "Cloud user found",
    CheckId.CLOUD_ADDRESS_IS_PRIMARY: "Address is the cloud primary SMTP",
    CheckId.CLOUD_MEMBER_USER: "Cloud user is a member, not a guest",
    CheckId.CLOUD_HAS_MAILBOX: "Exchange Online mailbox exists",
    CheckId.CLOUD_NOT_SYNCED: "Cloud user not yet bound to on-prem",
    CheckId.CLOUD_NO_ADMIN_ROLES: "Cloud user holds no admin role",
    CheckId.TENANT_SOFT_MATCH_ALLOWED: "Tenant allows soft matching",
    CheckId.TENANT_DOMAIN_VERIFIED: "Address domain is verified in the tenant",
    CheckId.ONPREM_USER_FOUND: "AD user identified",
    CheckId.ONPREM_IS_PERSON: "AD object is a user",
    CheckId.ONPREM_NOT_YET_SYNCED: "AD user not exported by sync before",
    CheckId.ONPREM_IN_SYNC_SCOPE: "AD user is in sync scope",
    CheckId.ONPREM_UPN_CONFLICT: "AD UPN belongs to no other cloud user",
    CheckId.ONPREM_UPN_DIFFERS: "AD UPN equals cloud UPN",
    CheckId.ONPREM_ACCOUNT_ENABLED: "AD account is enabled",
    CheckId.ONPREM_NO_EXCHANGE_MAILBOX: "No on-prem Exchange mailbox",
    CheckId.UNIQUE_ONPREM: "Address unique in AD",
    CheckId.UNIQUE_CLOUD: "Address unique in Entra ID",
    CheckId.CLOUD_PRIMARY_UNCHANGED: "Cloud primary SMTP unchanged since the report",
}


@dataclass(frozen=True, slots=True)
class Policy:
    """What the organisation configured, as the rules need it.

    Args:
        sync_scope: DNs of the OUs sync exports; empty when not configured.
    """

    sync_scope: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the directories said about one address.

    Cloud facts that depend on the cloud user (mailbox, roles) and AD facts that depend on the
    AD user (anchor owners, UPN owner) are ``None`` when that user was not identified.
    Holders are looked up for the target address (the cloud primary, else the typed one).
    """

    address: str
    onprem_id: str | None
    cloud_users: tuple[CloudUser, ...]
    onprem_users: tuple[OnPremUser, ...]
    tenant: Tenant
    mailbox: bool | Unknown | None = None
    roles: tuple[RoleAssignment, ...] | Unknown | None = None
    cloud_holders: tuple[Holder, ...] | Unknown = ()
    onprem_holders: tuple[Holder, ...] = ()
    anchor_owners: tuple[CloudUser, ...] | Unknown | None = None
    upn_owner: CloudUser | Unknown | None = None
    #: The cloud primary address the approver saw; set only when re-checking at approval.
    approved_primary: str | None = None


def target_address(facts: Facts) -> str | None:
    """The address the match uses: the single cloud user's primary SMTP address."""
    if len(facts.cloud_users) != 1:
        return None
    user = facts.cloud_users[0]
    return primary_smtp(user.proxy_addresses, user.mail)


def _describe_cloud(user: CloudUser) -> str:
    return f"{user.display_name or user.user_principal_name} ({user.user_principal_name})"


def _describe_onprem(user: OnPremUser) -> str:
    name = user.sam_account_name or user.user_principal_name or user.display_name or "?"
    return f"{name} ({user.dn})"


def _describe_holder(holder: Holder) -> str:
    return f"{holder.kind} {holder.name!r} ({holder.id}) in {holder.attribute} as {holder.value!r}"


class _Checks:
    """Collects checks in order; each ``add`` names its id once."""

    def __init__(self) -> None:
        self.items: dict[CheckId, Check] = {}

    def add(
        self, check_id: CheckId, status: Status, detail: str, remediation: str | None = None
    ) -> None:
        self.items[check_id] = Check(check_id, status, _TITLES[check_id], detail, remediation)

    def skip(self, check_ids: Sequence[CheckId], detail: str) -> None:
        for check_id in check_ids:
            self.add(check_id, Status.SKIP, detail)

    def ordered(self) -> tuple[Check, ...]:
        return tuple(self.items[c] for c in CheckId)


_CLOUD_USER_CHECKS = (
    CheckId.CLOUD_ADDRESS_IS_PRIMARY,
    CheckId.CLOUD_MEMBER_USER,
    CheckId.CLOUD_HAS_MAILBOX,
    CheckId.CLOUD_NOT_SYNCED,
    CheckId.CLOUD_NO_ADMIN_ROLES,
)
_ONPREM_USER_CHECKS = (
    CheckId.ONPREM_IS_PERSON,
    CheckId.ONPREM_NOT_YET_SYNCED,
    CheckId.ONPREM_IN_SYNC_SCOPE,
    CheckId.ONPREM_UPN_CONFLICT,
    CheckId.ONPREM_UPN_DIFFERS,
    CheckId.ONPREM_ACCOUNT_ENABLED,
    CheckId.ONPREM_NO_EXCHANGE_MAILBOX,
    CheckId.UNIQUE_ONPREM,
)


def evaluate(facts: Facts, policy: Policy = Policy()) -> Report:
    """Run every check of RULES.md on ``facts`` and decide.

    Returns:
        A report whose ``checks`` hold every :class:`CheckId` once, in order.
    """
    out = _Checks()
    cloud = facts.cloud_users[0] if len(facts.cloud_users) == 1 else None
    onprem = facts.onprem_users[0] if len(facts.onprem_users) == 1 else None
    target = target_address(facts)

    _check_cloud_user_found(out, facts)
    if cloud is None:
        out.skip(_CLOUD_USER_CHECKS, "No single cloud user to check.")
    else:
        _check_cloud_user(out, facts, cloud, target)
    _check_tenant(out, facts.tenant, target or facts.address)
    _check_onprem_user_found(out, facts)
    if onprem is None:
        out.skip(_ONPREM_USER_CHECKS, "No single AD user to check.")
    else:
        _check_onprem_user(out, facts, onprem, cloud, policy)
    _check_unique_cloud(out, facts, cloud, target or facts.address)
    _check_primary_unchanged(out, facts, target)

    matched = (
        cloud is not None
        and onprem is not None
        and cloud.on_premises_immutable_id is not None
        and cloud.on_premises_immutable_id == onprem.anchor
    )
    plan = plan_change(onprem, target) if onprem and target and not matched else None
    checks = out.ordered()
    failed = [c for c in checks if c.status is Status.FAIL]
    ambiguous = out.items[CheckId.ONPREM_USER_FOUND].status is Status.FAIL and (
        len(facts.onprem_users) > 1 or (not facts.onprem_users and facts.onprem_id is None)
    )

    if matched:
        verdict = Verdict.ALREADY_MATCHED
        summary = "The cloud user is already bound to this AD user; nothing to do."
    elif ambiguous and all(c.id is CheckId.ONPREM_USER_FOUND for c in failed):
        verdict = Verdict.NEEDS_INPUT
        summary = (
            "Name the AD account to use: `/smtpmatch ADDRESS ACCOUNT` in Slack, `--onprem "
            "ACCOUNT` on the command line."
        )
    elif failed:
        verdict = Verdict.BLOCKED
        summary = "Blocked by: " + ", ".join(c.id for c in failed) + "."
    elif plan is not None and not plan.changes:
        verdict = Verdict.NEEDS_INPUT
        summary = (
            "The AD user already carries this address as its primary SMTP address; there is "
            "nothing to change. Run a sync, then check again."
        )
    else:
        verdict = Verdict.ELIGIBLE
        summary = "The AD user can be SMTP-matched; the change below would do it."
    if plan is not None and not plan.changes:
        plan = None  # nothing to write: the report shows no change rather than an empty one

    return Report(
        address=facts.address,
        verdict=verdict,
        checks=checks,
        target_address=target,
        cloud=cloud,
        onprem=onprem,
        candidates=facts.onprem_users,
        plan=plan,
        summary=summary,
    )


def _check_cloud_user_found(out: _Checks, facts: Facts) -> None:
    users = facts.cloud_users
    if len(users) == 1:
        out.add(CheckId.CLOUD_USER_FOUND, Status.PASS, f"Found {_describe_cloud(users[0])}.")
    elif not users:
        out.add(
            CheckId.CLOUD_USER_FOUND,
            Status.FAIL,
            f"No Entra ID user holds {facts.address} as UPN, mail or proxy address: "
            "there is no cloud account to match.",
            "Check the spelling, or create the user on-prem and let sync create the cloud user.",
        )
    else:
        names = "; ".join(_describe_cloud(u) for u in users)
        out.add(
            CheckId.CLOUD_USER_FOUND,
            Status.FAIL,
            f"{len(users)} Entra ID users hold {facts.address}: {names}.",
            "Remove the address from all but one of them, then check again.",
        )


def _check_cloud_user(out: _Checks, facts: Facts, cloud: CloudUser, target: str | None) -> None:
    if target is None:
        out.add(
            CheckId.CLOUD_ADDRESS_IS_PRIMARY,
            Status.FAIL,
            f"{cloud.user_principal_name} has no primary SMTP address, so there is nothing to "
            "match on.",
            "Give the cloud user a mailbox (licence Exchange Online), then check again.",
        )
    elif same_address(target, facts.address):
        out.add(CheckId.CLOUD_ADDRESS_IS_PRIMARY, Status.PASS, f"{target} is the primary address.")
    else:
        out.add(
            CheckId.CLOUD_ADDRESS_IS_PRIMARY,
            Status.WARN,
            f"{facts.address} is an alias; the match uses the primary address {target}.",
        )

    if cloud.user_type.casefold() == "member":
        out.add(CheckId.CLOUD_MEMBER_USER, Status.PASS, "userType is Member.")
    else:
        out.add(
            CheckId.CLOUD_MEMBER_USER,
            Status.FAIL,
            f"userType is {cloud.user_type}: guests cannot be taken over by directory sync.",
            "Create a member account instead of matching the guest.",
        )

    _check_unknowable(
        out,
        CheckId.CLOUD_HAS_MAILBOX,
        facts.mailbox,
        lambda has: (
            (Status.PASS, "An Exchange Online mailbox exists.", None)
            if has
            else (
                Status.FAIL,
                f"{cloud.user_principal_name} has no Exchange Online mailbox. SMTP matching works "
                "only for users whose mailbox with a primary address exists in Exchange Online "
                "(KB 2641663, limitation 1).",
                "Assign an Exchange Online licence and wait for the mailbox, then check again.",
            )
        ),
    )

    immutable = cloud.on_premises_immutable_id
    if not immutable and cloud.on_premises_sync_enabled is not True:
        out.add(CheckId.CLOUD_NOT_SYNCED, Status.PASS, "No immutable id; not synced.")
    else:
        onprem = facts.onprem_users[0] if len(facts.onprem_users) == 1 else None
        if onprem is not None and immutable == onprem.anchor:
            out.add(
                CheckId.CLOUD_NOT_SYNCED,
                Status.SKIP,
                f"Already bound to this AD user (immutable id {immutable}).",
            )
        else:
            state = "sync is on" if cloud.on_premises_sync_enabled else "sync was turned off"
            out.add(
                CheckId.CLOUD_NOT_SYNCED,
                Status.FAIL,
                f"{cloud.user_principal_name} is already bound to an on-prem object "
                f"(onPremisesImmutableId {immutable or 'empty'}, {state}). SMTP matching works "
                "only once (KB 2641663, limitation 2).",
                "Match to the AD object that owns that anchor, or clear the immutable id "
                "(a hard-match change, outside this bot).",
            )

    _check_unknowable(out, CheckId.CLOUD_NO_ADMIN_ROLES, facts.roles, _judge_roles)


def _judge_roles(roles: tuple[RoleAssignment, ...]) -> tuple[Status, str, str | None]:
    def describe(role: RoleAssignment) -> str:
        return role.role + (f" (through group {role.via_group})" if role.via_group else "")

    active = [r for r in roles if not r.eligible]
    eligible = [r for r in roles if r.eligible]
    if active:
        return (
            Status.FAIL,
            "Holds " + ", ".join(describe(r) for r in active) + ". Entra ID refuses to match "
            "on-prem users to cloud users with admin roles (Existing Admin Role Conflict) and "
            "quarantines a duplicate instead.",
            "Remove the role(s), match, then add them back.",
        )
    if eligible:
        return (
            Status.WARN,
            "PIM-eligible for " + ", ".join(describe(r) for r in eligible) + ": activating it "
            "before sync runs would block the match.",
            None,
        )
    return Status.PASS, "No active or eligible directory role.", None


def _check_unknowable(
    out: _Checks,
    check_id: CheckId,
    fact: T | Unknown | None,
    judge: Callable[[T], tuple[Status, str, str | None]],
) -> None:
    if fact is None:
        out.add(check_id, Status.UNKNOWN, "Not looked up.")
    elif isinstance(fact, Unknown):
        out.add(check_id, Status.UNKNOWN, f"Could not be verified: {fact.reason}")
    else:
        status, detail, remediation = judge(fact)
        out.add(check_id, status, detail, remediation)


def _check_tenant(out: _Checks, tenant: Tenant, address: str) -> None:
    _check_unknowable(
        out,
        CheckId.TENANT_SOFT_MATCH_ALLOWED,
        tenant.block_soft_match,
        lambda blocked: (
            (
                Status.FAIL,
                "blockSoftMatchEnabled is on: soft matching is blocked tenant-wide.",
                "A Global Administrator lifts it for the migration window "
                "(Update-MgDirectoryOnPremiseSynchronization) and sets it back afterwards.",
            )
            if blocked
            else (Status.PASS, "blockSoftMatchEnabled is off.", None)
        ),
    )
    domain = domain_of(address)
    _check_unknowable(
        out,
        CheckId.TENANT_DOMAIN_VERIFIED,
        tenant.verified_domains,
        lambda domains: (
            (Status.PASS, f"{domain} is a verified domain.", None)
            if domain in {d.lower() for d in domains}
            else (
                Status.FAIL,
                f"{domain} is not a verified domain of the tenant: sync would drop the address.",
                f"Verify {domain} in the tenant first.",
            )
        ),
    )


def _check_onprem_user_found(out: _Checks, facts: Facts) -> None:
    users = facts.onprem_users
    if len(users) == 1:
        out.add(CheckId.ONPREM_USER_FOUND, Status.PASS, f"Identified {_describe_onprem(users[0])}.")
    elif not users:
        given = (
            f"No AD object matches {facts.onprem_id!r}."
            if facts.onprem_id
            else (f"No AD user has {facts.address} as UPN, mail, proxy address or account name.")
        )
        out.add(
            CheckId.ONPREM_USER_FOUND,
            Status.FAIL,
            given,
            "Name the AD account: `/smtpmatch ADDRESS ACCOUNT` (sAMAccountName, UPN or DN).",
        )
    else:
        names = "; ".join(_describe_onprem(u) for u in users)
        out.add(
            CheckId.ONPREM_USER_FOUND,
            Status.FAIL,
            f"{len(users)} AD users could be meant: {names}.",
            "Name one of them: `/smtpmatch ADDRESS ACCOUNT`.",
        )


def _dn_in_scope(dn: str, scope: str) -> bool:
    dn_norm = ",".join(part.strip() for part in dn.lower().split(","))
    scope_norm = ",".join(part.strip() for part in scope.lower().split(","))
    return dn_norm == scope_norm or dn_norm.endswith("," + scope_norm)


def _check_onprem_user(
    out: _Checks, facts: Facts, onprem: OnPremUser, cloud: CloudUser | None, policy: Policy
) -> None:
    if onprem.kind is ObjectKind.USER:
        out.add(CheckId.ONPREM_IS_PERSON, Status.PASS, "The AD object is a user.")
    else:
        out.add(
            CheckId.ONPREM_IS_PERSON,
            Status.FAIL,
            f"{onprem.dn} is a {onprem.kind}, not a user: sync would report ObjectTypeMismatch.",
            "Name the AD user account instead.",
        )

    def judge_owners(owners: tuple[CloudUser, ...]) -> tuple[Status, str, str | None]:
        others = [o for o in owners if cloud is None or o.id != cloud.id]
        if not others:
            return Status.PASS, f"No cloud object carries anchor {onprem.anchor}.", None
        return (
            Status.FAIL,
            "Sync already exported this AD user as "
            + "; ".join(_describe_cloud(o) for o in others)
            + ". Changing its mail gives an error or a quarantined duplicate, not a match.",
            "Match a different AD user, or delete the earlier cloud twin first.",
        )

    _check_unknowable(out, CheckId.ONPREM_NOT_YET_SYNCED, facts.anchor_owners, judge_owners)

    if not policy.sync_scope:
        out.add(
            CheckId.ONPREM_IN_SYNC_SCOPE,
            Status.SKIP,
            "No sync scope configured (SMTPMATCH_SYNC_SCOPE); make sure sync exports this OU.",
        )
    elif any(_dn_in_scope(onprem.dn, scope) for scope in policy.sync_scope):
        out.add(CheckId.ONPREM_IN_SYNC_SCOPE, Status.PASS, "The user's OU is synchronized.")
    else:
        out.add(
            CheckId.ONPREM_IN_SYNC_SCOPE,
            Status.FAIL,
            f"{onprem.dn} is outside the sync scope ({'; '.join(policy.sync_scope)}): "
            "sync would never export it.",
            "Move the user into a synchronized OU.",
        )

    def judge_upn_owner(owner: CloudUser | None) -> tuple[Status, str, str | None]:
        if owner is None or (cloud is not None and owner.id == cloud.id):
            return Status.PASS, "No other cloud user has this UPN.", None
        return (
            Status.FAIL,
            f"The AD UPN {onprem.user_principal_name} is the UPN of another cloud user, "
            f"{_describe_cloud(owner)}: a UPN soft match could take over the wrong account.",
            "Change the AD user's UPN, or resolve the other cloud account first.",
        )

    if not onprem.user_principal_name:
        out.add(CheckId.ONPREM_UPN_CONFLICT, Status.PASS, "The AD user has no UPN.")
    elif facts.upn_owner is None:
        out.add(CheckId.ONPREM_UPN_CONFLICT, Status.PASS, "No cloud user has this UPN.")
    else:
        _check_unknowable(out, CheckId.ONPREM_UPN_CONFLICT, facts.upn_owner, judge_upn_owner)

    if cloud is None:
        out.add(CheckId.ONPREM_UPN_DIFFERS, Status.SKIP, "No single cloud user to compare.")
    elif same_address(onprem.user_principal_name, cloud.user_principal_name):
        out.add(CheckId.ONPREM_UPN_DIFFERS, Status.PASS, "The UPNs are the same.")
    else:
        out.add(
            CheckId.ONPREM_UPN_DIFFERS,
            Status.WARN,
            f"AD UPN {onprem.user_principal_name or '(none)'} differs from cloud UPN "
            f"{cloud.user_principal_name}: after the match the sign-in name becomes the AD UPN.",
            "Align the AD UPN first if users should keep their sign-in name.",
        )

    if onprem.enabled:
        out.add(CheckId.ONPREM_ACCOUNT_ENABLED, Status.PASS, "The AD account is enabled.")
    else:
        out.add(
            CheckId.ONPREM_ACCOUNT_ENABLED,
            Status.WARN,
            "The AD account is disabled: after the match the cloud user is disabled too.",
            "Enable the AD account before the match if the user must keep working.",
        )

    if not onprem.exchange_schema:
        out.add(
            CheckId.ONPREM_NO_EXCHANGE_MAILBOX,
            Status.SKIP,
            "The AD schema has no Exchange attributes.",
        )
    elif onprem.exchange_mailbox_guid or onprem.exchange_recipient_type_details:
        out.add(
            CheckId.ONPREM_NO_EXCHANGE_MAILBOX,
            Status.FAIL,
            "The AD user has an on-prem Exchange mailbox (msExchMailboxGuid/"
            "msExchRecipientTypeDetails set): there would be a mailbox on both sides.",
            "Let on-prem Exchange manage the address (migrate the mailbox instead).",
        )
    else:
        out.add(CheckId.ONPREM_NO_EXCHANGE_MAILBOX, Status.PASS, "No on-prem Exchange mailbox.")

    others = [h for h in facts.onprem_holders if h.id.casefold() != onprem.dn.casefold()]
    if others:
        out.add(
            CheckId.UNIQUE_ONPREM,
            Status.FAIL,
            "Another AD object holds the address: "
            + "; ".join(_describe_holder(h) for h in others)
            + '. Sync would fail with InvalidSoftMatch (event 6941): "...values that may '
            'already be associated with another object in your local directory services".',
            "Remove the address from the other object (IdFix finds such duplicates).",
        )
    else:
        out.add(CheckId.UNIQUE_ONPREM, Status.PASS, "No other AD object holds the address.")


def _check_unique_cloud(out: _Checks, facts: Facts, cloud: CloudUser | None, address: str) -> None:
    def judge(holders: tuple[Holder, ...]) -> tuple[Status, str, str | None]:
        others = [h for h in holders if cloud is None or h.id != cloud.id]
        if not others:
            return Status.PASS, "No other cloud object holds the address.", None
        return (
            Status.FAIL,
            f"Another cloud object holds {address}: "
            + "; ".join(_describe_holder(h) for h in others)
            + ". Duplicate attribute resiliency would quarantine the address and the match "
            "would silently fail.",
            "Remove the address from the other cloud object first.",
        )

    if cloud is None:
        out.add(CheckId.UNIQUE_CLOUD, Status.SKIP, "No single cloud user to compare.")
    else:
        _check_unknowable(out, CheckId.UNIQUE_CLOUD, facts.cloud_holders, judge)


def _check_primary_unchanged(out: _Checks, facts: Facts, target: str | None) -> None:
    if facts.approved_primary is None:
        out.add(
            CheckId.CLOUD_PRIMARY_UNCHANGED,
            Status.SKIP,
            "Checked again at approval time.",
        )
    elif target is not None and target == facts.approved_primary:
        out.add(
            CheckId.CLOUD_PRIMARY_UNCHANGED,
            Status.PASS,
            f"The cloud primary is still {target}.",
        )
    else:
        out.add(
            CheckId.CLOUD_PRIMARY_UNCHANGED,
            Status.FAIL,
            f"The cloud primary changed from {facts.approved_primary} to {target or '(none)'} "
            "since the report was approved; it must not change during matching "
            "(KB 2641663, limitation 3).",
            "Check the address again and request a new approval.",
        )
