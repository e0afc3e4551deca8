"""Microsoft Graph over HTTPS: app-only tokens from msal and a small, careful httpx client.

What lives here is transport: authentication (client secret or certificate), TLS trust,
timeouts, retries (429 with ``Retry-After``, 503/504, timeouts), one re-authentication on 401
(an ``httpx.Auth`` flow),
``@odata.nextLink`` paging, ``$batch`` and the mapping of Graph's error JSON onto
:mod:`bot.errors`. What the bot asks Graph lives in :mod:`bot.directories.entra`.

Secrets (the client secret, the private key, access tokens) never reach a log line or an
error message: messages name the host, the request path and the permission involved.
"""

from __future__ import annotations

import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import httpx
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pydantic import SecretStr

from bot.errors import (
    AuthenticationFailed,
    ConfigurationError,
    DirectoryError,
    DirectoryUnavailable,
    NotFound,
    PermissionMissing,
)
from bot.metrics import record_graph_throttled

log = logging.getLogger(__name__)

DIRECTORY = "Entra ID"
API_VERSION = "v1.0"
MAX_BATCH_REQUESTS = 20
RETRYABLE_STATUSES = frozenset({429, 503, 504})

#: Authority hosts msal knows (public and sovereign clouds). For any other host (an emulator,
#: a proxy) msal must not ask login.microsoftonline.com's instance discovery about it.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login-us.microsoftonline.com",
        "login.usgovcloudapi.net",
        "login.microsoftonline.de",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)

JsonObject = dict[str, Any]


def host_of(url: str) -> str:
    """The ``host[:port]`` of a URL: what error messages name as the server."""
    return urlsplit(url).netloc or url


def encode_query(params: Mapping[str, str]) -> str:
    """Percent-encode OData query options.

    Every reserved character in a value (``&``, ``#``, ``+``, ``%``, quotes, blanks) is encoded,
    so a value can never end an option or start another; ``$`` stays readable.
    """
    return urlencode(params, quote_via=quote, safe="$")


def odata_string(value: str) -> str:
    """An OData string literal: quoted, with every single quote doubled."""
    return "'" + value.replace("'", "''") + "'"


# -- TLS trust ---------------------------------------------------------------------------


def _ca_files(ca_file: Path | None) -> list[str]:
    if ca_file is not None:
        return [str(ca_file)]
    names = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
    return list(dict.fromkeys(os.environ[n] for n in names if os.environ.get(n)))


def trust_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """The TLS context httpx verifies Graph with.

    Args:
        ca_file: a PEM bundle to trust instead of the environment's. Without it, the bundles
            named by ``SSL_CERT_FILE`` and ``REQUESTS_CA_BUNDLE`` are trusted (both, when they
            differ), else the system store.
    """
    files = _ca_files(ca_file)
    if not files:
        return ssl.create_default_context()
    context = ssl.create_default_context(cafile=files[0])
    for extra in files[1:]:
        context.load_verify_locations(cafile=extra)
    return context


class _PinnedVerifySession(requests.Session):
    """A requests session that always verifies with one bundle.

    requests lets ``REQUESTS_CA_BUNDLE`` override ``Session.verify`` on every request; passing
    ``verify`` per request is the documented way to make an explicit CA win.
    """

    def __init__(self, verify: str | bool) -> None:
        super().__init__()
        self._pinned_verify = verify

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("verify", self._pinned_verify)
        return super().request(method, url, *args, **kwargs)


def _requests_verify(ca_file: Path | None) -> str | bool:
    if ca_file is not None:
        return str(ca_file)
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or True


# -- tokens --------------------------------------------------------------------------------


class TokenProvider(Protocol):
    """Something that hands out Graph access tokens."""

    def token(self) -> str:
        """A valid access token (cached until near expiry)."""
        ...

    def invalidate(self) -> None:
        """Forget the cached token, so the next ``token()`` asks the authority again."""
        ...


