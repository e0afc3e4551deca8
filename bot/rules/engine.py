"""The rules engine: facts from both directories -> checks -> verdict -> change plan.

Each check id, what it looks at and why is explained in docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

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
from bot.rules.address import domain_of, primary_smtp, same_address
from bot.rules.checks import Check, CheckId, Report, Status, Verdict
from bot.rules.plan import DEFAULT_SAM_TEMPLATE, cloud_aliases, plan_account, plan_change

T = TypeVar("T")

_TITLES: dict[CheckId, str] = {
    CheckId.CLOUD_USER_FOUND: "Cloud user found",
    CheckId.CLOUD_ADDRESS_IS_PRIMARY: "Address is the cloud primary SMTP",
    CheckId.CLOUD_MEMBER_USER: "Cloud user is a member, not a guest",
    CheckId.CLOUD_HAS_MAILBOX: "Exchange Online mailbox exists",
    CheckId.CLOUD_NOT_SYNCED: "Cloud user not yet bound to on-prem",
    CheckId.CLOUD_HARD_MATCH_ALLOWED: "A pending hard match is allowed",
    CheckId.CLOUD_NO_ADMIN_ROLES: "Cloud user holds no admin role",
    CheckId.TENANT_SOFT_MATCH_ALLOWED: "Tenant allows soft matching",
    CheckId.TENANT_DOMAIN_VERIFIED: "Address domain is verified in the tenant",
    CheckId.ONPREM_USER_FOUND: "AD user identified",
    CheckId.ONPREM_SAME_PERSON: "AD user is the same person",
    CheckId.ONPREM_NOT_PRIVILEGED: "AD user is not a privileged account",
    CheckId.ONPREM_IS_PERSON: "AD object is a user",
    CheckId.ONPREM_NOT_YET_SYNCED: "AD user not exported by sync before",
    CheckId.ONPREM_IN_SYNC_SCOPE: "AD user is in sync scope",
    CheckId.ONPREM_UPN_CONFLICT: "AD UPN belongs to no other cloud user",
    CheckId.ONPREM_UPN_DIFFERS: "AD UPN equals cloud UPN",
    CheckId.ONPREM_ACCOUNT_ENABLED: "AD and cloud account states agree",
    CheckId.ONPREM_NO_EXCHANGE_MAILBOX: "No on-prem Exchange mailbox",
    CheckId.UNIQUE_ONPREM: "Address unique in AD",
    CheckId.UNIQUE_CLOUD: "Addresses unique in Entra ID",
    CheckId.CLOUD_PRIMARY_UNCHANGED: "Cloud primary SMTP unchanged since the report",
}

#: The setting KB step 2 (creating the AD account) needs; named in reports.
CREATE_OU_SETTING = "SMTPMATCH_CREATE_OU"

#: ``msExchRecipientTypeDetails`` of on-prem mailboxes (user, linked, shared, legacy, room,
#: equipment, system attendant, system, arbitration, discovery).
ONPREM_MAILBOX_TYPES = frozenset({1, 2, 4, 8, 16, 32, 8192, 16384, 8388608, 536870912})
#: ``msExchRecipientTypeDetails`` of remote mailboxes: the on-prem twin of a cloud mailbox
#: (remote user, room, equipment and shared mailbox).
REMOTE_MAILBOX_TYPES = frozenset({2147483648, 8589934592, 17179869184, 34359738368})
#: ``sAMAccountName`` prefixes of service accounts sync never exports.
_SYNC_ACCOUNT_PREFIXES = ("aad_", "msol_")


@dataclass(frozen=True, slots=True)
class Policy:
    """What the organisation configured, as the rules need it.

    Args:
        sync_scope: DNs of the OUs sync exports; empty when not configured.
        create_ou: the OU where KB step 2 creates AD users (``SMTPMATCH_CREATE_OU``);
            ``None``: the creation is not offered.
        sam_template: how a new account's ``sAMAccountName`` is formed
            (``SMTPMATCH_SAM_TEMPLATE``).
    """

    sync_scope: tuple[str, ...] = ()
    create_ou: str | None = None
    sam_template: str = DEFAULT_SAM_TEMPLATE


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the directories said about one address.

    Cloud facts that depend on the cloud user (mailbox, roles) and AD facts that depend on the
    AD user (anchor owners, UPN owner, holders of its other addresses) are ``None`` when that
    user was not identified. ``cloud_holders`` and ``onprem_holders`` hold the holders of the
    target address (the cloud primary, else the typed one).

    Args:
        deleted_anchor_owners: soft-deleted cloud users carrying the AD user's anchor or SID.
        carried_holders: cloud objects holding any OTHER address the AD user carries now (its
            SMTP addresses, ``mail``, UPN): after the change they become the cloud user's too.
        lookalikes: when no AD user was found by the address, the AD users that plausibly are
            the person under another name (same name, or account name = the UPN prefix).
        account_names: when no AD user was found and a creation OU is configured, which names
            a new account could take (read from AD for the create plan).
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
    deleted_anchor_owners: tuple[CloudUser, ...] | Unknown | None = None
    carried_holders: tuple[Holder, ...] | Unknown | None = None
    lookalikes: tuple[OnPremUser, ...] = ()
    account_names: AccountNames | None = None


def _is_member(user: CloudUser) -> bool:
    return user.user_type.casefold() == "member"


def _holds_as_primary_or_upn(user: CloudUser, address: str) -> bool:
    return same_address(primary_smtp(user.proxy_addresses, user.mail), address) or same_address(
        user.user_principal_name, address
    )


def choose_target(users: Sequence[CloudUser], address: str) -> CloudUser | None:
    """The cloud user the match is for, among the users holding ``address``.

    The one member user holding it as primary SMTP address or UPN, else the one member user
    holding it at all; with no member user, the one guest (which ``cloud.member_user`` then
    refuses). ``None`` when there is none, or when two hold it equally.
    """
    members = [u for u in users if _is_member(u)]
    pool = members or list(users)
    if len(pool) == 1:
        return pool[0]
    strong = [u for u in pool if _holds_as_primary_or_upn(u, address)]
    return strong[0] if len(strong) == 1 else None


def target_address(facts: Facts) -> str | None:
    """The address the match uses: the target cloud user's primary SMTP address."""
    user = choose_target(facts.cloud_users, facts.address)
    if user is None:
        return None
    return primary_smtp(user.proxy_addresses, user.mail)


