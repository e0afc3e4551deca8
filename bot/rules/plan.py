"""The change plan: what to write to the AD user so that sync soft-matches it (docs/rules.md)."""

from __future__ import annotations

from collections.abc import Iterable

from bot.models import OnPremUser, ProxyAddress, is_service_domain
from bot.ports import AttributeChange, ChangePlan


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
