"""The change plan: what to write to the AD user so that sync soft-matches it."""

from __future__ import annotations

from bot.models import OnPremUser
from bot.ports import AttributeChange, ChangePlan


def plan_proxy_addresses(current: tuple[str, ...], target: str) -> tuple[str, ...]:
    """``proxyAddresses`` with ``SMTP:<target>`` as the one primary.

    Any other ``SMTP:`` primary is demoted to ``smtp:``; every other value (secondary
    addresses, ``X500:``, ``SIP:``, ...) is kept in order; values equal but for case are kept
    once (the first wins), and the target is never listed twice.
    """
    result = [f"SMTP:{target}"]
    seen = {result[0].casefold()}
    for value in current:
        prefix, sep, rest = value.partition(":")
        if sep and prefix.lower() == "smtp":
            if rest.casefold() == target.casefold():
                continue
            value = f"smtp:{rest}"
        if value.casefold() in seen:
            continue
        seen.add(value.casefold())
        result.append(value)
    return tuple(result)


def plan_change(user: OnPremUser, target: str) -> ChangePlan:
    """The changes that give ``user`` the primary SMTP address ``target``.

    Only attributes whose value really changes are listed; an empty ``changes`` means the AD
    user already carries the address as its primary.
    """
    changes: list[AttributeChange] = []
    mail_before = (user.mail,) if user.mail else ()
    if mail_before != (target,):
        changes.append(AttributeChange("mail", mail_before, (target,)))
    proxies_after = plan_proxy_addresses(user.proxy_addresses, target)
    # Multi-valued attributes have no order in AD: only a different set is a change.
    if set(proxies_after) != set(user.proxy_addresses):
        changes.append(AttributeChange("proxyAddresses", user.proxy_addresses, proxies_after))
    return ChangePlan(dn=user.dn, changes=tuple(changes))