def _describe_cloud(user: CloudUser) -> str:
    return f"{user.display_name or user.user_principal_name} ({user.user_principal_name})"


def _describe_onprem(user: OnPremUser) -> str:
    # The UPN is shown whenever it differs from the account name: it is often why the AD
    # object was found at all.
    name = user.sam_account_name or user.user_principal_name or user.display_name or "?"
    upn = user.user_principal_name
    extra = f", UPN {upn}" if upn and upn != name else ""
    return f"{name} ({user.dn}{extra})"


def _describe_holder(holder: Holder) -> str:
    return f"{holder.kind} {holder.name!r} ({holder.id}) in {holder.attribute} as {holder.value!r}"


def _address_of(holder: Holder) -> str:
    """The address a holder holds (its stored value without an ``smtp:`` prefix)."""
    value = ProxyAddress.parse(holder.value)
    return value.address if value.is_smtp else holder.value


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
    CheckId.CLOUD_HARD_MATCH_ALLOWED,
    CheckId.CLOUD_NO_ADMIN_ROLES,
)
_ONPREM_USER_CHECKS = (
    CheckId.ONPREM_SAME_PERSON,
    CheckId.ONPREM_NOT_PRIVILEGED,
    CheckId.ONPREM_IS_PERSON,
    CheckId.ONPREM_NOT_YET_SYNCED,
    CheckId.ONPREM_IN_SYNC_SCOPE,
    CheckId.ONPREM_UPN_CONFLICT,
    CheckId.ONPREM_UPN_DIFFERS,
    CheckId.ONPREM_ACCOUNT_ENABLED,
    CheckId.ONPREM_NO_EXCHANGE_MAILBOX,
    CheckId.UNIQUE_ONPREM,
)
#: Checks about the cloud side: all must pass for ``needs_account``.
_CLOUD_SIDE = frozenset(
    {
        CheckId.CLOUD_USER_FOUND,
        *_CLOUD_USER_CHECKS,
        CheckId.TENANT_SOFT_MATCH_ALLOWED,
        CheckId.TENANT_DOMAIN_VERIFIED,
        CheckId.UNIQUE_CLOUD,
    }
)


def _pending_hard_match(cloud: CloudUser | None, onprem: OnPremUser | None) -> bool:
    """The cloud user carries this AD user's anchor but sync is not enabled on it."""
    return (
        cloud is not None
        and onprem is not None
        and cloud.on_premises_immutable_id is not None
        and cloud.on_premises_immutable_id == onprem.anchor
        and cloud.on_premises_sync_enabled is not True
    )


