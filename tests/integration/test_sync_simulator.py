"""The Graph emulator's sync simulator against the real Samba AD: Entra ID's matching order,
its blocks, duplicate attribute resiliency, and the signed webhook that starts a sync."""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Iterator

import httpx
import ldap3
import pytest

from bot.sync_triggers import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook
from tests.support.graph_emulator import (
    EmulatedUser,
    ExportAction,
    GraphEmulator,
    LdapParams,
    SyncSimulator,
)
from tests.support.samba import AdSandbox, SambaDC

SECRET = "runbook-secret"


@pytest.fixture
def simulator(graph: GraphEmulator, samba_dc: SambaDC) -> SyncSimulator:
    """The simulator on the emulator's tenant, reading the session's Samba DC."""
    return SyncSimulator(graph.state, LdapParams.of_samba(samba_dc))


@pytest.fixture
def https(graph: GraphEmulator) -> Iterator[httpx.Client]:
    """An HTTP client that trusts the emulator's test CA."""
    with httpx.Client(verify=ssl.create_default_context(cafile=str(graph.ca_file))) as client:
        yield client


def raw_attribute(dc: SambaDC, dn: str, name: str) -> bytes | None:
    """One binary attribute as the server stores it."""
    conn = dc.connection
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[name])
    values = conn.response[0]["raw_attributes"].get(name) or []
    return bytes(values[0]) if values else None


def anchor_of(dc: SambaDC, dn: str) -> str:
    """Base64 of the 16 raw objectGUID bytes: what onPremisesImmutableId must become."""
    guid = raw_attribute(dc, dn, "objectGUID")
    assert guid is not None and len(guid) == 16
    return base64.b64encode(guid).decode("ascii")


def seed_pair(ad: AdSandbox, graph: GraphEmulator, local: str = "jane") -> tuple[str, str, str]:
    """An AD user with the address as its primary SMTP and a cloud user holding it."""
    address = ad.address(local)
    dn = ad.add_user(ad.sam(local), upn=address, mail=address, proxy_addresses=[f"SMTP:{address}"])
    user = graph.state.add_user(address, mail=address, proxy_addresses=[f"SMTP:{address}"])
    return address, dn, user.id


def users_with_anchor(graph: GraphEmulator, anchor: str) -> list[EmulatedUser]:
    with graph.state.lock:
        return [u for u in graph.state.users.values() if u.on_premises_immutable_id == anchor]


# -- matching ---------------------------------------------------------------------------------


def test_a_soft_match_binds_the_cloud_user_to_the_base64_object_guid(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator, samba_dc: SambaDC
) -> None:
    _, dn, cloud_id = seed_pair(ad, graph)

    [export] = simulator.run(dn=dn)

    anchor = anchor_of(samba_dc, dn)
    assert export.action is ExportAction.MATCHED and export.matched_on == "proxyAddresses"
    assert export.cloud_user_id == cloud_id and export.anchor == anchor
    user = graph.state.users[cloud_id]
    assert user.on_premises_immutable_id == anchor
    assert user.on_premises_sync_enabled is True
    assert user.on_premises_security_identifier.startswith("S-1-5-21-")
    assert user.on_premises_provisioning_errors == []
    assert len(graph.state.users) == 1  # no duplicate


def test_the_simulator_stamps_the_object_guid_into_an_empty_consistency_guid(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator, samba_dc: SambaDC
) -> None:
    _, dn, _ = seed_pair(ad, graph)
    assert raw_attribute(samba_dc, dn, "mS-DS-ConsistencyGuid") is None

    simulator.run(dn=dn)

    assert raw_attribute(samba_dc, dn, "mS-DS-ConsistencyGuid") == raw_attribute(
        samba_dc, dn, "objectGUID"
    )