def load_certificate_credential(path: Path) -> dict[str, str]:
    """Read a PEM holding a private key and its certificate into msal's credential dict.

    Returns:
        ``{"private_key": <PKCS#8 PEM>, "thumbprint": <SHA-1 hex>}`` as msal expects.

    Raises:
        ConfigurationError: naming AZURE_CLIENT_CERTIFICATE_PATH (never the file's content).
    """
    name = "AZURE_CLIENT_CERTIFICATE_PATH"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{name}: cannot read {path} ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(f"{name}: {path} holds no unencrypted PEM private key") from None
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ConfigurationError(f"{name}: {path} holds no PEM certificate") from None
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    # SHA-1 is what the certificate's x5t header and the app registration's thumbprint use.
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
    return {"private_key": key_pem, "thumbprint": thumbprint}


class MsalTokenProvider:
    """App-only (client credentials) tokens for Graph, from ``msal.ConfidentialClientApplication``.

    msal caches the token and only calls the authority again near expiry; a lock makes
    concurrent first calls wait for one token request instead of racing several.
    The msal application is built on first use, since building it fetches the authority's
    OIDC metadata (network I/O that belongs in a request, not in a constructor).
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        authority_host: str,
        graph_url: str,
        client_secret: SecretStr | None = None,
        certificate_path: Path | None = None,
        ca_file: Path | None = None,
        timeout: float = 15.0,
    ) -> None:
        if client_secret is None and certificate_path is None:
            raise ConfigurationError(
                "missing setting: AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH"
            )
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self._authority_host = host_of(authority_host)
        self._scope = f"{graph_url.rstrip('/')}/.default"
        self._secret = client_secret
        self._certificate_path = certificate_path
        self._timeout = timeout
        self._session = _PinnedVerifySession(_requests_verify(ca_file))
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None

    def _credential(self) -> str | dict[str, str]:
        if self._certificate_path is not None:
            return load_certificate_credential(self._certificate_path)
        assert self._secret is not None  # checked in __init__
        return self._secret.get_secret_value()

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            hostname = self._authority_host.split(":")[0].lower()
            self._app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=self._credential(),
                authority=self._authority,
                http_client=self._session,
                timeout=self._timeout,
                # Instance discovery asks login.microsoftonline.com about the authority;
                # only Microsoft's own hosts may be validated that way.
                instance_discovery=hostname in MICROSOFT_AUTHORITY_HOSTS,
                token_cache=msal.TokenCache(),
            )
        return self._app

    def token(self) -> str:
        """An access token for Graph, from msal's cache while it is fresh.

        Raises:
            DirectoryUnavailable: the authority could not be reached.
            AuthenticationFailed: the authority refused the application's credentials.
        """
        with self._lock:
            try:
                result = self._application().acquire_token_for_client(scopes=[self._scope])
            except requests.exceptions.RequestException as exc:
                raise DirectoryUnavailable(
                    DIRECTORY,
                    self._authority_host,
                    f"the sign-in service could not be reached ({type(exc).__name__})",
                ) from None
            except msal.exceptions.MsalServiceError as exc:
                raise DirectoryUnavailable(
                    DIRECTORY,
                    self._authority_host,
                    f"the sign-in service failed ({exc.error or 'server error'})",
                ) from None
            except ValueError:
                # msal raises ValueError when the authority's OIDC metadata cannot be read,
                # which means the tenant id or the authority host is wrong.
                raise ConfigurationError(
                    f"AZURE_TENANT_ID / AZURE_AUTHORITY_HOST: {self._authority_host} has no "
                    f"OpenID configuration for tenant {self._tenant_id}"
                ) from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if isinstance(token, str) and token:
            return token
        error = str(result.get("error", "unknown_error")) if isinstance(result, dict) else "?"
        codes = result.get("error_codes") if isinstance(result, dict) else None
        code = f" AADSTS{codes[0]}" if isinstance(codes, list) and codes else ""
        raise AuthenticationFailed(
            DIRECTORY,
            self._authority_host,
            f"the application's credentials were refused ({error}{code}); check "
            "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH",
        )

    def invalidate(self) -> None:
        """Drop the cached token (after Graph answered 401 to it)."""
        with self._lock:
            if self._app is not None:
                self._app.remove_tokens_for_client()

    def close(self) -> None:
        """Close the HTTP session msal uses."""
        self._session.close()


class BearerAuth(httpx.Auth):
    """httpx authentication for Graph: the bearer token, and one re-authentication on 401.

    A 401 means the token was revoked or expired early: the flow drops it, asks for a new one
    and sends the request once more. A response that is still 401 is handed back, so a 401
    the caller sees has already survived one re-authentication.
    """

    def __init__(self, tokens: TokenProvider) -> None:
        self.tokens = tokens

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Authorize ``request``; on 401, refresh the token once and send it again."""
        tokens = self.tokens
        request.headers["Authorization"] = f"Bearer {tokens.token()}"
        response = yield request
        if response.status_code == 401:
            tokens.invalidate()
            request.headers["Authorization"] = f"Bearer {tokens.token()}"
            yield request


