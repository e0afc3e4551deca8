"""KB step 2 in the rules: the create plan built from facts (names AD already uses, the forest's
UPN suffixes), its JSON shape, and the settings that configure it."""

from __future__ import annotations

import string

import pytest

from bot.errors import ConfigurationError
from bot.ports import AccountNames, PlanAction
from bot.rules.checks import CheckId, Status, Verdict
from bot.rules.codec import plan_to_dict, report_to_dict
from bot.rules.engine import CREATE_OU_SETTING, Policy, evaluate
from bot.rules.plan import (
    MAX_SAM_LENGTH,
    check_sam_template,
    cn_candidates,
    escape_rdn,
    plan_account,
    sam_candidates,
)
from bot.services.create import anchor_of, generate_password, guid_of
from bot.settings import load_settings
from tests.unit.builders import SCOPE, cloud_user, facts

OU = f"OU=New Users,{SCOPE}"
FREE = AccountNames(
    taken_cns=frozenset(),
    taken_sams=frozenset(),
    upn_taken=False,
    upn_suffixes=("contoso.com",),
    dns_domain="contoso.com",
)
NORA = cloud_user(
    id="cloud-nora",
    user_principal_name="nora.new@contoso.com",
    display_name="Nora New",
    given_name="Nora",
    surname="New",
    mail="nora.new@contoso.com",
    proxy_addresses=(
        "SMTP:nora.new@contoso.com",
        "smtp:nora@contoso.com",
        "smtp:nora.new@contoso.onmicrosoft.com",
    ),
)
POLICY = Policy(sync_scope=(SCOPE,), create_ou=OU)


def needs_account(names: AccountNames | None = FREE, policy: Policy = POLICY):
    return evaluate(
        facts(
            address="nora.new@contoso.com",
            cloud=NORA,
            cloud_users=(NORA,),
            onprem_users=(),
            onprem_holders=(),
            cloud_holders=(),
            account_names=names,
        ),
        policy,
    )


def after(plan, attribute: str):
    return next(c.after for c in plan.changes if c.attribute == attribute)


class TestThePlan:
    def test_needs_account_with_a_creation_ou_offers_the_create_plan(self) -> None:
        report = needs_account()
        assert report.verdict is Verdict.NEEDS_ACCOUNT
        plan = report.plan
        assert plan is not None and plan.action is PlanAction.CREATE
        assert plan.dn == f"CN=Nora New,{OU}"
        assert after(plan, "sAMAccountName") == ("nora.new",)
        assert after(plan, "userPrincipalName") == ("nora.new@contoso.com",)
        assert after(plan, "givenName") == ("Nora",) and after(plan, "sn") == ("New",)
        assert after(plan, "displayName") == ("Nora New",)
        assert after(plan, "userAccountControl") == ("512",)
        assert all(c.before == () for c in plan.changes)
        assert "password" in report.summary and "stops working" in report.summary

    def test_mail_and_proxy_addresses_are_exactly_what_a_match_would_set(self) -> None:
        plan = needs_account().plan
        assert plan is not None
        assert after(plan, "mail") == ("nora.new@contoso.com",)
        # The primary plus every alias; the onmicrosoft.com one is left to Entra ID.
        assert after(plan, "proxyAddresses") == (
            "SMTP:nora.new@contoso.com",
            "smtp:nora@contoso.com",
        )

    def test_the_json_is_a_create_with_null_befores_and_no_password(self) -> None:
        report = needs_account()
        data = report_to_dict(report)["plan"]
        assert data["action"] == "create" and data["dn"] == f"CN=Nora New,{OU}"
        assert {c["before"] for c in data["changes"]} == {None}
        assert not any("unicodePwd" in c["attribute"] for c in data["changes"])
        assert "password" not in {c["attribute"].lower() for c in data["changes"]}

    def test_a_match_plan_is_still_a_modify(self) -> None:
        report = evaluate(facts(), Policy(sync_scope=(SCOPE,)))
        assert report.plan is not None and plan_to_dict(report.plan)["action"] == "modify"

    def test_without_the_creation_ou_there_is_no_plan_and_the_setting_is_named(self) -> None:
        report = needs_account(policy=Policy(sync_scope=(SCOPE,)))
        assert report.verdict is Verdict.NEEDS_ACCOUNT and report.plan is None
        assert CREATE_OU_SETTING in report.summary

    def test_names_taken_in_ad_move_the_plan_to_the_next_free_ones(self) -> None:
        names = AccountNames(
            taken_cns=frozenset({"nora new"}),
            taken_sams=frozenset({"NORA.NEW", "nora.new2"}),
            upn_taken=False,
            upn_suffixes=("contoso.com",),
            dns_domain="contoso.com",
        )
        plan = needs_account(names).plan
        assert plan is not None
        assert plan.dn == f"CN=Nora New 2,{OU}"
        assert after(plan, "sAMAccountName") == ("nora.new3",)

    def test_a_cloud_upn_outside_the_forest_suffixes_gets_the_domain_and_a_warning(self) -> None:
        names = AccountNames(frozenset(), frozenset(), False, ("contoso.local",), "contoso.local")
        report = needs_account(names)
        assert report.plan is not None
        assert after(report.plan, "userPrincipalName") == ("nora.new@contoso.local",)
        check = report.check(CheckId.ONPREM_UPN_DIFFERS)
        assert check.status is Status.WARN and "nora.new@contoso.local" in check.detail
        assert report.verdict is Verdict.NEEDS_ACCOUNT

    def test_a_cloud_upn_already_used_in_ad_is_not_reused(self) -> None:
        names = AccountNames(frozenset(), frozenset(), True, ("contoso.com",), "contoso.local")
        report = needs_account(names)
        assert report.plan is not None
        assert after(report.plan, "userPrincipalName") == ("nora.new@contoso.local",)
        assert "already has the UPN" in report.check(CheckId.ONPREM_UPN_DIFFERS).detail
        clash = AccountNames(frozenset(), frozenset(), True, ("contoso.com",), "contoso.com")
        blocked = needs_account(clash)
        assert blocked.plan is None and "already has the UPN" in blocked.summary

    def test_the_names_could_not_be_read_gives_no_plan(self) -> None:
        report = needs_account(names=None)
        assert report.verdict is Verdict.NEEDS_ACCOUNT and report.plan is None

    def test_a_likely_account_under_another_name_is_still_needs_input(self) -> None:
        from tests.unit.builders import onprem_user

        alike = onprem_user(sam_account_name="nnew", display_name="Nora New")
        report = evaluate(
            facts(
                address="nora.new@contoso.com",
                cloud=NORA,
                cloud_users=(NORA,),
                onprem_users=(),
                onprem_holders=(),
                cloud_holders=(),
                lookalikes=(alike,),
                account_names=FREE,
            ),
            POLICY,
        )
        assert report.verdict is Verdict.NEEDS_INPUT and report.plan is None


