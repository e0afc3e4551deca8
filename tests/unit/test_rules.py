"""The rules engine: every check id passes, fails (and warns, is unknown or skipped) as
docs/rules.md says, and the verdict follows."""

from __future__ import annotations

import pytest

from bot.models import CloudUser, Holder, ObjectKind, RoleAssignment, Tenant, Unknown
from bot.rules.checks import CheckId, Status, Verdict
from bot.rules.engine import Facts, Policy, evaluate
from tests.unit.builders import (
    ANCHOR,
    POLICY,
    cloud_user,
    facts,
    onprem_user,
    with_cloud,
    with_onprem,
)

OTHER_CLOUD = CloudUser(id="cloud-other", user_principal_name="old@contoso.onmicrosoft.com")
TWIN_CLOUD = CloudUser(
    id="cloud-other",
    user_principal_name="old@contoso.onmicrosoft.com",
    proxy_addresses=("SMTP:jane@contoso.com",),
)
CONTACT = Holder(
    ObjectKind.CONTACT,
    "CN=Jane ext,OU=Contacts,DC=contoso,DC=com",
    "Jane ext",
    "proxyAddresses",
    "smtp:JANE@contoso.com",
)

C = CheckId
S = Status

# (check id, facts, policy, expected status, words the detail must contain)
CASES: list[tuple[CheckId, Facts, Policy, Status, str]] = [
    (C.CLOUD_USER_FOUND, facts(), POLICY, S.PASS, "Jane Doe"),
    (C.CLOUD_USER_FOUND, facts(cloud_users=()), POLICY, S.FAIL, "no cloud account"),
    (
        C.CLOUD_USER_FOUND,
        # Two member users holding the address equally (docs/rules.md: neither is the target).
        facts(cloud_users=(cloud_user(), TWIN_CLOUD)),
        POLICY,
        S.FAIL,
        "old@contoso.onmicrosoft.com",
    ),
    (C.CLOUD_ADDRESS_IS_PRIMARY, facts(), POLICY, S.PASS, "primary"),
    (
        C.CLOUD_ADDRESS_IS_PRIMARY,
        facts(address="jane.doe@contoso.com"),
        POLICY,
        S.WARN,
        "primary address jane@contoso.com",
    ),
    (
        C.CLOUD_ADDRESS_IS_PRIMARY,
        with_cloud(proxy_addresses=(), mail=None),
        POLICY,
        S.FAIL,
        "no primary SMTP",
    ),
    (C.CLOUD_MEMBER_USER, facts(), POLICY, S.PASS, "Member"),
    (C.CLOUD_MEMBER_USER, with_cloud(user_type="Guest"), POLICY, S.FAIL, "guests"),
    (C.CLOUD_HAS_MAILBOX, facts(), POLICY, S.PASS, "mailbox exists"),
    (C.CLOUD_HAS_MAILBOX, facts(mailbox=False), POLICY, S.FAIL, "limitation 1"),
    (
        C.CLOUD_HAS_MAILBOX,
        facts(mailbox=Unknown("MailboxSettings.Read missing")),
        POLICY,
        S.UNKNOWN,
        "MailboxSettings.Read",
    ),
    (C.CLOUD_NOT_SYNCED, facts(), POLICY, S.PASS, "not synced"),
    (
        C.CLOUD_NOT_SYNCED,
        with_cloud(on_premises_immutable_id="b3RoZXI=", on_premises_sync_enabled=True),
        POLICY,
        S.FAIL,
        "limitation 2",
    ),
    (
        C.CLOUD_NOT_SYNCED,
        with_cloud(on_premises_immutable_id="b3RoZXI=", on_premises_sync_enabled=False),
        POLICY,
        S.FAIL,
        "sync was turned off",
    ),
    (C.CLOUD_NOT_SYNCED, with_cloud(on_premises_sync_enabled=True), POLICY, S.FAIL, "only once"),
    (
        C.CLOUD_NOT_SYNCED,
        with_cloud(on_premises_immutable_id=ANCHOR, on_premises_sync_enabled=True),
        POLICY,
        S.SKIP,
        "Already bound to this AD user",
    ),
    (C.CLOUD_NO_ADMIN_ROLES, facts(), POLICY, S.PASS, "No active"),
    (
        C.CLOUD_NO_ADMIN_ROLES,
        facts(roles=(RoleAssignment("Exchange Administrator"),)),
        POLICY,
        S.FAIL,
        "Exchange Administrator",
    ),
    (
        C.CLOUD_NO_ADMIN_ROLES,
        facts(roles=(RoleAssignment("Helpdesk Administrator", via_group="HD admins"),)),
        POLICY,
        S.FAIL,
        "through group HD admins",
    ),
    (
        C.CLOUD_NO_ADMIN_ROLES,
        facts(roles=(RoleAssignment("Global Administrator", eligible=True),)),
        POLICY,
        S.WARN,
        "PIM-eligible for Global Administrator",
    ),
    (
        C.CLOUD_NO_ADMIN_ROLES,
        facts(roles=Unknown("RoleManagement.Read.Directory missing")),
        POLICY,
        S.UNKNOWN,
        "RoleManagement.Read.Directory",
    ),
    (C.TENANT_SOFT_MATCH_ALLOWED, facts(), POLICY, S.PASS, "off"),
    (
        C.TENANT_SOFT_MATCH_ALLOWED,
        facts(tenant=Tenant(("contoso.com",), True)),
        POLICY,
        S.FAIL,
        "blocked tenant-wide",
    ),
    (
        C.TENANT_SOFT_MATCH_ALLOWED,
        facts(tenant=Tenant(("contoso.com",), Unknown("needs delegated Global Administrator"))),
        POLICY,
        S.UNKNOWN,
        "delegated",
    ),
    (C.TENANT_DOMAIN_VERIFIED, facts(), POLICY, S.PASS, "contoso.com"),
    (
        C.TENANT_DOMAIN_VERIFIED,
        facts(tenant=Tenant(("fabrikam.com",), False)),
        POLICY,
        S.FAIL,
        "not a verified domain",
    ),
    (
        C.TENANT_DOMAIN_VERIFIED,
        facts(tenant=Tenant(Unknown("Domain.Read.All missing"), False)),
        POLICY,
        S.UNKNOWN,
        "Domain.Read.All",
    ),
    (C.ONPREM_USER_FOUND, facts(), POLICY, S.PASS, "CN=Jane Doe"),
    (C.ONPREM_USER_FOUND, facts(onprem_users=()), POLICY, S.FAIL, "No AD user"),
    (C.ONPREM_USER_FOUND, facts(onprem_users=(), onprem_id="jdoe"), POLICY, S.FAIL, "'jdoe'"),
    (
        C.ONPREM_USER_FOUND,
        facts(
            onprem_users=(
                onprem_user(),
                onprem_user(dn="CN=Jane Two,OU=Staff,DC=contoso,DC=com", sam_account_name="jane2"),
            )
        ),
        POLICY,
        S.FAIL,
        "jane2",
    ),
    (C.ONPREM_IS_PERSON, facts(), POLICY, S.PASS, "user"),
    (
        C.ONPREM_IS_PERSON,
        with_onprem(kind=ObjectKind.CONTACT),
        POLICY,
        S.FAIL,
        "ObjectTypeMismatch",
    ),
    (C.ONPREM_NOT_YET_SYNCED, facts(), POLICY, S.PASS, ANCHOR),
    (
        C.ONPREM_NOT_YET_SYNCED,
        facts(anchor_owners=(OTHER_CLOUD,)),
        POLICY,
        S.FAIL,
        "old@contoso.onmicrosoft.com",
    ),
    (
        C.ONPREM_NOT_YET_SYNCED,
        facts(anchor_owners=Unknown("User.Read.All missing")),
        POLICY,
        S.UNKNOWN,
        "User.Read.All",
    ),
    (C.ONPREM_IN_SYNC_SCOPE, facts(), POLICY, S.PASS, "synchronized"),
    (C.ONPREM_IN_SYNC_SCOPE, facts(), Policy(), S.SKIP, "No sync scope"),
    (
        C.ONPREM_IN_SYNC_SCOPE,
        with_onprem(dn="CN=Jane Doe,OU=Staff2,DC=contoso,DC=com"),
        POLICY,
        S.FAIL,
        "outside the sync scope",
    ),
    (
        C.ONPREM_IN_SYNC_SCOPE,
        with_onprem(dn="CN=Jane,OU=Sub,ou=staff, DC=Contoso,DC=com"),
        POLICY,
        S.PASS,
        "synchronized",
    ),
    (C.ONPREM_UPN_CONFLICT, facts(), POLICY, S.PASS, "No other"),
    (C.ONPREM_UPN_CONFLICT, facts(upn_owner=OTHER_CLOUD), POLICY, S.FAIL, "wrong account"),
    (C.ONPREM_UPN_DIFFERS, facts(), POLICY, S.PASS, "same"),
    (
        C.ONPREM_UPN_DIFFERS,
        with_onprem(user_principal_name="jdoe@corp.contoso.com"),
        POLICY,
        S.WARN,
        "sign-in name",
    ),
    (C.ONPREM_ACCOUNT_ENABLED, facts(), POLICY, S.PASS, "enabled"),
    (C.ONPREM_ACCOUNT_ENABLED, with_onprem(user_account_control=0x202), POLICY, S.WARN, "disabled"),
    (C.ONPREM_NO_EXCHANGE_MAILBOX, facts(), POLICY, S.PASS, "No on-prem"),
    (
        C.ONPREM_NO_EXCHANGE_MAILBOX,
        with_onprem(exchange_mailbox_guid="f00"),
        POLICY,
        S.FAIL,
        "both sides",
    ),
    (
        C.ONPREM_NO_EXCHANGE_MAILBOX,
        with_onprem(exchange_recipient_type_details=1),
        POLICY,
        S.FAIL,
        "both sides",
    ),
    (
        C.ONPREM_NO_EXCHANGE_MAILBOX,
        with_onprem(exchange_schema=False),
        POLICY,
        S.SKIP,
        "no Exchange attributes",
    ),
    (C.UNIQUE_ONPREM, facts(), POLICY, S.PASS, "No other AD object"),
    (C.UNIQUE_ONPREM, facts(onprem_holders=(CONTACT,)), POLICY, S.FAIL, "Jane ext"),
    (C.UNIQUE_CLOUD, facts(), POLICY, S.PASS, "No other cloud object"),
    (
        C.UNIQUE_CLOUD,
        facts(
            cloud_holders=(
                Holder(
                    ObjectKind.GROUP, "g1", "All staff", "proxyAddresses", "smtp:jane@contoso.com"
                ),
            )
        ),
        POLICY,
        S.FAIL,
        "All staff",
    ),
    (
        C.UNIQUE_CLOUD,
        facts(cloud_holders=Unknown("Group.Read.All missing")),
        POLICY,
        S.UNKNOWN,
        "Group.Read.All",
    ),
    (C.CLOUD_PRIMARY_UNCHANGED, facts(), POLICY, S.SKIP, "approval"),
    (
        C.CLOUD_PRIMARY_UNCHANGED,
        facts(approved_primary="jane@contoso.com"),
        POLICY,
        S.PASS,
        "still",
    ),
    (
        C.CLOUD_PRIMARY_UNCHANGED,
        facts(approved_primary="jane.old@contoso.com"),
        POLICY,
        S.FAIL,
        "limitation 3",
    ),
]


