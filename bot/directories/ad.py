"""Active Directory over LDAP (ldap3): the on-prem side of the match.

Implements :class:`bot.ports.OnPremDirectory`. What it guarantees:

- Transport security: LDAPS with certificate and host-name validation against ``LDAP_CA_FILE``
  (a private CA) or the system trust store; ``ldap://`` URLs are upgraded with StartTLS and a
  bind never happens in clear. Several URLs fail over in order (ldap3 ``ServerPool``, FIRST).
- Connections are bound once and reused from a small thread-safe pool; one that dropped is
  thrown away and the call is retried once on a fresh one.
- Every value that goes into a filter is escaped (RFC 4515), so no input widens a search.
- Optional attributes (Exchange, ``targetAddress``, ``mS-DS-ConsistencyGuid``) are requested
  only when the server's schema has them; the schema is read once.
- The write is one modify that deletes the exact old values and adds the new ones, so the
  server itself refuses it when someone changed the object since it was read.
- A new user (KB step 2) is created in one add that carries its password, only over LDAPS or
  StartTLS; it is deleted again only by its objectGUID.
- Faults become :mod:`bot.errors` naming the server (``host:port``); no ldap3 type leaks out.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import socket
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ldap3
from ldap3.core import exceptions as ldap_exc
from ldap3.protocol.formatters.formatters import format_sid
from ldap3.utils.config import set_config_parameter
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn
from pydantic import SecretStr

from bot.errors import (
    AuthenticationFailed,
    ConcurrentModification,
    ConfigurationError,
    DirectoryError,
    DirectoryUnavailable,
    InsecureTransport,
    NameTaken,
    NotFound,
    PermissionMissing,
    SchemaViolation,
)
from bot.models import Holder, ObjectKind, OnPremUser, ProxyAddress
from bot.ports import AccountNames, AttributeChange, ChangePlan
from bot.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

DIRECTORY = "Active Directory"

# ldap3's ServerPool sleeps POOLING_LOOP_TIMEOUT (10 s) after every failed cycle, even the last
# one, so "every server is down" would take 10 s longer than the connect timeouts. We try one
# cycle per open and decide ourselves, so the pause is useless here.
set_config_parameter("POOLING_LOOP_TIMEOUT", 0)

#: Attributes every AD schema has.
_BASE_ATTRIBUTES = (
    "objectGUID",
    "objectSid",
    "userPrincipalName",
    "sAMAccountName",
    "displayName",
    "cn",
    "mail",
    "proxyAddresses",
    "userAccountControl",
    "objectClass",
    "objectCategory",
    "givenName",
    "sn",
    # What the rules need to refuse objects sync never exports and privileged accounts.
    "isCriticalSystemObject",
    "adminDescription",
    "adminCount",
)
_CONSISTENCY_GUID = "mS-DS-ConsistencyGuid"
_EXCHANGE_MAILBOX_GUID = "msExchMailboxGuid"
_EXCHANGE_RECIPIENT_TYPE = "msExchRecipientTypeDetails"
_TARGET_ADDRESS = "targetAddress"
_MAIL_NICKNAME = "mailNickname"
#: Attributes that exist only with some schema versions or the Exchange schema extension.
_OPTIONAL_ATTRIBUTES = (
    _CONSISTENCY_GUID,
    _EXCHANGE_MAILBOX_GUID,
    _EXCHANGE_RECIPIENT_TYPE,
    _TARGET_ADDRESS,
    _MAIL_NICKNAME,
)
#: Object classes a named DN may be: users (computers derive from user), contacts and groups;
#: the rules refuse all but people. OUs, containers and configuration objects are not found.
_NAMED_OBJECT_FILTER = "(|(objectClass=user)(objectClass=contact)(objectClass=group))"
#: Protected groups by well-known SID: builtin groups (S-1-5-32-RID) and domain groups (RID
#: in any domain S-1-5-21-…). Membership is read from the constructed ``tokenGroups``, which
#: AD computes transitively (nested groups included).
_BUILTIN_PROTECTED = {
    544: "Administrators",
    548: "Account Operators",
    549: "Server Operators",
    550: "Print Operators",
    551: "Backup Operators",
}
_DOMAIN_PROTECTED = {512: "Domain Admins", 518: "Schema Admins", 519: "Enterprise Admins"}

# LDAP result codes (RFC 4511) the adapter tells apart.
_SUCCESS = 0
_STRONGER_AUTH_REQUIRED = 8
_NO_SUCH_ATTRIBUTE = 16
_UNDEFINED_ATTRIBUTE_TYPE = 17
_CONSTRAINT_VIOLATION = 19
_ATTRIBUTE_OR_VALUE_EXISTS = 20
_INVALID_ATTRIBUTE_SYNTAX = 21
_NO_SUCH_OBJECT = 32
_INVALID_DN_SYNTAX = 34
_INVALID_CREDENTIALS = 49
_INSUFFICIENT_ACCESS_RIGHTS = 50
_UNWILLING_TO_PERFORM = 53
_OBJECT_CLASS_VIOLATION = 65
_ENTRY_ALREADY_EXISTS = 68
_SCHEMA_CODES = frozenset(
    {_UNDEFINED_ATTRIBUTE_TYPE, _CONSTRAINT_VIOLATION, _INVALID_ATTRIBUTE_SYNTAX, 65, 67, 69}
)
#: What a modify refused because of the values it carries (stale, duplicate or invalid).
_REFUSAL_CODES = _SCHEMA_CODES | {_NO_SUCH_ATTRIBUTE, _ATTRIBUTE_OR_VALUE_EXISTS}

_PAGE_SIZE = 500
_ATTRIBUTE_TYPE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$")


def escape_filter_value(value: str) -> str:
    """Escape a value for an LDAP filter (RFC 4515: ``* ( ) \\ NUL``), with ldap3's own escaping.

    After this, the value can only ever be compared for equality: it cannot close the
    assertion, add another one or become a wildcard. Other characters, non-ASCII ones
    included, stay as they are; ldap3 sends the filter as UTF-8, as RFC 4515 wants.
    """
    return str(escape_filter_chars(value))


def sid_to_string(raw: bytes) -> str:
    """Convert a binary ``objectSid`` to its ``S-1-5-21-…`` string form (MS-DTYP 2.4.2).

    The formatting is ldap3's; only the length is checked here, because ldap3 formats a
    truncated SID without complaint (missing sub-authorities become 0).

    Raises:
        ValueError: ``raw`` is not a whole binary SID.
    """
    if len(raw) < 8 or len(raw) != 8 + 4 * raw[1]:
        raise ValueError("a binary SID's length must match its sub-authority count")
    return str(format_sid(raw))


def object_kind(object_classes: Sequence[str]) -> ObjectKind:
    """Map an object's ``objectClass`` values to what the rules call it.

    ``computer`` derives from ``user``, so it is tested first; ``inetOrgPerson`` derives from
    ``user`` too and is a user.
    """
    classes = {c.lower() for c in object_classes}
    if "computer" in classes:
        return ObjectKind.COMPUTER
    if "user" in classes:
        return ObjectKind.USER
    if "contact" in classes:
        return ObjectKind.CONTACT
    if "group" in classes:
        return ObjectKind.GROUP
    if "publicfolder" in classes:
        return ObjectKind.PUBLIC_FOLDER
    return ObjectKind.OTHER


def _is_smtp_of(value: str, address: str) -> bool:
    return ProxyAddress.parse(value).holds(address)


def _host_port(url: str) -> tuple[str, int]:
    """Host and port of an ``ldap[s]://host[:port]`` URL (IPv6 literals in brackets)."""
    scheme, _, rest = url.partition("://")
    rest = rest.rstrip("/")
    default = 636 if scheme.lower() == "ldaps" else 389
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = tail.removeprefix(":")
    else:
        host, _, port = rest.partition(":")
    return host, int(port) if port.isdigit() else default


