"""KB step 2 against a real Samba AD DC: the one add that creates the user with its password,
name clashes, the TLS guard, the delete by GUID, and the facts the create plan is built from."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import ldap3
import pytest
from ldap3.core.exceptions import LDAPSocketReceiveError
from pydantic import SecretStr

from bot.bootstrap import build_directories
from bot.directories.ad import ActiveDirectory
from bot.errors import (
    ConcurrentModification,
    ConfigurationError,
    InsecureTransport,
    NameTaken,
    NotFound,
)
from bot.models import CloudUser
from bot.ports import ChangePlan
from bot.rules.plan import cn_candidates, plan_account, sam_candidates
from bot.services.create import generate_password
from bot.settings import Settings
from tests.support.samba import AdSandbox, SambaDC

pytestmark = pytest.mark.samba


def _cloud(ad: AdSandbox, local: str, upn_domain: str = "contoso.com") -> CloudUser:
    address = ad.address(local)
    return CloudUser(
        id=str(uuid.uuid4()),
        user_principal_name=f"{local}.{ad.tag}@{upn_domain}",
        display_name=f"Nora New {ad.tag}",
        given_name="Nora",
        surname=f"New{ad.tag}",
        mail=address,
        proxy_addresses=(f"SMTP:{address}", f"smtp:nn.{ad.tag}@contoso.com"),
    )


def _plan(directory: ActiveDirectory, ad: AdSandbox, cloud: CloudUser) -> ChangePlan:
    target = cloud.mail or ""
    sams = sam_candidates(cloud, target, "{upn_prefix}")
    names = directory.account_names(ad.ou, cn_candidates(cloud), sams, cloud.user_principal_name)
    made = plan_account(cloud, target, [f"nn.{ad.tag}@contoso.com"], ad.ou, names)
    assert made.plan is not None
    return made.plan


def _read(ad: AdSandbox, dn: str) -> dict[str, list[Any]]:
    return ad.read(
        dn,
        [
            "sAMAccountName",
            "userPrincipalName",
            "givenName",
            "sn",
            "displayName",
            "mail",
            "proxyAddresses",
            "userAccountControl",
            "objectGUID",
        ],
    )


def _texts(values: list[Any]) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def test_the_add_over_ldaps_creates_an_enabled_user_with_every_planned_attribute(
    ad: AdSandbox, active_directory: ActiveDirectory, samba_dc: SambaDC
) -> None:
    cloud = _cloud(ad, "nora")
    plan = _plan(active_directory, ad, cloud)
    password = generate_password()

    guid = active_directory.create(plan, password)

    stored = _read(ad, plan.dn)
    for change in plan.changes:
        assert sorted(_texts(stored[change.attribute])) == sorted(change.after), change.attribute
    assert int(_texts(stored["userAccountControl"])[0]) & 0x2 == 0  # enabled
    assert uuid.UUID(bytes_le=stored["objectGUID"][0]) == guid
    assert "CN=Nora New" in plan.dn
    # The password was set in the same add: the new account can bind with it (over LDAPS).
    server = ldap3.Server(
        samba_dc.ldaps_url,
        tls=ldap3.Tls(ca_certs_file=str(samba_dc.ca_file), validate=2),
    )
    conn = ldap3.Connection(server, user=plan.value("userPrincipalName"), password=password)
    assert conn.bind(), conn.result
    conn.unbind()


def test_the_plan_reads_the_forest_upn_suffixes_and_keeps_the_cloud_upn_when_listed(
    ad: AdSandbox, active_directory: ActiveDirectory, samba_dc: SambaDC
) -> None:
    suffix = f"t{ad.tag}.example"
    partitions = f"CN=Partitions,CN=Configuration,{samba_dc.base_dn}"
    samba_dc.modify(partitions, {"uPNSuffixes": [(ldap3.MODIFY_ADD, [suffix])]})
    try:
        cloud = _cloud(ad, "upn", upn_domain=suffix)
        names = active_directory.account_names(ad.ou, ["x"], ["y"], cloud.user_principal_name)
        plan = _plan(active_directory, ad, cloud)
    finally:
        samba_dc.modify(partitions, {"uPNSuffixes": [(ldap3.MODIFY_DELETE, [suffix])]})

    assert "contoso.test" in names.upn_suffixes and suffix in names.upn_suffixes
    assert names.dns_domain.lower() == "contoso.test"
    assert plan.value("userPrincipalName") == cloud.user_principal_name


def test_a_cloud_upn_outside_the_forest_suffixes_is_replaced_and_warned_about(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    cloud = _cloud(ad, "warn")  # contoso.com is not a suffix of the CONTOSO.TEST forest
    target = cloud.mail or ""
    sams = sam_candidates(cloud, target, "{upn_prefix}")
    names = active_directory.account_names(
        ad.ou, cn_candidates(cloud), sams, cloud.user_principal_name
    )

    made = plan_account(cloud, target, [], ad.ou, names)

    assert made.plan is not None
    resulting = made.plan.value("userPrincipalName")
    assert resulting == f"{made.plan.value('sAMAccountName')}@contoso.test"
    assert made.upn_warning is not None and resulting in made.upn_warning


def test_a_cn_taken_in_the_ou_fails_cleanly_and_names_it(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    cloud = _cloud(ad, "clash")
    plan = _plan(active_directory, ad, cloud)
    cn = plan.dn.split(",", 1)[0].split("=", 1)[1]
    # Someone else creates an object with that very cn (after the plan was made).
    ad.dc._add(
        plan.dn,
        ["top", "person", "organizationalPerson", "user"],
        {"sAMAccountName": ad.sam("other")},
    )

    with pytest.raises(NameTaken) as caught:
        active_directory.create(plan, generate_password())

    assert caught.value.attribute == "cn" and cn in str(caught.value)
    assert ad.dc.find(f"(sAMAccountName={plan.value('sAMAccountName')})") == []


def test_a_sam_account_name_taken_in_the_domain_fails_cleanly_and_names_it(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    cloud = _cloud(ad, "samclash")
    plan = _plan(active_directory, ad, cloud)
    sam = plan.value("sAMAccountName") or ""
    elsewhere = ad.add_ou("elsewhere")
    ad.add_user(sam, ou=elsewhere)

    with pytest.raises(NameTaken) as caught:
        active_directory.create(plan, generate_password())

    assert caught.value.attribute == "sAMAccountName" and sam in str(caught.value)
    assert ad.dc.find(f"(displayName={cloud.display_name})") == []


def test_the_names_a_plan_avoids_are_read_from_ad(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    cloud = _cloud(ad, "taken")
    first = _plan(active_directory, ad, cloud)
    active_directory.create(first, generate_password())

    second = _plan(active_directory, ad, cloud)

    assert second.dn != first.dn and second.dn.startswith(f"CN=Nora New {ad.tag} 2,")
    assert second.value("sAMAccountName") == f"{first.value('sAMAccountName')}2"


class _PlainPool:
    """Hands out a connection over plain ldap:// WITHOUT StartTLS (anonymously bound), to
    prove the adapter refuses to send a password over it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: list[str] = []
        self.endpoints = url

    def lease(self) -> Iterator[Any]:
        from contextlib import contextmanager

        @contextmanager
        def lease() -> Iterator[Any]:
            conn = ldap3.Connection(ldap3.Server(self.url), auto_bind=True)
            original = conn.add

            def add(*args: Any, **kwargs: Any) -> Any:
                self.sent.append(str(args[0]))
                return original(*args, **kwargs)

            conn.add = add  # type: ignore[method-assign]

            class Lease:
                fresh = True
                broken = False
                server = self.url

            Lease.conn = conn  # type: ignore[attr-defined]
            try:
                yield Lease
            finally:
                conn.unbind()

        return lease()