def test_a_set_consistency_guid_is_the_anchor(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    _, dn, cloud_id = seed_pair(ad, graph)
    consistency = bytes(range(16))
    ad.set_values(dn, "mS-DS-ConsistencyGuid", [consistency])

    simulator.run(dn=dn)

    expected = base64.b64encode(consistency).decode()
    assert graph.state.users[cloud_id].on_premises_immutable_id == expected


def test_the_primary_smtp_comes_from_proxy_addresses_before_mail(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    address = ad.address("jane")
    other = ad.address("jane.old")
    dn = ad.add_user(
        ad.sam("jane"),
        upn=ad.address("jane.upn"),
        mail=other,
        proxy_addresses=[f"smtp:{other}", f"SMTP:{address.upper()}"],
    )
    user = graph.state.add_user(address, mail=address, proxy_addresses=[f"SMTP:{address}"])
    graph.state.set_feature("softMatchOnUpnEnabled", False)

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.MATCHED and export.cloud_user_id == user.id


def test_an_onmicrosoft_primary_is_ignored_and_mail_is_the_primary_smtp(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    address = ad.address("jane")
    routing = ad.address("jane", domain="contoso.onmicrosoft.com")
    dn = ad.add_user(
        ad.sam("jane"),
        upn=ad.address("jane.upn"),
        mail=address,
        proxy_addresses=[f"SMTP:{routing}"],
    )
    user = graph.state.add_user(address, mail=address, proxy_addresses=[f"SMTP:{address}"])

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.MATCHED and export.cloud_user_id == user.id
    assert graph.state.users[user.id].proxy_addresses == [f"SMTP:{address}", f"smtp:{routing}"]


def test_a_cloud_user_with_an_admin_role_is_not_matched_and_a_duplicate_appears(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator, samba_dc: SambaDC
) -> None:
    address, dn, cloud_id = seed_pair(ad, graph)
    graph.state.set_roles(cloud_id, active=["Exchange Administrator"])

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.CREATED
    assert "Existing Admin Role Conflict" in export.reason
    target = graph.state.users[cloud_id]
    assert target.on_premises_immutable_id is None and target.on_premises_sync_enabled is None
    [duplicate] = users_with_anchor(graph, anchor_of(samba_dc, dn))
    assert duplicate.id == export.cloud_user_id != cloud_id
    assert duplicate.on_premises_sync_enabled is True
    errors = {
        (e.property_causing_error, e.value) for e in duplicate.on_premises_provisioning_errors
    }
    assert errors == {("ProxyAddresses", f"SMTP:{address}"), ("UserPrincipalName", address)}
    assert all(e.category == "PropertyConflict" for e in duplicate.on_premises_provisioning_errors)
    assert all(e.occurred_date_time for e in duplicate.on_premises_provisioning_errors)
    # Quarantined values stay off the new user; its UPN is the documented placeholder.
    assert duplicate.proxy_addresses == [] and duplicate.mail is None
    local = address.split("@")[0]
    assert duplicate.user_principal_name.startswith(f"{local}+")
    assert duplicate.user_principal_name.endswith("@contoso.onmicrosoft.com")


def test_an_admin_role_through_a_role_assignable_group_blocks_too(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    _, dn, cloud_id = seed_pair(ad, graph)
    graph.state.add_group(
        "Helpdesk admins",
        is_assignable_to_role=True,
        members=[cloud_id],
        roles=["Helpdesk Administrator"],
    )

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.CREATED
    assert "Helpdesk Administrator" in export.reason


def test_a_pim_eligible_role_does_not_block_the_match(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    _, dn, cloud_id = seed_pair(ad, graph)
    graph.state.set_roles(cloud_id, eligible=["Global Administrator"])

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.MATCHED


def test_a_cloud_group_holding_the_address_quarantines_the_new_users_proxy_address(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator, samba_dc: SambaDC
) -> None:
    address = ad.address("sales")
    dn = ad.add_user(ad.sam("sales"), upn=ad.address("sales.person"), mail=address)
    group = graph.state.add_group("Sales", mail=address, proxy_addresses=[f"SMTP:{address}"])

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.CREATED
    [created] = users_with_anchor(graph, anchor_of(samba_dc, dn))
    assert [
        (e.property_causing_error, e.value) for e in created.on_premises_provisioning_errors
    ] == [("ProxyAddresses", f"SMTP:{address}")]
    assert created.proxy_addresses == [] and created.mail is None
    assert created.user_principal_name == ad.address("sales.person")  # the UPN was free
    assert graph.state.groups[group.id].proxy_addresses == [f"SMTP:{address}"]


def test_a_group_sharing_the_cloud_users_address_makes_the_soft_match_fail(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    address, dn, cloud_id = seed_pair(ad, graph)
    graph.state.add_group("Jane's list", mail=address, proxy_addresses=[f"smtp:{address}"])

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.CREATED
    assert "not unique" in export.reason
    assert graph.state.users[cloud_id].on_premises_immutable_id is None
    assert ("ProxyAddresses", f"SMTP:{address}") in {
        (e.property_causing_error, e.value) for e in export.errors
    }


def test_an_already_synced_cloud_user_is_not_soft_matched(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    _, dn, cloud_id = seed_pair(ad, graph)
    with graph.state.lock:
        graph.state.users[cloud_id].on_premises_immutable_id = "c29tZW9uZSBlbHNl"

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.CREATED
    assert "InvalidSoftMatch" in export.reason
    assert graph.state.users[cloud_id].on_premises_immutable_id == "c29tZW9uZSBlbHNl"


def test_block_soft_match_enabled_blocks_the_match(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    _, dn, cloud_id = seed_pair(ad, graph)
    graph.state.set_feature("blockSoftMatchEnabled", True)

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.CREATED
    assert "blockSoftMatchEnabled" in export.reason
    assert graph.state.users[cloud_id].on_premises_sync_enabled is None


def test_a_upn_soft_match_binds_when_the_tenant_allows_it(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    upn = ad.address("upnonly")
    dn = ad.add_user(ad.sam("upnonly"), upn=upn)
    user = graph.state.add_user(upn)

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.MATCHED and export.matched_on == "userPrincipalName"
    assert export.cloud_user_id == user.id


def test_without_upn_soft_matching_the_same_upn_gives_a_new_user_with_a_placeholder_upn(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    upn = ad.address("upnonly")
    dn = ad.add_user(ad.sam("upnonly"), upn=upn)
    user = graph.state.add_user(upn)
    graph.state.set_feature("softMatchOnUpnEnabled", False)

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.CREATED and export.cloud_user_id != user.id
    assert [(e.property_causing_error, e.value) for e in export.errors] == [
        ("UserPrincipalName", upn)
    ]


def test_an_ad_user_nobody_holds_becomes_a_new_synced_cloud_user(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator, samba_dc: SambaDC
) -> None:
    address = ad.address("newbie")
    dn = ad.add_user(ad.sam("newbie"), upn=address, mail=address, display_name="Newbie")

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.CREATED and export.errors == ()
    created = graph.state.users[export.cloud_user_id]
    assert created.user_principal_name == address
    assert created.proxy_addresses == [f"SMTP:{address}"] and created.mail == address
    assert created.on_premises_immutable_id == anchor_of(samba_dc, dn)
    assert created.display_name == "Newbie"


def test_a_hard_match_on_an_already_bound_user_updates_it_from_ad(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    address, dn, cloud_id = seed_pair(ad, graph)
    [first] = simulator.run(dn=dn)
    assert first.action is ExportAction.MATCHED
    alias = ad.address("jane.alias")
    ad.set_values(dn, "proxyAddresses", [f"SMTP:{address}", f"smtp:{alias}"])

    [second] = simulator.run(dn=dn)

    assert second.action is ExportAction.UPDATED and second.matched_on == "sourceAnchor"
    assert second.cloud_user_id == cloud_id
    user = graph.state.users[cloud_id]
    assert sorted(user.proxy_addresses) == sorted([f"SMTP:{address}", f"smtp:{alias}"])
    assert len(graph.state.users) == 1


def test_a_hard_match_takeover_of_a_cloud_object_can_be_blocked(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator, samba_dc: SambaDC
) -> None:
    address = ad.address("hard")
    dn = ad.add_user(ad.sam("hard"), upn=address)
    user = graph.state.add_user(address, on_premises_immutable_id=anchor_of(samba_dc, dn))
    graph.state.set_feature("blockCloudObjectTakeoverThroughHardMatchEnabled", True)

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.BLOCKED
    assert graph.state.users[user.id].on_premises_sync_enabled is None


def test_a_scope_run_exports_every_user_below_it(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    _, jane, _ = seed_pair(ad, graph, "jane")
    _, john, _ = seed_pair(ad, graph, "john")
    ad.add_contact("A contact", mail=ad.address("contact"))

    exports = simulator.run(scope=ad.ou)

    assert sorted(e.dn for e in exports) == sorted([jane, john])
    assert {e.action for e in exports} == {ExportAction.MATCHED}


# -- the webhook ------------------------------------------------------------------------------


def signed(body: bytes, secret: str = SECRET, timestamp: str | None = None) -> dict[str, str]:
    stamp = timestamp or str(int(time.time()))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign_webhook(secret, stamp, body),
    }


def webhook_body(dn: str, address: str) -> bytes:
    return json.dumps(
        {"event": "smtpmatch.sync_requested", "request_id": "r1", "dn": dn, "address": address}
    ).encode()


def test_a_signed_webhook_runs_the_sync_for_its_dn(
    graph: GraphEmulator, samba_dc: SambaDC, ad: AdSandbox, https: httpx.Client
) -> None:
    address, dn, cloud_id = seed_pair(ad, graph)
    webhook = graph.configure_sync_simulator(LdapParams.of_samba(samba_dc), secret=SECRET)
    body = webhook_body(dn, address)

    response = https.post(graph.sync_webhook_url, content=body, headers=signed(body))

    assert response.status_code == 202
    [call] = webhook.calls
    assert call.ran and call.body["dn"] == dn
    assert [e.action for e in call.exports] == [ExportAction.MATCHED]
    assert graph.state.users[cloud_id].on_premises_sync_enabled is True


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: signed(body, secret="wrong"), id="wrong-secret"),
        pytest.param(lambda body: {"Content-Type": "application/json"}, id="unsigned"),
        pytest.param(
            lambda body: signed(body, timestamp=str(int(time.time()) - 3600)), id="replayed"
        ),
        pytest.param(lambda body: signed(body + b" "), id="body-changed"),
    ],
)
def test_a_badly_signed_webhook_gets_401_and_nothing_runs(
    graph: GraphEmulator, samba_dc: SambaDC, ad: AdSandbox, https: httpx.Client, headers
) -> None:
    address, dn, cloud_id = seed_pair(ad, graph)
    webhook = graph.configure_sync_simulator(LdapParams.of_samba(samba_dc), secret=SECRET)
    body = webhook_body(dn, address)

    response = https.post(graph.sync_webhook_url, content=body, headers=headers(body))

    assert response.status_code == 401
    assert [c.status for c in webhook.calls] == [401]
    assert not webhook.calls[0].ran
    assert graph.state.users[cloud_id].on_premises_immutable_id is None
    assert simulator_exports(graph) == []


def simulator_exports(graph: GraphEmulator) -> list[object]:
    assert graph.sync_webhook is not None
    return list(graph.sync_webhook.simulator.exports)


def test_a_delayed_webhook_answers_at_once_and_syncs_later(
    graph: GraphEmulator, samba_dc: SambaDC, ad: AdSandbox, https: httpx.Client
) -> None:
    address, dn, cloud_id = seed_pair(ad, graph)
    webhook = graph.configure_sync_simulator(LdapParams.of_samba(samba_dc), delay=0.3)
    body = webhook_body(dn, address)

    response = https.post(graph.sync_webhook_url, content=body)

    assert response.status_code == 202
    assert graph.state.users[cloud_id].on_premises_sync_enabled is None
    webhook.wait_for_runs(1, timeout=10)
    assert graph.state.users[cloud_id].on_premises_sync_enabled is True


def test_a_held_webhook_syncs_only_when_released_and_a_disabled_one_never(
    graph: GraphEmulator, samba_dc: SambaDC, ad: AdSandbox, https: httpx.Client
) -> None:
    address, dn, cloud_id = seed_pair(ad, graph)
    webhook = graph.configure_sync_simulator(LdapParams.of_samba(samba_dc), hold=True)
    body = webhook_body(dn, address)

    assert https.post(graph.sync_webhook_url, content=body).status_code == 202
    assert webhook.held == 1 and graph.state.users[cloud_id].on_premises_sync_enabled is None
    [export] = webhook.release()
    assert export.action is ExportAction.MATCHED

    webhook.enabled = False
    assert https.post(graph.sync_webhook_url, content=body).status_code == 202
    assert len(webhook.calls) == 2 and not webhook.calls[1].ran


def test_a_webhook_without_a_dn_is_refused(
    graph: GraphEmulator, samba_dc: SambaDC, https: httpx.Client
) -> None:
    webhook = graph.configure_sync_simulator(LdapParams.of_samba(samba_dc))

    response = https.post(graph.sync_webhook_url, content=b"{}")

    assert response.status_code == 400 and not webhook.calls[0].ran


def test_reset_switches_the_simulator_off(
    graph: GraphEmulator, samba_dc: SambaDC, https: httpx.Client
) -> None:
    graph.configure_sync_simulator(LdapParams.of_samba(samba_dc))

    graph.reset()

    assert graph.sync_webhook is None
    assert https.post(graph.sync_webhook_url, content=b"{}").status_code == 404


# -- round 2 (docs/rules.md): what sync really does in today's tenants ------------------------


def test_a_soft_deleted_object_with_the_anchor_is_restored_instead_of_a_match(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator, samba_dc: SambaDC
) -> None:
    _address, dn, cloud_id = seed_pair(ad, graph)
    ghost = graph.state.add_user(
        "jane+4711@contoso.onmicrosoft.com",
        on_premises_immutable_id=anchor_of(samba_dc, dn),
        on_premises_sync_enabled=True,
    )
    graph.state.delete_user(ghost.id)

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.RESTORED and export.cloud_user_id == ghost.id
    assert ghost.id in graph.state.users and ghost.id not in graph.state.deleted_users
    # The intended target was not matched: it still has no anchor.
    assert graph.state.users[cloud_id].on_premises_immutable_id is None


def test_a_soft_deleted_holder_of_the_address_does_not_block_the_soft_match(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    address, dn, cloud_id = seed_pair(ad, graph)
    old = graph.state.add_user(ad.address("old"), mail=address, proxy_addresses=[])
    graph.state.delete_user(old.id)

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.MATCHED and export.cloud_user_id == cloud_id


def test_a_hard_match_of_a_cloud_user_holding_a_role_is_blocked(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator, samba_dc: SambaDC
) -> None:
    address = ad.address("hardrole")
    dn = ad.add_user(ad.sam("hardrole"), upn=address)
    user = graph.state.add_user(address, on_premises_immutable_id=anchor_of(samba_dc, dn))
    graph.state.set_roles(user.id, active=["Helpdesk Administrator"])

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.BLOCKED
    assert "MC1262584" in export.reason
    assert graph.state.users[user.id].on_premises_sync_enabled is None


def test_a_pending_hard_match_without_a_role_takes_the_cloud_user_over(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator, samba_dc: SambaDC
) -> None:
    address = ad.address("hardok")
    dn = ad.add_user(ad.sam("hardok"), upn=address, mail=address)
    user = graph.state.add_user(address, on_premises_immutable_id=anchor_of(samba_dc, dn))

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.UPDATED
    assert graph.state.users[user.id].on_premises_sync_enabled is True


def test_an_unverified_upn_suffix_becomes_mail_nickname_at_the_initial_domain(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    _address, dn, cloud_id = seed_pair(ad, graph)
    local_upn = f"{ad.sam('jane')}@contoso.local"
    ad.set_values(dn, "userPrincipalName", [local_upn])
    with graph.state.lock:
        graph.state.users[cloud_id].mail_nickname = "jane.nick"

    [export] = simulator.run(dn=dn)

    assert export.action is ExportAction.MATCHED
    assert graph.state.users[cloud_id].user_principal_name == "jane.nick@contoso.onmicrosoft.com"


def test_the_cloud_account_takes_the_ad_account_s_enabled_state(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    _address, dn, cloud_id = seed_pair(ad, graph)
    with graph.state.lock:
        graph.state.users[cloud_id].account_enabled = False  # e.g. a shared mailbox

    simulator.run(dn=dn)

    assert graph.state.users[cloud_id].account_enabled is True


def test_objects_sync_never_exports_are_skipped(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    address = ad.address("skip")
    dn = ad.add_user(ad.sam("skip"), mail=address, extra={"adminDescription": "User_excluded"})
    msol = ad.add_user(f"MSOL_{ad.tag}", mail=ad.address("msol"))

    assert simulator.run(dn=dn) == []
    assert simulator.run(dn=msol) == []
    assert graph.state.users == {}


def test_an_alias_another_object_holds_is_quarantined_and_the_rest_arrive(
    simulator: SyncSimulator, ad: AdSandbox, graph: GraphEmulator
) -> None:
    address, dn, cloud_id = seed_pair(ad, graph)
    kept, taken = ad.address("kept"), ad.address("taken")
    ad.set_values(dn, "proxyAddresses", [f"SMTP:{address}", f"smtp:{kept}", f"smtp:{taken}"])
    graph.state.add_contact("Taken", mail=taken)

    [export] = simulator.run(dn=dn)

    user = graph.state.users[cloud_id]
    assert export.action is ExportAction.MATCHED
    assert f"smtp:{kept}" in user.proxy_addresses
    assert f"smtp:{taken}" not in user.proxy_addresses
    assert [(e.property_causing_error, e.value) for e in export.errors] == [
        ("ProxyAddresses", f"smtp:{taken}")
    ]
