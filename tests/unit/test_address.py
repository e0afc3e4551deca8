"""Address input: valid mailbox addresses pass; everything else is a clear InvalidInput."""

from __future__ import annotations

import pytest

from bot.errors import InvalidInput
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