def test_plain_ldap_without_tls_is_refused_before_anything_is_sent(
    ad: AdSandbox, ad_settings: Settings, samba_dc: SambaDC
) -> None:
    with ActiveDirectory.from_settings(ad_settings) as directory:
        plan = _plan(directory, ad, _cloud(ad, "plain"))
        plain = _PlainPool(samba_dc.ldap_url)
        secure, directory._pool = directory._pool, plain  # type: ignore[assignment]
        try:
            with pytest.raises(InsecureTransport) as caught:
                directory.create(plan, "Never-Sent-1!")
        finally:
            directory._pool = secure

    assert plain.sent == []
    assert "not encrypted" in str(caught.value) and "Never-Sent" not in str(caught.value)
    assert ad.dc.find(f"(sAMAccountName={plan.value('sAMAccountName')})") == []


def test_delete_removes_exactly_the_object_with_that_guid(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    plan = _plan(active_directory, ad, _cloud(ad, "gone"))
    guid = active_directory.create(plan, generate_password())
    neighbour = ad.add_user(ad.sam("stays"))

    with pytest.raises(NotFound):
        active_directory.delete(plan.dn, uuid.uuid4())
    with pytest.raises(ConcurrentModification):
        active_directory.delete(neighbour, guid)
    active_directory.delete(plan.dn, guid)

    assert ad.dc.find(f"(sAMAccountName={plan.value('sAMAccountName')})") == []
    assert ad.dc.find(f"(sAMAccountName={ad.sam('stays')})") != []


def _with_creation_ou(ad_settings: Settings, ou: str) -> Settings:
    return ad_settings.model_copy(
        update={
            "smtpmatch_create_ou": ou,
            "azure_tenant_id": "00000000-0000-0000-0000-000000000001",
            "azure_client_id": "00000000-0000-0000-0000-000000000002",
            "azure_client_secret": SecretStr("not-used-here"),
        }
    )


def test_start_up_refuses_a_creation_ou_that_does_not_exist(
    ad: AdSandbox, ad_settings: Settings
) -> None:
    missing = f"OU=Nowhere,{ad.ou}"

    with pytest.raises(ConfigurationError) as caught:
        build_directories(_with_creation_ou(ad_settings, missing))

    message = str(caught.value)
    assert message.startswith("SMTPMATCH_CREATE_OU:") and missing in message
    assert "\n" not in message


def test_start_up_accepts_an_existing_creation_ou_and_offers_the_creation(
    ad: AdSandbox, ad_settings: Settings
) -> None:
    dirs = build_directories(_with_creation_ou(ad_settings, ad.ou))
    try:
        assert dirs.policy.create_ou == ad.ou
    finally:
        dirs.onprem.close()  # type: ignore[attr-defined]


def test_a_creation_on_a_dropped_connection_is_made_once(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    plan = _plan(active_directory, ad, _cloud(ad, "drop"))
    for conn in active_directory._pool._idle:
        conn.socket.shutdown(socket.SHUT_RDWR)

    guid = active_directory.create(plan, generate_password())

    [dn] = ad.dc.find(f"(sAMAccountName={plan.value('sAMAccountName')})")
    assert dn.lower() == plan.dn.lower()
    assert uuid.UUID(bytes_le=ad.read(dn, ["objectGUID"])["objectGUID"][0]) == guid


def test_a_connection_lost_after_the_add_reached_the_server_is_not_added_twice(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    plan = _plan(active_directory, ad, _cloud(ad, "lost"))
    [conn] = active_directory._pool._idle
    original = conn.add

    def add_then_drop(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)  # the server made the account...
        conn.socket.shutdown(socket.SHUT_RDWR)  # ...and the answer was lost
        raise LDAPSocketReceiveError("connection lost after the add")

    conn.add = add_then_drop  # type: ignore[method-assign]

    guid = active_directory.create(plan, generate_password())

    [dn] = ad.dc.find(f"(sAMAccountName={plan.value('sAMAccountName')})")
    assert uuid.UUID(bytes_le=ad.read(dn, ["objectGUID"])["objectGUID"][0]) == guid
