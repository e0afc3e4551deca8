"""Reports and plans as JSON-ready dicts (the ``--json`` shape, and what the store keeps)."""

from __future__ import annotations

from typing import Any

from bot.models import CloudUser, OnPremUser
from bot.ports import AttributeChange, ChangePlan, PlanAction
from bot.rules.checks import Report

#: Attributes that hold one value: shown as a string (or null) rather than a list.
SINGLE_VALUED = frozenset(
    {"mail", "sAMAccountName", "userPrincipalName", "givenName", "sn", "displayName"}
    | {"userAccountControl"}
)


def _value(attribute: str, values: tuple[str, ...]) -> str | list[str] | None:
    if attribute in SINGLE_VALUED:
        return values[0] if values else None
    return list(values)


def _values(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def plan_to_dict(plan: ChangePlan) -> dict[str, Any]:
    """``{"action": "modify", "dn", "changes": [{"attribute", "before", "after"}]}``.

    A match modifies an existing AD user; ``"action": "create"`` creates the AD account (KB
    step 2, docs/rules.md): every change has ``"before": null`` and no password is in it.
    """
    return {
        "action": str(plan.action),
        "dn": plan.dn,
        "changes": [
            {
                "attribute": c.attribute,
                "before": None if plan.creates else _value(c.attribute, c.before),
                "after": _value(c.attribute, c.after),
            }
            for c in plan.changes
        ],
    }


def plan_from_dict(data: dict[str, Any]) -> ChangePlan:
    """The inverse of :func:`plan_to_dict`."""
    return ChangePlan(
        dn=str(data["dn"]),
        changes=tuple(
            AttributeChange(str(c["attribute"]), _values(c["before"]), _values(c["after"]))
            for c in data["changes"]
        ),
        action=PlanAction(data.get("action", PlanAction.MODIFY)),
    )


def cloud_to_dict(user: CloudUser) -> dict[str, Any]:
    """The cloud user as Graph names its properties."""
    return {
        "id": user.id,
        "userPrincipalName": user.user_principal_name,
        "displayName": user.display_name,
        "mail": user.mail,
        "proxyAddresses": list(user.proxy_addresses),
        "userType": user.user_type,
        "accountEnabled": user.account_enabled,
        "onPremisesImmutableId": user.on_premises_immutable_id,
        "onPremisesSyncEnabled": user.on_premises_sync_enabled,
        "onPremisesSecurityIdentifier": user.on_premises_security_identifier,
    }


def onprem_to_dict(user: OnPremUser) -> dict[str, Any]:
    """The AD user as LDAP names its attributes, plus the computed anchor."""
    return {
        "dn": user.dn,
        "objectKind": str(user.kind),
        "sAMAccountName": user.sam_account_name,
        "userPrincipalName": user.user_principal_name,
        "displayName": user.display_name,
        "mail": user.mail,
        "proxyAddresses": list(user.proxy_addresses),
        "enabled": user.enabled,
        "objectSid": user.object_sid,
        "anchor": user.anchor,
    }


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report in the stable ``smtpmatch check --json`` shape, plus extras.

    ``candidates`` lists the AD users to choose from: several found by the address, or the
    likely accounts under another name when none was (verdict ``needs_input``).
    """
    return {
        "address": report.address,
        "verdict": str(report.verdict),
        "cloud": cloud_to_dict(report.cloud) if report.cloud else None,
        "onprem": onprem_to_dict(report.onprem) if report.onprem else None,
        "checks": [
            {
                "id": str(c.id),
                "status": str(c.status),
                "title": c.title,
                "detail": c.detail,
                "remediation": c.remediation,
            }
            for c in report.checks
        ],
        "plan": plan_to_dict(report.plan) if report.plan else None,
        "target_address": report.target_address,
        "summary": report.summary,
        "candidates": [onprem_to_dict(u) for u in report.candidates]
        if len(report.candidates) > 1 or (report.onprem is None and report.candidates)
        else [],
    }
