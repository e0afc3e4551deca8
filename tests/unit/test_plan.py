"""The change plan: mail set, exactly one SMTP: primary, every other value kept."""

from __future__ import annotations

from bot.rules.plan import cloud_aliases, plan_change, plan_proxy_addresses
from tests.unit.builders import onprem_user


def test_an_empty_ad_user_gets_mail_and_a_single_primary() -> None:
    plan = plan_change(onprem_user(), "jane@contoso.com")
    changes = {c.attribute: c for c in plan.changes}
    assert changes["mail"].before == () and changes["mail"].after == ("jane@contoso.com",)
    assert changes["proxyAddresses"].after == ("SMTP:jane@contoso.com",)


def test_another_primary_is_demoted_and_other_values_are_kept() -> None:
    after = plan_proxy_addresses(
        ("SMTP:paul@fabrikam.com", "X500:/o=F/cn=paul", "sip:paul@fabrikam.com"),
        "paul@contoso.com",
    )
    assert after == (
        "SMTP:paul@contoso.com",
        "smtp:paul@fabrikam.com",
        "X500:/o=F/cn=paul",
        "sip:paul@fabrikam.com",
    )
    assert sum(v.startswith("SMTP:") for v in after) == 1


def test_a_secondary_copy_of_the_target_is_promoted_not_duplicated() -> None:
    after = plan_proxy_addresses(
        ("smtp:JANE@Contoso.com", "SMTP:old@contoso.com"), "jane@contoso.com"
    )
    assert after == ("SMTP:jane@contoso.com", "smtp:old@contoso.com")


def test_values_equal_but_for_case_are_kept_once() -> None:
    after = plan_proxy_addresses(
        ("smtp:a@contoso.com", "smtp:A@CONTOSO.COM", "SMTP:b@contoso.com", "smtp:b@contoso.com"),
        "jane@contoso.com",
    )
    assert after == ("SMTP:jane@contoso.com", "smtp:a@contoso.com", "smtp:b@contoso.com")


def test_an_ad_user_that_already_has_the_address_needs_no_change() -> None:
    user = onprem_user(
        mail="jane@contoso.com", proxy_addresses=("smtp:x@contoso.com", "SMTP:jane@contoso.com")
    )
    assert plan_change(user, "jane@contoso.com").changes == ()


def test_only_attributes_that_change_are_listed() -> None:
    user = onprem_user(mail="jane@contoso.com", proxy_addresses=("SMTP:old@contoso.com",))
    plan = plan_change(user, "jane@contoso.com")
    assert [c.attribute for c in plan.changes] == ["proxyAddresses"]


def test_the_inverse_restores_the_before_values() -> None:
    user = onprem_user(mail="old@contoso.com", proxy_addresses=("SMTP:old@contoso.com",))
    plan = plan_change(user, "jane@contoso.com")
    back = plan.inverse()
    assert [(c.attribute, c.after) for c in back.changes] == [
        ("mail", ("old@contoso.com",)),
        ("proxyAddresses", ("SMTP:old@contoso.com",)),
    ]


def test_cloud_aliases_are_added_once_without_service_domain_ones() -> None:
    aliases = cloud_aliases(
        (
            "SMTP:jane@contoso.com",
            "smtp:jd@contoso.com",
            "smtp:JD@contoso.com",
            "smtp:jane@contoso.onmicrosoft.com",
            "SIP:jane@contoso.com",
        ),
        "jane@contoso.com",
    )
    after = plan_proxy_addresses(
        ("smtp:old@contoso.com", "smtp:JD@Contoso.com"), "jane@contoso.com", aliases
    )

    assert aliases == ("jd@contoso.com",)
    assert after == ("SMTP:jane@contoso.com", "smtp:old@contoso.com", "smtp:JD@Contoso.com")


def test_an_ad_user_lacking_only_an_alias_gets_just_the_alias_added() -> None:
    user = onprem_user(mail="jane@contoso.com", proxy_addresses=("SMTP:jane@contoso.com",))
    plan = plan_change(user, "jane@contoso.com", ("jd@contoso.com",))
    assert [(c.attribute, c.after) for c in plan.changes] == [
        ("proxyAddresses", ("SMTP:jane@contoso.com", "smtp:jd@contoso.com"))
    ]
