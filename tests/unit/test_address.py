"""Address input: valid mailbox addresses pass; everything else is a clear InvalidInput."""

from __future__ import annotations

import pytest

from bot.errors import InvalidInput
from bot.models import ProxyAddress, is_service_domain, smtp_values
from bot.rules.address import parse_address, primary_smtp


@pytest.mark.parametrize(
    "text",
    ["jane@contoso.com", " Jane.Doe@Contoso.COM ", "o'brien@contoso.com", "a+b@sub.contoso.co.uk"],
)
def test_valid_addresses_are_accepted(text: str) -> None:
    assert parse_address(text) == text.strip()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "no address"),
        ("jane", "exactly one '@'"),
        ("a@b@contoso.com", "exactly one '@'"),
        ("jane@contoso", "not a valid domain"),
        ("jane@-contoso.com", "not a valid domain"),
        ("ja ne@contoso.com", "before '@'"),
        ("*)(mail=*@contoso.com", "before '@'"),
        (".jane@contoso.com", "before '@'"),
        ("jane\n@contoso.com", "control characters"),
        ("jane\x00@contoso.com", "control characters"),
        ("j" * 250 + "@contoso.com", "at most 254"),
        ("j" * 65 + "@contoso.com", "before '@'"),
        ("jane@10.0.0.1", "not a valid domain"),
    ],
)
def test_malformed_addresses_are_refused_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_address(text)
    assert words in str(info.value)


def test_the_primary_is_the_uppercase_smtp_value_else_mail() -> None:
    assert primary_smtp(("smtp:a@x.com", "SMTP:b@x.com"), "c@x.com") == "b@x.com"
    assert primary_smtp(("smtp:a@x.com",), "c@x.com") == "c@x.com"
    assert primary_smtp((), "c@x.onmicrosoft.com") is None


# -- ProxyAddress: the one place proxyAddresses values are parsed -------------------------


def test_a_proxy_address_tells_primary_secondary_and_other_types_apart() -> None:
    primary, alias, x500, bare = map(
        ProxyAddress.parse, ["SMTP:Jane@contoso.com", "smtp:jd@contoso.com", "X500:/o=x", "a@b.c"]
    )

    assert (primary.primary, primary.is_smtp, primary.address) == (True, True, "Jane@contoso.com")
    assert (alias.primary, alias.is_smtp) == (False, True)
    assert (x500.is_smtp, x500.primary, str(x500)) == (False, False, "X500:/o=x")
    assert (bare.prefix, bare.is_smtp, str(bare)) == ("", False, "a@b.c")
    assert primary.holds("jane@CONTOSO.com") and not x500.holds("/o=x")
    assert str(primary.demoted()) == "smtp:Jane@contoso.com"
    assert str(ProxyAddress.smtp("x@y.z", primary=True)) == "SMTP:x@y.z"
    assert [str(v) for v in smtp_values(["X500:/o=x", "smtp:a@b.c", "SMTP:c@d.e"])] == [
        "smtp:a@b.c",
        "SMTP:c@d.e",
    ]


def test_service_domains_are_recognised() -> None:
    assert is_service_domain("jane@contoso.onmicrosoft.com")
    assert is_service_domain("jane@Contoso.MicrosoftOnline.com")
    assert not is_service_domain("jane@contoso.com")
    assert not is_service_domain("jane@notonmicrosoft.com")


def test_a_cloud_primary_in_the_service_domain_is_still_its_primary() -> None:
    # The rules refuse it (cloud.address_is_primary); primary_smtp must not hide it.
    assert (
        primary_smtp(("smtp:jane@contoso.com", "SMTP:jane@contoso.onmicrosoft.com"), None)
        == "jane@contoso.onmicrosoft.com"
    )
