"""The emulator's HTTP surface: OIDC discovery, the token endpoint and Graph v1.0.

Behaviour follows Microsoft's documentation; where it is uncertain a comment says what was
assumed. Graph requests are dispatched by one function so that ``$batch`` runs the very same
code for its inner requests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.graph_emulator.odata import FilterError, Predicate, parse_filter
from tests.support.graph_emulator.state import (
    EmulatedUser,
    GraphState,
    RecordedRequest,
    role_template_id,
)
from tests.support.graph_emulator.sync_simulator import WEBHOOK_PATH, SyncWebhook

MAX_BATCH = 20
MAX_TOP = 999
DEFAULT_PAGE = 100

USER_PROPERTIES = (
    "id",
    "userPrincipalName",
    "displayName",
    "mail",
    "proxyAddresses",
    "userType",
    "accountEnabled",
    "onPremisesImmutableId",
    "onPremisesSyncEnabled",
    "onPremisesSecurityIdentifier",
    "onPremisesProvisioningErrors",
    "givenName",
    "surname",
    "mailNickname",
    # The service plans provisioned to the user (Exchange, SharePoint, ...); only on $select.
    "provisionedPlans",
)
#: Properties of a soft-deleted user (``deletedDateTime`` exists on every directoryObject).
DELETED_USER_PROPERTIES = (*USER_PROPERTIES, "deletedDateTime")
# Graph's default property set for users leaves out proxyAddresses and every on-prem property:
# those come back only when named in $select.
USER_DEFAULT = ("id", "userPrincipalName", "displayName", "mail")
GROUP_PROPERTIES = (
    "id",
    "displayName",
    "mail",
    "proxyAddresses",
    "isAssignableToRole",
    "mailEnabled",
)
CONTACT_PROPERTIES = ("id", "displayName", "mail", "proxyAddresses")

Reply = tuple[int, dict[str, str], Any]


class TokenBucket:
    """Graph-like throttling of one application: ``Knobs.throttle_rate`` requests per second
    with ``Knobs.throttle_burst`` of burst (off while the rate is ``None``)."""

    def __init__(self) -> None:
        self._tokens: float | None = None
        self._stamp = time.monotonic()
        self.throttled = 0

    def take(self, knobs: Any) -> int | None:
        """Spend one request; ``None`` if allowed, else the seconds to send in Retry-After."""
        rate: float | None = knobs.throttle_rate
        if not rate:
            self._tokens = None
            return None
        now = time.monotonic()
        burst = float(knobs.throttle_burst)
        tokens = burst if self._tokens is None else self._tokens
        tokens = min(burst, tokens + (now - self._stamp) * rate)
        self._stamp = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return None
        self._tokens = tokens
        self.throttled += 1
        return max(1, int(-(-(1.0 - tokens) // rate)))


def graph_error(status: int, code: str, message: str, headers: Mapping[str, str] = {}) -> Reply:
    """Graph's error body: ``{"error": {"code", "message", "innerError": {...}}}``."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": str(uuid.uuid4()),
                "client-request-id": str(uuid.uuid4()),
            },
        }
    }
    return status, dict(headers), body