class TestNames:
    def test_sam_account_names_follow_the_template_are_short_and_deterministic(self) -> None:
        long = cloud_user(
            user_principal_name="maximilian.von.hohenberg@contoso.com",
            given_name="Maximilian",
            surname="von Hohenberg",
        )
        first = sam_candidates(long, "maximilian.von.hohenberg@contoso.com", "{upn_prefix}")
        again = sam_candidates(long, "maximilian.von.hohenberg@contoso.com", "{upn_prefix}")
        assert first == again
        assert all(len(s) <= MAX_SAM_LENGTH for s in first)
        assert first[0] == "maximilian.von.hohen" and first[1] == "maximilian.von.hohe2"
        initials = sam_candidates(long, "x@contoso.com", "{given:.1}{sn}")
        assert initials[0] == "mvonhohenberg"  # space removed, lower case

    def test_a_template_with_empty_fields_falls_back_to_the_upn_prefix(self) -> None:
        bare = cloud_user(user_principal_name="j.doe@contoso.com", given_name=None, surname=None)
        assert sam_candidates(bare, "jane@contoso.com", "{given}{sn}")[0] == "j.doe"

    def test_cn_candidates_use_the_display_name_then_number_it(self) -> None:
        assert cn_candidates(NORA)[:3] == ("Nora New", "Nora New 2", "Nora New 3")

    def test_rdn_values_are_escaped(self) -> None:
        assert escape_rdn("Doe, Jane") == "Doe\\, Jane"
        assert escape_rdn("#1 ") == "\\#1\\ "
        plan = plan_account(
            cloud_user(display_name="Doe, Jane"), "jane@contoso.com", [], OU, FREE
        ).plan
        assert plan is not None and plan.dn == f"CN=Doe\\, Jane,{OU}"

    def test_a_bad_template_is_refused(self) -> None:
        with pytest.raises(ValueError, match="upn_prefix"):
            check_sam_template("{nickname}")
        with pytest.raises(ValueError):
            check_sam_template("@@@")
        check_sam_template("{given:.1}{sn}")


class TestSettings:
    def test_a_creation_ou_outside_the_sync_scope_is_refused_naming_the_variable(
        self, monkeypatch
    ) -> None:
        monkeypatch.setenv("SMTPMATCH_SYNC_SCOPE", SCOPE)
        monkeypatch.setenv("SMTPMATCH_CREATE_OU", "OU=Elsewhere,DC=contoso,DC=com")
        with pytest.raises(ConfigurationError, match=r"^SMTPMATCH_CREATE_OU:.*SYNC_SCOPE"):
            load_settings(_env_file=None)

    def test_a_creation_ou_inside_the_scope_and_an_empty_one_are_accepted(
        self, monkeypatch
    ) -> None:
        monkeypatch.setenv("SMTPMATCH_SYNC_SCOPE", SCOPE)
        monkeypatch.setenv("SMTPMATCH_CREATE_OU", OU)
        assert load_settings(_env_file=None).smtpmatch_create_ou == OU
        monkeypatch.setenv("SMTPMATCH_CREATE_OU", "")
        assert load_settings(_env_file=None).smtpmatch_create_ou is None

    def test_a_bad_sam_template_is_refused_naming_the_variable(self, monkeypatch) -> None:
        monkeypatch.setenv("SMTPMATCH_SAM_TEMPLATE", "{surname}")
        with pytest.raises(ConfigurationError, match=r"^SMTPMATCH_SAM_TEMPLATE:"):
            load_settings(_env_file=None)


class TestPassword:
    def test_generated_passwords_are_long_random_and_meet_ad_complexity(self) -> None:
        made = {generate_password() for _ in range(50)}
        assert len(made) == 50
        for password in made:
            assert len(password) >= 20
            for group in (string.ascii_uppercase, string.ascii_lowercase, string.digits):
                assert any(c in group for c in password)
            assert any(not c.isalnum() for c in password)

    def test_an_anchor_and_its_guid_round_trip(self) -> None:
        import uuid

        guid = uuid.uuid4()
        assert guid_of(anchor_of(guid)) == guid
