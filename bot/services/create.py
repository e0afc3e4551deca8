"""KB step 2 helpers of the request flow: the new account's password and its GUID.

The password is made at creation time from :mod:`secrets`, handed to the AD adapter's one add
and dropped: it is never shown, stored, logged or put in an audit record.
"""

from __future__ import annotations

import base64
import secrets
import string
import uuid

from pydantic import JsonValue

from bot.ports import ChangePlan
from bot.rules.codec import plan_to_dict

#: Length of a generated password (AD's default policy asks for 7+; long is cheap).
PASSWORD_LENGTH = 24
_CLASSES = (string.ascii_uppercase, string.ascii_lowercase, string.digits, "!#%+-.:=?@_~")


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """A strong random password meeting AD's complexity rules (all four character classes).

    Args:
        length: at least 8.
    """
    if length < 8:
        raise ValueError("a password needs at least 8 characters")
    alphabet = "".join(_CLASSES)
    while True:
        chars = [secrets.choice(alphabet) for _ in range(length)]
        if all(any(c in group for c in chars) for group in _CLASSES):
            return "".join(chars)


def anchor_of(guid: uuid.UUID) -> str:
    """The sourceAnchor of a new user: Base64 of its objectGUID's raw (little-endian) bytes."""
    return base64.b64encode(guid.bytes_le).decode("ascii")


def guid_of(anchor: str) -> uuid.UUID:
    """The objectGUID an anchor was made from (the inverse of :func:`anchor_of`).

    Raises:
        ValueError: the anchor is not Base64 of 16 bytes.
    """
    raw = base64.b64decode(anchor, validate=True)
    return uuid.UUID(bytes_le=raw)


def creation_details(plan: ChangePlan, guid: uuid.UUID) -> dict[str, JsonValue]:
    """What the audit trail records about a creation: DN, GUID and the attributes set (the
    plan holds no password, so neither does this)."""
    return {**plan_to_dict(plan), "guid": str(guid)}
