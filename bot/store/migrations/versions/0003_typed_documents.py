"""Request documents in the typed shape: plan, report and applied as the domain types dump.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Up to revision 0002 the ``plan``, ``report`` and ``applied`` columns held the ``--json`` shape
(camelCase user properties, ``mail`` as a string, the anchor but not the object GUID). From
0003 they hold what :mod:`bot.store.codecs` dumps from the frozen domain types, so the store
reads them back as typed values. This revision converts every stored row:

- plan and applied: each change's ``before`` / ``after`` becomes a list of values;
- report: the users take their field names; the AD object GUID is recovered from the
  Base64 anchor (what sync uses), the account's enabled flag becomes its
  ``userAccountControl``; values the old shape never stored keep their defaults.

The downgrade writes the old shape back and keeps the typed document next to it, under a key
the old code ignores, so that upgrading again loses nothing.

The conversion is written out here rather than imported: a migration must keep meaning what
it meant when it was written, whatever the code does later.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_KEEP = "_typed"  # the typed document, kept inside an old-shaped one by the downgrade
_SINGLE_VALUED = frozenset({"mail"})

_CLOUD = {
    "id": "id",
    "userPrincipalName": "user_principal_name",
    "displayName": "display_name",
    "mail": "mail",
    "proxyAddresses": "proxy_addresses",
    "userType": "user_type",
    "accountEnabled": "account_enabled",
    "onPremisesImmutableId": "on_premises_immutable_id",
    "onPremisesSyncEnabled": "on_premises_sync_enabled",
    "onPremisesSecurityIdentifier": "on_premises_security_identifier",
}
_ONPREM = {
    "dn": "dn",
    "objectKind": "kind",
    "sAMAccountName": "sam_account_name",
    "userPrincipalName": "user_principal_name",
    "displayName": "display_name",
    "mail": "mail",
    "proxyAddresses": "proxy_addresses",
    "objectSid": "object_sid",
}
_UF_NORMAL_ACCOUNT = 0x200
_UF_ACCOUNTDISABLE = 0x2


def _table() -> sa.TableClause:
    doc = sa.JSON().with_variant(JSONB(), "postgresql")
    return sa.table(
        "requests",
        sa.column("id", sa.String()),
        sa.column("plan", doc),
        sa.column("report", doc),
        sa.column("applied", doc),
    )


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _typed_plan(plan: Any) -> Any:
    if not isinstance(plan, dict):
        return plan
    if _KEEP in plan:
        return plan[_KEEP]
    changes = [
        {
            "attribute": str(c.get("attribute")),
            "before": _values(c.get("before")),
            "after": _values(c.get("after")),
        }
        for c in plan.get("changes") or []
    ]
    return {"dn": str(plan.get("dn") or ""), "changes": changes}


def _urlsafe(anchor: Any) -> str:
    try:
        raw = base64.b64decode(str(anchor or ""), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _typed_cloud(user: Any) -> Any:
    if not isinstance(user, dict) or "userPrincipalName" not in user:
        return user
    typed = {new: user[old] for old, new in _CLOUD.items() if old in user}
    typed["proxy_addresses"] = _values(typed.get("proxy_addresses"))
    return typed


def _typed_onprem(user: Any) -> Any:
    if not isinstance(user, dict) or ("anchor" not in user and "object_guid" in user):
        return user
    typed = {new: user[old] for old, new in _ONPREM.items() if old in user}
    typed["proxy_addresses"] = _values(typed.get("proxy_addresses"))
    typed["object_guid"] = _urlsafe(user.get("anchor"))
    enabled = user.get("enabled", True)
    typed["user_account_control"] = _UF_NORMAL_ACCOUNT | (0 if enabled else _UF_ACCOUNTDISABLE)
    return typed


def _typed_report(report: Any) -> Any:
    if not isinstance(report, dict):
        return report
    if _KEEP in report:
        return report[_KEEP]
    return {
        "address": report.get("address"),
        "verdict": report.get("verdict"),
        "checks": [
            {
                "id": c.get("id"),
                "status": c.get("status"),
                "title": c.get("title") or "",
                "detail": c.get("detail") or "",
                "remediation": c.get("remediation"),
            }
            for c in report.get("checks") or []
        ],
        "target_address": report.get("target_address"),
        "cloud": _typed_cloud(report.get("cloud")),
        "onprem": _typed_onprem(report.get("onprem")),
        "candidates": [_typed_onprem(u) for u in report.get("candidates") or []],
        "plan": _typed_plan(report.get("plan")) if report.get("plan") else None,
        "summary": report.get("summary") or "",
    }


def _old_plan(plan: Any) -> Any:
    if not isinstance(plan, dict):
        return plan

    def shown(attribute: str, values: list[str]) -> Any:
        if attribute in _SINGLE_VALUED:
            return values[0] if values else None
        return values

    return {
        "dn": plan.get("dn"),
        "changes": [
            {
                "attribute": c["attribute"],
                "before": shown(c["attribute"], list(c.get("before") or [])),
                "after": shown(c["attribute"], list(c.get("after") or [])),
            }
            for c in plan.get("changes") or []
        ],
        _KEEP: plan,
    }


def _old_user(user: Any, names: dict[str, str]) -> Any:
    if not isinstance(user, dict):
        return user
    old = {old_name: user.get(new) for old_name, new in names.items()}
    if "object_guid" in user:
        raw = base64.urlsafe_b64decode(str(user.get("object_guid") or ""))
        old["anchor"] = base64.b64encode(raw).decode("ascii")
        old["enabled"] = not int(user.get("user_account_control") or 0) & _UF_ACCOUNTDISABLE
    return old


def _old_report(report: Any) -> Any:
    if not isinstance(report, dict) or _KEEP in report:
        return report
    old = dict(report)
    old["cloud"] = _old_user(report.get("cloud"), _CLOUD)
    old["onprem"] = _old_user(report.get("onprem"), _ONPREM)
    old["candidates"] = [_old_user(u, _ONPREM) for u in report.get("candidates") or []]
    old["plan"] = _old_plan(report.get("plan")) if report.get("plan") else None
    old[_KEEP] = report
    return old


def _rewrite(*, up: bool) -> None:
    requests = _table()
    conn = op.get_bind()
    rows = conn.execute(sa.select(requests)).mappings().all()
    plan_of, report_of = (_typed_plan, _typed_report) if up else (_old_plan, _old_report)
    for row in rows:
        values = {"plan": plan_of(row["plan"]), "report": report_of(row["report"])}
        if row["applied"] is not None:
            values["applied"] = plan_of(row["applied"])
        conn.execute(sa.update(requests).where(requests.c.id == row["id"]).values(**values))


def upgrade() -> None:
    """Convert every request's documents to the typed shape."""
    _rewrite(up=True)


def downgrade() -> None:
    """Write the old shape back (keeping the typed document for the next upgrade)."""
    _rewrite(up=False)
