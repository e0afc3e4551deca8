"""Addresses as people type or paste them: IDN, Slack's mailto form, readable errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import InvalidInput
from bot.rules.address import parse_address
from tests.unit.cli_helpers import smtpmatch


def test_an_internationalized_domain_is_accepted_in_its_xn_form() -> None:
    assert parse_address("jane@müller.de") == "jane@xn--mller-kva.de"
    assert parse_address("jane@xn--mller-kva.de") == "jane@xn--mller-kva.de"


def test_a_non_ascii_local_part_gets_a_clear_message() -> None:
    with pytest.raises(InvalidInput, match="the part before '@' must be ASCII"):
        parse_address("jürgen@contoso.com")


def test_slacks_mailto_form_is_unwrapped() -> None:
    assert parse_address("<mailto:jane@contoso.com|jane@contoso.com>") == "jane@contoso.com"
    assert parse_address(" <mailto:jane@contoso.com> ") == "jane@contoso.com"


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("ja\\ne@contoso.com", "'ja\\ne@contoso.com' is not a mailbox address"),
        ("o'brien@contoso..com", "'o'brien@contoso..com' is not a mailbox address"),
    ],
)
def test_errors_quote_the_address_as_typed_without_escaping(typed: str, shown: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_address(typed)
    assert str(caught.value).startswith(shown)
    assert "\\\\" not in str(caught.value)


def test_the_cli_checks_an_idn_address_and_reports_it_in_xn_form(tmp_path: Path) -> None:
    result = smtpmatch("check", "--demo", "--json", "jane@müller.de", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["address"] == "jane@xn--mller-kva.de"


def test_the_cli_prints_a_backslash_once(tmp_path: Path) -> None:
    result = smtpmatch("check", "--demo", "ja\\ne@contoso.com", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("smtpmatch: 'ja\\ne@contoso.com' is not a mailbox address")
