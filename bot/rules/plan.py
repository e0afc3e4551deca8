"""The change plan: what to write to the AD user so that sync soft-matches it (docs/rules.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.models import CloudUser, OnPremUser, ProxyAddress, is_service_domain
from bot.ports import AccountNames, AttributeChange, ChangePlan, PlanAction


def plan_proxy_addresses(
    current: tuple[str, ...], target: str, aliases: Iterable[str] = ()
) -> tuple[str, ...]:
    """``proxyAddresses`` with ``SMTP:<target>`` as the one primary, plus ``aliases``.

    Any other ``SMTP:`` primary is demoted to ``smtp:``; every other value (secondary
    addresses, ``X500:``, ``SIP:``, ...) is kept in order; values equal but for case are kept
    once (the first wins), and the target is never listed twice. Each alias (the cloud user's
    secondary addresses, which sync would otherwise delete from the cloud) is appended as
    ``smtp:`` unless AD already carries it; ``*.onmicrosoft.com`` aliases are left out, since
    sync discards them on-prem and Entra ID re-adds them itself.
    """
    primary = ProxyAddress.smtp(target, primary=True)
    result = [str(primary)]
    seen = {result[0].casefold()}
    for raw in current:
        value = ProxyAddress.parse(raw)
        if value.holds(target):
            continue
        text = str(value.demoted())
        if text.casefold() in seen:
            continue
        seen.add(text.casefold())
        result.append(text)
    for alias in aliases:
        text = str(ProxyAddress.smtp(alias))
        if is_service_domain(alias) or text.casefold() in seen:
            continue
        seen.add(text.casefold())
        result.append(text)
    return tuple(result)


def cloud_aliases(proxy_addresses: tuple[str, ...], target: str) -> tuple[str, ...]:
    """The cloud user's secondary SMTP addresses the plan must carry to AD.

    Every SMTP value but the target itself and ``*.onmicrosoft.com`` ones, in order, once each.
    """
    found: list[str] = []
    for value in map(ProxyAddress.parse, proxy_addresses):
        if not value.is_smtp or value.holds(target) or is_service_domain(value.address):
            continue
        if all(value.address.casefold() != a.casefold() for a in found):
            found.append(value.address)
    return tuple(found)


def plan_change(user: OnPremUser, target: str, aliases: Iterable[str] = ()) -> ChangePlan:
    """The changes that give ``user`` the primary SMTP address ``target`` and the ``aliases``.

    Only attributes whose value really changes are listed; an empty ``changes`` means the AD
    user already carries the address as its primary and every alias.
    """
    changes: list[AttributeChange] = []
    mail_before = (user.mail,) if user.mail else ()
    if mail_before != (target,):
        changes.append(AttributeChange("mail", mail_before, (target,)))
    proxies_after = plan_proxy_addresses(user.proxy_addresses, target, aliases)
    # Multi-valued attributes have no order in AD: only a different set is a change.
    if set(proxies_after) != set(user.proxy_addresses):
        changes.append(AttributeChange("proxyAddresses", user.proxy_addresses, proxies_after))
    return ChangePlan(dn=user.dn, changes=tuple(changes))


# -- KB step 2: the plan that creates the missing AD account (docs/rules.md) -------------------

#: The default ``SMTPMATCH_SAM_TEMPLATE``: the cloud UPN's prefix.
DEFAULT_SAM_TEMPLATE = "{upn_prefix}"
#: The fields a ``sAMAccountName`` template may use (Python format syntax; ``{given:.1}``
#: takes the first letter).
SAM_TEMPLATE_FIELDS = ("upn_prefix", "mail_prefix", "given", "sn")
#: AD's limit for ``sAMAccountName``.
MAX_SAM_LENGTH = 20
#: AD's limit for ``cn`` (the RDN of a user).
MAX_CN_LENGTH = 64
#: How many numbered variants of a name are tried when the plain one is taken.
NAME_VARIANTS = 9
#: ``userAccountControl`` of a normal, enabled account (NORMAL_ACCOUNT, no ACCOUNTDISABLE).
ENABLED_ACCOUNT = 0x200
#: Characters AD does not allow in a ``sAMAccountName`` (plus white space, which it allows
#: but which breaks logons typed by people).
_SAM_INVALID = re.compile(r'["/\\\[\]:;|=,+*?<>@\s]')


def _template_values(cloud: CloudUser, target: str) -> dict[str, str]:
    return {
        "upn_prefix": cloud.user_principal_name.split("@", 1)[0],
        "mail_prefix": target.split("@", 1)[0],
        "given": (cloud.given_name or "").strip(),
        "sn": (cloud.surname or "").strip(),
    }


def check_sam_template(template: str) -> None:
    """Refuse a ``sAMAccountName`` template that names an unknown field or is malformed.

    Raises:
        ValueError: explaining what is wrong (names the allowed fields).
    """
    sample = dict.fromkeys(SAM_TEMPLATE_FIELDS, "x")
    try:
        rendered = template.format(**sample)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"{template!r} is not a valid template ({exc}); use the fields "
            + ", ".join("{" + f + "}" for f in SAM_TEMPLATE_FIELDS)
            + " (e.g. {given:.1}{sn} for the first letter of the given name, then the surname)"
        ) from None
    if not _SAM_INVALID.sub("", rendered):
        raise ValueError(f"{template!r} produces no usable characters")


def _sam_base(cloud: CloudUser, target: str, template: str) -> str:
    values = _template_values(cloud, target)
    try:
        text = template.format(**values)
    except (KeyError, IndexError, ValueError):
        text = ""
    base = _SAM_INVALID.sub("", text).strip(".").lower()
    if not base:  # e.g. {given}{sn} for a user with neither: fall back to the UPN prefix
        base = _SAM_INVALID.sub("", values["upn_prefix"]).strip(".").lower()
    return base or "user"


def sam_candidates(cloud: CloudUser, target: str, template: str) -> tuple[str, ...]:
    """The ``sAMAccountName`` values a new account may take, best first.

    The template's result (invalid characters removed, lower case, at most 20 characters),
    then the same shortened to make room for a number 2, 3, ... Deterministic: the same cloud
    user and template always give the same list.
    """
    base = _sam_base(cloud, target, template)
    found = [base[:MAX_SAM_LENGTH].rstrip(".")]
    for n in range(2, NAME_VARIANTS + 2):
        suffix = str(n)
        found.append(base[: MAX_SAM_LENGTH - len(suffix)].rstrip(".") + suffix)
    return tuple(dict.fromkeys(found))


def cn_candidates(cloud: CloudUser) -> tuple[str, ...]:
    """The ``cn`` values a new account may take in its OU, best first: the display name (else
    given name and surname, else the UPN prefix), then the same with `` 2``, `` 3``, ..."""
    names = " ".join(p for p in (cloud.given_name, cloud.surname) if p and p.strip())
    base = " ".join(
        (cloud.display_name or names or cloud.user_principal_name.split("@", 1)[0]).split()
    )
    found = [base[:MAX_CN_LENGTH]]
    for n in range(2, NAME_VARIANTS + 2):
        suffix = f" {n}"
        found.append(base[: MAX_CN_LENGTH - len(suffix)].rstrip() + suffix)
    return tuple(dict.fromkeys(found))


def escape_rdn(value: str) -> str:
    """``value`` escaped for use as an RDN value (RFC 4514)."""
    out = "".join("\\" + ch if ch in ',+"\\<>;=' else ch for ch in value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


@dataclass(frozen=True, slots=True)
class AccountPlan:
    """The create plan and what the report must say about it.

    Args:
        plan: the plan, or ``None`` when no free name was left (``problem`` says which).
        upn_warning: set when the new account cannot get the cloud UPN (names the one it gets).
        problem: why there is no plan.
    """

    plan: ChangePlan | None
    upn_warning: str | None = None
    problem: str | None = None


def plan_account(
    cloud: CloudUser,
    target: str,
    aliases: Iterable[str],
    ou: str,
    names: AccountNames,
    sam_template: str = DEFAULT_SAM_TEMPLATE,
) -> AccountPlan:
    """The plan that creates the AD user for ``cloud`` in ``ou`` (KB 2641663 step 2).

    Built only from facts: ``names`` says which candidate names AD already uses and what the
    forest's UPN suffixes are. ``mail`` and ``proxyAddresses`` are exactly what a match would
    set on an AD user that has none (the primary plus every alias); the account is enabled.
    """
    taken_cn = {n.casefold() for n in names.taken_cns}
    taken_sam = {n.casefold() for n in names.taken_sams}
    cn = next((c for c in cn_candidates(cloud) if c.casefold() not in taken_cn), None)
    if cn is None:
        return AccountPlan(None, problem=f"every cn tried is taken in {ou}")
    sams = sam_candidates(cloud, target, sam_template)
    sam = next((s for s in sams if s.casefold() not in taken_sam), None)
    if sam is None:
        return AccountPlan(None, problem=f"every sAMAccountName tried ({', '.join(sams)}) is taken")
    upn = cloud.user_principal_name
    suffix = upn.rsplit("@", 1)[-1].casefold()
    warning = None
    if names.upn_taken or suffix not in {s.casefold() for s in names.upn_suffixes}:
        resulting = f"{sam}@{names.dns_domain}"
        why = (
            f"another AD object already has the UPN {upn}"
            if names.upn_taken
            else f"{suffix} is not a UPN suffix of the AD forest"
        )
        warning = (
            f"The new AD account cannot get the cloud UPN {upn} ({why}); it gets {resulting}. "
            "After the match the cloud sign-in name follows AD's UPN, so add the suffix to the "
            "forest first if the user must keep signing in as before."
        )
        if resulting.casefold() == upn.casefold():
            return AccountPlan(None, problem=f"another AD object already has the UPN {upn}")
        upn = resulting
    given, sn = (cloud.given_name or "").strip(), (cloud.surname or "").strip()
    after: list[tuple[str, tuple[str, ...]]] = [
        ("sAMAccountName", (sam,)),
        ("userPrincipalName", (upn,)),
        ("givenName", (given,) if given else ()),
        ("sn", (sn,) if sn else ()),
        ("displayName", ((cloud.display_name or cn).strip(),)),
    ]
    modify = plan_change(OnPremUser(dn="", object_guid=b""), target, aliases)
    after += [(c.attribute, c.after) for c in modify.changes]
    after.append(("userAccountControl", (str(ENABLED_ACCOUNT),)))
    changes = tuple(AttributeChange(a, (), v) for a, v in after if v)
    plan = ChangePlan(dn=f"CN={escape_rdn(cn)},{ou}", changes=changes, action=PlanAction.CREATE)
    return AccountPlan(plan, upn_warning=warning)