# -- round 2 (docs/rules.md): the new and changed checks, each reaching each status ----------

PENDING = cloud_user(on_premises_immutable_id=ANCHOR, on_premises_sync_enabled=None)
TENANT_OK = Tenant(
    ("contoso.com",), False, block_hard_match=False, initial_domain="contoso.onmicrosoft.com"
)
GUEST_HOLDER = CloudUser(
    id="cloud-guest",
    user_principal_name="jane_fabrikam.com#EXT#@contoso.onmicrosoft.com",
    display_name="Jane (guest)",
    mail="jane@contoso.com",
    user_type="Guest",
)
OTHER_USER = Holder(ObjectKind.USER, "cloud-bob", "Bob", "proxyAddresses", "SMTP:old@contoso.com")
STRANGER = onprem_user(
    dn="CN=Mallory Test,OU=Staff,DC=contoso,DC=com",
    sam_account_name="mallory.test",
    user_principal_name="mallory.test@contoso.com",
    display_name="Mallory Test",
)


def pending(**kw: object) -> Facts:
    values: dict[str, object] = dict(cloud=PENDING, upn_owner=PENDING, tenant=TENANT_OK)
    values.update(kw)
    return facts(**values)


CASES += [
    (
        C.CLOUD_USER_FOUND,
        facts(cloud_users=(GUEST_HOLDER, cloud_user())),
        POLICY,
        S.PASS,
        "Jane (guest)",
    ),
    (
        C.CLOUD_ADDRESS_IS_PRIMARY,
        with_cloud(proxy_addresses=("SMTP:jane@contoso.onmicrosoft.com", "smtp:jane@contoso.com")),
        POLICY,
        S.FAIL,
        "discards",
    ),
    (C.CLOUD_NOT_SYNCED, pending(), POLICY, S.SKIP, "pending hard match"),
    (C.CLOUD_HARD_MATCH_ALLOWED, facts(), POLICY, S.SKIP, "No hard match pending"),
    (C.CLOUD_HARD_MATCH_ALLOWED, pending(), POLICY, S.PASS, "next sync hard-matches"),
    (
        C.CLOUD_HARD_MATCH_ALLOWED,
        pending(tenant=Tenant(("contoso.com",), False, block_hard_match=True)),
        POLICY,
        S.FAIL,
        "InvalidHardMatch",
    ),
    (
        C.CLOUD_HARD_MATCH_ALLOWED,
        pending(roles=(RoleAssignment("Helpdesk Administrator"),)),
        POLICY,
        S.FAIL,
        "MC1262584",
    ),
    (
        C.CLOUD_HARD_MATCH_ALLOWED,
        pending(tenant=Tenant(("contoso.com",), False)),
        POLICY,
        S.UNKNOWN,
        "SMTPMATCH_BLOCK_HARD_MATCH",
    ),
    (
        C.CLOUD_HARD_MATCH_ALLOWED,
        pending(roles=Unknown("RoleManagement.Read.Directory missing")),
        POLICY,
        S.UNKNOWN,
        "RoleManagement.Read.Directory",
    ),
    (C.ONPREM_SAME_PERSON, facts(), POLICY, S.PASS, "UPN jane@contoso.com"),
    (
        C.ONPREM_SAME_PERSON,
        with_onprem(user_principal_name="jdoe@corp.local", mail="jane.doe@contoso.com"),
        POLICY,
        S.PASS,
        "address jane.doe@contoso.com",
    ),
    (
        C.ONPREM_SAME_PERSON,
        with_onprem(user_principal_name="jdoe@corp.local"),
        POLICY,
        S.WARN,
        "only the name",
    ),
    (
        C.ONPREM_SAME_PERSON,
        facts(onprem=STRANGER, onprem_id="mallory.test"),
        POLICY,
        S.FAIL,
        "mallory.test",
    ),
    (C.ONPREM_SAME_PERSON, facts(cloud_users=()), POLICY, S.SKIP, "No single cloud user"),
    (C.ONPREM_NOT_PRIVILEGED, facts(), POLICY, S.PASS, "Not a member"),
    (C.ONPREM_NOT_PRIVILEGED, with_onprem(admin_count=1), POLICY, S.FAIL, "adminCount=1"),
    (
        C.ONPREM_NOT_PRIVILEGED,
        with_onprem(privileged_groups=("Domain Admins",)),
        POLICY,
        S.FAIL,
        "Domain Admins",
    ),
    (
        C.ONPREM_NOT_YET_SYNCED,
        facts(
            deleted_anchor_owners=(
                CloudUser(
                    id="cloud-ghost",
                    user_principal_name="jane+1234@contoso.onmicrosoft.com",
                    on_premises_immutable_id=ANCHOR,
                    deleted="2026-11-01T10:00:00Z",
                ),
            )
        ),
        POLICY,
        S.FAIL,
        "RESTORES",
    ),
    (
        C.ONPREM_NOT_YET_SYNCED,
        facts(deleted_anchor_owners=Unknown("User.Read.All missing")),
        POLICY,
        S.UNKNOWN,
        "soft-deleted",
    ),
    (C.ONPREM_NOT_YET_SYNCED, facts(deleted_anchor_owners=()), POLICY, S.PASS, "soft-deleted"),
    (
        C.ONPREM_IN_SYNC_SCOPE,
        with_onprem(critical_system_object=True),
        Policy(),
        S.FAIL,
        "isCriticalSystemObject",
    ),
    (
        C.ONPREM_IN_SYNC_SCOPE,
        with_onprem(admin_description="User_Jane"),
        POLICY,
        S.FAIL,
        "User_",
    ),
    (
        C.ONPREM_IN_SYNC_SCOPE,
        with_onprem(sam_account_name="MSOL_1a2b3c"),
        POLICY,
        S.FAIL,
        "sync service account",
    ),
    (C.ONPREM_IN_SYNC_SCOPE, with_onprem(sam_account_name=None), POLICY, S.FAIL, "sAMAccountName"),
    (
        C.ONPREM_UPN_DIFFERS,
        facts(
            onprem=onprem_user(user_principal_name="jane@contoso.local"),
            cloud=cloud_user(mail_nickname="jane.doe"),
            tenant=TENANT_OK,
        ),
        POLICY,
        S.WARN,
        "jane.doe@contoso.onmicrosoft.com",
    ),
    (
        C.ONPREM_ACCOUNT_ENABLED,
        with_cloud(account_enabled=False),
        POLICY,
        S.WARN,
        "ENABLED",
    ),
    (
        C.ONPREM_ACCOUNT_ENABLED,
        facts(
            onprem=onprem_user(user_account_control=0x202),
            cloud=cloud_user(account_enabled=False),
        ),
        POLICY,
        S.PASS,
        "disabled, like the cloud",
    ),
    (
        C.ONPREM_NO_EXCHANGE_MAILBOX,
        with_onprem(exchange_recipient_type_details=2147483648, exchange_mailbox_guid="f00"),
        POLICY,
        S.PASS,
        "remote mailbox",
    ),
    (
        C.ONPREM_NO_EXCHANGE_MAILBOX,
        with_onprem(exchange_recipient_type_details=4),
        POLICY,
        S.FAIL,
        "both sides",
    ),
    (
        C.UNIQUE_CLOUD,
        facts(
            onprem=onprem_user(mail="old@contoso.com", proxy_addresses=("SMTP:old@contoso.com",)),
            carried_holders=(OTHER_USER,),
        ),
        POLICY,
        S.FAIL,
        "takes over THAT user",
    ),
    (
        C.UNIQUE_CLOUD,
        facts(
            cloud_users=(GUEST_HOLDER, cloud_user()),
            cloud_holders=(
                Holder(ObjectKind.GUEST, "cloud-guest", "Jane (guest)", "mail", "jane@contoso.com"),
            ),
        ),
        POLICY,
        S.FAIL,
        "Jane (guest)",
    ),
    (
        C.UNIQUE_CLOUD,
        facts(
            carried_holders=(
                Holder(ObjectKind.GROUP, "g1", "Sales", "proxyAddresses", "smtp:jane@contoso.com"),
            ),
        ),
        POLICY,
        S.PASS,
        "No other cloud object",
    ),
    (
        C.UNIQUE_CLOUD,
        facts(
            onprem=onprem_user(proxy_addresses=("smtp:j.doe@contoso.com",)),
            carried_holders=Unknown("Group.Read.All missing"),
        ),
        POLICY,
        S.UNKNOWN,
        "Group.Read.All",
    ),
]


