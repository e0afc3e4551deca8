"""Mailbox address parsing and the comparisons the rules rely on (docs/rules.md)."""

from __future__ import annotations

import re

from bot.errors import InvalidInput
from bot.models import is_service_domain, smtp_values

MAX_ADDRESS_LENGTH = 254
_LOCAL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"^{_LOCAL_ATOM}(?:\.{_LOCAL_ATOM})*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


_SLACK_MAILTO = re.compile(r"^<mailto:([^|>]*)(?:\|([^>]*))?>$", re.IGNORECASE)


def _unwrap_slack(value: str) -> str:
    """``jane@contoso.com`` from Slack's ``<mailto:jane@contoso.com|jane@contoso.com>`` form."""
    match = _SLACK_MAILTO.match(value)
    return match.group(1).strip() if match else value


def _ascii_domain(domain: str, shown: str) -> str:
    """``domain`` in ASCII: an internationalized name becomes its ``xn--`` form.

    Raises:
        InvalidInput: the name cannot be encoded (say to use the ``xn--`` form).
    """
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidInput(
            f"'{shown}' is not a mailbox address: the domain '{domain}' is not a valid "
            "internationalized name (type its xn-- form)"
        ) from None


def parse_address(text: str) -> str:
    """Validate a mailbox address as typed and return it normalised.

    Only the dot-atom form is accepted (no quoted local parts, no comments, no IP literals):
    that is what Exchange and Entra ID accept as an SMTP address. Slack's
    ``<mailto:ADDRESS|ADDRESS>`` form is unwrapped, and an internationalized domain
    (``jane@müller.de``) is returned in its ASCII ``xn--`` form, as the directories store it.
    Messages quote the address as typed, without escaping.

    Raises:
        InvalidInput: with a message that says what is wrong.
    """
    value = _unwrap_slack(text.strip())
    if not value:
        raise InvalidInput("no address given: type a mailbox address such as jane@contoso.com")
    if _CONTROL.search(value):
        raise InvalidInput("the address contains control characters")
    shown = value if len(value) <= 80 else value[:77] + "..."
    if len(value) > MAX_ADDRESS_LENGTH:
        raise InvalidInput(
            f"the address is {len(value)} characters long; at most {MAX_ADDRESS_LENGTH} are allowed"
        )
    if value.count("@") != 1:
        raise InvalidInput(f"'{shown}' is not a mailbox address: it must contain exactly one '@'")
    local, domain = value.split("@")
    if local and not local.isascii():
        raise InvalidInput(
            f"'{shown}' is not a mailbox address: the part before '@' must be ASCII "
            "(letters, digits and ! # $ % & ' * + - / = ? ^ _ ` { | } ~ .)"
        )
    if not local or len(local) > 64 or not _LOCAL.match(local):
        raise InvalidInput(f"'{shown}' is not a mailbox address: the part before '@' is not valid")
    domain = _ascii_domain(domain, shown)
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise InvalidInput(
            f"'{shown}' is not a mailbox address: '{domain}' is not a valid domain name"
        )
    if len(f"{local}@{domain}") > MAX_ADDRESS_LENGTH:
        raise InvalidInput(
            f"'{shown}' is longer than {MAX_ADDRESS_LENGTH} characters in its xn-- form"
        )
    return f"{local}@{domain}"


def same_address(a: str | None, b: str | None) -> bool:
    """Case-insensitive address equality, as both directories compare addresses."""
    return a is not None and b is not None and a.casefold() == b.casefold()


def domain_of(address: str) -> str:
    """The domain part of an address, lower-cased."""
    return address.rsplit("@", 1)[-1].lower()


def primary_smtp(proxy_addresses: tuple[str, ...], mail: str | None) -> str | None:
    """The primary SMTP address: the uppercase ``SMTP:`` value, else ``mail`` (KB 3190357).

    Addresses in ``*.onmicrosoft.com`` are not used as a primary by sync, so ``mail`` in that
    domain does not count. A cloud user's ``SMTP:`` value in that domain IS its primary; the
    rules then refuse it (``cloud.address_is_primary``, see docs/rules.md).
    """
    for value in smtp_values(proxy_addresses):
        if value.primary:
            return value.address
    if mail and not is_service_domain(mail):
        return mail
    return None


def smtp_addresses(proxy_addresses: tuple[str, ...]) -> tuple[str, ...]:
    """Every SMTP address (primary and secondary) in a proxyAddresses list."""
    return tuple(v.address for v in smtp_values(proxy_addresses))