def _token_error(status: int, error: str, description: str) -> JSONResponse:
    # The identity platform's OAuth error shape (RFC 6749 section 5.2 plus AADSTS codes).
    return JSONResponse(
        {
            "error": error,
            "error_description": description,
            "error_codes": [int(description[6 : description.index(":")])]
            if description.startswith("AADSTS")
            else [],
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
        status_code=status,
    )


PROVISION_ON_DEMAND = re.compile(
    r"^/servicePrincipals/[^/]+/synchronization/jobs/[^/]+/provisionOnDemand$"
)


def endpoint_key(path: str) -> str:
    """The name tests use to deny one endpoint (``state.knobs.denied``).

    ``users``, ``user``, ``mailboxSettings``, ``transitiveMemberOf``,
    ``roleEligibilityScheduleInstances``, ``roleAssignments``, ``groups``, ``contacts``,
    ``domains``, ``onPremisesSynchronization``, ``deletedItems``.
    """
    parts = [p for p in path.split("/") if p]
    if not parts:
        return ""
    if parts[0] == "users":
        if len(parts) == 1:
            return "users"
        if len(parts) == 2:
            return "user"
        return parts[2]
    if parts[0] == "directory" and len(parts) > 1 and parts[1] == "deletedItems":
        return "deletedItems"
    if parts[0] in ("roleManagement", "directory"):
        return parts[-1]
    return parts[0]


@dataclass
class Query:
    """The OData system query options of one request."""

    params: dict[str, str]
    path: str

    def get(self, name: str) -> str | None:
        """An option by name, ``$`` prefix included (``$filter``)."""
        return self.params.get(name)


@dataclass
class GraphApp:
    """The emulator's ASGI application and request handling."""

    state: GraphState
    tenant_id: str
    client_id: str
    client_secret: str
    base_url: Callable[[], str]
    certificates: list[x509.Certificate] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)
    #: The sync simulator's webhook receiver, once a test configured one.
    sync_webhook: SyncWebhook | None = None
    #: provisionOnDemand calls: (path, AD DN, ruleId).
    provisioned: list[tuple[str, str, str]] = field(default_factory=list)
    #: The application's request quota (``Knobs.throttle_rate``).
    bucket: TokenBucket = field(default_factory=TokenBucket)

    def asgi(self) -> Starlette:
        """The Starlette application serving every route."""
        return Starlette(
            routes=[
                Route("/{path:path}", self.handle, methods=["GET", "POST", "PATCH", "DELETE"]),
            ]
        )

    # -- HTTP entry -----------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Route one HTTP request."""
        if request.url.path == WEBHOOK_PATH:
            if self.sync_webhook is None:
                return JSONResponse({"error": "the sync simulator is off"}, status_code=404)
            return await self.sync_webhook.handle(request)
        latency = self.state.knobs.latency
        if latency:
            # asyncio.sleep, so concurrent requests overlap as they would against Graph.
            await asyncio.sleep(latency)
        path = request.url.path
        # Route Graph on the raw path: an id holding an encoded "/" (%2F) stays one segment.
        raw_path = request.scope.get("raw_path", b"").decode("ascii", "replace").split("?")[0]
        if raw_path.startswith("/v1.0/") or raw_path == "/v1.0":
            return await self.handle_graph(request, raw_path[len("/v1.0") :])
        response = await self.handle_identity(request, path)
        self.state.record(RecordedRequest(request.method, path, "", response.status_code))
        return response

    async def handle_identity(self, request: Request, path: str) -> Response:
        """OIDC discovery and the token endpoint."""
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == self.tenant_id:
            rest = "/".join(parts[1:])
            if rest == "v2.0/.well-known/openid-configuration":
                return JSONResponse(self.openid_configuration())
            if rest == "oauth2/v2.0/token" and request.method == "POST":
                return await self.token(request)
        if len(parts) >= 1 and parts[0] != self.tenant_id:
            return _token_error(
                400, "invalid_request", f"AADSTS90002: Tenant '{parts[0]}' not found."
            )
        return JSONResponse({"error": "not_found", "path": path}, status_code=404)

    # -- identity platform -----------------------------------------------------------------

    def authority(self) -> str:
        """The authority URL (host + tenant)."""
        return f"{self.base_url()}/{self.tenant_id}"

    def openid_configuration(self) -> dict[str, Any]:
        """The OIDC discovery document msal reads to find the token endpoint."""
        authority = self.authority()
        return {
            "issuer": f"{self.base_url()}/{self.tenant_id}/v2.0",
            "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
            "token_endpoint": f"{authority}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{authority}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{authority}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "tenant_region_scope": "EU",
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
        }

    async def token(self, request: Request) -> Response:
        """The client-credentials grant, with a client secret or a client assertion."""
        with self.state.lock:
            self.state.token_requests += 1
        # Parsed by hand: Starlette's request.form() needs python-multipart, which the project
        # does not depend on; the token request is plain application/x-www-form-urlencoded.
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            return _token_error(
                400, "unsupported_grant_type", "AADSTS70003: The grant type is not supported."
            )
        if form.get("client_id") != self.client_id:
            return _token_error(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
                "found in the directory.",
            )
        scope = str(form.get("scope", ""))
        expected_scope = f"{self.base_url()}/.default"
        if expected_scope not in scope.split():
            return _token_error(
                400,
                "invalid_scope",
                f"AADSTS1002012: The provided value for scope {scope} is not valid.",
            )
        if "client_assertion" in form:
            if not self.assertion_valid(str(form["client_assertion"]), str(request.url)):
                return _token_error(
                    401,
                    "invalid_client",
                    "AADSTS700027: Client assertion failed signature validation.",
                )
        elif not hmac.compare_digest(
            str(form.get("client_secret", "")).encode(), self.client_secret.encode()
        ):
            return _token_error(
                401,
                "invalid_client",
                f"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                f"in the request is the client secret value, not the client secret ID, for a "
                f"secret added to app '{self.client_id}'.",
            )
        lifetime = self.state.knobs.token_lifetime
        token = secrets.token_urlsafe(32)
        with self.state.lock:
            self.tokens[token] = time.time() + lifetime
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            }
        )

    def assertion_valid(self, assertion: str, token_url: str) -> bool:
        """Verify a client assertion JWT against a registered certificate (x5t or x5t#S256)."""
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return False
        for cert in self.certificates:
            sha1 = jwt.utils.base64url_encode(cert.fingerprint(hashes.SHA1())).decode()
            sha256 = jwt.utils.base64url_encode(cert.fingerprint(hashes.SHA256())).decode()
            # msal keeps the base64url padding in x5t; the JOSE spec leaves it out: accept both.
            x5t = str(header.get("x5t", "")).rstrip("=")
            x5t256 = str(header.get("x5t#S256", "")).rstrip("=")
            if x5t != sha1 and x5t256 != sha256:
                continue
            try:
                claims = jwt.decode(
                    assertion,
                    cert.public_key(),  # type: ignore[arg-type]
                    algorithms=["RS256", "PS256"],
                    audience=token_url,
                    issuer=self.client_id,
                )
            except jwt.PyJWTError:
                return False
            return bool(claims.get("sub") == self.client_id)
        return False

    # -- Graph ----------------------------------------------------------------------------

    async def handle_graph(self, request: Request, path: str) -> Response:
        """Authenticate, apply the knobs, then dispatch."""
        query_text = request.url.query
        knobs = self.state.knobs
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        with self.state.lock:
            expiry = self.tokens.get(token)
            reply: Reply | None = None
            if not token:
                reply = graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
            elif expiry is None or expiry < time.time():
                reply = graph_error(
                    401, "InvalidAuthenticationToken", "Access token validation failure."
                )
            elif knobs.reject_tokens_next > 0:
                knobs.reject_tokens_next -= 1
                self.tokens.pop(token, None)
                reply = graph_error(
                    401,
                    "InvalidAuthenticationToken",
                    "Lifetime validation failed, the token is expired.",
                )
            elif path != "/$batch" and (wait := self.bucket.take(knobs)) is not None:
                reply = graph_error(
                    429,
                    "TooManyRequests",
                    "Too many requests. Application is over its request quota.",
                    {"Retry-After": str(wait)},
                )
            elif knobs.throttle_next > 0:
                knobs.throttle_next -= 1
                reply = graph_error(
                    429,
                    "TooManyRequests",
                    "Too many requests.",
                    {"Retry-After": str(knobs.retry_after)},
                )
            elif knobs.unavailable_next > 0:
                knobs.unavailable_next -= 1
                reply = graph_error(503, "serviceNotAvailable", "Service unavailable.")
        if reply is None:
            body: Any = None
            if request.method in ("POST", "PATCH"):
                raw = await request.body()
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    reply = graph_error(400, "BadRequest", "Invalid JSON body.")
            if reply is None:
                if path == "/$batch" and request.method == "POST":
                    reply = self.batch(body)
                elif request.method == "POST" and PROVISION_ON_DEMAND.match(path):
                    reply = self.provision_on_demand(path, body)
                else:
                    params = dict(parse_qsl(query_text, keep_blank_values=True))
                    reply = self.dispatch(request.method, path, params)
        status, headers, payload = reply
        self.state.record(RecordedRequest(request.method, "/v1.0" + path, query_text, status))
        return JSONResponse(payload, status_code=status, headers=headers)

    def provision_on_demand(self, path: str, body: Any) -> Reply:
        """``POST /servicePrincipals/{id}/synchronization/jobs/{jobId}/provisionOnDemand``.

        The body is ``{"parameters": [{"ruleId", "subjects": [{"objectId": <AD DN>,
        "objectTypeName": "user"}]}]}`` (synchronizationJobApplicationParameters). Each call is
        recorded in ``provisioned``; with the sync simulator on, the DN is synced at once.
        """
        if "provisionOnDemand" in self.state.knobs.denied:
            return graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        try:
            parameter = body["parameters"][0]
            subject = parameter["subjects"][0]
            dn, kind, rule = (
                str(subject["objectId"]),
                subject["objectTypeName"],
                parameter["ruleId"],
            )
        except (KeyError, IndexError, TypeError):
            return graph_error(
                400, "BadRequest", "parameters[0].subjects[0] and ruleId are required."
            )
        if kind != "user" or not rule:
            return graph_error(400, "BadRequest", "objectTypeName must be 'user' and ruleId set.")
        self.provisioned.append((path, dn, str(rule)))
        webhook = self.sync_webhook
        if webhook is not None and webhook.enabled:
            webhook.simulator.run(dn=dn)
        return (
            200,
            {},
            {
                "@odata.context": f"{self.context()}microsoft.graph.stringResponse",
                "value": json.dumps(
                    [{"provisioningSteps": [{"name": "EntryExportAdd", "status": "success"}]}]
                ),
            },
        )

    def batch(self, body: Any) -> Reply:
        """``POST /$batch``: run up to 20 requests, answer each by id (in any order)."""
        if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
            return graph_error(400, "BadRequest", "Invalid batch payload format.")
        requests: list[Any] = body["requests"]
        if len(requests) > MAX_BATCH:
            return graph_error(
                400,
                "BadRequest",
                f"Invalid batch payload format. Batch can contain at most {MAX_BATCH} requests.",
            )
        ids = [r.get("id") for r in requests if isinstance(r, dict)]
        if len(ids) != len(requests) or len(set(ids)) != len(ids) or None in ids:
            return graph_error(400, "BadRequest", "Batch request ids must be present and unique.")
        responses = []
        for item in requests:
            method = str(item.get("method", "GET")).upper()
            url = str(item.get("url", ""))
            split = urlsplit(url if url.startswith("/") else "/" + url)
            knobs = self.state.knobs
            with self.state.lock:
                # Graph evaluates each request of a batch against the limits on its own.
                wait = self.bucket.take(knobs)
                throttled = knobs.throttle_next_in_batch > 0
                if throttled:
                    knobs.throttle_next_in_batch -= 1
            if wait is not None:
                status, headers, payload = graph_error(
                    429,
                    "TooManyRequests",
                    "Too many requests. Application is over its request quota.",
                    {"Retry-After": str(wait)},
                )
            elif throttled:
                status, headers, payload = graph_error(
                    429,
                    "TooManyRequests",
                    "Too many requests.",
                    {"Retry-After": str(knobs.retry_after)},
                )
            else:
                params = dict(parse_qsl(split.query, keep_blank_values=True))
                status, headers, payload = self.dispatch(method, split.path, params)
            self.state.record(
                RecordedRequest(method, "/v1.0" + split.path, split.query, status, True)
            )
            responses.append(
                {
                    "id": item["id"],
                    "status": status,
                    "headers": {"Content-Type": "application/json", **headers},
                    "body": payload,
                }
            )
        # Graph documents that responses may come back in any order: answer in reverse so that
        # clients relying on the order fail here rather than in production.
        responses.reverse()
        return 200, {}, {"responses": responses}

    def dispatch(self, method: str, path: str, params: dict[str, str]) -> Reply:
        """Answer one Graph request (path relative to ``/v1.0``)."""
        key = endpoint_key(path)
        if key in self.state.knobs.denied:
            if key == "mailboxSettings":
                return graph_error(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
            return graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        if method != "GET":
            return graph_error(405, "Request_BadRequest", f"Method {method} is not supported here.")
        parts = [unquote(p) for p in path.split("/") if p]
        query = Query(params, path)
        try:
            with self.state.lock:
                return self.route(parts, query)
        except FilterError as exc:
            if exc.unsupported:
                return graph_error(400, "Request_UnsupportedQuery", f"Unsupported Query. {exc}")
            return graph_error(400, "BadRequest", f"Invalid filter clause: {exc}")

    def route(self, parts: list[str], query: Query) -> Reply:
        """The GET routes."""
        state = self.state
        match parts:
            case ["users"]:
                users = [u.to_json() for u in state.users.values()]
                return self.collection(
                    query,
                    users,
                    USER_PROPERTIES,
                    USER_DEFAULT,
                    "users",
                    filterable=(
                        "id",
                        "mail",
                        "userPrincipalName",
                        "onPremisesImmutableId",
                        "onPremisesSecurityIdentifier",
                        "userType",
                        "displayName",
                        "accountEnabled",
                    ),
                )
            case ["directory", "deletedItems", "microsoft.graph.user"]:
                # The directory's recycle bin, cast to users: same $filter and $select as
                # /users (documented for deletedItems), plus deletedDateTime.
                deleted = [u.to_json() for u in state.deleted_users.values()]
                return self.collection(
                    query,
                    deleted,
                    DELETED_USER_PROPERTIES,
                    ("id", "userPrincipalName", "displayName", "mail", "deletedDateTime"),
                    "directoryObjects",
                    filterable=(
                        "mail",
                        "userPrincipalName",
                        "onPremisesImmutableId",
                        "onPremisesSecurityIdentifier",
                        "displayName",
                    ),
                )
            case ["users", user_ref]:
                user = self.find_user(user_ref)
                if user is None:
                    return self.user_missing(user_ref)
                selected = self.select(query, USER_PROPERTIES, USER_DEFAULT)
                if isinstance(selected, tuple):
                    return selected
                body = {k: v for k, v in user.to_json().items() if k in selected}
                return (
                    200,
                    {},
                    {"@odata.context": f"{self.base_url()}/v1.0/$metadata#users/$entity", **body},
                )
            case ["users", user_ref, "mailboxSettings"]:
                user = self.find_user(user_ref)
                if user is None:
                    return self.user_missing(user_ref)
                if not user.has_mailbox:
                    # What Exchange Online answers for a user without a mailbox in the cloud.
                    return graph_error(
                        404,
                        "MailboxNotEnabledForRESTAPI",
                        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
                    )
                return (
                    200,
                    {},
                    {
                        "@odata.context": f"{self.context()}users('{user.id}')/mailboxSettings",
                        "timeZone": "UTC",
                        "language": {"locale": "en-US", "displayName": "English (United States)"},
                        "userPurpose": "user",
                    },
                )
            case ["users", user_ref, "transitiveMemberOf", *cast]:
                user = self.find_user(user_ref)
                if user is None:
                    return self.user_missing(user_ref)
                kind = cast[0] if cast else ""
                items: list[dict[str, Any]] = []
                if kind in ("", "microsoft.graph.group"):
                    items += [
                        {"@odata.type": "#microsoft.graph.group", **g.to_json()}
                        for g in state.groups_of(user.id)
                    ]
                if kind in ("", "microsoft.graph.directoryRole"):
                    items += [self.directory_role(name) for name in self.active_roles(user)]
                if kind not in ("", "microsoft.graph.group", "microsoft.graph.directoryRole"):
                    return graph_error(400, "BadRequest", f"Unsupported cast '{kind}'.")
                props = (*GROUP_PROPERTIES, "roleTemplateId", "description", "@odata.type")
                return self.collection(
                    query, items, props, props, "directoryObjects", filterable=()
                )
            case ["groups", group_ref, "transitiveMembers", *cast]:
                group = state.groups.get(group_ref)
                if group is None:
                    return self.user_missing(group_ref)
                kind = cast[0] if cast else ""
                if kind not in ("", "microsoft.graph.user", "microsoft.graph.group"):
                    return graph_error(400, "BadRequest", f"Unsupported cast '{kind}'.")
                members = state.transitive_members(group.id)
                items = []
                if kind in ("", "microsoft.graph.user"):
                    items += [
                        {"@odata.type": "#microsoft.graph.user", **state.users[m].to_json()}
                        for m in members
                        if m in state.users
                    ]
                if kind in ("", "microsoft.graph.group"):
                    items += [
                        {"@odata.type": "#microsoft.graph.group", **state.groups[m].to_json()}
                        for m in members
                        if m in state.groups
                    ]
                props = (*USER_PROPERTIES, *GROUP_PROPERTIES, "@odata.type")
                return self.collection(
                    query, items, props, ("id", "displayName"), "directoryObjects", filterable=()
                )
            case ["roleManagement", "directory", "roleEligibilityScheduleInstances"]:
                items = []
                for user in state.users.values():
                    for name in user.eligible_roles:
                        items.append(self.role_item(user.id, name, query, eligibility=True))
                return self.collection(
                    query,
                    items,
                    None,
                    None,
                    "roleEligibilityScheduleInstances",
                    filterable=("principalId", "roleDefinitionId"),
                )
            case ["roleManagement", "directory", "roleAssignments"]:
                items = []
                for user in state.users.values():
                    items += [self.role_item(user.id, name, query) for name in user.roles]
                for group in state.groups.values():
                    if group.is_assignable_to_role:
                        items += [self.role_item(group.id, name, query) for name in group.roles]
                return self.collection(
                    query,
                    items,
                    None,
                    None,
                    "roleAssignments",
                    filterable=("principalId", "roleDefinitionId"),
                )
            case ["groups"]:
                groups = [g.to_json() for g in state.groups.values()]
                return self.collection(
                    query,
                    groups,
                    GROUP_PROPERTIES,
                    GROUP_PROPERTIES,
                    "groups",
                    filterable=("mail", "displayName"),
                )
            case ["contacts"]:
                contacts = [c.to_json() for c in state.contacts.values()]
                return self.collection(
                    query,
                    contacts,
                    CONTACT_PROPERTIES,
                    CONTACT_PROPERTIES,
                    "contacts",
                    filterable=("mail", "displayName"),
                )
            case ["domains"]:
                initial = min(
                    (d for d in state.domains if d.endswith(".onmicrosoft.com")), default=None
                )
                domains = [
                    {
                        "id": name,
                        "isVerified": verified,
                        "isDefault": name == "contoso.com",
                        "isInitial": name == initial,
                        "authenticationType": "Managed",
                    }
                    for name, verified in state.domains.items()
                ]
                props = ("id", "isVerified", "isDefault", "isInitial", "authenticationType")
                return self.collection(query, domains, props, props, "domains", filterable=())
            case ["directory", "onPremisesSynchronization"]:
                # The list form answers a collection with one entry per tenant (documented).
                sync = {
                    "id": self.tenant_id,
                    "configuration": {
                        "accidentalDeletionPrevention": {
                            "synchronizationPreventionType": "enabledForCount",
                            "alertThreshold": 500,
                        },
                        "synchronizationInterval": "PT30M",
                    },
                    "features": dict(state.features),
                }
                return (
                    200,
                    {},
                    {
                        "@odata.context": f"{self.context()}directory/onPremisesSynchronization",
                        "value": [sync],
                    },
                )
        return graph_error(
            400, "BadRequest", f"Resource not found for the segment '{parts[-1] if parts else ''}'."
        )

    # -- helpers --------------------------------------------------------------------------

    def context(self) -> str:
        """The prefix of ``@odata.context`` values."""
        return f"{self.base_url()}/v1.0/$metadata#"

    def find_user(self, ref: str) -> EmulatedUser | None:
        """A user by id or by UPN (Graph accepts either in ``/users/{id | userPrincipalName}``)."""
        user = self.state.users.get(ref)
        if user is not None:
            return user
        for candidate in self.state.users.values():
            if candidate.user_principal_name.casefold() == ref.casefold():
                return candidate
        return None

    def user_missing(self, ref: str) -> Reply:
        """Graph's 404 for a user that does not exist."""
        return graph_error(
            404,
            "Request_ResourceNotFound",
            f"Resource '{ref}' does not exist or one of its queried reference-property objects "
            "are not present.",
        )

    def active_roles(self, user: EmulatedUser) -> list[str]:
        """Direct roles plus roles of role-assignable groups the user is in (transitively)."""
        names = list(user.roles)
        for group in self.state.groups_of(user.id):
            if group.is_assignable_to_role:
                names += [r for r in group.roles if r not in names]
        return names

    @staticmethod
    def directory_role(name: str) -> dict[str, Any]:
        """A ``directoryRole`` object (activated role)."""
        template = role_template_id(name)
        return {
            "@odata.type": "#microsoft.graph.directoryRole",
            "id": str(uuid.uuid5(uuid.NAMESPACE_OID, template)),
            "displayName": name,
            "description": f"{name} role",
            "roleTemplateId": template,
        }

    def role_item(
        self, principal_id: str, name: str, query: Query, *, eligibility: bool = False
    ) -> dict[str, Any]:
        """A roleAssignment or roleEligibilityScheduleInstance, with ``$expand=roleDefinition``."""
        template = role_template_id(name)
        item: dict[str, Any] = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{principal_id}:{template}:{eligibility}")),
            "principalId": principal_id,
            "roleDefinitionId": template,
            "directoryScopeId": "/",
        }
        if eligibility:
            item |= {
                "memberType": "Direct",
                "startDateTime": "2024-01-01T00:00:00Z",
                "endDateTime": None,
                "roleEligibilityScheduleId": item["id"],
            }
        expand = query.get("$expand") or ""
        if expand.split("(")[0].strip() == "roleDefinition":
            item["roleDefinition"] = {
                "id": template,
                "displayName": name,
                "templateId": template,
                "isBuiltIn": True,
            }
        return item

    def select(
        self, query: Query, known: tuple[str, ...] | None, default: tuple[str, ...] | None
    ) -> set[str] | Reply:
        """The properties to return, or Graph's 400 for an unknown one."""
        raw = query.get("$select")
        if not raw:
            return set(default) if default is not None else set()
        names = {name.strip() for name in raw.split(",") if name.strip()}
        if known is not None:
            for name in names:
                if name not in known:
                    return graph_error(
                        400,
                        "Request_BadRequest",
                        f"Could not find a property named '{name}' on type "
                        "'microsoft.graph.directoryObject'.",
                    )
        return names

    def collection(
        self,
        query: Query,
        items: list[dict[str, Any]],
        known: tuple[str, ...] | None,
        default: tuple[str, ...] | None,
        context: str,
        *,
        filterable: tuple[str, ...],
    ) -> Reply:
        """Filter, select and page a collection the way Graph does."""
        text = query.get("$filter")
        if text:
            predicate: Predicate = parse_filter(text, filterable, ("proxyAddresses",))
            items = [item for item in items if predicate(item)]
        if known is not None:
            selected = self.select(query, known, default)
            if isinstance(selected, tuple):
                return selected
            keep = selected | {"@odata.type"}
            items = [{k: v for k, v in item.items() if k in keep} for item in items]
        try:
            top = min(int(query.get("$top") or DEFAULT_PAGE), MAX_TOP)
            skip = int(query.get("$skiptoken") or 0)
        except ValueError:
            return graph_error(400, "BadRequest", "Invalid $top or $skiptoken.")
        if top < 1:
            return graph_error(400, "BadRequest", "Invalid $top.")
        page = items[skip : skip + top]
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url()}/v1.0/$metadata#{context}",
            "value": page,
        }
        if skip + top < len(items):
            params = {k: v for k, v in query.params.items() if k != "$skiptoken"}
            params["$skiptoken"] = str(skip + top)
            body["@odata.nextLink"] = (
                f"{self.base_url()}/v1.0{query.path}?{urlencode(params, quote_via=quote, safe='$')}"
            )
        return 200, {}, body