@pytest.mark.parametrize(
    ("check_id", "given", "policy", "status", "words"),
    CASES,
    ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(CASES)],
)
def test_each_check_reports_the_status_rules_md_gives(
    check_id: CheckId, given: Facts, policy: Policy, status: Status, words: str
) -> None:
    check = evaluate(given, policy).check(check_id)
    assert check.status is status, check.detail
    assert words.lower() in check.detail.lower()


def test_every_check_id_can_pass_and_fail_or_is_informational() -> None:
    seen = {(c[0], c[3]) for c in CASES}
    for check_id in CheckId:
        assert (check_id, Status.PASS) in seen, check_id
        assert (check_id, Status.FAIL) in seen or (check_id, Status.WARN) in seen, check_id


def test_a_report_lists_every_check_once_in_order() -> None:
    report = evaluate(facts(), POLICY)
    assert [c.id for c in report.checks] == list(CheckId)


def test_failed_checks_carry_a_remediation() -> None:
    for check_id, given, policy, status, _ in CASES:
        if status is Status.FAIL:
            assert evaluate(given, policy).check(check_id).remediation, check_id


class TestVerdict:
    def test_all_checks_passing_with_a_change_to_make_is_eligible(self) -> None:
        report = evaluate(facts(), POLICY)
        assert report.verdict == "eligible"
        assert report.plan is not None and report.plan.changes

    def test_warnings_and_unknowns_do_not_block(self) -> None:
        given = facts(
            address="jane.doe@contoso.com",
            mailbox=Unknown("no permission"),
            onprem=onprem_user(user_account_control=0x202),
        )
        assert evaluate(given, POLICY).verdict is Verdict.ELIGIBLE

    def test_any_failed_check_blocks_and_names_it(self) -> None:
        report = evaluate(facts(roles=(RoleAssignment("Global Administrator"),)), POLICY)
        assert report.verdict is Verdict.BLOCKED
        assert "cloud.no_admin_roles" in report.summary

    def test_a_cloud_user_bound_to_this_anchor_is_already_matched_with_no_plan(self) -> None:
        bound = cloud_user(on_premises_immutable_id=ANCHOR, on_premises_sync_enabled=True)
        report = evaluate(facts(cloud=bound, anchor_owners=(bound,)), POLICY)
        assert report.verdict is Verdict.ALREADY_MATCHED
        assert report.plan is None
        assert report.check(CheckId.ONPREM_NOT_YET_SYNCED).status is Status.PASS

    def test_several_ad_candidates_need_input_and_list_both(self) -> None:
        two = (onprem_user(), onprem_user(dn="CN=J2,OU=Staff,DC=contoso,DC=com"))
        report = evaluate(facts(onprem_users=two), POLICY)
        assert report.verdict is Verdict.NEEDS_INPUT
        assert report.candidates == two
        assert report.plan is None

    def test_no_ad_user_and_none_named_needs_an_account(self) -> None:
        # Revised rules: with every cloud-side check passing and no likely AD account, the
        # verdict is needs_account (it was needs_input).
        assert evaluate(facts(onprem_users=()), POLICY).verdict is Verdict.NEEDS_ACCOUNT

    def test_a_named_ad_account_that_does_not_exist_blocks(self) -> None:
        given = facts(onprem_users=(), onprem_id="ghost")
        assert evaluate(given, POLICY).verdict is Verdict.BLOCKED

    def test_no_cloud_user_blocks_even_when_ad_is_ambiguous(self) -> None:
        given = facts(cloud_users=(), onprem_users=())
        assert evaluate(given, POLICY).verdict is Verdict.BLOCKED

    def test_an_ad_user_that_already_carries_the_address_is_not_eligible(self) -> None:
        ready = onprem_user(
            mail="jane@contoso.com",
            proxy_addresses=("SMTP:jane@contoso.com", "smtp:jane.doe@contoso.com"),
        )
        report = evaluate(facts(onprem=ready), POLICY)
        assert report.verdict is Verdict.SYNC_PENDING
        assert "nothing to change" in report.summary
        assert report.plan is None

    def test_checks_about_a_missing_user_are_skipped_not_failed(self) -> None:
        report = evaluate(facts(cloud_users=()), POLICY)
        assert report.check(CheckId.CLOUD_HAS_MAILBOX).status is Status.SKIP
        assert report.check(CheckId.UNIQUE_CLOUD).status is Status.SKIP


