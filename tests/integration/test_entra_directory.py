"""EntraDirectory (the CloudDirectory port) against the HTTPS Graph emulator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from bot.directories.entra import EntraDirectory
from bot.errors import PermissionMissing
from bot.models import CloudUser, Holder, ObjectKind, OnPremUser, RoleAssignment, Unknown
from bot.rules.checks import CheckId, Status, Verdict
from bot.services.check import Directories, check_match
from bot.settings import Settings
from tests.support.graph_emulator import GraphEmulator, ProvisioningErrorEntry

pytestmark = pytest.mark.graph

JANE = "jane@contoso.com"


def add_jane(graph: GraphEmulator, **kwargs: object) -> str:
    user = graph.state.add_user(
        JANE,
        mail=JANE,
        proxy_addresses=["SMTP:jane@contoso.com", "smtp:jd@contoso.com"],
        display_name="Jane Doe",
        **kwargs,  # type: ignore[arg-type]
    )
    return user.id


# -- find_users ----------------------------------------------------------------------------


def test_find_users_finds_the_user_by_primary_address_with_on_prem_properties(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane = add_jane(graph, on_premises_immutable_id="AAAA", on_premises_sync_enabled=True)
    graph.state.add_user("other@contoso.com", mail="other@contoso.com")

    users = entra.find_users(JANE)

    assert [u.id for u in users] == [jane]
    assert users[0].proxy_addresses == ("SMTP:jane@contoso.com", "smtp:jd@contoso.com")
    assert users[0].on_premises_immutable_id == "AAAA"
    assert users[0].on_premises_sync_enabled is True
    assert users[0].display_name == "Jane Doe"


def test_find_users_finds_the_user_by_an_alias_typed_in_another_case(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane = add_jane(graph)

    assert [u.id for u in entra.find_users("JD@Contoso.COM")] == [jane]


def test_find_users_finds_the_user_by_upn_alone(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    user = graph.state.add_user("kim@contoso.onmicrosoft.com", mail=None)

    assert [u.id for u in entra.find_users("kim@contoso.onmicrosoft.com")] == [user.id]


def test_find_users_returns_every_user_holding_the_address(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane = add_jane(graph)
    guest = graph.state.add_user(
        "jane_ext#EXT#@contoso.onmicrosoft.com", mail=JANE, user_type="Guest"
    )

    users = entra.find_users(JANE)

    assert {u.id for u in users} == {jane, guest.id}
    assert {u.user_type for u in users} == {"Member", "Guest"}


def test_find_users_finds_nobody_for_an_unknown_address(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    add_jane(graph)

    assert entra.find_users("nobody@contoso.com") == []


def test_find_users_with_a_quote_in_the_address_finds_exactly_that_user(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    obrien = graph.state.add_user(
        "o'brien@contoso.com",
        mail="o'brien@contoso.com",
        proxy_addresses=["SMTP:o'brien@contoso.com"],
    )
    graph.state.add_user("brien@contoso.com", mail="brien@contoso.com")

    assert [u.id for u in entra.find_users("o'brien@contoso.com")] == [obrien.id]


@pytest.mark.parametrize(
    "attack",
    [
        "x' or 1 eq 1 or mail eq 'y@contoso.com",
        "x') or mail eq ('y@contoso.com",
        "x' or mail eq 'y@contoso.com' or mail eq 'z",
        "y@contoso.com&$filter=mail eq 'y@contoso.com",
        "x'%20or%20mail%20eq%20'y@contoso.com",
        "x#' or mail eq 'y@contoso.com",
    ],
)
def test_an_injection_attempt_in_the_address_finds_nothing(
    graph: GraphEmulator, entra: EntraDirectory, attack: str
) -> None:
    graph.state.add_user(
        "y@contoso.com", mail="y@contoso.com", proxy_addresses=["SMTP:y@contoso.com"]
    )

    assert entra.find_users(attack) == []
    assert entra.find_holders(attack) == []
    assert entra.find_user_by_upn(attack) is None
    assert entra.find_by_anchor(attack, attack) == []


# -- get_user, find_user_by_upn, find_by_anchor --------------------------------------------


def test_get_user_returns_the_user_with_provisioning_errors(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane_id = add_jane(graph, on_premises_security_identifier="S-1-5-21-1-2-3-1105")
    with graph.state.lock:
        graph.state.users[jane_id].on_premises_provisioning_errors.append(
            ProvisioningErrorEntry(
                "PropertyConflict",
                "ProxyAddresses",
                "SMTP:jane@contoso.com",
                "2024-05-01T10:00:00Z",
            )
        )

    user = entra.get_user(jane_id)

    assert user is not None
    assert user.on_premises_security_identifier == "S-1-5-21-1-2-3-1105"
    assert user.provisioning_errors[0].category == "PropertyConflict"
    assert user.provisioning_errors[0].property_causing_error == "ProxyAddresses"
    assert user.provisioning_errors[0].value == "SMTP:jane@contoso.com"
    assert user.provisioning_errors[0].occurred == "2024-05-01T10:00:00Z"


def test_get_user_returns_none_for_a_user_that_is_gone(entra: EntraDirectory) -> None:
    assert entra.get_user("00000000-0000-0000-0000-000000000000") is None


def test_get_user_with_a_slash_in_the_id_stays_on_the_users_path(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane_id = add_jane(graph)

    assert entra.get_user(f"{jane_id}/mailboxSettings") is None


def test_find_user_by_upn_ignores_case_and_misses_cleanly(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane_id = add_jane(graph)

    found = entra.find_user_by_upn("Jane@CONTOSO.com")

    assert found is not None and found.id == jane_id
    assert entra.find_user_by_upn("jd@contoso.com") is None


def test_find_by_anchor_finds_users_by_immutable_id_or_sid(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    by_anchor = graph.state.add_user(
        "a@contoso.com", on_premises_immutable_id="q1w2e3r4t5y6u7i8o9p0aA=="
    )
    by_sid = graph.state.add_user(
        "b@contoso.com", on_premises_security_identifier="S-1-5-21-9-9-9-1000"
    )
    graph.state.add_user("c@contoso.com", on_premises_immutable_id="Q1W2E3R4T5Y6U7I8O9P0AA==")

    found = entra.find_by_anchor("q1w2e3r4t5y6u7i8o9p0aA==", "S-1-5-21-9-9-9-1000")

    assert {u.id for u in found} == {by_anchor.id, by_sid.id}
    assert [u.id for u in entra.find_by_anchor("q1w2e3r4t5y6u7i8o9p0aA==", None)] == [by_anchor.id]


# -- has_mailbox ----------------------------------------------------------------------------


def test_has_mailbox_is_true_when_mailbox_settings_are_readable(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    assert entra.has_mailbox(add_jane(graph)) is True


def test_has_mailbox_is_false_when_exchange_says_mailbox_not_enabled(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    assert entra.has_mailbox(add_jane(graph, has_mailbox=False)) is False


def test_has_mailbox_is_unknown_naming_the_permission_when_denied(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane_id = add_jane(graph)
    graph.state.knobs.denied.add("mailboxSettings")

    result = entra.has_mailbox(jane_id)

    assert isinstance(result, Unknown)
    assert "MailboxSettings.Read" in result.reason


def test_holders_are_unknown_naming_the_permission_when_groups_may_not_be_listed(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    add_jane(graph)
    graph.state.knobs.denied.add("groups")

    result = entra.find_holders("jane@contoso.com")

    assert isinstance(result, Unknown)
    assert "Group.Read.All" in result.reason


# -- roles ----------------------------------------------------------------------------------


def test_roles_are_empty_for_a_user_without_roles(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    assert entra.roles(add_jane(graph)) == ()


def test_roles_lists_direct_group_and_eligible_roles(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane_id = add_jane(graph)
    graph.state.set_roles(jane_id, active=["User Administrator"], eligible=["Global Administrator"])
    graph.state.add_group(
        "Exchange admins",
        is_assignable_to_role=True,
        members=[jane_id],
        roles=["Exchange Administrator"],
    )
    graph.state.add_group("All staff", members=[jane_id])

    roles = entra.roles(jane_id)

    assert isinstance(roles, tuple)
    assert set(roles) == {
        RoleAssignment("User Administrator"),
        RoleAssignment("Exchange Administrator", via_group="Exchange admins"),
        RoleAssignment("Global Administrator", eligible=True),
    }


def test_roles_through_a_nested_role_assignable_group_are_found(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane_id = add_jane(graph)
    inner = graph.state.add_group("Helpdesk", members=[jane_id])
    graph.state.add_group(
        "Tier 1", is_assignable_to_role=True, members=[inner.id], roles=["Helpdesk Administrator"]
    )

    assert entra.roles(jane_id) == (RoleAssignment("Helpdesk Administrator", via_group="Tier 1"),)


def test_roles_cost_one_round_trip_without_role_assignable_groups(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane_id = add_jane(graph)
    graph.state.set_roles(jane_id, active=["User Administrator"])
    entra.roles(jane_id)  # warms the token
    graph.state.requests.clear()

    entra.roles(jane_id)

    assert [r.path for r in graph.graph_requests()] == ["/v1.0/$batch"]


def test_roles_are_unknown_naming_the_permission_when_denied(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane_id = add_jane(graph)
    graph.state.knobs.denied.update({"transitiveMemberOf", "roleEligibilityScheduleInstances"})

    result = entra.roles(jane_id)

    assert isinstance(result, Unknown)
    assert "RoleManagement.Read.Directory" in result.reason


def test_active_roles_still_count_when_eligibility_is_denied(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane_id = add_jane(graph)
    graph.state.set_roles(jane_id, active=["Global Administrator"])
    graph.state.knobs.denied.add("roleEligibilityScheduleInstances")

    assert entra.roles(jane_id) == (RoleAssignment("Global Administrator"),)


# -- find_holders ---------------------------------------------------------------------------


def test_find_holders_names_every_kind_of_cloud_object_holding_the_address(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    jane_id = add_jane(graph)
    guest = graph.state.add_user(
        "jd_ext#EXT#@contoso.onmicrosoft.com",
        mail="jd@contoso.com",
        user_type="Guest",
        display_name="JD guest",
    )
    group = graph.state.add_group(
        "Sales",
        mail="sales@contoso.com",
        proxy_addresses=["SMTP:sales@contoso.com", "smtp:JD@contoso.com"],
    )
    contact = graph.state.add_contact("JD partner", proxy_addresses=["SMTP:jd@contoso.com"])
    graph.state.add_contact("Someone else", mail="else@contoso.com")

    holders = entra.find_holders("jd@contoso.com")

    assert sorted(holders, key=lambda h: h.kind) == sorted(
        [
            Holder(ObjectKind.USER, jane_id, "Jane Doe", "proxyAddresses", "smtp:jd@contoso.com"),
            Holder(ObjectKind.GUEST, guest.id, "JD guest", "mail", "jd@contoso.com"),
            Holder(ObjectKind.GROUP, group.id, "Sales", "proxyAddresses", "smtp:JD@contoso.com"),
            Holder(
                ObjectKind.CONTACT,
                contact.id,
                "JD partner",
                "proxyAddresses",
                "SMTP:jd@contoso.com",
            ),
        ],
        key=lambda h: h.kind,
    )


def test_find_holders_counts_a_upn_and_ignores_non_smtp_proxy_addresses(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    upn_holder = graph.state.add_user("max@contoso.com")
    graph.state.add_user("sip@contoso.com", proxy_addresses=["SIP:max@contoso.com"])

    holders = entra.find_holders("max@contoso.com")

    assert holders == [
        Holder(ObjectKind.USER, upn_holder.id, "max", "userPrincipalName", "max@contoso.com")
    ]


def test_find_holders_costs_one_round_trip(graph: GraphEmulator, entra: EntraDirectory) -> None:
    entra.find_holders("warm@contoso.com")
    graph.state.requests.clear()

    entra.find_holders(JANE)

    assert [r.path for r in graph.graph_requests()] == ["/v1.0/$batch"]


# -- tenant ---------------------------------------------------------------------------------


def test_tenant_lists_verified_domains_and_reads_the_soft_match_flags(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    graph.state.set_domain("fabrikam.com", verified=False)
    graph.state.set_feature("blockSoftMatchEnabled", True)
    graph.state.set_feature("softMatchOnUpnEnabled", False)

    tenant = entra.tenant()

    assert set(tenant.verified_domains) == {"contoso.com", "contoso.onmicrosoft.com"}  # type: ignore[arg-type]
    assert tenant.block_soft_match is True
    assert tenant.soft_match_on_upn is False


def test_tenant_flags_are_unknown_naming_the_delegated_permission_when_denied(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    graph.state.knobs.denied.add("onPremisesSynchronization")

    tenant = entra.tenant()

    assert isinstance(tenant.block_soft_match, Unknown)
    assert "OnPremDirectorySynchronization.Read.All" in tenant.block_soft_match.reason
    assert "SMTPMATCH_BLOCK_SOFT_MATCH" in tenant.block_soft_match.reason
    assert isinstance(tenant.soft_match_on_upn, Unknown)
    assert "contoso.com" in tenant.verified_domains  # type: ignore[operator]


@pytest.mark.parametrize("stated", [True, False])
def test_a_configured_soft_match_setting_wins_over_a_denied_read(
    graph: GraphEmulator, graph_settings: Settings, stated: bool
) -> None:
    graph.state.knobs.denied.add("onPremisesSynchronization")
    settings = graph_settings.model_copy(update={"smtpmatch_block_soft_match": stated})
    directory = EntraDirectory.from_settings(settings, ca_file=graph.ca_file)
    try:
        assert directory.tenant().block_soft_match is stated
    finally:
        directory.close()


def test_a_configured_soft_match_setting_wins_over_what_graph_says(
    graph: GraphEmulator, graph_settings: Settings
) -> None:
    graph.state.set_feature("blockSoftMatchEnabled", True)
    settings = graph_settings.model_copy(update={"smtpmatch_block_soft_match": False})
    directory = EntraDirectory.from_settings(settings, ca_file=graph.ca_file)
    try:
        assert directory.tenant().block_soft_match is False
    finally:
        directory.close()


def test_verified_domains_are_unknown_naming_the_permission_when_denied(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    graph.state.knobs.denied.add("domains")

    domains = entra.tenant().verified_domains

    assert isinstance(domains, Unknown)
    assert "Domain.Read.All" in domains.reason


# -- a whole check through the service ---------------------------------------------------


class OneUserAD:
    """An in-memory OnPremDirectory with one AD user and no other holders."""

    def __init__(self, user: OnPremUser) -> None:
        self.user = user

    def find_users(self, address: str, onprem_id: str | None) -> Sequence[OnPremUser]:
        return [self.user]

    def find_lookalikes(
        self,
        display_name: str | None,
        given_name: str | None,
        surname: str | None,
        account_name: str | None,
    ) -> Sequence[OnPremUser]:
        return []

    def find_holders(self, address: str) -> Sequence[Holder]:
        return []

    def apply(self, plan: object) -> object:
        raise AssertionError("a check never writes")


def jdoe() -> OnPremUser:
    return OnPremUser(
        dn="CN=Jane Doe,OU=Staff,DC=contoso,DC=com",
        object_guid=bytes(range(16)),
        sam_account_name="jdoe",
        user_principal_name=JANE,
        object_sid="S-1-5-21-1-2-3-1105",
    )


def test_a_full_check_finds_the_user_eligible_with_one_token_and_few_round_trips(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    add_jane(graph)
    dirs = Directories(onprem=OneUserAD(jdoe()), cloud=entra)  # type: ignore[arg-type]

    reports = [check_match(dirs, JANE) for _ in range(5)]

    assert {r.verdict for r in reports} == {Verdict.ELIGIBLE}
    checks = {c.id: c.status for c in reports[0].checks}
    assert checks[CheckId.CLOUD_HAS_MAILBOX] is Status.PASS
    assert checks[CheckId.CLOUD_NO_ADMIN_ROLES] is Status.PASS
    assert checks[CheckId.TENANT_SOFT_MATCH_ALLOWED] is Status.PASS
    assert graph.token_requests == 1
    assert len(graph.graph_requests()) <= 7 * 5


def test_a_full_check_sees_a_cloud_twin_of_the_ad_user(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    add_jane(graph)
    twin = graph.state.add_user(
        "jdoe@contoso.onmicrosoft.com",
        on_premises_immutable_id=jdoe().anchor,
        on_premises_sync_enabled=True,
    )
    dirs = Directories(onprem=OneUserAD(jdoe()), cloud=entra)  # type: ignore[arg-type]

    report = check_match(dirs, JANE)

    assert report.verdict is Verdict.BLOCKED
    not_synced = next(c for c in report.checks if c.id is CheckId.ONPREM_NOT_YET_SYNCED)
    assert not_synced.status is Status.FAIL
    assert twin.user_principal_name in not_synced.detail


def test_cloud_users_from_graph_are_frozen_models(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    add_jane(graph)

    assert all(isinstance(u, CloudUser) for u in entra.find_users(JANE))


# -- Cloud Sync on demand ---------------------------------------------------------------------


def test_provision_on_demand_posts_the_ad_dn_as_a_user_subject_with_the_rule(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    dn = "CN=Jane O'Brien,OU=Staff,DC=contoso,DC=test"
    note = entra.provision_on_demand("sp/1", "job 1", "rule-users", dn)
    assert dn in note
    [(path, sent_dn, rule)] = graph.app.provisioned
    # Ids are quoted as single path segments: a "/" in one cannot reach another endpoint.
    assert path == "/servicePrincipals/sp%2F1/synchronization/jobs/job%201/provisionOnDemand"
    assert (sent_dn, rule) == (dn, "rule-users")


def test_provision_on_demand_without_the_permission_names_it(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    graph.state.knobs.denied.add("provisionOnDemand")
    with pytest.raises(PermissionMissing, match=r"Synchronization\.ReadWrite\.All"):
        entra.provision_on_demand("sp1", "job1", "rule1", "CN=x,DC=contoso,DC=test")


# -- round 2 (docs/rules.md): deleted users, names, carried addresses, hard-match flag ------


def test_find_deleted_by_anchor_finds_only_soft_deleted_users_with_the_anchor_or_sid(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    active = graph.state.add_user("live@contoso.com", on_premises_immutable_id="QUJD")
    ghost = graph.state.add_user("ghost@contoso.onmicrosoft.com", on_premises_immutable_id="QUJD")
    by_sid = graph.state.add_user(
        "sid@contoso.onmicrosoft.com", on_premises_security_identifier="S-1-5-21-1-2-3-500"
    )
    other = graph.state.add_user("other@contoso.onmicrosoft.com", on_premises_immutable_id="WFla")
    for user in (ghost, by_sid, other):
        graph.state.delete_user(user.id, when="2026-10-30T08:15:00Z")

    found = entra.find_deleted_by_anchor("QUJD", "S-1-5-21-1-2-3-500")

    assert isinstance(found, list)
    assert {u.id for u in found} == {ghost.id, by_sid.id}
    assert {u.deleted for u in found} == {"2026-10-30T08:15:00Z"}
    assert [u.id for u in entra.find_by_anchor("QUJD", None)] == [active.id]
    paths = {r.path for r in graph.graph_requests()}
    assert "/v1.0/directory/deletedItems/microsoft.graph.user" in paths


def test_find_deleted_by_anchor_is_unknown_naming_the_permission_when_denied(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    graph.state.knobs.denied.add("deletedItems")

    found = entra.find_deleted_by_anchor("QUJD", None)

    assert isinstance(found, Unknown)
    assert "User.Read.All" in found.reason


def test_cloud_users_carry_given_name_surname_and_mail_nickname(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    add_jane(graph, given_name="Jane", surname="Doe", mail_nickname="jane.doe")

    (user,) = entra.find_users(JANE)

    assert (user.given_name, user.surname, user.mail_nickname) == ("Jane", "Doe", "jane.doe")
    assert user.deleted is None


def test_holders_of_several_addresses_come_in_one_batch(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    entra.find_holders("warm@contoso.com")
    graph.state.requests.clear()
    jane = add_jane(graph)
    group = graph.state.add_group("Sales", mail="sales@contoso.com")
    contact = graph.state.add_contact("Ext", proxy_addresses=["smtp:old@contoso.com"])

    holders = entra.find_holders_of(
        [JANE, "sales@contoso.com", "old@contoso.com", "no@contoso.com"]
    )

    assert isinstance(holders, list)
    assert {(h.kind, h.id, h.attribute) for h in holders} == {
        (ObjectKind.USER, jane, "proxyAddresses"),
        (ObjectKind.GROUP, group.id, "mail"),
        (ObjectKind.CONTACT, contact.id, "proxyAddresses"),
    }
    assert [r.path for r in graph.graph_requests()] == ["/v1.0/$batch"]
    assert entra.find_holders_of([]) == []


def test_tenant_reads_the_initial_domain_and_the_hard_match_flag(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    graph.state.set_feature("blockCloudObjectTakeoverThroughHardMatchEnabled", True)

    tenant = entra.tenant()

    assert tenant.initial_domain == "contoso.onmicrosoft.com"
    assert tenant.block_hard_match is True


@pytest.mark.parametrize("stated", [True, False])
def test_a_configured_hard_match_setting_wins_over_a_denied_read(
    graph: GraphEmulator, graph_settings: Settings, stated: bool
) -> None:
    graph.state.knobs.denied.add("onPremisesSynchronization")
    unset = EntraDirectory.from_settings(graph_settings, ca_file=graph.ca_file)
    settings = graph_settings.model_copy(update={"smtpmatch_block_hard_match": stated})
    directory = EntraDirectory.from_settings(settings, ca_file=graph.ca_file)
    try:
        hidden = unset.tenant().block_hard_match
        assert isinstance(hidden, Unknown) and "SMTPMATCH_BLOCK_HARD_MATCH" in hidden.reason
        assert directory.tenant().block_hard_match is stated
    finally:
        directory.close()
        unset.close()


def test_a_full_check_of_a_pending_hard_match_is_sync_pending(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    ad_user = replace(jdoe(), mail=JANE, proxy_addresses=(f"SMTP:{JANE}", "smtp:jd@contoso.com"))
    add_jane(graph, on_premises_immutable_id=ad_user.anchor)
    dirs = Directories(onprem=OneUserAD(ad_user), cloud=entra)  # type: ignore[arg-type]

    report = check_match(dirs, JANE)

    assert report.verdict is Verdict.SYNC_PENDING
    assert report.check(CheckId.CLOUD_HARD_MATCH_ALLOWED).status is Status.PASS


def test_a_full_check_sees_a_soft_deleted_duplicate_of_the_ad_user(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    add_jane(graph)
    ghost = graph.state.add_user(
        "jdoe4711@contoso.onmicrosoft.com",
        on_premises_immutable_id=jdoe().anchor,
        on_premises_sync_enabled=True,
    )
    graph.state.delete_user(ghost.id)
    dirs = Directories(onprem=OneUserAD(jdoe()), cloud=entra)  # type: ignore[arg-type]

    report = check_match(dirs, JANE)

    assert report.verdict is Verdict.BLOCKED
    check = report.check(CheckId.ONPREM_NOT_YET_SYNCED)
    assert check.status is Status.FAIL
    assert ghost.id in check.detail and "RESTORES" in check.detail


def test_a_full_check_fails_when_another_user_holds_the_ad_users_current_primary(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    add_jane(graph)
    bob = graph.state.add_user(
        "bob@contoso.com", mail="old@contoso.com", proxy_addresses=["SMTP:old@contoso.com"]
    )
    ad_user = replace(jdoe(), mail="old@contoso.com", proxy_addresses=("SMTP:old@contoso.com",))
    dirs = Directories(onprem=OneUserAD(ad_user), cloud=entra)  # type: ignore[arg-type]

    report = check_match(dirs, JANE)

    check = report.check(CheckId.UNIQUE_CLOUD)
    assert check.status is Status.FAIL
    assert bob.id in check.detail and "takes over THAT user" in check.detail
