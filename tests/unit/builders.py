"""Builders for rule facts: a baseline where every check passes, changed one fact at a time."""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from typing import Any

from bot.models import CloudUser, Holder, ObjectKind, OnPremUser, Tenant
from bot.rules.engine import Facts, Policy

GUID = uuid.UUID("0b1a6f4e-1d2c-4e5f-8a9b-0c1d2e3f4a5b").bytes_le
ANCHOR = base64.b64encode(GUID).decode()
SCOPE = "OU=Staff,DC=contoso,DC=com"


def cloud_user(**kw: Any) -> CloudUser:
    values: dict[str, Any] = dict(
        id="cloud-jane",
        user_principal_name="jane@contoso.com",
        display_name="Jane Doe",
        mail="jane@contoso.com",
        proxy_addresses=("SMTP:jane@contoso.com", "smtp:jane.doe@contoso.com"),
    )
    values.update(kw)
    return CloudUser(**values)


def onprem_user(**kw: Any) -> OnPremUser:
    values: dict[str, Any] = dict(
        dn=f"CN=Jane Doe,{SCOPE}",
        object_guid=GUID,
        sam_account_name="jane",
        user_principal_name="jane@contoso.com",
        display_name="Jane Doe",
        object_sid="S-1-5-21-1-2-3-1105",
        exchange_schema=True,
    )
    values.update(kw)
    return OnPremUser(**values)


def facts(**kw: Any) -> Facts:
    """Facts for jane@contoso.com on which every check passes (or is skipped)."""
    cloud = kw.pop("cloud", cloud_user())
    onprem = kw.pop("onprem", onprem_user())
    values: dict[str, Any] = dict(
        address="jane@contoso.com",
        onprem_id=None,
        cloud_users=(cloud,),
        onprem_users=(onprem,),
        tenant=Tenant(verified_domains=("contoso.com",), block_soft_match=False),
        mailbox=True,
        roles=(),
        cloud_holders=(Holder(ObjectKind.USER, cloud.id, "Jane", "mail", "jane@contoso.com"),),
        onprem_holders=(
            Holder(ObjectKind.USER, onprem.dn, "Jane", "userPrincipalName", "jane@contoso.com"),
        ),
        anchor_owners=(),
        upn_owner=cloud,
    )
    values.update(kw)
    return Facts(**values)


POLICY = Policy(sync_scope=(SCOPE,))


def with_cloud(**kw: Any) -> Facts:
    """Baseline facts whose cloud user has the given fields changed."""
    user = replace(cloud_user(), **kw)
    return facts(cloud=user, upn_owner=user)


def with_onprem(**kw: Any) -> Facts:
    """Baseline facts whose AD user has the given fields changed."""
    return facts(onprem=replace(onprem_user(), **kw))