def retry_after_seconds(value: str, now: datetime | None = None) -> float | None:
    """The wait a ``Retry-After`` value asks for (RFC 9110 10.2.3), or None if unreadable.

    Args:
        value: delay-seconds (``"7"``) or an HTTP-date (``"Sun, 29 Nov 2026 22:10:00 GMT"``).
        now: the current time, for an HTTP-date (default: the clock).

    Returns:
        Seconds to wait, never negative (a date in the past means "now").
    """
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC without a claimed zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# -- requests and responses ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GraphRequest:
    """One Graph call.

    Args:
        path: relative to the API version, starting with ``/`` (``/users``); path segments
            taken from data must already be quoted (see :func:`quote_segment`).
        params: OData query options, unencoded (``{"$filter": "mail eq 'x'"}``).
        permission: the application permission this call needs, named when Graph says 403.
    """

    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    permission: str = "User.Read.All"
    method: str = "GET"
    body: JsonObject | None = None

    def relative_url(self) -> str:
        """Path and encoded query, as ``$batch`` wants it."""
        return self.path + ("?" + encode_query(self.params) if self.params else "")


def quote_segment(value: str) -> str:
    """Quote a value for use as one path segment (an object id)."""
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class GraphResponse:
    """Graph's answer to one request (HTTP or inside a batch), before error mapping."""

    status: int
    body: Any
    headers: Mapping[str, str]
    request: GraphRequest

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    @property
    def error_code(self) -> str | None:
        """Graph's ``error.code``, if the body is an error."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        return str(code) if code else None

    @property
    def error_message(self) -> str:
        """Graph's ``error.message``, shortened (it names no secret, but can be long)."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        return str(message or "")[:200]


class GraphNotFound(NotFound):
    """Graph answered 404; ``code`` is Graph's error code (e.g. ``MailboxNotEnabledForRESTAPI``)."""

    def __init__(self, server: str, message: str, code: str | None) -> None:
        super().__init__(DIRECTORY, server, message)
        self.code = code