def evaluate(facts: Facts, policy: Policy = Policy()) -> Report:
    """Run every check of docs/rules.md on ``facts`` and decide.

    Returns:
        A report whose ``checks`` hold every :class:`CheckId` once, in order.
    """
    out = _Checks()
    cloud = choose_target(facts.cloud_users, facts.address)
    onprem = facts.onprem_users[0] if len(facts.onprem_users) == 1 else None
    target = primary_smtp(cloud.proxy_addresses, cloud.mail) if cloud else None
    usable_target = target if target and not is_service_domain(target) else None
    aliases = cloud_aliases(cloud.proxy_addresses, target) if cloud and target else ()

    _check_cloud_user_found(out, facts, cloud)
    if cloud is None:
        out.skip(_CLOUD_USER_CHECKS, "No single cloud user to check.")
    else:
        _check_cloud_user(out, facts, cloud, onprem, target)
    _check_tenant(out, facts.tenant, target or facts.address)
    _check_onprem_user_found(out, facts, cloud, policy)
    if onprem is None:
        out.skip(_ONPREM_USER_CHECKS, "No single AD user to check.")
    else:
        _check_onprem_user(out, facts, onprem, cloud, policy)

    matched = (
        cloud is not None
        and onprem is not None
        and cloud.on_premises_immutable_id is not None
        and cloud.on_premises_immutable_id == onprem.anchor
        and cloud.on_premises_sync_enabled is True
    )
    plan = (
        plan_change(onprem, usable_target, aliases)
        if onprem and usable_target and not matched
        else None
    )
    _check_unique_cloud(out, facts, cloud, onprem, target or facts.address, plan)
    _check_primary_unchanged(out, facts, target)

    checks = out.ordered()
    failed = [c for c in checks if c.status is Status.FAIL]
    only_user_found = all(c.id is CheckId.ONPREM_USER_FOUND for c in failed)
    none_found = not facts.onprem_users and facts.onprem_id is None
    candidates = facts.onprem_users
    pending = _pending_hard_match(cloud, onprem)
    carried = [a for a in aliases if not any(same_address(a, x) for x in _ad_smtp(onprem))]

    if matched:
        verdict = Verdict.ALREADY_MATCHED
        summary = "The cloud user is already bound to this AD user; nothing to do."
    elif none_found and failed and only_user_found and facts.lookalikes:
        verdict = Verdict.NEEDS_INPUT
        candidates = facts.lookalikes
        summary = (
            "No AD user carries this address, but "
            + "; ".join(_describe_onprem(u) for u in facts.lookalikes)
            + " looks like the same person. Two AD accounts for one person is the worst "
            "outcome: name the account to use: `/smtpmatch ADDRESS ACCOUNT` in Slack, "
            "`--onprem ACCOUNT` on the command line."
        )
    elif none_found and failed and only_user_found:
        verdict = Verdict.NEEDS_ACCOUNT
        plan, summary = _creation(out, facts, policy, cloud, usable_target, aliases)
        checks = out.ordered()
    elif len(facts.onprem_users) > 1 and failed and only_user_found:
        verdict = Verdict.NEEDS_INPUT
        summary = (
            "Name the AD account to use: `/smtpmatch ADDRESS ACCOUNT` in Slack, `--onprem "
            "ACCOUNT` on the command line."
        )
    elif failed:
        verdict = Verdict.BLOCKED
        summary = "Blocked by: " + ", ".join(c.id for c in failed) + "."
    elif plan is None or not plan.changes:
        verdict = Verdict.SYNC_PENDING
        summary = (
            "The cloud user already carries this AD user's anchor: the next sync hard-matches "
            "them. There is nothing to change in AD; run a sync, then check again."
            if pending
            else "The AD user already carries this address as its primary SMTP address and "
            "every alias; there is nothing to change. Run a sync, then check again."
        )
    else:
        verdict = Verdict.ELIGIBLE
        summary = "The AD user can be SMTP-matched; the change below would do it."
        if pending:
            summary += (
                " The cloud user already carries this AD user's anchor, so the next sync "
                "hard-matches them; the change keeps the cloud addresses."
            )
        if carried:
            summary += (
                " The change also adds the cloud aliases " + ", ".join(carried) + " to AD, "
                "since sync replaces the cloud addresses with AD's after the match."
            )
    if plan is not None and not plan.changes:
        plan = None  # nothing to write: the report shows no change rather than an empty one

    return Report(
        address=facts.address,
        verdict=verdict,
        checks=checks,
        target_address=target,
        cloud=cloud,
        onprem=onprem,
        candidates=candidates,
        plan=plan,
        summary=summary,
    )


#: What the report, the approval message and the requester's DM say about the password.
PASSWORD_CONSEQUENCE = (
    "The new account gets a strong random password that nobody sees (it is not shown, stored "
    "or logged). With password hash sync, that AD password replaces the cloud one at the "
    "match: the user's current cloud password stops working. The helpdesk then sets the real "
    "password together with the user (or the user resets it where self-service password reset "
    "with writeback is enabled)."
)


def _creation(
    out: _Checks,
    facts: Facts,
    policy: Policy,
    cloud: CloudUser | None,
    target: str | None,
    aliases: tuple[str, ...],
) -> tuple[ChangePlan | None, str]:
    """The create plan of a ``needs_account`` report (KB step 2) and the report's summary."""
    first = (
        "No AD user holds, is named for, or looks like this person: the AD account must be "
        "created first (KB 2641663 step 2). "
    )
    if policy.create_ou is None:
        return None, first + (
            f"smtpmatch offers the creation only when {CREATE_OU_SETTING} (the OU for new "
            "users, inside the sync scope) is set; set it, or create the user in a synchronized "
            "OU by hand, then check again."
        )
    if cloud is None or target is None or facts.account_names is None:
        return None, first + "The names a new account would take could not be read from AD."
    made = plan_account(
        cloud, target, aliases, policy.create_ou, facts.account_names, policy.sam_template
    )
    if made.plan is None:
        return None, first + f"No free name is left for it ({made.problem}); create it by hand."
    if made.upn_warning:
        out.add(CheckId.ONPREM_UPN_DIFFERS, Status.WARN, made.upn_warning)
    return made.plan, first + (
        f"smtpmatch can create it as {made.plan.dn} ({CREATE_OU_SETTING}), enabled, with the "
        "cloud user's names and every SMTP address, behind the same approval; the next sync "
        "then soft-matches it. " + PASSWORD_CONSEQUENCE
    )


