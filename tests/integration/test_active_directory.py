"""The Active Directory adapter against a real Samba AD DC: lookups, holders and the write."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import SecretStr

from bot.directories.ad import ActiveDirectory
from bot.errors import (
    ConcurrentModification,
    NotFound,
    PermissionMissing,
    SchemaViolation,
)
from bot.models import CloudUser, Holder, ObjectKind, RoleAssignment, Tenant, Unknown
from bot.ports import AttributeChange, ChangePlan
from bot.rules.checks import CheckId, Status, Verdict
from bot.rules.plan import plan_change
from bot.services.check import Directories, check_match
from tests.support.samba import USER_PASSWORD, AdSandbox, SambaDC

pytestmark = pytest.mark.samba


def _dns(users: Sequence[Any]) -> set[str]:
    return {u.dn.casefold() for u in users}


# -- find_users: by address -----------------------------------------------------------------


@pytest.mark.parametrize("held_as", ["userPrincipalName", "mail", "primary proxy", "alias proxy"])
def test_an_address_finds_the_user_holding_it(
    ad: AdSandbox, active_directory: ActiveDirectory, held_as: str
) -> None:
    address = ad.address("jane")
    seeded = {
        "userPrincipalName": {"upn": address},
        "mail": {"mail": address},
        "primary proxy": {"proxy_addresses": [f"SMTP:{address}"]},
        "alias proxy": {"proxy_addresses": [f"smtp:{address}", f"SMTP:{ad.address('other')}"]},
    }[held_as]
    dn = ad.add_user(ad.sam("jane"), **seeded)

    users = active_directory.find_users(address, None)

    assert [u.dn for u in users] == [dn]


def test_the_local_part_finds_a_user_by_sam_account_name(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    sam = ad.sam("jdoe")
    dn = ad.add_user(sam)

    users = active_directory.find_users(f"{sam}@contoso.com", None)

    assert [u.dn for u in users] == [dn]
    assert users[0].sam_account_name == sam


def test_a_mixed_case_address_finds_the_same_user(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("Jane.Doe")
    dn = ad.add_user(ad.sam("jane"), mail=address, proxy_addresses=[f"SMTP:{address}"])

    assert _dns(active_directory.find_users(address.upper(), None)) == {dn.casefold()}
    assert _dns(active_directory.find_users(address.lower(), None)) == {dn.casefold()}


def test_several_users_holding_the_address_are_all_candidates_once_each(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("shared")
    first = ad.add_user(ad.sam("first"), upn=address, mail=address)
    second = ad.add_user(ad.sam("second"), proxy_addresses=[f"smtp:{address}"])

    users = active_directory.find_users(address, None)

    assert len(users) == 2
    assert _dns(users) == {first.casefold(), second.casefold()}


def test_contacts_groups_and_computers_are_not_candidates_by_address(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("nobody")
    ad.add_contact(f"contact {ad.tag}", mail=address)
    ad.add_group(f"grp{ad.tag}", mail=address, proxy_addresses=[f"SMTP:{address}"])

    assert active_directory.find_users(address, None) == ()


def test_an_unknown_address_finds_nobody(ad: AdSandbox, active_directory: ActiveDirectory) -> None:
    assert active_directory.find_users(ad.address("ghost"), None) == ()


# -- find_users: by the account the requester named ------------------------------------------


def test_an_explicit_dn_upn_or_account_name_finds_exactly_that_user(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("jane")
    sam = ad.sam("jdoe")
    upn = f"{sam}@contoso.test"
    dn = ad.add_user(sam, upn=upn)
    # Another user holds the address: naming the account must ignore it.
    ad.add_user(ad.sam("other"), mail=address)

    for onprem_id in (dn, dn.upper(), upn, upn.upper(), sam, f"CONTOSO\\{sam}"):
        users = active_directory.find_users(address, onprem_id)
        assert [u.dn.casefold() for u in users] == [dn.casefold()], onprem_id


def test_an_explicit_id_finds_a_contact_group_or_computer_so_the_rules_can_refuse_it(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("x")
    contact = ad.add_contact(f"contact {ad.tag}", mail=address)
    group_name = ad.sam("grp")
    ad.add_group(group_name)
    computer_name = ad.sam("pc")[:15]
    ad.add_computer(computer_name)

    (by_dn,) = active_directory.find_users(address, contact)
    (group,) = active_directory.find_users(address, group_name)
    (computer,) = active_directory.find_users(address, f"{computer_name}$")

    assert by_dn.kind is ObjectKind.CONTACT
    assert group.kind is ObjectKind.GROUP
    assert computer.kind is ObjectKind.COMPUTER


def test_an_explicit_id_that_does_not_exist_finds_nothing(
    ad: AdSandbox, active_directory: ActiveDirectory, samba_dc: SambaDC
) -> None:
    address = ad.address("x")
    missing = (
        f"CN=missing,{ad.ou}",
        "nosuchuser",
        "nosuchuser@contoso.test",
        # A valid DN outside the configured base DN is not looked up at all.
        "CN=x,DC=elsewhere,DC=test",
    )
    for onprem_id in missing:
        assert active_directory.find_users(address, onprem_id) == (), onprem_id


# -- injection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "onprem_id", ["*)(mail=*", "*", "*)(|(objectClass=*", "x)(sAMAccountName=*", "\\2a", "a\x00"]
)
def test_an_injected_account_name_finds_nothing(
    ad: AdSandbox, active_directory: ActiveDirectory, onprem_id: str
) -> None:
    address = ad.address("jane")
    ad.add_user(ad.sam("jane"), mail=address, upn=address)

    assert active_directory.find_users(address.replace("jane", "ghost"), onprem_id) == ()


@pytest.mark.parametrize("local", ["*", "jane*", "*)(mail=*", "x)(objectClass=*"])
def test_an_injected_address_finds_nothing_extra(
    ad: AdSandbox, active_directory: ActiveDirectory, local: str
) -> None:
    ad.add_user(ad.sam("jane"), mail=ad.address("jane"), upn=ad.address("jane"))
    ad.add_contact(f"c {ad.tag}", mail=ad.address("contact"))
    address = f"{local}@contoso.com"

    assert active_directory.find_users(address, None) == ()
    assert active_directory.find_holders(address) == ()
    assert active_directory.find_holders("*") == ()


def test_a_value_with_filter_characters_is_matched_literally(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    # '*' is a legal character in the local part of an address, so it must match itself.
    address = f"star*{ad.tag}@contoso.com"
    dn = ad.add_user(ad.sam("star"), mail=address)

    assert [u.dn for u in active_directory.find_users(address, None)] == [dn]
    assert [h.id for h in active_directory.find_holders(address)] == [dn]


# -- the facts read -------------------------------------------------------------------------


def test_the_user_facts_are_read_as_the_rules_need_them(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("jane")
    sam = ad.sam("jane")
    dn = ad.add_user(
        sam,
        upn=f"{sam}@contoso.test",
        mail=address,
        proxy_addresses=[f"SMTP:{address}", "smtp:alias@contoso.com", "X500:/o=x/cn=y"],
        display_name="Jane Doe",
    )
    stored = ad.read(dn, ["objectGUID"])

    (user,) = active_directory.find_users(address, None)

    assert user.kind is ObjectKind.USER
    assert user.sam_account_name == sam
    assert user.user_principal_name == f"{sam}@contoso.test"
    assert user.display_name == "Jane Doe"
    assert user.mail == address
    assert set(user.proxy_addresses) == {
        f"SMTP:{address}",
        "smtp:alias@contoso.com",
        "X500:/o=x/cn=y",
    }
    assert user.enabled
    assert user.object_guid == stored["objectGUID"][0]
    assert len(user.object_guid) == 16


def test_the_anchor_is_the_base64_of_the_raw_object_guid(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    sam = ad.sam("jane")
    dn = ad.add_user(sam)
    raw = ad.read(dn, ["objectGUID"])["objectGUID"][0]

    (user,) = active_directory.find_users("x@contoso.com", sam)

    assert user.consistency_guid is None
    assert user.anchor == base64.b64encode(raw).decode()
    # The raw value is the little-endian layout Entra Connect uses.
    assert uuid.UUID(bytes_le=base64.b64decode(user.anchor)).bytes_le == raw


def test_the_consistency_guid_wins_over_the_object_guid_when_set(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    sam = ad.sam("jane")
    dn = ad.add_user(sam)
    consistency = uuid.uuid4().bytes_le
    ad.set_values(dn, "mS-DS-ConsistencyGuid", [consistency])

    (user,) = active_directory.find_users("x@contoso.com", sam)

    assert user.consistency_guid == consistency
    assert user.anchor == base64.b64encode(consistency).decode()
    assert user.object_guid != consistency


def test_the_object_sid_is_read_in_string_form(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    sam = ad.sam("jane")
    ad.add_user(sam)

    (user,) = active_directory.find_users("x@contoso.com", sam)

    assert user.object_sid is not None
    assert user.object_sid.startswith("S-1-5-21-")
    parts = user.object_sid.split("-")
    assert len(parts) == 8 and all(p.isdigit() for p in parts[1:])
    assert int(parts[-1]) >= 1000  # a RID of an ordinary account


def test_a_disabled_account_is_read_as_disabled(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    sam = ad.sam("off")
    ad.add_user(sam, disabled=True)

    (user,) = active_directory.find_users("x@contoso.com", sam)

    assert not user.enabled
    assert user.user_account_control & 0x2


def test_a_schema_without_exchange_attributes_works_and_says_so(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("jane")
    ad.add_user(ad.sam("jane"), mail=address)

    (user,) = active_directory.find_users(address, None)

    assert user.exchange_schema is False
    assert user.exchange_mailbox_guid is None
    assert user.exchange_recipient_type_details is None


# -- find_holders ---------------------------------------------------------------------------


def test_a_duplicate_held_by_a_contact_and_a_group_is_found(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("dup")
    contact = ad.add_contact(f"Contact {ad.tag}", mail=address)
    group = ad.add_group(ad.sam("grp"), proxy_addresses=[f"smtp:{address}"])

    holders = active_directory.find_holders(address)

    assert set(holders) == {
        Holder(ObjectKind.CONTACT, contact, f"Contact {ad.tag}", "mail", address),
        Holder(ObjectKind.GROUP, group, ad.sam("grp"), "proxyAddresses", f"smtp:{address}"),
    }


def test_every_attribute_holding_the_address_is_reported_in_any_prefix_case(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("jane")
    user = ad.add_user(
        ad.sam("jane"),
        upn=address.upper(),
        mail=address,
        proxy_addresses=[f"SMTP:{address}"],
        display_name="Jane",
    )
    alias_holder = ad.add_user(ad.sam("alias"), proxy_addresses=[f"smtp:{address.upper()}"])

    holders = active_directory.find_holders(address.title())

    assert {(h.id, h.attribute, h.value) for h in holders} == {
        (user, "mail", address),
        (user, "proxyAddresses", f"SMTP:{address}"),
        (user, "userPrincipalName", address.upper()),
        (alias_holder, "proxyAddresses", f"smtp:{address.upper()}"),
    }
    assert {h.kind for h in holders} == {ObjectKind.USER}
    assert {h.name for h in holders if h.id == user} == {"Jane"}


def test_a_non_smtp_proxy_or_a_longer_address_is_not_a_holder(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("jane")
    ad.add_user(ad.sam("sip"), proxy_addresses=[f"SIP:{address}", f"smtp:x{address}"])
    ad.add_contact(f"c {ad.tag}", mail=f"{address}.org")

    assert active_directory.find_holders(address) == ()


def test_holders_are_searched_in_the_global_catalog_when_one_is_configured(
    ad: AdSandbox, ad_settings: Any, samba_dc: SambaDC
) -> None:
    address = ad.address("gc")
    contact = ad.add_contact(f"gc {ad.tag}", mail=address)
    # The test DC's own loopback address (127.0.0.1 unless another session holds it).
    settings = ad_settings.model_copy(update={"ldap_gc_url": f"ldaps://{samba_dc.host}:3269"})

    with ActiveDirectory.from_settings(settings) as directory:
        holders = directory.find_holders(address)

    assert [(h.id.casefold(), h.kind) for h in holders] == [
        (contact.casefold(), ObjectKind.CONTACT)
    ]


# -- apply ----------------------------------------------------------------------------------


def test_applying_a_plan_writes_mail_and_proxy_addresses_and_reports_what_is_stored(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    target = ad.address("jane")
    old = ad.address("old")
    dn = ad.add_user(ad.sam("jane"), proxy_addresses=[f"SMTP:{old}", "X500:/o=x/cn=jane"])
    (user,) = active_directory.find_users("x@contoso.com", dn)
    plan = plan_change(user, target)

    applied = active_directory.apply(plan)

    stored = ad.read(dn, ["mail", "proxyAddresses"])
    assert stored["mail"] == [target]
    assert set(stored["proxyAddresses"]) == {f"SMTP:{target}", f"smtp:{old}", "X500:/o=x/cn=jane"}
    assert applied.dn == dn
    assert [(c.attribute, c.before, c.after) for c in applied.changes] == [
        (c.attribute, c.before, c.after) for c in plan.changes
    ]


def test_demoting_the_old_primary_to_a_secondary_in_one_modify_works(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    old = ad.address("old")
    new = ad.address("new")
    dn = ad.add_user(ad.sam("jane"), mail=old, proxy_addresses=[f"SMTP:{old}"])
    plan = ChangePlan(
        dn,
        (
            AttributeChange("proxyAddresses", (f"SMTP:{old}",), (f"SMTP:{new}", f"smtp:{old}")),
            AttributeChange("mail", (old,), (new,)),
        ),
    )

    active_directory.apply(plan)

    stored = ad.read(dn, ["mail", "proxyAddresses"])
    assert sorted(stored["proxyAddresses"]) == sorted([f"SMTP:{new}", f"smtp:{old}"])
    assert stored["mail"] == [new]


def test_a_case_only_change_of_one_proxy_address_is_written_exactly(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("jane")
    dn = ad.add_user(ad.sam("jane"), proxy_addresses=[f"SMTP:{address}", "smtp:keep@contoso.com"])
    plan = ChangePlan(
        dn,
        (
            AttributeChange(
                "proxyAddresses",
                (f"SMTP:{address}", "smtp:keep@contoso.com"),
                (f"smtp:{address}", "smtp:keep@contoso.com"),
            ),
        ),
    )

    applied = active_directory.apply(plan)

    assert set(ad.read(dn, ["proxyAddresses"])["proxyAddresses"]) == {
        f"smtp:{address}",
        "smtp:keep@contoso.com",
    }
    assert set(applied.changes[0].after) == {f"smtp:{address}", "smtp:keep@contoso.com"}


def test_applying_the_inverse_restores_the_old_values(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    old = ad.address("old")
    dn = ad.add_user(ad.sam("jane"), proxy_addresses=[f"SMTP:{old}", "smtp:alias@contoso.com"])
    before = ad.read(dn, ["mail", "proxyAddresses"])
    (user,) = active_directory.find_users("x@contoso.com", dn)
    applied = active_directory.apply(plan_change(user, ad.address("new")))

    active_directory.apply(applied.inverse())

    after = ad.read(dn, ["mail", "proxyAddresses"])
    assert after["mail"] == [] == before["mail"]
    assert set(after["proxyAddresses"]) == set(before["proxyAddresses"])


def test_an_empty_plan_writes_nothing(ad: AdSandbox, active_directory: ActiveDirectory) -> None:
    address = ad.address("jane")
    dn = ad.add_user(ad.sam("jane"), mail=address)

    applied = active_directory.apply(
        ChangePlan(dn, (AttributeChange("mail", (address,), (address,)),))
    )

    assert applied.changes == ()
    assert ad.read(dn, ["mail"])["mail"] == [address]


@pytest.mark.parametrize(
    "meanwhile",
    ["mail was set", "mail was changed", "a proxy was added", "a proxy was removed", "demoted"],
)
def test_a_change_made_between_the_read_and_the_write_is_detected_and_kept(
    ad: AdSandbox, active_directory: ActiveDirectory, meanwhile: str
) -> None:
    old = ad.address("old")
    had_mail = meanwhile != "mail was set"
    dn = ad.add_user(
        ad.sam("jane"),
        mail=old if had_mail else None,
        proxy_addresses=[f"SMTP:{old}", "smtp:alias@contoso.com"],
    )
    (user,) = active_directory.find_users("x@contoso.com", dn)
    plan = plan_change(user, ad.address("new"))
    edits = {
        "mail was set": ("mail", ["someone@contoso.com"]),
        "mail was changed": ("mail", ["someone@contoso.com"]),
        "a proxy was added": (
            "proxyAddresses",
            [f"SMTP:{old}", "smtp:alias@contoso.com", "smtp:more@contoso.com"],
        ),
        "a proxy was removed": ("proxyAddresses", [f"SMTP:{old}"]),
        "demoted": ("proxyAddresses", [f"smtp:{old}", "smtp:alias@contoso.com"]),
    }
    attribute, values = edits[meanwhile]
    ad.set_values(dn, attribute, values)
    expected = ad.read(dn, ["mail", "proxyAddresses"])

    with pytest.raises(ConcurrentModification) as caught:
        active_directory.apply(plan)

    assert dn in str(caught.value)
    after = ad.read(dn, ["mail", "proxyAddresses"])
    assert after["mail"] == expected["mail"]
    assert set(after["proxyAddresses"]) == set(expected["proxyAddresses"])


@pytest.mark.parametrize("meanwhile", ["mail was set", "the old primary was removed"])
def test_the_server_itself_refuses_a_stale_write_even_inside_the_race_window(
    ad: AdSandbox,
    active_directory: ActiveDirectory,
    monkeypatch: pytest.MonkeyPatch,
    meanwhile: str,
) -> None:
    """The adapter re-reads before writing; this bypasses that re-read (as if the other writer
    struck right after it) to show that the delete-old/add-new modify alone refuses."""
    old = ad.address("old")
    dn = ad.add_user(ad.sam("jane"), proxy_addresses=[f"SMTP:{old}"])
    (user,) = active_directory.find_users("x@contoso.com", dn)
    plan = plan_change(user, ad.address("new"))
    if meanwhile == "mail was set":
        ad.set_values(dn, "mail", ["someone@contoso.com"])
    else:
        ad.set_values(dn, "proxyAddresses", ["smtp:other@contoso.com"])
    expected = ad.read(dn, ["mail", "proxyAddresses"])
    real_read = ActiveDirectory._read_values
    calls = {"n": 0}

    def stale_first_read(self: ActiveDirectory, conn: Any, dn_: str, attrs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            return {c.attribute: c.before for c in plan.changes}
        return real_read(self, conn, dn_, attrs)

    monkeypatch.setattr(ActiveDirectory, "_read_values", stale_first_read)

    with pytest.raises(ConcurrentModification):
        active_directory.apply(plan)

    after = ad.read(dn, ["mail", "proxyAddresses"])
    assert after == expected


def test_a_plan_the_schema_refuses_is_a_schema_violation(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    dn = ad.add_user(ad.sam("jane"))

    with pytest.raises(SchemaViolation) as two_values:
        active_directory.apply(
            ChangePlan(dn, (AttributeChange("mail", (), ("a@contoso.com", "b@contoso.com")),))
        )
    with pytest.raises(SchemaViolation) as unknown:
        active_directory.apply(ChangePlan(dn, (AttributeChange("msExchMailboxGuid", (), ("x",)),)))

    assert "mail" in str(two_values.value)
    assert "msExchMailboxGuid" in str(unknown.value)
    assert ad.read(dn, ["mail"])["mail"] == []


def test_writing_an_object_that_was_deleted_is_not_found(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    dn = ad.add_user(ad.sam("gone"))
    (user,) = active_directory.find_users("x@contoso.com", dn)
    ad.delete(dn)

    with pytest.raises(NotFound):
        active_directory.apply(plan_change(user, ad.address("new")))


def test_an_account_without_write_rights_gets_permission_missing_naming_the_attribute(
    ad: AdSandbox, ad_settings: Any, samba_dc: SambaDC
) -> None:
    reader_sam = ad.sam("reader")
    reader = ad.add_user(reader_sam)
    target = ad.add_user(ad.sam("target"))
    settings = ad_settings.model_copy(
        update={"ldap_bind_dn": reader, "ldap_bind_password": SecretStr(USER_PASSWORD)}
    )

    with ActiveDirectory.from_settings(settings) as directory:
        (user,) = directory.find_users("x@contoso.com", target)
        with pytest.raises(PermissionMissing) as caught:
            directory.apply(plan_change(user, ad.address("new")))

    assert "mail" in str(caught.value)
    assert f"{samba_dc.host}:636" in str(caught.value)
    assert ad.read(target, ["mail"])["mail"] == []


# -- the whole check with this adapter -------------------------------------------------------


class _OneCloudUser:
    """A minimal CloudDirectory: one mailbox user in a tenant that allows soft matching."""

    def __init__(self, address: str) -> None:
        self.user = CloudUser(
            id="c0ffee00-0000-4000-8000-000000000001",
            user_principal_name=address,
            display_name="Jane (cloud)",
            mail=address,
            proxy_addresses=(f"SMTP:{address}",),
        )

    def find_users(self, address: str) -> Sequence[CloudUser]:
        return [self.user] if address.casefold() == self.user.mail.casefold() else []  # type: ignore[union-attr]

    def get_user(self, user_id: str) -> CloudUser | None:
        return self.user if user_id == self.user.id else None

    def has_mailbox(self, user_id: str) -> bool | Unknown:
        return True

    def roles(self, user_id: str) -> tuple[RoleAssignment, ...] | Unknown:
        return ()

    def find_holders(self, address: str) -> Sequence[Holder]:
        return [Holder(ObjectKind.USER, self.user.id, "Jane", "mail", address)]

    def find_by_anchor(self, anchor: str, sid: str | None) -> Sequence[CloudUser]:
        return []

    def find_deleted_by_anchor(self, anchor: str, sid: str | None) -> Sequence[CloudUser]:
        return []

    def find_holders_of(self, addresses: Sequence[str]) -> Sequence[Holder]:
        return []

    def find_user_by_upn(self, upn: str) -> CloudUser | None:
        return self.user if upn.casefold() == self.user.user_principal_name.casefold() else None

    def tenant(self) -> Tenant:
        return Tenant(verified_domains=("contoso.com",), block_soft_match=False)


def test_check_match_with_this_adapter_reports_the_seeded_ad_user(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("jane")
    sam = ad.sam("jane")
    dn = ad.add_user(sam, upn=address, display_name="Jane Doe")

    report = check_match(Directories(active_directory, _OneCloudUser(address)), address, sam)

    assert report.onprem is not None
    assert report.onprem.dn == dn
    assert report.onprem.sam_account_name == sam
    assert report.verdict is Verdict.ELIGIBLE
    assert report.plan is not None and report.plan.dn == dn


# -- round 2: what the rules need to refuse built-ins, privileged and misnamed accounts ----


def test_names_admin_description_and_admin_count_are_read(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    sam = ad.sam("jane")
    ad.add_user(
        sam,
        display_name="Jane Doe",
        extra={
            "givenName": "Jane",
            "sn": "Doe",
            "adminDescription": "User_jane",
            "adminCount": "1",
        },
    )

    (user,) = active_directory.find_users("x@contoso.com", sam)

    assert (user.given_name, user.surname) == ("Jane", "Doe")
    assert user.admin_description == "User_jane"
    assert user.admin_count == 1
    assert user.critical_system_object is False
    assert user.privileged_groups == ()
    assert user.mail_nickname is None  # Samba has no Exchange schema


def test_the_built_in_administrator_is_critical_and_privileged(
    active_directory: ActiveDirectory, samba_dc: SambaDC
) -> None:
    (admin,) = active_directory.find_users("x@contoso.com", "Administrator")

    assert admin.critical_system_object is True
    assert {"Domain Admins", "Administrators"} <= set(admin.privileged_groups)


def test_membership_of_a_protected_group_is_found_through_a_nested_group(
    ad: AdSandbox, active_directory: ActiveDirectory, samba_dc: SambaDC
) -> None:
    sam = ad.sam("ops")
    user_dn = ad.add_user(sam)
    nested = ad.add_group(ad.sam("tier0"))
    ad.add_member(nested, user_dn)
    ad.add_member(f"CN=Domain Admins,CN=Users,{samba_dc.base_dn}", nested)
    ad.add_member(f"CN=Backup Operators,CN=Builtin,{samba_dc.base_dn}", user_dn)

    (user,) = active_directory.find_users("x@contoso.com", sam)

    # Domain Admins is itself a member of the builtin Administrators: that counts too.
    assert set(user.privileged_groups) == {"Domain Admins", "Administrators", "Backup Operators"}


def test_a_named_krbtgt_is_found_so_the_rules_refuse_it_and_the_report_blocks(
    active_directory: ActiveDirectory, samba_dc: SambaDC
) -> None:
    address = "krbtgt.round2@contoso.com"
    dn = f"CN=krbtgt,CN=Users,{samba_dc.base_dn}"

    (krbtgt,) = active_directory.find_users(address, dn)
    report = check_match(Directories(active_directory, _OneCloudUser(address)), address, dn)

    assert krbtgt.critical_system_object is True
    assert report.verdict is Verdict.BLOCKED
    statuses = {c.id: c.status for c in report.checks}
    assert statuses[CheckId.ONPREM_IN_SYNC_SCOPE] is Status.FAIL
    assert "isCriticalSystemObject" in report.check(CheckId.ONPREM_IN_SYNC_SCOPE).detail


def test_dns_in_the_configuration_partition_or_of_other_classes_are_not_found(
    ad: AdSandbox, active_directory: ActiveDirectory, samba_dc: SambaDC
) -> None:
    base = samba_dc.base_dn
    for dn in (
        f"CN=Partitions,CN=Configuration,{base}",
        f"CN=Administrators,CN=Builtin,CN=Configuration,{base}",
        f"CN=Configuration,{base}",
        f"CN=Schema,CN=Configuration,{base}",
        ad.ou,  # an OU is not an account
        f"CN=Users,{base}",  # nor is a container
    ):
        assert active_directory.find_users("x@contoso.com", dn) == (), dn


def test_likely_accounts_are_found_by_display_name_names_or_account_name(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    by_display = ad.add_user(ad.sam("ll1"), display_name=f"Lucas Li {ad.tag}")
    by_names = ad.add_user(
        ad.sam("ll2"), display_name="L. Li", extra={"givenName": f"Lucas{ad.tag}", "sn": "Li"}
    )
    by_sam = ad.add_user(ad.sam("lucas"))
    ad.add_user(ad.sam("other"), display_name="Someone Else", extra={"givenName": "Lucas"})
    ad.add_contact(f"Lucas Li {ad.tag}")  # a contact is not an account

    found = active_directory.find_lookalikes(
        f"Lucas Li {ad.tag}", f"Lucas{ad.tag}", "Li", ad.sam("lucas")
    )

    assert _dns(found) == {by_display.casefold(), by_names.casefold(), by_sam.casefold()}
    assert active_directory.find_lookalikes(None, None, None, None) == ()
    assert active_directory.find_lookalikes("*", "*", "*", "*") == ()