class GraphRequestFailed(DirectoryError):
    """Graph rejected a request (400 and other statuses that retrying does not fix)."""

    def __init__(self, server: str, message: str, status: int, code: str | None) -> None:
        super().__init__(DIRECTORY, server, message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try before calling Graph unavailable.

    Args:
        max_attempts: tries per request (first one included).
        base_delay: first backoff, doubled per attempt, capped at ``max_delay``, with jitter.
        max_retry_after: a ``Retry-After`` longer than this is not waited for.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class GraphClient:
    """A thread-safe Graph client over one pooled ``httpx.Client``.

    Args:
        graph_url: ``https://graph.microsoft.com`` or a sovereign cloud's / an emulator's URL.
        tokens: where access tokens come from.
        timeout: seconds for connect, read, write and pool waits.
        verify: the TLS context (see :func:`trust_context`).
        retry: attempts and backoff.
        sleep: what waits between attempts (tests pass a recorder).
    """

    def __init__(
        self,
        graph_url: str,
        tokens: TokenProvider,
        *,
        timeout: float = 15.0,
        verify: ssl.SSLContext | None = None,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        max_connections: int = 32,
    ) -> None:
        self.base_url = graph_url.rstrip("/")
        self.host = host_of(self.base_url)
        self._api = f"{self.base_url}/{API_VERSION}"
        self._auth = BearerAuth(tokens)
        self._retry = retry
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._count_lock = threading.Lock()
        self.round_trips = 0
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            verify=verify if verify is not None else trust_context(),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"Accept": "application/json"},
            auth=self._auth,
            # Counted per HTTP request sent, the re-authenticated one included.
            event_hooks={"request": [self._count_round_trip]},
            # Proxies still come from the environment; CA trust was resolved above.
            trust_env=True,
        )

    @property
    def _tokens(self) -> TokenProvider:
        """Where the auth flow gets tokens (read per request, so it can be replaced)."""
        return self._auth.tokens

    @_tokens.setter
    def _tokens(self, tokens: TokenProvider) -> None:
        self._auth.tokens = tokens

    def _count_round_trip(self, request: httpx.Request) -> None:
        with self._count_lock:
            self.round_trips += 1

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- one HTTP round trip, with retries ----------------------------------------------

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._retry.max_delay, self._retry.base_delay * float(2 ** (attempt - 1)))
        return ceiling * (0.5 + self._rng.random() / 2)

    def _retry_after(self, headers: Mapping[str, str], attempt: int) -> float:
        value = headers.get("retry-after")
        seconds = retry_after_seconds(value) if value is not None else None
        return self._backoff(attempt) if seconds is None else seconds

    def send(self, request: GraphRequest, *, url: str | None = None) -> GraphResponse:
        """One request, retried on 429/503/504 and timeouts, re-authenticated once on 401.

        Returns:
            The response, whatever its status, once retrying is over.

        Raises:
            DirectoryUnavailable: Graph could not be reached, kept timing out or throttling.
            AuthenticationFailed: the token was refused even after re-authentication.
        """
        target = url or f"{self._api}{request.relative_url()}"
        # The retry loop is our own, not a library's: tenacity and stamina do not read
        # Retry-After, and httpx-retries (which reads both of its forms) would be one more
        # dependency that still leaves the $batch inner answers, whose Retry-After sits in a
        # 200 body, and the cap on long waits to this code.
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                raw = self._http.request(request.method, target, json=request.body)
            except httpx.ConnectError as exc:
                raise DirectoryUnavailable(
                    DIRECTORY, self.host, f"Microsoft Graph could not be reached ({exc!s:.120})"
                ) from None
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt >= self._retry.max_attempts:
                    raise DirectoryUnavailable(
                        DIRECTORY,
                        self.host,
                        f"Microsoft Graph did not answer {request.path} after {attempt} "
                        f"attempts ({type(exc).__name__})",
                    ) from None
                self._sleep(self._backoff(attempt))
                continue
            log.debug(
                "Graph %s %s -> %s in %.0f ms",
                request.method,
                request.path,
                raw.status_code,
                (time.monotonic() - started) * 1000,
            )
            response = self._to_response(raw, request)
            if raw.status_code == 429:
                record_graph_throttled()
            if raw.status_code == 401:
                # BearerAuth has already re-authenticated once for this request.
                raise AuthenticationFailed(
                    DIRECTORY,
                    self.host,
                    "Microsoft Graph refused a fresh access token "
                    f"({response.error_code or 'unauthorized'})",
                )
            if raw.status_code in RETRYABLE_STATUSES:
                delay = self._retry_after(response.headers, attempt)
                if attempt >= self._retry.max_attempts or delay > self._retry.max_retry_after:
                    what = "throttled it (429)" if raw.status_code == 429 else "was unavailable"
                    raise DirectoryUnavailable(
                        DIRECTORY,
                        self.host,
                        f"Microsoft Graph {what} on {request.path} after {attempt} attempts",
                    )
                self._sleep(delay)
                continue
            return response

    @staticmethod
    def _to_response(raw: httpx.Response, request: GraphRequest) -> GraphResponse:
        try:
            body = raw.json() if raw.content else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in raw.headers.items()}
        return GraphResponse(raw.status_code, body, headers, request)

    # -- error mapping --------------------------------------------------------------------

    def check(self, response: GraphResponse) -> JsonObject:
        """The body of a 2xx response, else the matching :mod:`bot.errors` exception."""
        request = response.request
        if response.ok:
            return response.body if isinstance(response.body, dict) else {}
        code = response.error_code
        if response.status == 403:
            raise PermissionMissing(
                DIRECTORY,
                self.host,
                f"Microsoft Graph denied {request.method} {request.path} ({code or '403'}): "
                f"the application needs the {request.permission} permission",
            )
        if response.status == 404:
            raise GraphNotFound(self.host, f"{request.path} was not found ({code or '404'})", code)
        if response.status == 401:
            raise AuthenticationFailed(
                DIRECTORY, self.host, f"Microsoft Graph refused the token ({code or '401'})"
            )
        if response.status in RETRYABLE_STATUSES:
            raise DirectoryUnavailable(
                DIRECTORY,
                self.host,
                f"Microsoft Graph answered {response.status} on {request.path}",
            )
        raise GraphRequestFailed(
            self.host,
            f"Microsoft Graph rejected {request.method} {request.path} with {response.status} "
            f"{code or ''}: {response.error_message}".rstrip(": "),
            response.status,
            code,
        )

    # -- conveniences ---------------------------------------------------------------------

    def get(self, request: GraphRequest) -> JsonObject:
        """One object (or one page), errors mapped."""
        return self.check(self.send(request))

    def collect(self, response: GraphResponse) -> list[JsonObject]:
        """Every item of a collection response, following ``@odata.nextLink``."""
        body = self.check(response)
        items: list[JsonObject] = list(body.get("value") or [])
        next_link = body.get("@odata.nextLink")
        pages = 1
        while isinstance(next_link, str) and next_link:
            # Only ever send the bearer token back to Graph itself.
            if not next_link.startswith(self.base_url + "/"):
                raise GraphRequestFailed(
                    self.host,
                    f"refusing to follow a nextLink to another host ({host_of(next_link)})",
                    0,
                    None,
                )
            pages += 1
            body = self.check(self.send(response.request, url=next_link))
            items.extend(body.get("value") or [])
            next_link = body.get("@odata.nextLink")
        log.debug("Graph %s: %d items in %d pages", response.request.path, len(items), pages)
        return items

    def get_all(self, request: GraphRequest) -> list[JsonObject]:
        """Every item of a collection, across pages, errors mapped."""
        return self.collect(self.send(request))

    def batch(self, requests_: Sequence[GraphRequest]) -> list[GraphResponse]:
        """Run requests through ``POST /$batch`` (20 per batch), answers in request order.

        Inner requests answered 429/503/504 are sent again (in a new batch) after the longest
        ``Retry-After``, within the same attempt budget as single requests. A single request is
        sent as itself: a batch of one saves nothing.
        """
        if len(requests_) == 1:
            return [self.send(requests_[0])]
        results: dict[int, GraphResponse] = {}
        pending: Sequence[int] = list(range(len(requests_)))
        attempt = 0
        while pending:
            attempt += 1
            again: list[int] = []
            delay = 0.0
            for chunk in _chunks(pending, MAX_BATCH_REQUESTS):
                entries = []
                for index in chunk:
                    item = requests_[index]
                    entry: JsonObject = {
                        "id": str(index),
                        "method": item.method,
                        "url": item.relative_url(),
                    }
                    if item.body is not None:
                        entry["body"] = item.body
                        entry["headers"] = {"Content-Type": "application/json"}
                    entries.append(entry)
                outer = GraphRequest(
                    "/$batch", method="POST", body={"requests": entries}, permission="(batch)"
                )
                answers = self.check(self.send(outer)).get("responses") or []
                for answer in answers:
                    index = int(answer["id"])
                    headers = {
                        str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()
                    }
                    status = int(answer["status"])
                    if status == 429:
                        record_graph_throttled()
                    if status in RETRYABLE_STATUSES and attempt < self._retry.max_attempts:
                        again.append(index)
                        delay = max(delay, self._retry_after(headers, attempt))
                        continue
                    results[index] = GraphResponse(
                        status, answer.get("body"), headers, requests_[index]
                    )
                missing = [i for i in chunk if i not in results and i not in again]
                if missing:
                    raise GraphRequestFailed(
                        self.host, "a $batch answer lacked some of its requests", 0, None
                    )
            if again:
                if delay > self._retry.max_retry_after:
                    raise DirectoryUnavailable(
                        DIRECTORY, self.host, "Microsoft Graph throttled a $batch for too long"
                    )
                self._sleep(delay)
            pending = sorted(again)
        return [results[i] for i in range(len(requests_))]