def _ad_smtp(user: OnPremUser | None) -> tuple[str, ...]:
    if user is None:
        return ()
    return tuple(v.address for v in smtp_values(user.proxy_addresses))


def _check_cloud_user_found(out: _Checks, facts: Facts, cloud: CloudUser | None) -> None:
    users = facts.cloud_users
    if cloud is not None:
        others = [u for u in users if u.id != cloud.id]
        note = (
            " Other users holding the address ("
            + "; ".join(_describe_cloud(u) for u in others)
            + ") are duplicates, see unique.cloud."
            if others
            else ""
        )
        out.add(CheckId.CLOUD_USER_FOUND, Status.PASS, f"Found {_describe_cloud(cloud)}.{note}")
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
            f"{len(users)} Entra ID users hold {facts.address} equally, so none is the target: "
            f"{names}.",
            "Remove the address from all but one of them, then check again.",
        )


def _check_cloud_user(
    out: _Checks,
    facts: Facts,
    cloud: CloudUser,
    onprem: OnPremUser | None,
    target: str | None,
) -> None:
    if target is None:
        out.add(
            CheckId.CLOUD_ADDRESS_IS_PRIMARY,
            Status.FAIL,
            f"{cloud.user_principal_name} has no primary SMTP address, so there is nothing to "
            "match on.",
            "Give the cloud user a mailbox (licence Exchange Online), then check again.",
        )
    elif is_service_domain(target):
        out.add(
            CheckId.CLOUD_ADDRESS_IS_PRIMARY,
            Status.FAIL,
            f"The primary address of {cloud.user_principal_name} is {target}, in the tenant's "
            "service domain: sync discards such addresses on-prem (KB 3190357), so no SMTP "
            "match can ever happen on it.",
            "Make an address in a verified domain the cloud user's primary SMTP address first "
            "(Exchange admin center or Set-Mailbox -WindowsEmailAddress), then check again.",
        )
    elif same_address(target, facts.address):
        out.add(CheckId.CLOUD_ADDRESS_IS_PRIMARY, Status.PASS, f"{target} is the primary address.")
    else:
        out.add(
            CheckId.CLOUD_ADDRESS_IS_PRIMARY,
            Status.WARN,
            f"{facts.address} is an alias; the match uses the primary address {target}.",
        )

    if _is_member(cloud):
        out.add(CheckId.CLOUD_MEMBER_USER, Status.PASS, "userType is Member.")
    else:
        out.add(
            CheckId.CLOUD_MEMBER_USER,
            Status.FAIL,
            f"userType is {cloud.user_type}: guests cannot be taken over by directory sync.",
            "Convert the guest to an internal member user (Entra admin center: the user's "
            "'Convert to internal user', or set userType to Member), then check again; or "
            "create a member account for the person instead of matching the guest.",
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
    pending = _pending_hard_match(cloud, onprem)
    if not immutable and cloud.on_premises_sync_enabled is not True:
        out.add(CheckId.CLOUD_NOT_SYNCED, Status.PASS, "No immutable id; not synced.")
    elif onprem is not None and immutable == onprem.anchor and not pending:
        out.add(
            CheckId.CLOUD_NOT_SYNCED,
            Status.SKIP,
            f"Already bound to this AD user (immutable id {immutable}).",
        )
    elif pending:
        out.add(
            CheckId.CLOUD_NOT_SYNCED,
            Status.SKIP,
            f"onPremisesImmutableId {immutable} is this AD user's anchor but sync is not "
            "enabled on the cloud user: a pending hard match, not a match (see "
            "cloud.hard_match_allowed).",
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

    if not pending:
        out.add(
            CheckId.CLOUD_HARD_MATCH_ALLOWED,
            Status.SKIP,
            "No hard match pending (the cloud user does not carry this AD user's anchor unbound).",
        )
    else:
        _check_hard_match(out, facts, cloud)

    _check_unknowable(out, CheckId.CLOUD_NO_ADMIN_ROLES, facts.roles, _judge_roles)


def _check_hard_match(out: _Checks, facts: Facts, cloud: CloudUser) -> None:
    block = facts.tenant.block_hard_match
    roles = facts.roles
    active = [r for r in roles if not r.eligible] if isinstance(roles, tuple) else []
    if block is True:
        out.add(
            CheckId.CLOUD_HARD_MATCH_ALLOWED,
            Status.FAIL,
            f"{cloud.user_principal_name} carries this AD user's anchor, but the tenant blocks "
            "cloud object takeover through hard match "
            "(blockCloudObjectTakeoverThroughHardMatchEnabled): sync would fail with "
            "InvalidHardMatch.",
            "A Global Administrator lifts blockCloudObjectTakeoverThroughHardMatchEnabled for "
            "the takeover (Update-MgDirectoryOnPremiseSynchronization) and sets it back "
            "afterwards; if an earlier attempt left a quarantined duplicate, hard-delete it "
            "first.",
        )
    elif active:
        names = ", ".join(r.role for r in active)
        out.add(
            CheckId.CLOUD_HARD_MATCH_ALLOWED,
            Status.FAIL,
            f"{cloud.user_principal_name} holds {names}: since June 2026 Entra ID blocks the "
            "hard match of cloud users holding Entra roles (MC1262584).",
            "Remove the role(s); if an earlier sync already quarantined a duplicate object, "
            "hard-delete it (Remove-MgDirectoryDeletedItem); run the sync, then add the roles "
            "back.",
        )
    elif isinstance(block, Unknown):
        out.add(
            CheckId.CLOUD_HARD_MATCH_ALLOWED,
            Status.UNKNOWN,
            "A hard match is pending, but whether the tenant blocks cloud object takeover "
            f"through hard match could not be read: {block.reason}. State it in "
            "SMTPMATCH_BLOCK_HARD_MATCH.",
        )
    elif isinstance(roles, Unknown) or roles is None:
        why = roles.reason if isinstance(roles, Unknown) else "not looked up"
        out.add(
            CheckId.CLOUD_HARD_MATCH_ALLOWED,
            Status.UNKNOWN,
            f"A hard match is pending and the tenant allows it, but the user's roles could not "
            f"be read ({why}); a role would block it (MC1262584).",
        )
    else:
        out.add(
            CheckId.CLOUD_HARD_MATCH_ALLOWED,
            Status.PASS,
            f"{cloud.user_principal_name} carries this AD user's anchor; the tenant allows the "
            "takeover and the user holds no Entra role: the next sync hard-matches them.",
        )


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


def _why_alike(user: OnPremUser, cloud: CloudUser | None) -> str:
    """Why an AD user plausibly is the cloud user's owner (for the report)."""
    if cloud is None:
        return "similar"
    reasons: list[str] = []
    if _same_text(user.display_name, cloud.display_name):
        reasons.append(f"same displayName {user.display_name!r}")
    if _same_text(user.given_name, cloud.given_name) and _same_text(user.surname, cloud.surname):
        reasons.append(f"same givenName and sn {user.given_name} {user.surname}")
    prefix = cloud.user_principal_name.split("@", 1)[0]
    if _same_text(user.sam_account_name, prefix):
        reasons.append(f"sAMAccountName {user.sam_account_name} = the cloud UPN's prefix")
    return ", ".join(reasons) or "similar"


def _check_onprem_user_found(
    out: _Checks, facts: Facts, cloud: CloudUser | None, policy: Policy
) -> None:
    users = facts.onprem_users
    if len(users) == 1:
        out.add(CheckId.ONPREM_USER_FOUND, Status.PASS, f"Identified {_describe_onprem(users[0])}.")
    elif not users and facts.onprem_id:
        out.add(
            CheckId.ONPREM_USER_FOUND,
            Status.FAIL,
            f"No AD user matches {facts.onprem_id!r} (only user objects under the base DN, "
            "outside the configuration partition, can be named).",
            "Name the AD account: `/smtpmatch ADDRESS ACCOUNT` (sAMAccountName, UPN or DN).",
        )
    elif not users and facts.lookalikes:
        alike = "; ".join(
            f"{_describe_onprem(u)}: {_why_alike(u, cloud)}" for u in facts.lookalikes
        )
        out.add(
            CheckId.ONPREM_USER_FOUND,
            Status.FAIL,
            f"No AD user has {facts.address} as UPN, mail, proxy address or account name, but "
            f"a likely account exists under another name: {alike}.",
            "If that is the person's account, name it: `/smtpmatch ADDRESS ACCOUNT`; do not "
            "create a second account for the same person.",
        )
    elif not users:
        out.add(
            CheckId.ONPREM_USER_FOUND,
            Status.FAIL,
            f"No AD user has {facts.address} as UPN, mail, proxy address or account name, and "
            "none has the cloud user's name.",
            (
                "Create the AD account (KB 2641663 step 2): smtpmatch can create it in "
                f"{policy.create_ou} behind the same approval"
                if policy.create_ou
                else "Create the AD account (KB 2641663 step 2; smtpmatch offers it once "
                f"{CREATE_OU_SETTING} is set)"
            )
            + ", or name an existing one: `/smtpmatch ADDRESS ACCOUNT`.",
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


def _same_text(a: str | None, b: str | None) -> bool:
    return bool(a and b and a.strip().casefold() == b.strip().casefold())


def _identifiers(upn: str | None, mail: str | None, proxies: tuple[str, ...]) -> dict[str, str]:
    found = {v.address.casefold(): v.address for v in smtp_values(proxies)}
    for value in (upn, mail):
        if value:
            found.setdefault(value.casefold(), value)
    return found


def _check_same_person(out: _Checks, onprem: OnPremUser, cloud: CloudUser | None) -> None:
    if cloud is None:
        out.add(CheckId.ONPREM_SAME_PERSON, Status.SKIP, "No single cloud user to compare.")
        return
    if same_address(onprem.user_principal_name, cloud.user_principal_name):
        out.add(
            CheckId.ONPREM_SAME_PERSON,
            Status.PASS,
            f"Both carry the UPN {cloud.user_principal_name}.",
        )
        return
    ad_ids = _identifiers(onprem.user_principal_name, onprem.mail, onprem.proxy_addresses)
    cloud_ids = _identifiers(cloud.user_principal_name, cloud.mail, cloud.proxy_addresses)
    shared = [ad_ids[k] for k in ad_ids if k in cloud_ids]
    if shared:
        out.add(
            CheckId.ONPREM_SAME_PERSON,
            Status.PASS,
            f"Both carry the address {shared[0]}.",
        )
        return
    if _same_text(onprem.display_name, cloud.display_name) or (
        _same_text(onprem.given_name, cloud.given_name)
        and _same_text(onprem.surname, cloud.surname)
    ):
        name = onprem.display_name or f"{onprem.given_name} {onprem.surname}"
        out.add(
            CheckId.ONPREM_SAME_PERSON,
            Status.WARN,
            f"Only the name {name!r} links {_describe_onprem(onprem)} to "
            f"{_describe_cloud(cloud)}: no UPN or SMTP address is shared.",
            "Make sure this AD account belongs to the cloud user's owner before approving.",
        )
        return
    out.add(
        CheckId.ONPREM_SAME_PERSON,
        Status.FAIL,
        f"{_describe_onprem(onprem)} shares no UPN, SMTP address or name with "
        f"{_describe_cloud(cloud)}: nothing shows that this AD account belongs to the cloud "
        "user's owner, and the match would hand that mailbox to whoever holds the AD account.",
        "Name the AD account of the mailbox's owner, or give it the owner's name first if it "
        "really is theirs.",
    )


def _check_not_privileged(out: _Checks, onprem: OnPremUser) -> None:
    reasons: list[str] = []
    if onprem.privileged_groups:
        reasons.append("member of " + ", ".join(onprem.privileged_groups))
    if onprem.admin_count == 1:
        reasons.append("adminCount=1 (protected by AdminSDHolder)")
    if not reasons:
        out.add(
            CheckId.ONPREM_NOT_PRIVILEGED,
            Status.PASS,
            "Not a member of a protected group; adminCount is not 1.",
        )
        return
    out.add(
        CheckId.ONPREM_NOT_PRIVILEGED,
        Status.FAIL,
        f"{_describe_onprem(onprem)} is a privileged account ({'; '.join(reasons)}): binding a "
        "cloud mailbox to it puts that account's credentials in the cloud (password hash sync), "
        "and Microsoft advises against synchronizing admin accounts.",
        "Match the person's ordinary AD account instead; keep admin accounts separate and "
        "out of sync.",
    )


def _never_exported(onprem: OnPremUser) -> str | None:
    """Why sync never exports this object whatever its scope, or ``None``."""
    sam = onprem.sam_account_name or ""
    if onprem.critical_system_object:
        return "isCriticalSystemObject is TRUE (a built-in account)"
    if (onprem.admin_description or "").lower().startswith("user_"):
        return f"adminDescription starts with User_ ({onprem.admin_description!r})"
    if onprem.kind is ObjectKind.USER and not sam:
        return "it has no sAMAccountName"
    if sam.lower().startswith(_SYNC_ACCOUNT_PREFIXES):
        return f"its sAMAccountName {sam} marks a sync service account (AAD_/MSOL_)"
    return None


def _resulting_upn(onprem: OnPremUser, cloud: CloudUser, tenant: Tenant) -> tuple[str, bool]:
    """The cloud UPN after the match, and whether it is the AD UPN itself."""
    upn = onprem.user_principal_name or ""
    suffix = domain_of(upn) if "@" in upn else ""
    domains = tenant.verified_domains
    if isinstance(domains, Unknown) or suffix in {d.lower() for d in domains}:
        return upn, True
    nickname = onprem.mail_nickname or cloud.mail_nickname or upn.split("@", 1)[0]
    initial = tenant.initial_domain or "<the tenant's initial onmicrosoft.com domain>"
    return f"{nickname}@{initial}", False


def _check_onprem_user(
    out: _Checks, facts: Facts, onprem: OnPremUser, cloud: CloudUser | None, policy: Policy
) -> None:
    _check_same_person(out, onprem, cloud)
    _check_not_privileged(out, onprem)
    if onprem.kind is ObjectKind.USER:
        out.add(CheckId.ONPREM_IS_PERSON, Status.PASS, "The AD object is a user.")
    else:
        out.add(
            CheckId.ONPREM_IS_PERSON,
            Status.FAIL,
            f"{onprem.dn} is a {onprem.kind}, not a user: sync would report ObjectTypeMismatch.",
            "Name the AD user account instead.",
        )

    _check_not_yet_synced(out, facts, onprem, cloud)

    never = _never_exported(onprem)
    if never is not None:
        out.add(
            CheckId.ONPREM_IN_SYNC_SCOPE,
            Status.FAIL,
            f"Sync never exports {onprem.dn}: {never}.",
            "Name the person's ordinary AD user account instead.",
        )
    elif not policy.sync_scope:
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
        after, is_ad_upn = _resulting_upn(onprem, cloud, facts.tenant)
        detail = (
            f"AD UPN {onprem.user_principal_name or '(none)'} differs from cloud UPN "
            f"{cloud.user_principal_name}: after the match the sign-in name becomes "
        )
        if is_ad_upn:
            detail += "the AD UPN."
        else:
            detail += (
                f"{after}, because the AD UPN's suffix is not a verified domain of the tenant "
                "(Entra ID then uses <mailNickname>@<initial domain>)."
            )
        out.add(
            CheckId.ONPREM_UPN_DIFFERS,
            Status.WARN,
            detail,
            "Align the AD UPN (with a verified suffix) first if users should keep their "
            "sign-in name.",
        )

    _check_account_enabled(out, onprem, cloud)
    _check_exchange(out, onprem)

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


def _check_not_yet_synced(
    out: _Checks, facts: Facts, onprem: OnPremUser, cloud: CloudUser | None
) -> None:
    active, deleted = facts.anchor_owners, facts.deleted_anchor_owners
    others = (
        [o for o in active if cloud is None or o.id != cloud.id]
        if isinstance(active, tuple)
        else []
    )
    gone = list(deleted) if isinstance(deleted, tuple) else []
    if others:
        out.add(
            CheckId.ONPREM_NOT_YET_SYNCED,
            Status.FAIL,
            "Sync already exported this AD user as "
            + "; ".join(_describe_cloud(o) for o in others)
            + ". Changing its mail gives an error or a quarantined duplicate, not a match.",
            "Match a different AD user, or remove the earlier cloud twin first: take this AD "
            "user out of sync scope (move it to an OU sync does not export, or filter it), run "
            "a sync so that Entra ID soft-deletes the twin, purge the twin from Deleted users "
            "(Entra admin center, or Remove-MgDirectoryDeletedItem), put the AD user back in "
            "scope, then check again before the next sync.",
        )
    elif gone:
        names = "; ".join(
            f"{_describe_cloud(o)}, object id {o.id}, deleted {o.deleted}" for o in gone
        )
        out.add(
            CheckId.ONPREM_NOT_YET_SYNCED,
            Status.FAIL,
            f"A soft-deleted cloud object carries anchor {onprem.anchor}: {names} (typically "
            "the quarantined duplicate of an earlier failed attempt). The next sync RESTORES it "
            "instead of matching.",
            "Hard-delete it first (Entra admin center > Deleted users > Delete permanently, or "
            "Remove-MgDirectoryDeletedItem -DirectoryObjectId <id>), then check again.",
        )
    elif isinstance(active, Unknown) or active is None:
        out.add(
            CheckId.ONPREM_NOT_YET_SYNCED,
            Status.UNKNOWN,
            "Could not be verified: "
            + (active.reason if isinstance(active, Unknown) else "not looked up"),
        )
    elif deleted is None:
        out.add(
            CheckId.ONPREM_NOT_YET_SYNCED,
            Status.PASS,
            f"No other active cloud object carries anchor {onprem.anchor}.",
        )
    elif isinstance(deleted, Unknown):
        why = deleted.reason
        out.add(
            CheckId.ONPREM_NOT_YET_SYNCED,
            Status.UNKNOWN,
            f"No active cloud object carries anchor {onprem.anchor}; soft-deleted objects "
            f"could not be verified: {why}",
        )
    else:
        out.add(
            CheckId.ONPREM_NOT_YET_SYNCED,
            Status.PASS,
            f"No other cloud object, active or soft-deleted, carries anchor {onprem.anchor}.",
        )


def _check_account_enabled(out: _Checks, onprem: OnPremUser, cloud: CloudUser | None) -> None:
    if cloud is None or onprem.enabled == cloud.account_enabled:
        state = "enabled" if onprem.enabled else "disabled"
        if cloud is None and not onprem.enabled:
            out.add(
                CheckId.ONPREM_ACCOUNT_ENABLED,
                Status.WARN,
                "The AD account is disabled: after the match the cloud user is disabled too.",
                "Enable the AD account before the match if the user must keep working.",
            )
        else:
            out.add(
                CheckId.ONPREM_ACCOUNT_ENABLED,
                Status.PASS,
                f"The AD account is {state}"
                + (", like the cloud account." if cloud is not None else "."),
            )
    elif not onprem.enabled:
        out.add(
            CheckId.ONPREM_ACCOUNT_ENABLED,
            Status.WARN,
            "The AD account is disabled and the cloud account enabled: after the match the "
            f"cloud user {cloud.user_principal_name} is disabled too (it takes AD's state).",
            "Enable the AD account before the match if the user must keep working.",
        )
    else:
        out.add(
            CheckId.ONPREM_ACCOUNT_ENABLED,
            Status.WARN,
            f"The AD account is enabled and the cloud account {cloud.user_principal_name} is "
            "blocked from signing in today (e.g. a shared mailbox): after the match it is "
            "ENABLED, with the AD account's password.",
            "Disable the AD account before the match if the cloud account must stay blocked.",
        )


def _check_exchange(out: _Checks, onprem: OnPremUser) -> None:
    kind = onprem.exchange_recipient_type_details
    if not onprem.exchange_schema:
        out.add(
            CheckId.ONPREM_NO_EXCHANGE_MAILBOX,
            Status.SKIP,
            "The AD schema has no Exchange attributes.",
        )
    elif kind in REMOTE_MAILBOX_TYPES:
        out.add(
            CheckId.ONPREM_NO_EXCHANGE_MAILBOX,
            Status.PASS,
            f"A remote mailbox (msExchRecipientTypeDetails {kind}): the on-prem twin of a cloud "
            "mailbox, as it should be.",
        )
    elif kind in ONPREM_MAILBOX_TYPES or (kind is None and onprem.exchange_mailbox_guid):
        shown = kind if kind is not None else "not set, msExchMailboxGuid set"
        out.add(
            CheckId.ONPREM_NO_EXCHANGE_MAILBOX,
            Status.FAIL,
            f"The AD user has an on-prem Exchange mailbox (msExchRecipientTypeDetails {shown}): "
            "there would be a mailbox on both sides.",
            "Let on-prem Exchange manage the address (migrate the mailbox instead).",
        )
    else:
        out.add(CheckId.ONPREM_NO_EXCHANGE_MAILBOX, Status.PASS, "No on-prem Exchange mailbox.")


def _will_carry(facts: Facts, onprem: OnPremUser | None, plan: ChangePlan | None) -> dict[str, str]:
    """Every SMTP address the AD user carries after the change (casefolded -> as written)."""
    if onprem is None:
        return {}
    proxies = onprem.proxy_addresses
    if plan is not None:
        for change in plan.changes:
            if change.attribute == "proxyAddresses":
                proxies = change.after
    carried = {
        v.address.casefold(): v.address
        for v in smtp_values(proxies)
        if not is_service_domain(v.address)
    }
    if onprem.mail and not is_service_domain(onprem.mail) and plan is None:
        carried.setdefault(onprem.mail.casefold(), onprem.mail)
    upn = onprem.user_principal_name
    # Exchange Online adds the UPN as an smtp: address of a mailbox user.
    if upn and facts.mailbox is not False and not is_service_domain(upn):
        carried.setdefault(upn.casefold(), upn)
    return carried


def _check_unique_cloud(
    out: _Checks,
    facts: Facts,
    cloud: CloudUser | None,
    onprem: OnPremUser | None,
    address: str,
    plan: ChangePlan | None,
) -> None:
    if cloud is None:
        out.add(CheckId.UNIQUE_CLOUD, Status.SKIP, "No single cloud user to compare.")
        return
    found: list[Holder] = []
    unknown: list[str] = []
    holders = facts.cloud_holders
    if isinstance(holders, Unknown):
        unknown.append(holders.reason)
    else:
        found += [h for h in holders if h.id != cloud.id]
    carried = _will_carry(facts, onprem, plan)
    carried.pop(address.casefold(), None)
    extra = facts.carried_holders
    if isinstance(extra, Unknown):
        if carried:
            unknown.append(extra.reason)
    elif extra:
        seen = {(h.id, h.value.casefold()) for h in found}
        for holder in extra:
            key = (holder.id, holder.value.casefold())
            relevant = holder.id != cloud.id and _address_of(holder).casefold() in carried
            if relevant and key not in seen:
                seen.add(key)
                found.append(holder)
    if found:
        current = primary_smtp(onprem.proxy_addresses, onprem.mail) if onprem else None
        takeover = [
            h
            for h in found
            if h.kind is ObjectKind.USER and current and same_address(_address_of(h), current)
        ]
        detail = (
            "Other cloud objects hold addresses the AD user will carry: "
            + "; ".join(_describe_holder(h) for h in found)
            + ". Duplicate attribute resiliency would quarantine the address (the match silently "
            "fails and a duplicate appears), or, against a group, the export fails every cycle."
        )
        if takeover:
            detail += (
                f" Worst case: the AD user's CURRENT primary {current} belongs to "
                + "; ".join(f"{h.name!r} ({h.id})" for h in takeover)
                + ": any sync that runs before the change takes over THAT user."
            )
        out.add(
            CheckId.UNIQUE_CLOUD,
            Status.FAIL,
            detail,
            "Remove each named address from the other cloud object (or from the AD user) first, "
            "then check again.",
        )
    elif unknown:
        out.add(
            CheckId.UNIQUE_CLOUD, Status.UNKNOWN, "Could not be verified: " + "; ".join(unknown)
        )
    else:
        shown = ", ".join([address, *carried.values()])
        out.add(
            CheckId.UNIQUE_CLOUD,
            Status.PASS,
            f"No other cloud object holds {shown}.",
        )


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