def _endpoint(url: str) -> str:
    """``host:port`` of an LDAP URL, for messages (URLs never carry credentials here)."""
    host, port = _host_port(url)
    return f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class _Schema:
    """What the server's schema offers beyond the base attributes."""

    optional: frozenset[str]
    base_dn: str
    #: Naming contexts a named DN must not be in (configuration and schema partitions).
    excluded: tuple[str, ...] = ()

    @property
    def exchange(self) -> bool:
        return _EXCHANGE_MAILBOX_GUID in self.optional or _EXCHANGE_RECIPIENT_TYPE in self.optional

    def attributes(self) -> list[str]:
        return [*_BASE_ATTRIBUTES, *(a for a in _OPTIONAL_ATTRIBUTES if a in self.optional)]


class _Lease:
    """One pooled connection while a thread uses it."""

    def __init__(self, conn: ldap3.Connection, fresh: bool) -> None:
        self.conn = conn
        self.fresh = fresh
        self.broken = False

    @property
    def server(self) -> str:
        server = self.conn.server
        return f"{server.host}:{server.port}"


class _ConnectionPool:
    """Bound connections to one set of URLs, each used by one thread at a time.

    ldap3's plain SYNC strategy is not thread-safe, and its SAFE_* strategies share one socket
    (every caller waits for the others' responses and paged searches interleave). A few
    independent connections give real concurrency and isolate a broken socket to one caller.
    """

    def __init__(
        self,
        urls: Sequence[str],
        bind_dn: str,
        password: SecretStr,
        ca_file: Path | None,
        timeout: float,
        size: int,
    ) -> None:
        if not urls:
            raise ConfigurationError("LDAP_URL: no LDAP server given")
        self.urls = tuple(urls)
        self.endpoints = ", ".join(_endpoint(u) for u in self.urls)
        self._bind_dn = bind_dn
        self._password = password
        self._timeout = timeout
        servers = [self._server(url, ca_file, timeout) for url in self.urls]
        # FIRST + active: always prefer the first URL that accepts a connection, so traffic
        # returns to the primary as soon as it is back; one cycle per open, then we give up.
        self._servers = ldap3.ServerPool(servers, ldap3.FIRST, active=1, exhaust=False)
        self._idle: list[ldap3.Connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False
        self.opened = 0

    @staticmethod
    def _server(url: str, ca_file: Path | None, timeout: float) -> ldap3.Server:
        host = _host_port(url)[0]
        try:
            ipaddress.ip_address(host)
            is_ip = True
        except ValueError:
            is_ip = False
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(ca_file) if ca_file else None,
            # SNI only for names; ldap3 checks the certificate against the host itself.
            sni=None if is_ip else host,
        )
        return ldap3.Server(url, tls=tls, connect_timeout=timeout, get_info=ldap3.NONE)

    def _open(self) -> ldap3.Connection:
        conn = ldap3.Connection(
            self._servers,
            user=self._bind_dn,
            client_strategy=ldap3.SYNC,
            auto_bind=ldap3.AUTO_BIND_NONE,
            # ldap3 packs this into SO_RCVTIMEO as whole seconds: it must be an int.
            receive_timeout=max(1, math.ceil(self._timeout)),
            raise_exceptions=False,
            return_empty_attributes=False,
            auto_range=True,
        )
        try:
            conn.open()
            server = f"{conn.server.host}:{conn.server.port}"
            # ldap:// is only ever used with StartTLS: a simple bind in clear would send the
            # password over the wire.
            if not conn.server.ssl and (not conn.start_tls() or not conn.tls_started):
                conn.unbind()
                raise DirectoryUnavailable(
                    DIRECTORY, server, "StartTLS was refused; not binding without TLS"
                )
            # The secret is read only here and dropped right after the bind: ldap3 would
            # otherwise keep it on the connection object for its whole life.
            conn.password = self._password.get_secret_value()
            try:
                bound = conn.bind()
            finally:
                conn.password = None
        except ldap_exc.LDAPServerPoolExhaustedError:
            self._forget(conn)
            raise DirectoryUnavailable(
                DIRECTORY, self.endpoints, _unreachable_message(self.urls, self._timeout)
            ) from None
        except ldap_exc.LDAPStartTLSError as exc:
            self._forget(conn)
            raise DirectoryUnavailable(
                DIRECTORY, _server_of(conn), f"StartTLS failed ({_tls_reason(exc)})"
            ) from None
        except (ldap_exc.LDAPExceptionError, OSError) as exc:
            self._forget(conn)
            raise _communication_error(conn, exc) from None
        except DirectoryError:
            self._forget(conn)
            raise
        if not bound:
            result = conn.result or {}
            self._forget(conn)
            code = result.get("result")
            if code == _INVALID_CREDENTIALS:
                raise AuthenticationFailed(
                    DIRECTORY, server, f"the bind DN or password was refused for {self._bind_dn}"
                )
            if code in (_STRONGER_AUTH_REQUIRED, _UNWILLING_TO_PERFORM):
                raise AuthenticationFailed(
                    DIRECTORY, server, f"the server refused the bind: {result.get('description')}"
                )
            raise DirectoryUnavailable(
                DIRECTORY, server, f"bind failed: {result.get('description', 'no answer')}"
            )
        with self._lock:
            self.opened += 1
        log.info("bound to %s as %s", server, self._bind_dn)
        return conn

    def _forget(self, conn: ldap3.Connection) -> None:
        """Close ``conn`` and drop the pool's bookkeeping for it (it keys state by connection)."""
        try:
            if not conn.closed:
                conn.unbind()
        except (ldap_exc.LDAPExceptionError, OSError) as exc:
            log.debug("closing a dropped LDAP connection: %s", exc)
        self._servers.pool_states.pop(conn, None)

    @contextmanager
    def lease(self) -> Iterator[_Lease]:
        """A bound connection for the duration of the ``with`` block."""
        if not self._slots.acquire(timeout=self._timeout * 3):
            raise DirectoryUnavailable(
                DIRECTORY, self.endpoints, "every LDAP connection stayed busy"
            )
        try:
            with self._lock:
                if self._closed:
                    raise DirectoryUnavailable(DIRECTORY, self.endpoints, "the adapter is closed")
                conn = self._idle.pop() if self._idle else None
            lease = _Lease(conn, False) if conn is not None else _Lease(self._open(), True)
            try:
                yield lease
            finally:
                if lease.broken or lease.conn.closed:
                    self._forget(lease.conn)
                else:
                    with self._lock:
                        if self._closed:
                            self._forget(lease.conn)
                        else:
                            self._idle.append(lease.conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Unbind every idle connection; connections in use are closed when returned."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            self._forget(conn)


def _unreachable_message(urls: Sequence[str], timeout: float) -> str:
    """Why no server of ``urls`` could be reached, told apart per server.

    ldap3 only says its pool is exhausted; one quick TCP probe per URL tells a refused
    connection (nothing listens there), a name that does not resolve and a silent host apart.
    """
    reasons = []
    for url in urls:
        host, port = _host_port(url)
        try:
            with socket.create_connection((host, port), timeout=min(timeout, 5.0)):
                reason = "accepted a connection but did not answer LDAP"
        except ConnectionRefusedError:
            reason = "refused the connection (nothing listens on that port)"
        except socket.gaierror:
            reason = "the host name does not resolve"
        except TimeoutError:
            reason = f"did not answer within {timeout:g} s"
        except OSError as exc:
            reason = f"could not be reached ({exc.strerror or type(exc).__name__})"
        reasons.append(reason if len(urls) == 1 else f"{_endpoint(url)} {reason}")
    return "; ".join(reasons)


def _server_of(conn: ldap3.Connection) -> str:
    server = conn.server
    return f"{server.host}:{server.port}"


def _tls_reason(exc: BaseException) -> str:
    text = str(exc)
    if "doesn't match" in text:
        return "the server certificate does not name this host"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "the server certificate is not trusted (set LDAP_CA_FILE for a private CA)"
    return text[:200]


def _communication_error(conn: ldap3.Connection, exc: BaseException) -> DirectoryUnavailable:
    text = str(exc)
    server = _server_of(conn)
    # A handshake that timed out is a silent server, not a TLS problem: say so first.
    if "timed out" in text.lower():
        return DirectoryUnavailable(DIRECTORY, server, "the server did not answer in time")
    if "ssl" in text.lower() or "certificate" in text.lower():
        return DirectoryUnavailable(DIRECTORY, server, f"TLS failed: {_tls_reason(exc)}")
    return DirectoryUnavailable(DIRECTORY, server, f"connection failed: {text[:200]}")


def _values(raw: Mapping[str, Any], name: str) -> list[bytes]:
    for key, value in raw.items():
        if key.lower() == name.lower():
            return list(value)
    return []


def _texts(raw: Mapping[str, Any], name: str) -> tuple[str, ...]:
    return tuple(v.decode("utf-8", errors="replace") for v in _values(raw, name))


def _text(raw: Mapping[str, Any], name: str) -> str | None:
    values = _texts(raw, name)
    return values[0] if values else None


class ActiveDirectory:
    """The on-prem directory over LDAP; implements :class:`bot.ports.OnPremDirectory`.

    Thread-safe: the services call it from a thread pool. Call :meth:`close` when done.

    Args:
        urls: ``ldaps://host[:port]`` or ``ldap://host[:port]`` (StartTLS), tried in order.
        bind_dn: the service account's DN (or UPN).
        password: its password; read only when binding.
        base_dn: where users and holders are searched; default the server's
            ``defaultNamingContext``.
        ca_file: a PEM CA bundle for a private CA; default the system trust store.
        gc_url: a Global Catalog URL (port 3269/3268) for forest-wide holder searches.
        timeout: connect and receive timeout in seconds.
        pool_size: at most this many connections per server set.
    """

    def __init__(
        self,
        urls: Sequence[str],
        bind_dn: str,
        password: SecretStr,
        *,
        base_dn: str | None = None,
        ca_file: Path | str | None = None,
        gc_url: str | None = None,
        timeout: float = 10.0,
        pool_size: int = 8,
    ) -> None:
        ca_path = Path(ca_file) if ca_file is not None else None
        if ca_path is not None and not ca_path.is_file():
            raise ConfigurationError(f"LDAP_CA_FILE: {ca_path} is not a readable file")
        self._pool = _ConnectionPool(urls, bind_dn, password, ca_path, timeout, pool_size)
        self._gc_pool = (
            _ConnectionPool((gc_url,), bind_dn, password, ca_path, timeout, pool_size)
            if gc_url
            else None
        )
        self._base_dn = base_dn
        self._schema: _Schema | None = None
        self._schema_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ActiveDirectory:
        """Build the adapter from ``LDAP_*`` settings.

        Raises:
            ConfigurationError: naming the missing variable.
        """
        settings.require("ldap_url", "ldap_bind_dn", "ldap_bind_password")
        assert settings.ldap_bind_dn is not None and settings.ldap_bind_password is not None
        return cls(
            settings.ldap_url,
            settings.ldap_bind_dn,
            settings.ldap_bind_password,
            base_dn=settings.ldap_base_dn,
            ca_file=settings.ldap_ca_file,
            gc_url=settings.ldap_gc_url,
            timeout=settings.ldap_timeout_seconds,
        )

    @property
    def connections_opened(self) -> int:
        """How many connections were opened and bound so far (reuse keeps this low)."""
        return self._pool.opened + (self._gc_pool.opened if self._gc_pool else 0)

    def close(self) -> None:
        """Unbind every pooled connection."""
        self._pool.close()
        if self._gc_pool:
            self._gc_pool.close()

    def __enter__(self) -> ActiveDirectory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, pool: _ConnectionPool, operation: Callable[[ldap3.Connection], T]) -> T:
        """Run ``operation`` on a pooled connection; retry once on a fresh one if a reused
        connection turns out to have dropped (servers close idle connections)."""
        for attempt in (1, 2):
            with pool.lease() as lease:
                try:
                    return operation(lease.conn)
                except (ldap_exc.LDAPCommunicationError, ldap_exc.LDAPResponseTimeoutError) as exc:
                    lease.broken = True
                    if lease.fresh or attempt == 2:
                        raise _communication_error(lease.conn, exc) from None
                    log.info("LDAP connection to %s dropped (%s); reopening", lease.server, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check(self, conn: ldap3.Connection, what: str) -> None:
        """Turn a failed operation's result into the project's error."""
        result = conn.result or {}
        code = result.get("result", _SUCCESS)
        if code == _SUCCESS:
            return
        server = _server_of(conn)
        description = result.get("description", "")
        if code == _INSUFFICIENT_ACCESS_RIGHTS:
            raise PermissionMissing(DIRECTORY, server, f"the service account may not {what}")
        if code in (_INVALID_CREDENTIALS, _STRONGER_AUTH_REQUIRED):
            raise AuthenticationFailed(DIRECTORY, server, f"{what}: {description}")
        if code in _SCHEMA_CODES or code == _OBJECT_CLASS_VIOLATION:
            raise SchemaViolation(DIRECTORY, server, f"{what}: {description}")
        raise DirectoryUnavailable(DIRECTORY, server, f"{what} failed: {description} ({code})")

    def _schema_info(self) -> _Schema:
        """Read the rootDSE and probe the schema for optional attributes, once."""
        if self._schema is not None:
            return self._schema
        with self._schema_lock:
            if self._schema is None:
                self._schema = self._run(self._pool, self._read_schema)
        return self._schema

    def _read_schema(self, conn: ldap3.Connection) -> _Schema:
        root = self._root_dse(conn)
        schema_dn = _text(root, "schemaNamingContext")
        base_dn = self._base_dn or _text(root, "defaultNamingContext")
        if not schema_dn or not base_dn:
            raise DirectoryUnavailable(
                DIRECTORY, _server_of(conn), "the rootDSE names no schema or default naming context"
            )
        names = "".join(f"(lDAPDisplayName={escape_filter_value(a)})" for a in _OPTIONAL_ATTRIBUTES)
        conn.search(
            schema_dn,
            f"(&(objectClass=attributeSchema)(|{names}))",
            ldap3.LEVEL,
            attributes=["lDAPDisplayName"],
        )
        self._check(conn, "read the schema")
        present = {
            (_text(e["raw_attributes"], "lDAPDisplayName") or "").lower()
            for e in conn.response or []
            if e.get("type") == "searchResEntry"
        }
        optional = frozenset(a for a in _OPTIONAL_ATTRIBUTES if a.lower() in present)
        log.info("AD schema at %s has optional attributes %s", _server_of(conn), sorted(optional))
        excluded = tuple(dn for dn in (_text(root, "configurationNamingContext"), schema_dn) if dn)
        return _Schema(optional=optional, base_dn=base_dn, excluded=excluded)

    def _root_dse(self, conn: ldap3.Connection) -> Mapping[str, Any]:
        conn.search(
            "",
            "(objectClass=*)",
            ldap3.BASE,
            attributes=[
                "schemaNamingContext",
                "defaultNamingContext",
                "rootDomainNamingContext",
                "configurationNamingContext",
            ],
        )
        self._check(conn, "read the rootDSE")
        for entry in conn.response or []:
            if entry.get("type") == "searchResEntry":
                raw: Mapping[str, Any] = entry["raw_attributes"]
                return raw
        return {}

    def _search(
        self,
        conn: ldap3.Connection,
        base: str,
        ldap_filter: str,
        attributes: list[str],
        scope: str = ldap3.SUBTREE,
    ) -> list[tuple[str, Mapping[str, Any]]]:
        """Every entry (DN, raw attributes) for a filter, following the paging cookie."""
        # ldap3's paged_size/paged_cookie loop rather than extend.standard.paged_search: that
        # generator hands each page back in reverse order (it pops from the end) and leaves
        # the per-page result codes behind, which _check needs to name a fault.
        found: list[tuple[str, Mapping[str, Any]]] = []
        cookie: bytes | None = None
        while True:
            conn.search(
                base,
                ldap_filter,
                scope,
                attributes=attributes,
                paged_size=_PAGE_SIZE if scope != ldap3.BASE else None,
                paged_cookie=cookie,
            )
            code = (conn.result or {}).get("result")
            if code in (_NO_SUCH_OBJECT, _INVALID_DN_SYNTAX):
                return found
            self._check(conn, f"search {base or 'the directory'}")
            for entry in conn.response or []:
                if entry.get("type") == "searchResEntry":
                    found.append((entry["dn"], entry["raw_attributes"]))
            controls = (conn.result or {}).get("controls") or {}
            cookie = controls.get("1.2.840.113556.1.4.319", {}).get("value", {}).get("cookie")
            if not cookie:
                return found

    # -- find_users -------------------------------------------------------------------------

    def find_users(self, address: str, onprem_id: str | None) -> Sequence[OnPremUser]:
        """Identify the AD user(s) for a match (see :class:`bot.ports.OnPremDirectory`).

        Args:
            address: the mailbox address typed.
            onprem_id: a DN, UPN (``x@y``), ``DOMAIN\\sam`` or sAMAccountName; when given,
                exactly that object is looked up, of any object class.

        Returns:
            Every distinct candidate (by DN), in the server's order.

        Raises:
            DirectoryUnavailable, AuthenticationFailed, PermissionMissing: on faults.
        """
        schema = self._schema_info()
        attributes = schema.attributes()

        def lookup(conn: ldap3.Connection) -> list[tuple[str, Mapping[str, Any]]]:
            if onprem_id is not None:
                dn = _as_dn(onprem_id)
                if dn is not None:
                    # Only objects below the base DN and outside the configuration and schema
                    # partitions (which a forest-root base DN would otherwise include).
                    if not _within(dn, schema.base_dn) or any(
                        _within(dn, other) for other in schema.excluded
                    ):
                        return []
                    return self._search(conn, dn, _NAMED_OBJECT_FILTER, attributes, ldap3.BASE)
                value = escape_filter_value(_account_name(onprem_id))
                attribute = "userPrincipalName" if "@" in onprem_id else "sAMAccountName"
                return self._search(conn, schema.base_dn, f"({attribute}={value})", attributes)
            whole = escape_filter_value(address)
            local = escape_filter_value(address.rsplit("@", 1)[0])
            ldap_filter = (
                "(&(objectCategory=person)(objectClass=user)"
                f"(|(userPrincipalName={whole})(mail={whole})(proxyAddresses=smtp:{whole})"
                f"(sAMAccountName={local})))"
            )
            return self._search(conn, schema.base_dn, ldap_filter, attributes)

        def lookup_with_groups(
            conn: ldap3.Connection,
        ) -> list[tuple[str, Mapping[str, Any], tuple[str, ...]]]:
            # The few candidates' protected-group membership on the same connection: one
            # base search each for the constructed tokenGroups (transitive membership).
            return [(dn, raw, self._privileged_groups(conn, dn, raw)) for dn, raw in lookup(conn)]

        users: dict[str, OnPremUser] = {}
        for dn, raw, groups in self._run(self._pool, lookup_with_groups):
            users.setdefault(dn.casefold(), _to_user(dn, raw, schema, groups))
        return tuple(users.values())

    def _privileged_groups(
        self, conn: ldap3.Connection, dn: str, raw: Mapping[str, Any]
    ) -> tuple[str, ...]:
        """The protected groups ``dn`` is in, directly or nested (from ``tokenGroups``)."""
        if object_kind(_texts(raw, "objectClass")) not in (ObjectKind.USER, ObjectKind.COMPUTER):
            return ()
        entries = self._search(conn, dn, "(objectClass=*)", ["tokenGroups"], ldap3.BASE)
        names: list[str] = []
        for _dn, attributes in entries:
            for value in _values(attributes, "tokenGroups"):
                try:
                    name = protected_group_name(sid_to_string(value))
                except ValueError:
                    continue
                if name and name not in names:
                    names.append(name)
        return tuple(names)

    # -- find_lookalikes --------------------------------------------------------------------

    def find_lookalikes(
        self,
        display_name: str | None,
        given_name: str | None,
        surname: str | None,
        account_name: str | None,
    ) -> Sequence[OnPremUser]:
        """Users that plausibly are the person under another name (see the port): the same
        ``displayName``, the same ``givenName`` and ``sn``, or the ``sAMAccountName``."""
        clauses: list[str] = []
        if display_name and display_name.strip():
            clauses.append(f"(displayName={escape_filter_value(display_name.strip())})")
        if given_name and surname and given_name.strip() and surname.strip():
            given = escape_filter_value(given_name.strip())
            clauses.append(f"(&(givenName={given})(sn={escape_filter_value(surname.strip())}))")
        if account_name and account_name.strip():
            clauses.append(f"(sAMAccountName={escape_filter_value(account_name.strip())})")
        if not clauses:
            return ()
        schema = self._schema_info()
        ldap_filter = f"(&(objectCategory=person)(objectClass=user)(|{''.join(clauses)}))"

        def search(conn: ldap3.Connection) -> list[tuple[str, Mapping[str, Any]]]:
            return self._search(conn, schema.base_dn, ldap_filter, schema.attributes())

        users: dict[str, OnPremUser] = {}
        for dn, raw in self._run(self._pool, search):
            users.setdefault(dn.casefold(), _to_user(dn, raw, schema))
        return tuple(users.values())

    # -- find_holders -----------------------------------------------------------------------

    def find_holders(self, address: str) -> Sequence[Holder]:
        """Every object of any class holding ``address`` (see the port), one per attribute.

        Uses the Global Catalog when ``LDAP_GC_URL`` is set, so that other domains of the
        forest are searched too.
        """
        schema = self._schema_info()
        value = escape_filter_value(address)
        clauses = [
            f"(mail={value})",
            f"(proxyAddresses=smtp:{value})",
            f"(userPrincipalName={value})",
        ]
        has_target = _TARGET_ADDRESS in schema.optional
        if has_target:
            clauses += [f"(targetAddress=smtp:{value})", f"(targetAddress={value})"]
        ldap_filter = f"(|{''.join(clauses)})"
        attributes = ["objectClass", "displayName", "cn", "mail", "proxyAddresses"]
        attributes += ["userPrincipalName", *([_TARGET_ADDRESS] if has_target else [])]

        pool = self._gc_pool or self._pool

        def search(conn: ldap3.Connection) -> list[tuple[str, Mapping[str, Any]]]:
            # On a Global Catalog the empty base with subtree scope spans every domain tree
            # of the forest (AD and Samba both support it).
            base = "" if pool is self._gc_pool else schema.base_dn
            return self._search(conn, base, ldap_filter, attributes)

        holders: list[Holder] = []
        seen: set[str] = set()
        for dn, raw in self._run(pool, search):
            if dn.casefold() in seen:
                continue
            seen.add(dn.casefold())
            holders.extend(_holders_of(dn, raw, address))
        return tuple(holders)

    # -- bulk read (whole-tenant scan) -------------------------------------------------------

    def read_all(self) -> DirectoryContents:
        """Every user, contact and group, and every object holding an address, in one paged
        search (plus one over the Global Catalog when ``LDAP_GC_URL`` is set, as
        :meth:`find_holders` uses it).

        What :meth:`find_users` learns per user from ``tokenGroups`` (protected-group
        membership) is computed here from the groups' ``member`` values and the users'
        ``primaryGroupID``, nested groups included, so no per-user search is needed.
        """
        schema = self._schema_info()
        attributes = [*schema.attributes(), "member", "primaryGroupID"]
        has_target = _TARGET_ADDRESS in schema.optional
        carriers = "(mail=*)(proxyAddresses=*)(userPrincipalName=*)"
        carriers += "(targetAddress=*)" if has_target else ""
        ldap_filter = f"(|(objectClass=user)(objectClass=contact)(objectClass=group){carriers})"

        def search(conn: ldap3.Connection) -> list[tuple[str, Mapping[str, Any]]]:
            return self._search(conn, schema.base_dn, ldap_filter, attributes)

        entries = self._run(self._pool, search)
        holders: list[AddressCarrier] = []
        if self._gc_pool is not None:
            gc_attributes = ["objectClass", "displayName", "cn", *_HOLDER_ATTRIBUTES]
            gc_filter = f"(|{carriers})"
            gc_found = self._run(
                self._gc_pool, lambda conn: self._search(conn, "", gc_filter, gc_attributes)
            )
            holders = _carriers(gc_found)
        else:
            holders = _carriers(entries)
        privileged = _privileged_by_dn(entries)
        objects: list[OnPremUser] = []
        people: list[bool] = []
        named = {"user", "contact", "group"}
        seen: set[str] = set()
        for dn, raw in entries:
            classes = {c.lower() for c in _texts(raw, "objectClass")}
            if not classes & named or dn.casefold() in seen:
                continue
            seen.add(dn.casefold())
            category = (_text(raw, "objectCategory") or "").casefold()
            person = "user" in classes and category.startswith("cn=person,")
            objects.append(_to_user(dn, raw, schema, privileged.get(dn.casefold(), ())))
            people.append(person)
        return DirectoryContents(
            objects=tuple(objects),
            people=tuple(people),
            holders=tuple(holders),
            base_dn=schema.base_dn,
            excluded=schema.excluded,
        )

    # -- apply ------------------------------------------------------------------------------

    def apply(self, plan: ChangePlan) -> ChangePlan:
        """Write ``plan`` in one modify that fails if a ``before`` value is no longer current.

        Each attribute's old values that the plan drops are deleted by exact value and the new
        ones added (never a replace), so the server refuses the whole modify when another
        writer got there first. Values kept by the plan are not touched. A case-only change
        (``SMTP:x`` demoted to ``smtp:x``) is a delete of the old and an add of the new value in
        the same modify, which AD accepts.

        Returns:
            The change as applied: ``before`` = the values replaced, ``after`` = the values
            now stored, read back from the server.

        Raises:
            ConcurrentModification: the object changed since it was read; nothing was written.
            NotFound: the object no longer exists.
            PermissionMissing: the service account may not write an attribute (named).
            SchemaViolation: the server refused a value.
        """
        changes = [c for c in plan.changes if set(c.before) != set(c.after)]
        names = [c.attribute.lower() for c in changes]
        if len(set(names)) != len(names):
            raise ValueError("a change plan names each attribute at most once")
        if not changes:
            return ChangePlan(plan.dn, ())
        modification = _modification(changes)
        attributes = [c.attribute for c in changes]
        sent = False

        def write(conn: ldap3.Connection) -> dict[str, tuple[str, ...]]:
            nonlocal sent
            current = self._read_values(conn, plan.dn, attributes)
            if sent and _matches(current, changes, after=True):
                # The modify reached the server before the connection dropped.
                return current
            if not _matches(current, changes, after=False):
                raise ConcurrentModification(
                    DIRECTORY, _server_of(conn), _changed_message(plan.dn, changes, current)
                )
            sent = True
            if not conn.modify(plan.dn, modification):
                self._modify_failed(conn, plan.dn, changes)
            return self._read_values(conn, plan.dn, attributes)

        try:
            stored = self._run(self._pool, write)
        except DirectoryError as exc:
            log.warning("apply to %s on %s refused: %s", plan.dn, self._pool.endpoints, exc)
            raise
        applied = tuple(
            AttributeChange(c.attribute, c.before, _in_plan_order(stored[c.attribute], c.after))
            for c in changes
        )
        log.info("applied %s to %s", [c.attribute for c in changes], plan.dn)
        return ChangePlan(plan.dn, applied)

    def _read_values(
        self, conn: ldap3.Connection, dn: str, attributes: Sequence[str]
    ) -> dict[str, tuple[str, ...]]:
        entries = self._search(conn, dn, "(objectClass=*)", list(attributes), ldap3.BASE)
        if not entries:
            raise NotFound(DIRECTORY, _server_of(conn), f"{dn} does not exist (any more)")
        raw = entries[0][1]
        return {a: _texts(raw, a) for a in attributes}

    def _modify_failed(
        self, conn: ldap3.Connection, dn: str, changes: list[AttributeChange]
    ) -> None:
        result = conn.result or {}
        code = result.get("result")
        description = result.get("description", "")
        server = _server_of(conn)
        names = ", ".join(c.attribute for c in changes)
        if code == _NO_SUCH_OBJECT:
            raise NotFound(DIRECTORY, server, f"{dn} does not exist (any more)")
        if code == _INSUFFICIENT_ACCESS_RIGHTS:
            raise PermissionMissing(
                DIRECTORY, server, f"the service account may not write {names} on {dn}"
            )
        if code in _REFUSAL_CODES:
            # noSuchAttribute (an old value is gone) and attributeOrValueExists (a single-valued
            # attribute gained a value, or a new value is already there) are how the server
            # reports a race; but the same codes also come from a plan that is wrong in itself
            # (two values for a single-valued attribute). Reading again tells them apart.
            current = self._read_values(conn, dn, [c.attribute for c in changes])
            if not _matches(current, changes, after=False):
                raise ConcurrentModification(
                    DIRECTORY, server, _changed_message(dn, changes, current)
                )
            raise SchemaViolation(
                DIRECTORY, server, f"the server refused the values of {names}: {description}"
            )
        raise DirectoryUnavailable(
            DIRECTORY, server, f"modify of {dn} failed: {description} ({code})"
        )

    # -- KB step 2: create and delete ------------------------------------------------------

    def container_exists(self, dn: str) -> bool:
        """Whether ``dn`` is an existing OU or container (checked at start-up for
        ``SMTPMATCH_CREATE_OU``)."""
        ldap_filter = "(|(objectClass=organizationalUnit)(objectClass=container))"

        def search(conn: ldap3.Connection) -> list[tuple[str, Mapping[str, Any]]]:
            return self._search(conn, dn, ldap_filter, ["objectClass"], ldap3.BASE)

        return bool(self._run(self._pool, search))

    def account_names(
        self, ou: str, cns: Sequence[str], sams: Sequence[str], upn: str
    ) -> AccountNames:
        """Which candidate names are taken (``cn`` in ``ou``, ``sAMAccountName`` and the UPN in
        the domain) and the forest's UPN suffixes (its domains' DNS names and the
        ``uPNSuffixes`` of ``CN=Partitions``), on one connection."""
        schema = self._schema_info()

        def read(conn: ldap3.Connection) -> AccountNames:
            taken_cns: set[str] = set()
            if cns:
                names = "".join(f"(cn={escape_filter_value(c)})" for c in cns)
                for _dn, raw in self._search(conn, ou, f"(|{names})", ["cn"], ldap3.LEVEL):
                    taken_cns.update(_texts(raw, "cn"))
            taken_sams: set[str] = set()
            if sams:
                names = "".join(f"(sAMAccountName={escape_filter_value(n)})" for n in sams)
                found = self._search(conn, schema.base_dn, f"(|{names})", ["sAMAccountName"])
                for _dn, raw in found:
                    taken_sams.update(_texts(raw, "sAMAccountName"))
            upn_filter = f"(userPrincipalName={escape_filter_value(upn)})"
            upn_taken = bool(self._search(conn, schema.base_dn, upn_filter, ["cn"]))
            suffixes, dns_domain = self._upn_suffixes(conn)
            wanted = {c.casefold() for c in cns} | {n.casefold() for n in sams}
            return AccountNames(
                taken_cns=frozenset(c for c in taken_cns if c.casefold() in wanted),
                taken_sams=frozenset(n for n in taken_sams if n.casefold() in wanted),
                upn_taken=upn_taken,
                upn_suffixes=suffixes,
                dns_domain=dns_domain,
            )

        return self._run(self._pool, read)

    def upn_suffixes(self) -> tuple[tuple[str, ...], str]:
        """The forest's UPN suffixes and the domain's DNS name (read once by a scan)."""
        return self._run(self._pool, self._upn_suffixes)

    def _upn_suffixes(self, conn: ldap3.Connection) -> tuple[tuple[str, ...], str]:
        root = self._root_dse(conn)
        config = _text(root, "configurationNamingContext")
        domain_nc = _text(root, "defaultNamingContext") or self._schema_info().base_dn
        fallback = ".".join(v for a, v, _sep in parse_dn(domain_nc) if a.lower() == "dc")
        if not config:
            return (fallback,), fallback
        partitions = f"CN=Partitions,{config}"
        extra = self._search(conn, partitions, "(objectClass=*)", ["uPNSuffixes"], ldap3.BASE)
        refs = self._search(
            conn,
            partitions,
            "(objectClass=crossRef)",
            ["dnsRoot", "nCName", "systemFlags"],
            ldap3.LEVEL,
        )
        suffixes: list[str] = []
        dns_domain = fallback
        for _dn, raw in refs:
            flags = int(_text(raw, "systemFlags") or 0)
            if not flags & 0x2:  # FLAG_CR_NTDS_DOMAIN: a domain, not an application partition
                continue
            suffixes.extend(_texts(raw, "dnsRoot"))
            if (_text(raw, "nCName") or "").casefold() == domain_nc.casefold():
                dns_domain = _text(raw, "dnsRoot") or fallback
        for _dn, raw in extra:
            suffixes.extend(_texts(raw, "uPNSuffixes"))
        suffixes.append(dns_domain)
        return tuple(dict.fromkeys(s.lower() for s in suffixes)), dns_domain

    def create(self, plan: ChangePlan, password: str) -> uuid.UUID:
        """Create the user ``plan`` describes in ONE add that carries ``unicodePwd`` and
        ``userAccountControl`` (enabled), so that no half-made account can exist.

        The connection must be encrypted (LDAPS, or StartTLS on ldap://): otherwise nothing is
        sent. The password is never logged nor put in an error.

        Returns:
            The new object's ``objectGUID``.

        Raises:
            InsecureTransport: the connection is not encrypted; nothing was sent.
            NameTaken: the ``cn`` (in the OU), ``sAMAccountName`` or UPN is already used.
            PermissionMissing: the service account may not create users (or set passwords) there.
        """
        if not plan.creates:
            raise ValueError("create needs a create plan")
        attributes: dict[str, Any] = {
            "objectClass": ["top", "person", "organizationalPerson", "user"]
        }
        for change in plan.changes:
            if change.after:
                attributes[change.attribute] = list(change.after)
        attributes.setdefault("userAccountControl", ["512"])
        sam = plan.value("sAMAccountName") or ""
        sent = False

        def add(conn: ldap3.Connection) -> uuid.UUID:
            nonlocal sent
            if not (conn.server.ssl or conn.tls_started):
                raise InsecureTransport(
                    DIRECTORY,
                    _server_of(conn),
                    "the connection is not encrypted (use ldaps:// or StartTLS); the account "
                    "and its password were not sent",
                )
            if sent:
                # The add may have reached the server before the connection dropped.
                made = self._created(conn, plan.dn, sam)
                if made is not None:
                    return made
            sent = True
            secret = {"unicodePwd": [f'"{password}"'.encode("utf-16-le")]}
            if not conn.add(plan.dn, attributes={**attributes, **secret}):
                self._add_failed(conn, plan)
            made = self._created(conn, plan.dn, sam)
            if made is None:
                raise NotFound(DIRECTORY, _server_of(conn), f"{plan.dn} is gone after its creation")
            return made

        try:
            guid = self._run(self._pool, add)
        except DirectoryError as exc:
            log.warning("create of %s on %s refused: %s", plan.dn, self._pool.endpoints, exc)
            raise
        log.info("created %s (objectGUID %s)", plan.dn, guid)
        return guid

    def _created(self, conn: ldap3.Connection, dn: str, sam: str) -> uuid.UUID | None:
        """The GUID of the user at ``dn`` if it is the one we create (same sAMAccountName)."""
        found = self._search(
            conn, dn, "(objectClass=user)", ["objectGUID", "sAMAccountName"], ldap3.BASE
        )
        if not found:
            return None
        raw = found[0][1]
        if (_text(raw, "sAMAccountName") or "").casefold() != sam.casefold():
            return None
        guid = _values(raw, "objectGUID")
        return uuid.UUID(bytes_le=guid[0]) if guid else None

    def _add_failed(self, conn: ldap3.Connection, plan: ChangePlan) -> None:
        result = conn.result or {}
        code = result.get("result")
        server = _server_of(conn)
        if code in (_ENTRY_ALREADY_EXISTS, _CONSTRAINT_VIOLATION, _UNWILLING_TO_PERFORM):
            # Which name clashes: read, don't guess from the code (AD and Samba differ).
            if self._search(conn, plan.dn, "(objectClass=*)", ["cn"], ldap3.BASE):
                cn = plan.dn.split(",", 1)[0].split("=", 1)[1]
                raise NameTaken(DIRECTORY, server, "cn", cn.replace("\\", ""))
            schema = self._schema_info()
            for attribute in ("sAMAccountName", "userPrincipalName"):
                value = plan.value(attribute)
                if value and self._search(
                    conn,
                    schema.base_dn,
                    f"({attribute}={escape_filter_value(value)})",
                    ["cn"],
                ):
                    raise NameTaken(DIRECTORY, server, attribute, value)
        if code == _INSUFFICIENT_ACCESS_RIGHTS:
            raise PermissionMissing(
                DIRECTORY,
                server,
                f"the service account may not create users or reset passwords in "
                f"{plan.dn.split(',', 1)[-1]}",
            )
        self._check(conn, f"create {plan.dn}")
        raise DirectoryUnavailable(DIRECTORY, server, f"create of {plan.dn} failed ({code})")

    def delete(self, dn: str, guid: uuid.UUID) -> None:
        """Delete exactly the object whose ``objectGUID`` is ``guid``, if it is still at ``dn``.

        Raises:
            NotFound: no object has that GUID.
            ConcurrentModification: the object was moved or renamed; nothing was deleted.
        """
        by_guid = f"<GUID={guid}>"

        def remove(conn: ldap3.Connection) -> None:
            found = self._search(conn, by_guid, "(objectClass=*)", ["objectGUID"], ldap3.BASE)
            if not found:
                raise NotFound(DIRECTORY, _server_of(conn), f"no object has objectGUID {guid}")
            if not _same_dn(found[0][0], dn):
                raise ConcurrentModification(
                    DIRECTORY,
                    _server_of(conn),
                    f"the object with objectGUID {guid} is now {found[0][0]}, not {dn}; "
                    "nothing was deleted",
                )
            # The GUID form of the DN: the server deletes that very object, whatever its name.
            if not conn.delete(by_guid):
                if (conn.result or {}).get("result") == _NO_SUCH_OBJECT:
                    raise NotFound(DIRECTORY, _server_of(conn), f"no object has objectGUID {guid}")
                self._check(conn, f"delete {dn}")

        self._run(self._pool, remove)
        log.info("deleted %s (objectGUID %s)", dn, guid)


# -- helpers ------------------------------------------------------------------------------


def _same_dn(a: str, b: str) -> bool:
    """Whether two DNs name the same object (RDN by RDN, case-insensitively)."""
    try:
        return _within(a, b) and _within(b, a)
    except (ldap_exc.LDAPInvalidDnError, ValueError, IndexError):
        return a.casefold() == b.casefold()


def _as_dn(text: str) -> str | None:
    """``text`` if it is a syntactically valid DN (``CN=x,OU=y,...``), else ``None``."""
    if "=" not in text:
        return None
    try:
        parts = parse_dn(text)
    except (ldap_exc.LDAPInvalidDnError, ValueError, IndexError):
        return None
    if not parts or not all(_ATTRIBUTE_TYPE.match(attr) for attr, _value, _sep in parts):
        return None
    return text


def _within(dn: str, base_dn: str) -> bool:
    """Whether ``dn`` is ``base_dn`` or below it (RDN by RDN, case-insensitively)."""

    def rdns(value: str) -> list[tuple[str, str]]:
        return [(a.lower(), v.casefold()) for a, v, _sep in parse_dn(value)]

    inner, outer = rdns(dn), rdns(base_dn)
    return len(inner) >= len(outer) and inner[len(inner) - len(outer) :] == outer


def _account_name(onprem_id: str) -> str:
    """``jdoe`` from ``CONTOSO\\jdoe`` (the down-level logon name), else the text itself."""
    if "@" not in onprem_id and "\\" in onprem_id:
        return onprem_id.rsplit("\\", 1)[1]
    return onprem_id


def protected_group_name(sid: str) -> str | None:
    """The name of a protected group (Domain Admins, Administrators, ...) by its SID, else
    ``None``. Domain groups are recognised by their well-known RID in any domain."""
    parts = sid.split("-")
    if len(parts) < 4 or not parts[-1].isdigit():
        return None
    rid = int(parts[-1])
    if sid.startswith("S-1-5-32-") and len(parts) == 5:
        return _BUILTIN_PROTECTED.get(rid)
    if sid.startswith("S-1-5-21-"):
        return _DOMAIN_PROTECTED.get(rid)
    return None


def _to_user(
    dn: str, raw: Mapping[str, Any], schema: _Schema, privileged: tuple[str, ...] = ()
) -> OnPremUser:
    guid = _values(raw, "objectGUID")
    sid = _values(raw, "objectSid")
    consistency = _values(raw, _CONSISTENCY_GUID)
    mailbox = _values(raw, _EXCHANGE_MAILBOX_GUID)
    recipient_type = _text(raw, _EXCHANGE_RECIPIENT_TYPE)
    uac = _text(raw, "userAccountControl")
    admin_count = _text(raw, "adminCount")
    return OnPremUser(
        dn=dn,
        object_guid=guid[0] if guid else b"",
        kind=object_kind(_texts(raw, "objectClass")),
        sam_account_name=_text(raw, "sAMAccountName"),
        user_principal_name=_text(raw, "userPrincipalName"),
        display_name=_text(raw, "displayName"),
        mail=_text(raw, "mail"),
        proxy_addresses=_texts(raw, "proxyAddresses"),
        # AD stores the flags as a signed 32-bit integer.
        user_account_control=int(uac) & 0xFFFFFFFF if uac else 0,
        object_sid=sid_to_string(sid[0]) if sid else None,
        consistency_guid=consistency[0] if consistency else None,
        exchange_schema=schema.exchange,
        exchange_mailbox_guid=(
            str(uuid.UUID(bytes_le=mailbox[0])) if mailbox and len(mailbox[0]) == 16 else None
        ),
        exchange_recipient_type_details=int(recipient_type) if recipient_type else None,
        given_name=_text(raw, "givenName"),
        surname=_text(raw, "sn"),
        critical_system_object=(_text(raw, "isCriticalSystemObject") or "").upper() == "TRUE",
        admin_description=_text(raw, "adminDescription"),
        admin_count=int(admin_count) if admin_count and admin_count.lstrip("-").isdigit() else None,
        privileged_groups=privileged,
        mail_nickname=_text(raw, _MAIL_NICKNAME),
    )


def _holds(attribute: str, value: str, address: str) -> bool:
    """Whether ``value`` of ``attribute`` is ``address`` (compared as AD does: any case)."""
    if attribute == "proxyAddresses":
        return _is_smtp_of(value, address)
    if attribute == _TARGET_ADDRESS:
        # targetAddress is usually stored as "SMTP:addr", sometimes bare.
        return value.casefold() == address.casefold() or _is_smtp_of(value, address)
    return value.casefold() == address.casefold()


def _holders_of(dn: str, raw: Mapping[str, Any], address: str) -> list[Holder]:
    return _carrier(dn, raw).holders(address)


#: The attributes an object holds addresses in, in the order holders are reported.
_HOLDER_ATTRIBUTES = ("mail", "proxyAddresses", "userPrincipalName", _TARGET_ADDRESS)


@dataclass(frozen=True, slots=True)
class AddressCarrier:
    """An AD object of any class with the addresses it holds (what a holder search sees)."""

    dn: str
    kind: ObjectKind
    name: str
    #: ``(attribute, values)`` for ``mail``, ``proxyAddresses``, UPN and ``targetAddress``.
    values: tuple[tuple[str, tuple[str, ...]], ...]

    def holders(self, address: str) -> list[Holder]:
        """One :class:`Holder` per attribute holding ``address`` (as :meth:`find_holders`)."""
        found: list[Holder] = []
        for attribute, values in self.values:
            for value in values:
                if _holds(attribute, value, address):
                    found.append(Holder(self.kind, self.dn, self.name, attribute, value))
                    break
        return found

    def keys(self) -> set[str]:
        """Every address (case-folded) a holder search could find this object by."""
        keys: set[str] = set()
        for attribute, values in self.values:
            for value in values:
                parsed = ProxyAddress.parse(value)
                if parsed.is_smtp:
                    keys.add(parsed.address.casefold())
                if attribute != "proxyAddresses":
                    keys.add(value.casefold())
        return keys


def _carrier(dn: str, raw: Mapping[str, Any]) -> AddressCarrier:
    return AddressCarrier(
        dn=dn,
        kind=object_kind(_texts(raw, "objectClass")),
        name=_text(raw, "displayName") or _text(raw, "cn") or dn,
        values=tuple((a, _texts(raw, a)) for a in _HOLDER_ATTRIBUTES if _texts(raw, a)),
    )


def _carriers(entries: Sequence[tuple[str, Mapping[str, Any]]]) -> list[AddressCarrier]:
    seen: set[str] = set()
    found: list[AddressCarrier] = []
    for dn, raw in entries:
        if dn.casefold() in seen:
            continue
        seen.add(dn.casefold())
        carrier = _carrier(dn, raw)
        if carrier.values:
            found.append(carrier)
    return found


@dataclass(frozen=True, slots=True)
class DirectoryContents:
    """What :meth:`ActiveDirectory.read_all` read: the whole domain, once.

    Args:
        objects: every user, contact and group, as the rules see them (in the server's order).
        people: per object, whether a ``find_users`` search by address can find it
            (``objectCategory=person`` and ``objectClass=user``).
        holders: every object of any class holding an address.
        base_dn: where the search ran.
        excluded: the configuration and schema partitions (never found by a named DN).
    """

    objects: tuple[OnPremUser, ...]
    people: tuple[bool, ...]
    holders: tuple[AddressCarrier, ...]
    base_dn: str
    excluded: tuple[str, ...] = ()


def _privileged_by_dn(
    entries: Sequence[tuple[str, Mapping[str, Any]]],
) -> dict[str, tuple[str, ...]]:
    """Per user or computer DN (case-folded): the protected groups it is in, directly, nested
    or as its primary group: what ``tokenGroups`` tells :meth:`ActiveDirectory.find_users`."""
    parents: dict[str, list[str]] = {}
    group_sid: dict[str, str] = {}
    rid_to_group: dict[tuple[str, int], str] = {}
    for dn, raw in entries:
        if object_kind(_texts(raw, "objectClass")) is not ObjectKind.GROUP:
            continue
        key = dn.casefold()
        sids = _values(raw, "objectSid")
        if sids:
            try:
                sid = sid_to_string(sids[0])
            except ValueError:
                sid = ""
            group_sid[key] = sid
            domain, _, rid = sid.rpartition("-")
            if rid.isdigit():
                rid_to_group[(domain, int(rid))] = key
        for member in _texts(raw, "member"):
            parents.setdefault(member.casefold(), []).append(key)
    out: dict[str, tuple[str, ...]] = {}
    for dn, raw in entries:
        if object_kind(_texts(raw, "objectClass")) not in (ObjectKind.USER, ObjectKind.COMPUTER):
            continue
        frontier = list(parents.get(dn.casefold(), ()))
        sids = _values(raw, "objectSid")
        primary = _text(raw, "primaryGroupID")
        if sids and primary and primary.isdigit():
            try:
                domain = sid_to_string(sids[0]).rpartition("-")[0]
            except ValueError:
                domain = ""
            group = rid_to_group.get((domain, int(primary)))
            if group:
                frontier.append(group)
        seen: set[str] = set()
        names: list[str] = []
        while frontier:
            group = frontier.pop()
            if group in seen:
                continue
            seen.add(group)
            name = protected_group_name(group_sid.get(group, ""))
            if name and name not in names:
                names.append(name)
            frontier.extend(parents.get(group, ()))
        if names:
            out[dn.casefold()] = tuple(names)
    return out


def _modification(changes: Sequence[AttributeChange]) -> dict[str, list[tuple[str, list[str]]]]:
    """Per attribute: delete the exact values dropped, add the values new to it."""
    modification: dict[str, list[tuple[str, list[str]]]] = {}
    for change in changes:
        before, after = set(change.before), set(change.after)
        operations: list[tuple[str, list[str]]] = []
        dropped = [v for v in change.before if v not in after]
        added = [v for v in change.after if v not in before]
        if dropped:
            operations.append((ldap3.MODIFY_DELETE, dropped))
        if added:
            # An add to a single-valued attribute that gained a value meanwhile fails, and an
            # add of a value someone else added fails too: both are what the check relies on.
            operations.append((ldap3.MODIFY_ADD, added))
        modification[change.attribute] = operations
    return modification


def _matches(
    current: Mapping[str, tuple[str, ...]], changes: Sequence[AttributeChange], *, after: bool
) -> bool:
    """Whether the stored values equal each change's before (or after) values, exactly.

    Exact (case-sensitive) comparison on purpose: ``SMTP:`` vs ``smtp:`` is the difference
    between a primary and a secondary address.
    """
    return all(set(current[c.attribute]) == set(c.after if after else c.before) for c in changes)


def _changed_message(
    dn: str, changes: Sequence[AttributeChange], current: Mapping[str, tuple[str, ...]]
) -> str:
    changed = [c.attribute for c in changes if set(current[c.attribute]) != set(c.before)]
    return f"{dn} changed since it was read ({', '.join(changed) or 'values'}); nothing was written"


def _in_plan_order(stored: tuple[str, ...], planned: tuple[str, ...]) -> tuple[str, ...]:
    """The stored values, in the plan's order where they match it (AD keeps no order)."""
    rest = list(stored)
    ordered: list[str] = []
    for value in planned:
        if value in rest:
            rest.remove(value)
            ordered.append(value)
    return (*ordered, *rest)


__all__ = [
    "ActiveDirectory",
    "AddressCarrier",
    "DirectoryContents",
    "escape_filter_value",
    "object_kind",
    "protected_group_name",
    "sid_to_string",
]
