"""The Active Directory adapter's connections against a real Samba AD DC: TLS, binds, faults,
failover and reuse."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import SecretStr

from bot.directories.ad import (
    ActiveDirectory,
    _Schema,
    _to_user,
    escape_filter_value,
    object_kind,
    sid_to_string,
)
from bot.errors import AuthenticationFailed, ConfigurationError, DirectoryUnavailable
from bot.models import ObjectKind
from bot.settings import Settings
from tests.support.samba import AdSandbox, SambaDC

pytestmark = pytest.mark.samba


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(samba_dc: SambaDC, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "ldap_url": (samba_dc.ldaps_url,),
        "ldap_bind_dn": samba_dc.admin_dn,
        "ldap_bind_password": samba_dc.admin_password,
        "ldap_base_dn": samba_dc.base_dn,
        "ldap_ca_file": samba_dc.ca_file,
        "ldap_timeout_seconds": 2,
        "ldap_gc_url": None,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


# -- TLS and binding ----------------------------------------------------------------------------


def test_ldaps_with_the_private_ca_validates_and_works(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    dn = ad.add_user(ad.sam("jane"))

    assert [u.dn for u in active_directory.find_users("x@contoso.com", dn)] == [dn]


def test_a_server_certificate_the_client_does_not_trust_is_refused(samba_dc: SambaDC) -> None:
    # Without LDAP_CA_FILE the system trust store is used, which does not know the test CA.
    settings = _settings(samba_dc, ldap_ca_file=None)

    with (
        ActiveDirectory.from_settings(settings) as directory,
        pytest.raises(DirectoryUnavailable) as caught,
    ):
        directory.find_users("x@contoso.com", "Administrator")

    message = str(caught.value)
    assert f"{samba_dc.host}:636" in message
    assert "certificate" in message


def test_an_ldap_url_is_upgraded_with_starttls_before_binding(
    ad: AdSandbox, samba_dc: SambaDC
) -> None:
    dn = ad.add_user(ad.sam("jane"))

    with ActiveDirectory.from_settings(_settings(samba_dc, ldap_url=(samba_dc.ldap_url,))) as d:
        users = d.find_users("x@contoso.com", dn)
        tls_started = all(c.tls_started for c in d._pool._idle)

    assert [u.dn for u in users] == [dn]
    assert tls_started


def test_a_wrong_password_is_an_authentication_failure_that_does_not_show_it(
    samba_dc: SambaDC,
) -> None:
    password = "Wr0ng!Secret-Value"
    settings = _settings(samba_dc, ldap_bind_password=password)

    with (
        ActiveDirectory.from_settings(settings) as directory,
        pytest.raises(AuthenticationFailed) as caught,
    ):
        directory.find_users("x@contoso.com", None)

    error = caught.value
    assert f"{samba_dc.host}:636" in str(error)
    assert error.directory == "Active Directory"
    for text in (str(error), repr(error), repr(error.args), str(error.__cause__)):
        assert password not in text


def test_missing_bind_settings_are_a_configuration_error_naming_the_variable(
    samba_dc: SambaDC,
) -> None:
    with pytest.raises(ConfigurationError, match="LDAP_BIND_PASSWORD"):
        ActiveDirectory.from_settings(_settings(samba_dc, ldap_bind_password=None))


# -- unreachable servers and failover ----------------------------------------------------------


def test_an_unreachable_server_is_reported_fast_naming_the_host(samba_dc: SambaDC) -> None:
    port = _closed_port()
    settings = _settings(samba_dc, ldap_url=(f"ldaps://127.0.0.1:{port}",), ldap_timeout_seconds=1)

    started = time.monotonic()
    with (
        ActiveDirectory.from_settings(settings) as directory,
        pytest.raises(DirectoryUnavailable) as caught,
    ):
        directory.find_holders("x@contoso.com")
    elapsed = time.monotonic() - started

    assert f"127.0.0.1:{port}" in str(caught.value)
    assert caught.value.directory == "Active Directory"
    assert elapsed < 3


def test_a_server_that_accepts_but_never_answers_times_out(samba_dc: SambaDC) -> None:
    # A listener that never speaks TLS: the handshake must give up after the timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        port = silent.getsockname()[1]
        settings = _settings(
            samba_dc, ldap_url=(f"ldaps://127.0.0.1:{port}",), ldap_timeout_seconds=1
        )
        started = time.monotonic()
        with (
            ActiveDirectory.from_settings(settings) as directory,
            pytest.raises(DirectoryUnavailable) as caught,
        ):
            directory.find_users("x@contoso.com", None)
        elapsed = time.monotonic() - started

    assert f"127.0.0.1:{port}" in str(caught.value)
    assert elapsed < 5


def test_when_the_first_server_is_down_the_second_answers(ad: AdSandbox, samba_dc: SambaDC) -> None:
    dn = ad.add_user(ad.sam("jane"))
    dead = f"ldaps://127.0.0.1:{_closed_port()}"
    settings = _settings(samba_dc, ldap_url=(dead, samba_dc.ldaps_url), ldap_timeout_seconds=1)

    with ActiveDirectory.from_settings(settings) as directory:
        users = directory.find_users("x@contoso.com", dn)

    assert [u.dn for u in users] == [dn]


def test_when_every_server_is_down_the_error_names_them_all(samba_dc: SambaDC) -> None:
    ports = [_closed_port(), _closed_port()]
    urls = tuple(f"ldaps://127.0.0.1:{p}" for p in ports)
    settings = _settings(samba_dc, ldap_url=urls, ldap_timeout_seconds=1)

    with (
        ActiveDirectory.from_settings(settings) as directory,
        pytest.raises(DirectoryUnavailable) as caught,
    ):
        directory.find_users("x@contoso.com", None)

    for port in ports:
        assert f"127.0.0.1:{port}" in str(caught.value)


def test_a_dead_global_catalog_fails_holder_searches_but_not_user_lookups(
    ad: AdSandbox, samba_dc: SambaDC
) -> None:
    gc_port = _closed_port()
    settings = _settings(samba_dc, ldap_gc_url=f"ldaps://127.0.0.1:{gc_port}")
    dn = ad.add_user(ad.sam("jane"))

    with ActiveDirectory.from_settings(settings) as directory:
        assert [u.dn for u in directory.find_users("x@contoso.com", dn)] == [dn]
        with pytest.raises(DirectoryUnavailable, match=f"127.0.0.1:{gc_port}"):
            directory.find_holders("x@contoso.com")


# -- reuse ------------------------------------------------------------------------------------


def test_one_connection_serves_many_sequential_requests(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("jane")
    ad.add_user(ad.sam("jane"), mail=address)

    for _ in range(10):
        assert len(active_directory.find_users(address, None)) == 1
        active_directory.find_holders(address)

    assert active_directory.connections_opened == 1


def test_a_dropped_connection_is_reopened_and_the_call_succeeds(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("jane")
    ad.add_user(ad.sam("jane"), mail=address)
    assert len(active_directory.find_users(address, None)) == 1
    # Cut the pooled connection underneath the adapter, as a server or firewall would.
    for conn in active_directory._pool._idle:
        conn.socket.shutdown(socket.SHUT_RDWR)

    users = active_directory.find_users(address, None)

    assert len(users) == 1
    assert active_directory.connections_opened == 2


def test_a_write_on_a_dropped_connection_is_applied_once(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    from bot.rules.plan import plan_change

    dn = ad.add_user(ad.sam("jane"))
    (user,) = active_directory.find_users("x@contoso.com", dn)
    for conn in active_directory._pool._idle:
        conn.socket.shutdown(socket.SHUT_RDWR)
    target = ad.address("new")

    active_directory.apply(plan_change(user, target))

    assert ad.read(dn, ["mail"])["mail"] == [target]


def test_concurrent_callers_share_a_small_pool_of_connections(
    ad: AdSandbox, active_directory: ActiveDirectory
) -> None:
    address = ad.address("jane")
    ad.add_user(ad.sam("jane"), mail=address)
    barrier = threading.Barrier(8)

    def lookup(_: int) -> int:
        barrier.wait()
        return sum(len(active_directory.find_users(address, None)) for _ in range(5))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lookup, range(8)))

    assert results == [5] * 8
    assert 1 <= active_directory.connections_opened <= 8


def test_a_closed_adapter_refuses_further_calls(ad: AdSandbox, ad_settings: Settings) -> None:
    directory = ActiveDirectory.from_settings(ad_settings)
    directory.find_holders(ad.address("x"))
    directory.close()

    with pytest.raises(DirectoryUnavailable, match="closed"):
        directory.find_holders(ad.address("x"))


# -- pure helpers the adapter relies on ------------------------------------------------------


def test_filter_values_are_escaped_per_rfc_4515() -> None:
    assert escape_filter_value("a*b(c)d\\e\x00") == "a\\2ab\\28c\\29d\\5ce\\00"
    assert escape_filter_value("jane.doe@contoso.com") == "jane.doe@contoso.com"


def test_a_binary_sid_is_converted_to_its_string_form() -> None:
    raw = bytes.fromhex("010500000000000515000000a065cf7e784b9b5fe77c8770091c0100")
    assert sid_to_string(raw) == "S-1-5-21-2127521184-1604012920-1887927527-72713"


def test_object_classes_map_to_object_kinds() -> None:
    assert object_kind(["top", "person", "organizationalPerson", "user"]) is ObjectKind.USER
    assert object_kind(["top", "person", "user", "computer"]) is ObjectKind.COMPUTER
    assert object_kind(["top", "person", "contact"]) is ObjectKind.CONTACT
    assert object_kind(["top", "group"]) is ObjectKind.GROUP
    assert object_kind(["top", "publicFolder"]) is ObjectKind.PUBLIC_FOLDER
    assert object_kind(["top", "organizationalUnit"]) is ObjectKind.OTHER


def test_the_adapter_can_be_built_directly(samba_dc: SambaDC, ad: AdSandbox) -> None:
    dn = ad.add_user(ad.sam("jane"))
    with ActiveDirectory(
        [samba_dc.ldaps_url],
        samba_dc.admin_dn,
        SecretStr(samba_dc.admin_password),
        ca_file=samba_dc.ca_file,
        timeout=2,
    ) as directory:
        # Without a base DN the server's defaultNamingContext is used.
        assert [u.dn for u in directory.find_users("x@contoso.com", dn)] == [dn]


def test_exchange_attributes_are_read_when_the_schema_has_them() -> None:
    # Samba has no Exchange schema, so this part is checked on the conversion alone.
    mailbox = uuid.UUID("0b9c6a5e-1d2f-4c3b-8a7e-123456789abc")
    raw = {
        "objectGUID": [uuid.uuid4().bytes_le],
        "objectClass": [b"top", b"person", b"organizationalPerson", b"user"],
        "msExchMailboxGuid": [mailbox.bytes_le],
        "msExchRecipientTypeDetails": [b"1"],
        "userAccountControl": [b"-2147483646"],
    }
    schema = _Schema(
        optional=frozenset({"msExchMailboxGuid", "msExchRecipientTypeDetails"}),
        base_dn="DC=contoso,DC=test",
    )

    user = _to_user("CN=x,DC=contoso,DC=test", raw, schema)

    assert user.exchange_schema is True
    assert user.exchange_mailbox_guid == str(mailbox)
    assert user.exchange_recipient_type_details == 1
    assert not user.enabled  # a negative (signed) flags value still carries the disable bit
