"""What the AD adapter now takes from ldap3 (filter escaping, SID formatting), on Samba."""

from __future__ import annotations

import pytest

from bot.directories.ad import ActiveDirectory, sid_to_string
from tests.support.samba import AdSandbox

pytestmark = pytest.mark.samba


def test_a_name_with_filter_characters_and_accents_finds_exactly_its_user(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    name = f"Zoë (Ops) *\\ Łukasz {ad.tag}"
    wanted = ad.add_user(
        ad.sam("zoe"),
        display_name=name,
        extra={"givenName": f"Zoë*{ad.tag}", "sn": "Çelik(\\)"},
    )
    # Each would be found if '*' were a wildcard, '\' an escape or the accents were lost.
    ad.add_user(ad.sam("zoe2"), display_name=f"Zoë (Ops) x\\ Łukasz {ad.tag}")
    ad.add_user(ad.sam("zoe3"), display_name=f"Zoë (Ops) *\\ Lukasz {ad.tag}")
    ad.add_user(ad.sam("zoe4"), extra={"givenName": f"Zoë-{ad.tag}", "sn": "Çelik(\\)"})
    ad.add_user(ad.sam("zoe5"), extra={"givenName": f"Zoe*{ad.tag}", "sn": "Celik(\\)"})

    by_display = active_directory.find_lookalikes(name, None, None, None)
    by_names = active_directory.find_lookalikes(None, f"Zoë*{ad.tag}", "Çelik(\\)", None)

    assert [u.dn for u in by_display] == [wanted]
    assert [u.dn for u in by_names] == [wanted]
    assert by_display[0].display_name == name


def test_an_address_with_filter_characters_and_accents_finds_exactly_its_holders(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = f"zoë*(ops)\\{ad.tag}@contoso.com"
    wanted = ad.add_user(ad.sam("zoe"), mail=address, proxy_addresses=[f"SMTP:{address}"])
    ad.add_user(ad.sam("zoe2"), mail=f"zoë-(ops)\\{ad.tag}@contoso.com")
    ad.add_user(ad.sam("zoe3"), mail=f"zoe*(ops)\\{ad.tag}@contoso.com")

    assert [u.dn for u in active_directory.find_users(address, None)] == [wanted]
    assert {h.id for h in active_directory.find_holders(address)} == {wanted}


def test_the_sid_string_read_is_the_one_the_server_itself_searches_by(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    sam = ad.sam("jane")
    dn = ad.add_user(sam)

    (user,) = active_directory.find_users("x@contoso.com", sam)

    # AD and Samba accept a SID's string form in a filter: the server confirms the formatting.
    assert user.object_sid is not None
    assert ad.dc.find(f"(objectSid={user.object_sid})") == [dn]


def test_a_truncated_binary_sid_is_refused_rather_than_formatted() -> None:
    raw = bytes.fromhex("010500000000000515000000a065cf7e784b9b5fe77c8770091c0100")

    assert sid_to_string(raw) == "S-1-5-21-2127521184-1604012920-1887927527-72713"
    with pytest.raises(ValueError, match="sub-authority count"):
        sid_to_string(raw[:-4])
    with pytest.raises(ValueError, match="sub-authority count"):
        sid_to_string(raw[:6])