class TestRound2Verdicts:
    """The verdicts docs/rules.md revised: the target among holders, aliases in the plan, a
    pending hard match, needs_account and a likely account under another name."""

    def test_the_plan_carries_the_cloud_aliases_but_not_onmicrosoft_ones(self) -> None:
        cloud = cloud_user(
            proxy_addresses=(
                "SMTP:jane@contoso.com",
                "smtp:jane.doe@contoso.com",
                "smtp:j.doe@contoso.com",
                "smtp:jane@contoso.onmicrosoft.com",
            )
        )
        report = evaluate(facts(cloud=cloud, upn_owner=cloud), POLICY)
        assert report.verdict is Verdict.ELIGIBLE
        assert report.plan is not None
        after = {c.attribute: c.after for c in report.plan.changes}["proxyAddresses"]
        assert after == (
            "SMTP:jane@contoso.com",
            "smtp:jane.doe@contoso.com",
            "smtp:j.doe@contoso.com",
        )
        assert "jane.doe@contoso.com, j.doe@contoso.com" in report.summary

    def test_a_member_is_the_target_and_the_guest_is_the_duplicate(self) -> None:
        guest = Holder(
            ObjectKind.GUEST, GUEST_HOLDER.id, "Jane (guest)", "mail", "jane@contoso.com"
        )
        given = facts(cloud_users=(GUEST_HOLDER, cloud_user()), cloud_holders=(guest,))
        report = evaluate(given, POLICY)
        assert report.cloud is not None and report.cloud.id == "cloud-jane"
        assert report.check(CheckId.CLOUD_USER_FOUND).status is Status.PASS
        assert report.check(CheckId.ONPREM_UPN_CONFLICT).status is Status.PASS
        assert report.verdict is Verdict.BLOCKED
        assert report.summary == "Blocked by: unique.cloud."

    def test_a_pending_hard_match_with_nothing_to_write_is_sync_pending(self) -> None:
        ready = onprem_user(
            mail="jane@contoso.com",
            proxy_addresses=("SMTP:jane@contoso.com", "smtp:jane.doe@contoso.com"),
        )
        report = evaluate(pending(onprem=ready, anchor_owners=(PENDING,)), POLICY)
        assert report.verdict is Verdict.SYNC_PENDING
        assert report.plan is None
        assert "hard-matches" in report.summary

    def test_a_blocked_pending_hard_match_is_not_already_matched(self) -> None:
        given = pending(tenant=Tenant(("contoso.com",), False, block_hard_match=True))
        report = evaluate(given, POLICY)
        assert report.verdict is Verdict.BLOCKED
        assert "cloud.hard_match_allowed" in report.summary

    def test_an_onmicrosoft_primary_has_no_plan_and_is_blocked(self) -> None:
        cloud = cloud_user(
            mail="jane@contoso.onmicrosoft.com",
            proxy_addresses=("SMTP:jane@contoso.onmicrosoft.com", "smtp:jane@contoso.com"),
        )
        report = evaluate(facts(cloud=cloud, upn_owner=cloud), POLICY)
        assert report.verdict is Verdict.BLOCKED
        assert report.plan is None

    def test_a_likely_account_under_another_name_needs_input_naming_it(self) -> None:
        alike = onprem_user(
            dn="CN=Jane Doe,OU=Sales,DC=contoso,DC=com",
            sam_account_name="jdoe",
            user_principal_name="jdoe@contoso.com",
        )
        report = evaluate(facts(onprem_users=(), lookalikes=(alike,)), POLICY)
        assert report.verdict is Verdict.NEEDS_INPUT
        assert report.candidates == (alike,)
        assert "jdoe" in report.check(CheckId.ONPREM_USER_FOUND).detail
        assert "same displayName" in report.check(CheckId.ONPREM_USER_FOUND).detail

    def test_needs_account_says_creation_is_not_offered_yet(self) -> None:
        report = evaluate(facts(onprem_users=()), POLICY)
        assert report.verdict is Verdict.NEEDS_ACCOUNT
        assert report.plan is None
        assert "SMTPMATCH_CREATE_OU" in report.summary

    def test_a_cloud_side_failure_without_an_ad_account_is_blocked_not_needs_account(self) -> None:
        report = evaluate(facts(onprem_users=(), mailbox=False), POLICY)
        assert report.verdict is Verdict.BLOCKED

    def test_a_named_account_that_is_not_the_person_blocks(self) -> None:
        report = evaluate(facts(onprem=STRANGER, onprem_id="mallory.test"), POLICY)
        assert report.verdict is Verdict.BLOCKED
        assert "onprem.same_person" in report.summary

    def test_the_ad_upn_counts_as_carried_only_with_a_mailbox(self) -> None:
        holder = Holder(ObjectKind.CONTACT, "c1", "Ext", "mail", "jdoe@contoso.com")
        onprem = onprem_user(user_principal_name="jdoe@contoso.com")
        with_box = evaluate(facts(onprem=onprem, carried_holders=(holder,)), POLICY)
        without = evaluate(facts(onprem=onprem, carried_holders=(holder,), mailbox=False), POLICY)
        assert with_box.check(CheckId.UNIQUE_CLOUD).status is Status.FAIL
        assert without.check(CheckId.UNIQUE_CLOUD).status is Status.PASS
