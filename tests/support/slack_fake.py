"""A fake Slack Web API that records what a bot posts, and a driver that talks to the bot as Slack.

Both are plain Python (no pytest), so benchmarks and scripts can use them too::

    with FakeSlackApi() as api:
        ...  # start the bot with SLACK_API_URL=api.url, SLACK_BOT_TOKEN=BOT_TOKEN
        with SlackDriver("http://127.0.0.1:3000/slack/events", api) as slack:
            assert slack.command("jane@contoso.com").status_code == 200
            call = api.wait_for("chat.postMessage")

``FakeSlackApi`` serves ``/api/{method}`` (the Web API, ``url``) and ``/response/{name}``
(``response_url`` targets) from one ``ThreadingHTTPServer`` on 127.0.0.1. It answers the way
Slack documents: HTTP 200 with ``{"ok": false, "error": ...}`` for API errors, HTTP 429 with
``Retry-After`` when rate limited. It keeps state (messages after ``chat.update``, views, the
published Home tab) so tests can assert on outcomes as well as on calls.

``SlackDriver`` signs requests the way Slack does (``v0=`` + HMAC-SHA256 of
``v0:{timestamp}:{body}`` with the signing secret) and sends slash commands, button clicks,
view submissions and Events API callbacks to the bot's ``/slack/events`` URL.

Socket Mode: ``apps.connections.open`` (called with the app-level ``xapp-`` token) answers a
one-time ``ws://127.0.0.1:PORT/link/?ticket=...`` URL on the same server. The WebSocket there
greets the app with ``hello``, answers pings, and lets a test push envelopes and read the
app's acks::

    envelope_id = api.send_envelope("slash_commands", slash_command_payload(api, "help"))
    ack = api.wait_for_ack(envelope_id)
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import itertools
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import httpx

__all__ = [
    "APP_ID",
    "APP_TOKEN",
    "BOT_ID",
    "BOT_TOKEN",
    "BOT_USER_ID",
    "RESPONSE_URL",
    "SIGNING_SECRET",
    "SOCKET_PATH",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "ApiCall",
    "Ephemeral",
    "FakeSlackApi",
    "PostedMessage",
    "ResponsePost",
    "SentRequest",
    "ServedApp",
    "SlackDriver",
    "SocketAck",
    "SocketConnection",
    "block_actions_payload",
    "find_action",
    "serve_asgi",
    "slack_signature",
    "slash_command_payload",
    "text_of",
]

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-1-A_SMTPMATCH-1-test-app-token"
"""The app-level token (Socket Mode): the only one ``apps.connections.open`` accepts."""

TEAM_ID = "T_FAKE"
TEAM_DOMAIN = "fake-workspace"
APP_ID = "A_SMTPMATCH"
BOT_ID = "B_SMTPMATCH"
BOT_USER_ID = "U_SMTPMATCH_BOT"

RESPONSE_URL = "response_url"
"""Pseudo method name under which posts to a ``response_url`` are recorded."""
UPLOAD = "file_upload"
"""Pseudo method name under which the bytes POSTed to an upload URL are recorded."""

SOCKET_PATH = "/link/"
"""Path of the Socket Mode WebSocket URLs ``apps.connections.open`` hands out."""

# Methods that take the app-level token; every other method takes the bot token.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
# RFC 6455: the key is hashed with this GUID into Sec-WebSocket-Accept.
_WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONTINUATION, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Keys Slack accepts as JSON-encoded strings in form-encoded calls.
_JSON_ARGS = ("blocks", "view", "attachments", "metadata", "options", "files")
# Slack refuses requests signed more than five minutes ago (replay protection).
_REPLAY_WINDOW_SECONDS = 5 * 60

Json = dict[str, Any]
Predicate = Callable[["ApiCall"], bool]


# ---------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    """One request the fake answered.

    Attributes:
        method: Web API method (``"chat.postMessage"``) or :data:`RESPONSE_URL`.
        args: Query, form and JSON arguments merged; ``blocks`` / ``view`` / ... JSON-decoded.
        at: Wall-clock time (``time.time()``) when the request arrived.
        http_status: HTTP status answered (200, or 429 when rate limited).
        result: The JSON body answered.
        target: For :data:`RESPONSE_URL` posts, the name given to ``response_url(name)``.
        content_type: The request's ``Content-Type`` (to tell JSON from form bodies).
    """

    method: str
    args: Json
    at: float
    http_status: int
    result: Json
    target: str | None = None
    content_type: str = ""

    @property
    def ok(self) -> bool:
        """Whether Slack would have accepted the call (HTTP 200 and ``"ok": true``)."""
        return self.http_status == HTTPStatus.OK and self.result.get("ok") is True


class _MessageBody:
    """``text``, ``blocks`` and ``all_text`` of a message, from its JSON body."""

    @property
    def _body(self) -> Json:
        raise NotImplementedError

    @property
    def text(self) -> str:
        """The message's ``text`` (the notification fallback when blocks are sent)."""
        return str(self._body.get("text") or "")

    @property
    def blocks(self) -> list[Json]:
        """The message's Block Kit blocks (empty when none were sent)."""
        return list(self._body.get("blocks") or [])

    @property
    def all_text(self) -> str:
        """``text`` and the flattened blocks, for ``in`` assertions."""
        return "\n".join(part for part in (self.text, text_of(self.blocks)) if part)


@dataclass
class PostedMessage(_MessageBody):
    """A message posted with ``chat.postMessage``, in its latest state.

    Attributes:
        channel: Channel id (a user id posted to is turned into that user's DM channel).
        ts: The message timestamp Slack returned (its id within the channel).
        args: Latest arguments (those of the post, merged with every ``chat.update``).
        versions: The argument sets in order: the post, then each update.
        deleted: Set by ``chat.delete`` or a ``delete_original`` response_url post.
    """

    channel: str
    ts: str
    args: Json
    versions: list[Json] = field(default_factory=list)
    deleted: bool = False

    @property
    def _body(self) -> Json:
        return self.args

    @property
    def thread_ts(self) -> str | None:
        """The parent's ts when the message was posted in a thread."""
        value = self.args.get("thread_ts")
        return str(value) if value else None

    @property
    def edited(self) -> bool:
        """Whether the message was changed after it was posted."""
        return len(self.versions) > 1


@dataclass
class UploadedFile:
    """A file uploaded the way ``files_upload_v2`` does: ``files.getUploadURLExternal``, a
    POST of the bytes to the upload URL, then ``files.completeUploadExternal``.

    ``content`` is ``None`` until the bytes arrive; ``channel`` and ``title`` are set when
    the upload is completed (shared), ``completed`` tells whether it was.
    """

    id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str | None = None
    channel: str | None = None
    initial_comment: str | None = None
    thread_ts: str | None = None
    completed: bool = False


@dataclass(frozen=True)
class Ephemeral(_MessageBody):
    """A message posted with ``chat.postEphemeral`` (only ``user`` sees it)."""

    channel: str
    user: str
    message_ts: str
    args: Json

    @property
    def _body(self) -> Json:
        return self.args


@dataclass(frozen=True)
class ResponsePost(_MessageBody):
    """A JSON message posted to a ``response_url`` (what Bolt's ``respond()`` sends)."""

    name: str
    payload: Json
    at: float

    @property
    def _body(self) -> Json:
        return self.payload

    @property
    def response_type(self) -> str:
        """``"ephemeral"`` (Slack's default) or ``"in_channel"``."""
        return str(self.payload.get("response_type") or "ephemeral")

    @property
    def replace_original(self) -> bool:
        """Whether the post replaces the message the interaction came from."""
        return _truthy(self.payload.get("replace_original"))

    @property
    def delete_original(self) -> bool:
        """Whether the post deletes the message the interaction came from."""
        return _truthy(self.payload.get("delete_original"))


@dataclass(frozen=True)
class SocketAck(_MessageBody):
    """An acknowledgement the app sent back over a Socket Mode connection.

    Attributes:
        envelope_id: The envelope acknowledged.
        payload: The response payload sent with the ack (``None`` when the ack had none),
            e.g. the ephemeral message a slash command's ``ack(text=...)`` answers with.
        at: Wall-clock time (``time.time()``) when the ack arrived.
        elapsed: Seconds from sending the envelope to its ack; ``None`` for an envelope the
            fake did not send (or sent before a reset).
        connection: Id of the :class:`SocketConnection` it came on.
    """

    envelope_id: str
    payload: Json | None
    at: float
    elapsed: float | None
    connection: int

    @property
    def _body(self) -> Json:
        return self.payload or {}


# ---------------------------------------------------------------------------------------
# Block Kit helpers
# ---------------------------------------------------------------------------------------


def text_of(blocks: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None) -> str:
    """Flatten Block Kit into one string, one text per line, in reading order.

    Collects every text object (``plain_text`` / ``mrkdwn``: section text and fields,
    headers, context elements, button and option texts, input labels) and rich-text runs.
    A mapping with ``blocks`` (a message, a view) is accepted as well as a list of blocks.
    """
    if blocks is None:
        return ""
    if isinstance(blocks, Mapping):
        blocks = list(blocks.get("blocks") or [])
    parts: list[str] = []
    _collect_text(list(blocks), parts)
    return "\n".join(parts)


_MRKDWN_TOKEN = re.compile(r"<([^<>]*)>")


def render_mrkdwn(text: str) -> str:
    """What a person sees for a mrkdwn string, the way Slack renders it.

    ``<@U1>`` shows as ``@U1`` (the fake has no names), ``<#C1>`` as ``#C1``, ``<!date^…|x>``
    and ``<url|label>`` as their fallback or label, ``<url>`` as the URL; then the three
    escapes ``&lt;`` ``&gt;`` ``&amp;`` show as the characters. So a mention escaped twice
    (``&lt;@U1&gt;``) shows as the raw ``<@U1>`` it is in Slack. Zero-width spaces (which
    keep a value's ``*``/``_``/``:`` from being read as markup) are invisible.
    """

    def token(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return label or target
        if target.startswith("#"):
            return f"#{label}" if label else target
        if target.startswith("!"):
            return label or f"@{target[1:].split('^')[0]}"
        return label or target

    rendered = _MRKDWN_TOKEN.sub(token, text)
    rendered = rendered.replace("\u200b", "")
    return rendered.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def rendered_text(blocks: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None) -> str:
    """:func:`text_of` as Slack would render it (see :func:`render_mrkdwn`)."""
    return render_mrkdwn(text_of(blocks))


def _collect_text(node: Any, parts: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect_text(item, parts)
        return
    if not isinstance(node, Mapping):
        return
    kind = node.get("type")
    text = node.get("text")
    if kind in ("plain_text", "mrkdwn", "text") and isinstance(text, str):
        parts.append(text)
        return
    if kind == "link" and isinstance(node.get("url"), str):
        parts.append(str(text or node["url"]))
        return
    for key, value in node.items():
        if key in ("action_id", "block_id", "value", "url", "image_url", "alt_text"):
            continue
        _collect_text(value, parts)


def find_action(blocks: Sequence[Mapping[str, Any]], action_id: str) -> tuple[str, Json]:
    """Find an interactive element by ``action_id``.

    Returns:
        ``(block_id, element)``; the block id is ``""`` when the block has none.

    Raises:
        LookupError: No element in the blocks has that action id.
    """
    for block in blocks:
        candidates = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), Mapping):
            candidates.append(block["accessory"])
        if isinstance(block.get("element"), Mapping):
            candidates.append(block["element"])
        for element in candidates:
            if isinstance(element, Mapping) and element.get("action_id") == action_id:
                return str(block.get("block_id") or ""), dict(element)
    found = [
        e.get("action_id")
        for b in blocks
        for e in [*(b.get("elements") or []), b.get("accessory"), b.get("element")]
        if isinstance(e, Mapping) and e.get("action_id")
    ]
    raise LookupError(f"no element with action_id {action_id!r}; found {found}")


def _accepted(method: str) -> Predicate:
    """Matches the calls of ``method`` that Slack would have accepted."""

    def predicate(call: ApiCall) -> bool:
        return call.method == method and call.ok

    return predicate


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


# ---------------------------------------------------------------------------------------
# Socket Mode: the server side of one WebSocket connection
# ---------------------------------------------------------------------------------------


class SocketConnection:
    """One Socket Mode WebSocket connection, on Slack's side (frames sent unmasked).

    Created by :class:`FakeSlackApi` when the app connects; thread-safe for sending.

    Attributes:
        id: 1, 2, ... in the order the app connected (since the fake started).
        ticket: The ``ticket`` of the URL ``apps.connections.open`` handed out.
        opened_at: Wall-clock time the handshake completed.
        pings: Pings the app sent on this connection (each answered with a pong).
    """

    def __init__(self, connection_id: int, sock: socket.socket, ticket: str) -> None:
        self.id = connection_id
        self.ticket = ticket
        self.opened_at = time.time()
        self.pings = 0
        self._sock = sock
        self._send_lock = threading.RLock()
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        """Whether either side closed the connection."""
        return self._closed.is_set()

    def send_json(self, message: Json) -> None:
        """Send one JSON text message (an envelope, ``hello``, ``disconnect``)."""
        self.send_frame(_OP_TEXT, json.dumps(message).encode())

    def send_frame(self, opcode: int, data: bytes = b"") -> None:
        """Send one unmasked, final frame.

        Raises:
            ConnectionError: The connection is closed.
        """
        try:
            with self._send_lock:
                if self._closed.is_set() and opcode != _OP_CLOSE:
                    raise ConnectionError(f"Socket Mode connection {self.id} is closed")
                self._sock.sendall(_frame(opcode, data))
        except OSError as exc:
            self._closed.set()
            raise ConnectionError(f"Socket Mode connection {self.id} is closed: {exc}") from exc

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (best effort) and shut the TCP connection down; idempotent."""
        with self._send_lock:
            if self._closed.is_set():
                return
            with contextlib.suppress(ConnectionError):
                self.send_frame(_OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120])
            self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def wait_closed(self, timeout: float = 10.0) -> bool:
        """Wait until the connection is closed; returns whether it is."""
        return self._closed.wait(timeout)

    def _mark_closed(self) -> None:
        self._closed.set()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<SocketConnection {self.id} {state} pings={self.pings}>"


def _websocket_accept(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` answer to a client's ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((key.strip() + _WEBSOCKET_GUID).encode(), usedforsecurity=False)
    return base64.b64encode(digest.digest()).decode()


def _frame(opcode: int, data: bytes) -> bytes:
    """One final, unmasked WebSocket frame (server to client)."""
    length = len(data)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + data


def _read_exactly(stream: BufferedIOBase, n: int) -> bytes:
    data = stream.read(n) if n else b""
    if len(data) < n:
        raise EOFError("the WebSocket connection closed mid-frame")
    return data


def _read_frame(stream: BufferedIOBase) -> tuple[bool, int, bool, bytes]:
    """Read one frame: ``(fin, opcode, masked, unmasked payload)``.

    Raises:
        EOFError: The connection closed.
    """
    first, second = _read_exactly(stream, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _read_exactly(stream, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _read_exactly(stream, 8))
    masked = bool(second & 0x80)
    mask = _read_exactly(stream, 4) if masked else b""
    data = _read_exactly(stream, length)
    if masked:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return bool(first & 0x80), first & 0x0F, masked, data


# ---------------------------------------------------------------------------------------
# The fake Web API
# ---------------------------------------------------------------------------------------


class FakeSlackApi:
    """A local Slack Web API plus ``response_url`` receiver that records every call.

    Thread-safe: the bot calls it from its worker threads while the test reads it.

    Args:
        bot_token: The only token the Web API methods accept (``invalid_auth`` otherwise).
        app_token: The only token ``apps.connections.open`` accepts (Socket Mode). Each
            token used for the other's methods is answered ``not_allowed_token_type``.
        host: Interface to listen on.
        port: Port to listen on; 0 (the default) picks a free one.
    """

    def __init__(
        self,
        bot_token: str = BOT_TOKEN,
        *,
        app_token: str = APP_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.host = host
        self.port = port
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ts_counter = itertools.count(1)
        self._id_counter = itertools.count(1)
        self._socket_ids = itertools.count(1)
        self._reset_state()
        self._methods: dict[str, Callable[[Json], Json]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "conversations.open": self._conversations_open,
            "apps.connections.open": self._apps_connections_open,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
        }

    def _reset_state(self) -> None:
        self._calls: list[ApiCall] = []
        self._messages: dict[tuple[str, str], PostedMessage] = {}
        self._ephemerals: list[Ephemeral] = []
        self._views: dict[str, Json] = {}
        self._opened: list[str] = []
        self._homes: dict[str, Json] = {}
        self._bound_urls: dict[str, tuple[str, str]] = {}
        self._users: dict[str, Json] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._rate_limits: dict[str, tuple[int, int]] = {}
        self._failures: dict[str, list[str]] = {}
        self._latency: dict[str | None, float] = {}
        self._tickets: set[str] = set()
        self._sockets: list[SocketConnection] = []
        self._envelopes: dict[str, float] = {}
        self._acks: list[SocketAck] = []
        self._files: dict[str, UploadedFile] = {}

    # -- addresses ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The Web API base URL to give the bot as ``SLACK_API_URL`` (ends with ``/api/``)."""
        return f"{self.base_url}/api/"

    def response_url(
        self, name: str, *, channel: str | None = None, message_ts: str | None = None
    ) -> str:
        """A ``response_url`` on this server; posts to it are recorded under ``name``.

        Args:
            name: Label to find the posts with ``responses(name)``.
            channel: With ``message_ts``, the message the interaction came from: a post
                with ``replace_original`` then updates it in ``messages()`` and one with
                ``delete_original`` deletes it, as Slack does.
            message_ts: See ``channel``.
        """
        if channel and message_ts:
            with self._cond:
                self._bound_urls[name] = (channel, message_ts)
        return f"{self.base_url}/response/{quote(name, safe='')}"

    def dm_channel(self, user_id: str) -> str:
        """The DM channel id ``conversations.open`` returns for a user (``D`` + user id)."""
        return "D" + user_id.removeprefix("U").removeprefix("W")

    # -- seeding -----------------------------------------------------------------------

    def seed_user(
        self,
        user_id: str,
        *,
        real_name: str | None = None,
        name: str | None = None,
        email: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        **extra: Any,
    ) -> Json:
        """Define what ``users.info`` returns for ``user_id``; returns the user object."""
        user = _user_object(user_id, real_name=real_name, name=name, email=email)
        user.update(is_bot=is_bot, deleted=deleted, **extra)
        with self._cond:
            self._users[user_id] = user
        return copy.deepcopy(user)

    def seed_usergroup(self, group_id: str, user_ids: Sequence[str]) -> None:
        """Define the members ``usergroups.users.list`` returns for a group (``S...``)."""
        with self._cond:
            self._usergroups[group_id] = list(user_ids)

    # -- knobs -------------------------------------------------------------------------

    def rate_limit_next(self, method: str, n: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``n`` calls of ``method`` with HTTP 429 and ``Retry-After``."""
        with self._cond:
            self._rate_limits[method] = (n, retry_after)

    def fail_next(self, method: str, error: str, n: int = 1) -> None:
        """Answer the next ``n`` calls of ``method`` with ``{"ok": false, "error": error}``."""
        with self._cond:
            self._failures.setdefault(method, []).extend([error] * n)

    def set_latency(self, seconds: float, method: str | None = None) -> None:
        """Delay every answer (or only ``method``'s) by ``seconds``; 0 removes the delay."""
        with self._cond:
            self._latency[method] = seconds

    # -- queries -----------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[ApiCall]:
        """Every recorded call in arrival order, or only those of ``method``.

        Rate-limited and refused calls are included; check ``ApiCall.ok``.
        """
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def messages(self, channel: str | None = None) -> list[PostedMessage]:
        """Posted messages in their latest state, oldest first (deleted ones included)."""
        with self._cond:
            found = [
                copy.deepcopy(m)
                for m in self._messages.values()
                if channel is None or m.channel == channel
            ]
        return sorted(found, key=lambda m: float(m.ts))

    def message(self, channel: str, ts: str) -> PostedMessage:
        """The latest state of one posted message.

        Raises:
            KeyError: No such message was posted.
        """
        with self._cond:
            return copy.deepcopy(self._messages[(channel, ts)])

    def ephemerals(self, user: str | None = None) -> list[Ephemeral]:
        """Messages sent with ``chat.postEphemeral``, optionally only those to ``user``."""
        with self._cond:
            return [e for e in self._ephemerals if user is None or e.user == user]

    def responses(self, name: str | None = None) -> list[ResponsePost]:
        """Posts to ``response_url``s, optionally only those to the URL named ``name``."""
        return [
            ResponsePost(name=c.target or "", payload=c.args, at=c.at)
            for c in self.calls(RESPONSE_URL)
            if name is None or c.target == name
        ]

    def views_opened(self) -> list[Json]:
        """Modals opened (``views.open`` / ``views.push``) in their latest state, in order."""
        with self._cond:
            return [copy.deepcopy(self._views[view_id]) for view_id in self._opened]

    def view(self, view_id: str) -> Json:
        """The latest state of a modal or Home tab by view id (``KeyError`` if unknown)."""
        with self._cond:
            return copy.deepcopy(self._views[view_id])

    def files(self, channel: str | None = None) -> list[UploadedFile]:
        """Files whose upload was completed, oldest first, optionally only those shared in
        ``channel``."""
        with self._cond:
            return [
                copy.deepcopy(f)
                for f in self._files.values()
                if f.completed and (channel is None or f.channel == channel)
            ]

    def published_home(self, user: str) -> Json | None:
        """The Home tab last published for ``user`` with ``views.publish``, if any."""
        with self._cond:
            home = self._homes.get(user)
            return copy.deepcopy(home) if home is not None else None

    def wait_for(
        self, predicate_or_method: str | Predicate, timeout: float = 30.0, *, count: int = 1
    ) -> ApiCall:
        """Wait until ``count`` matching calls were recorded; return the ``count``-th.

        The bot answers after it acknowledges, so tests wait for its calls. A method name
        matches only accepted calls (``ok``) of that method; a predicate sees every call. The
        default wait is generous: it only costs time when a test fails, and a loaded CI machine
        (a Samba DC, PostgreSQL and the suite on 2 cores) can take seconds to schedule a worker.

        Raises:
            TimeoutError: Not enough matching calls within ``timeout`` seconds.
        """
        predicate: Predicate
        if isinstance(predicate_or_method, str):
            predicate, what = _accepted(predicate_or_method), predicate_or_method
        else:
            predicate = predicate_or_method
            what = getattr(predicate, "__name__", "predicate")
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matching = [c for c in self._calls if predicate(c)]
                if len(matching) >= count:
                    return matching[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [f"{c.method}({c.http_status}, ok={c.ok})" for c in self._calls]
                    raise TimeoutError(
                        f"{len(matching)}/{count} calls matching {what} after {timeout}s; "
                        f"recorded: {seen or 'nothing'}"
                    )
                self._cond.wait(remaining)

    def clear(self) -> None:
        """Forget recorded calls, messages, ephemerals, views and Home tabs.

        Seeded users and user groups and the knobs stay; see :meth:`reset`.
        """
        with self._cond:
            self._calls.clear()
            self._messages.clear()
            self._ephemerals.clear()
            self._views.clear()
            self._opened.clear()
            self._homes.clear()
            self._bound_urls.clear()

    def reset(self) -> None:
        """Back to a freshly started fake: no records, no seeds, no knobs.

        Open Socket Mode connections are closed and forgotten.
        """
        with self._cond:
            sockets = list(self._sockets)
            self._reset_state()
        for connection in sockets:
            connection.close(1001, "reset")

    # -- Socket Mode -------------------------------------------------------------------

    def sockets(self) -> list[SocketConnection]:
        """Every Socket Mode connection the app opened since the last reset, oldest first."""
        with self._cond:
            return list(self._sockets)

    def wait_for_socket(self, timeout: float = 10.0, *, count: int = 1) -> SocketConnection:
        """Wait until the app has opened ``count`` connections and one is open; return the
        newest open one (the one :meth:`send_envelope` uses).

        Raises:
            TimeoutError: Not so many connections, or none open, within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                open_ = [c for c in self._sockets if not c.closed]
                if len(self._sockets) >= count and open_:
                    return open_[-1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    opens = [
                        f"{c.method}(ok={c.ok})"
                        for c in self._calls
                        if c.method in _APP_TOKEN_METHODS
                    ]
                    raise TimeoutError(
                        f"{len(self._sockets)}/{count} Socket Mode connections, "
                        f"{len(open_)} open, after {timeout}s; apps.connections.open calls: "
                        f"{opens or 'none'}"
                    )
                # A connection closed by this side is seen closed before its thread notifies.
                self._cond.wait(min(remaining, 0.05))

    def send_envelope(
        self,
        type: str,
        payload: Json,
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 10.0,
    ) -> str:
        """Push an envelope to the app over its newest open connection, as Slack does.

        Args:
            type: ``"slash_commands"``, ``"interactive"`` or ``"events_api"``.
            payload: What Slack would have POSTed over HTTP: a slash command's fields
                (:func:`slash_command_payload`), an interaction payload
                (:func:`block_actions_payload`) or an ``event_callback``.
            accepts_response_payload: Whether the ack may carry a response payload; by
                default true, except for ``events_api``.
            retry_attempt: For ``events_api``: the redelivery number (0: first delivery).
            retry_reason: For ``events_api``: why it is redelivered (``""`` the first time).
            timeout: How long to wait for an open connection.

        Returns:
            The envelope id, for :meth:`wait_for_ack`.

        Raises:
            TimeoutError: No connection is open within ``timeout`` seconds.
        """
        connection = self.wait_for_socket(timeout)
        envelope_id = str(uuid.uuid4())
        envelope: Json = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": (
                accepts_response_payload
                if accepts_response_payload is not None
                else type != "events_api"
            ),
        }
        if type == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        with self._cond:
            self._envelopes[envelope_id] = time.perf_counter()
        connection.send_json(envelope)
        return envelope_id

    def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Tell every open connection to go away (Slack does before it closes one);
        the app is expected to open a new connection with ``apps.connections.open``."""
        for connection in self.sockets():
            if not connection.closed:
                with contextlib.suppress(ConnectionError):
                    connection.send_json(
                        {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}
                    )

    def close_sockets(self, code: int = 1000, reason: str = "") -> None:
        """Close every open Socket Mode connection from Slack's side."""
        for connection in self.sockets():
            connection.close(code, reason)

    @property
    def acks(self) -> list[SocketAck]:
        """Every ack the app sent over Socket Mode since the last reset, in arrival order."""
        with self._cond:
            return list(self._acks)

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> SocketAck:
        """Wait for the app's ack of one envelope.

        Raises:
            TimeoutError: No ack of that envelope within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ack in self._acks:
                    if ack.envelope_id == envelope_id:
                        return ack
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [a.envelope_id for a in self._acks]
                    raise TimeoutError(
                        f"no ack of envelope {envelope_id} after {timeout}s; "
                        f"acks: {seen or 'none'}; connections: {self._sockets or 'none'}"
                    )
                self._cond.wait(remaining)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeSlackApi:
        """Start serving (on a free port unless one was given); returns once it listens."""
        server = ThreadingHTTPServer((self.host, self.port), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = f"fake-slack-api:{self.port}"
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the Socket Mode connections, stop serving and close the listening socket."""
        self.close_sockets(1001, "going away")
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeSlackApi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- request handling (called from the server threads) -----------------------------

    def _delay(self, method: str) -> None:
        with self._cond:
            seconds = self._latency.get(method, self._latency.get(None, 0.0))
        if seconds > 0:
            time.sleep(seconds)

    def _record(self, call: ApiCall) -> None:
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()

    def handle_api(
        self, method: str, args: Json, authorization: str | None, content_type: str
    ) -> tuple[int, Json, dict[str, str]]:
        """Answer one Web API call and record it; returns (status, JSON body, headers)."""
        self._delay(method)
        status, result, headers = self._answer(method, args, authorization)
        self._record(
            ApiCall(
                method=method,
                args=args,
                at=time.time(),
                http_status=status,
                result=result,
                content_type=content_type,
            )
        )
        return status, result, headers

    def handle_response_url(self, name: str, payload: Json, content_type: str) -> None:
        """Record a post to a ``response_url`` and apply replace/delete to its message."""
        self._delay(RESPONSE_URL)
        with self._cond:
            bound = self._bound_urls.get(name)
            message = self._messages.get(bound) if bound else None
            if message is not None:
                if _truthy(payload.get("delete_original")):
                    message.deleted = True
                elif _truthy(payload.get("replace_original")):
                    replacement = {
                        k: v
                        for k, v in payload.items()
                        if k not in ("replace_original", "response_type")
                    }
                    message.args = {"channel": message.channel, "ts": message.ts, **replacement}
                    message.versions.append(copy.deepcopy(message.args))
        self._record(
            ApiCall(
                method=RESPONSE_URL,
                args=payload,
                at=time.time(),
                http_status=HTTPStatus.OK,
                result={"ok": True},
                target=name,
                content_type=content_type,
            )
        )

    def _answer(
        self, method: str, args: Json, authorization: str | None
    ) -> tuple[int, Json, dict[str, str]]:
        with self._cond:
            limited = self._rate_limits.get(method)
            if limited is not None:
                remaining, retry_after = limited
                if remaining <= 1:
                    del self._rate_limits[method]
                else:
                    self._rate_limits[method] = (remaining - 1, retry_after)
                return (
                    HTTPStatus.TOO_MANY_REQUESTS,
                    {"ok": False, "error": "ratelimited"},
                    {"Retry-After": str(retry_after)},
                )
        token = args.pop("token", None)
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[len("bearer ") :].strip()
        if not token:
            return HTTPStatus.OK, {"ok": False, "error": "not_authed"}, {}
        expected = self.app_token if method in _APP_TOKEN_METHODS else self.bot_token
        if token != expected:
            known = token in (self.bot_token, self.app_token)
            error = "not_allowed_token_type" if known else "invalid_auth"
            return HTTPStatus.OK, {"ok": False, "error": error}, {}
        with self._cond:
            failures = self._failures.get(method)
            if failures:
                return HTTPStatus.OK, {"ok": False, "error": failures.pop(0)}, {}
            handler = self._methods.get(method)
            result = handler(args) if handler else {"ok": True}
        return HTTPStatus.OK, result, {}

    def claim_ticket(self, ticket: str) -> bool:
        """Use up a ticket from ``apps.connections.open``; false if unknown or used."""
        with self._cond:
            if ticket not in self._tickets:
                return False
            self._tickets.discard(ticket)
            return True

    def serve_socket(self, sock: socket.socket, stream: BufferedIOBase, ticket: str) -> None:
        """Run one Socket Mode connection after the handshake, until either side closes it.

        Greets the app with ``hello``, answers pings, records acks. A client frame without
        a mask is a protocol error (RFC 6455 requires clients to mask), closed with 1002.
        """
        connection = SocketConnection(next(self._socket_ids), sock, ticket)
        # Listed before the hello is sent (a client that saw the hello finds it in sockets()),
        # yet the hello goes first: envelopes wait for the connection's send lock.
        with connection._send_lock:
            with self._cond:
                self._sockets.append(connection)
                open_now = sum(1 for c in self._sockets if not c.closed)
                self._cond.notify_all()
            hello: Json = {
                "type": "hello",
                "num_connections": open_now,
                "debug_info": {
                    "host": "fake-slack",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": APP_ID},
            }
            with contextlib.suppress(ConnectionError):  # gone already: the read ends at once
                connection.send_json(hello)
        try:
            self._read_socket(connection, stream)
        finally:
            connection._mark_closed()
            with self._cond:
                self._cond.notify_all()

    def _read_socket(self, connection: SocketConnection, stream: BufferedIOBase) -> None:
        opcode_of_message, message = _OP_TEXT, bytearray()
        while not connection.closed:
            try:
                fin, opcode, masked, data = _read_frame(stream)
            except (EOFError, OSError, ValueError):
                return
            if not masked:
                connection.close(1002, "client frames must be masked")
                return
            if opcode == _OP_PING:
                connection.pings += 1
                with contextlib.suppress(ConnectionError):
                    connection.send_frame(_OP_PONG, data)
            elif opcode == _OP_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1000
                connection.close(code)
                return
            elif opcode in (_OP_TEXT, _OP_BINARY, _OP_CONTINUATION):
                if opcode != _OP_CONTINUATION:
                    opcode_of_message, message = opcode, bytearray()
                message += data
                if fin and opcode_of_message == _OP_TEXT:
                    self._on_socket_text(connection, message.decode("utf-8", "replace"))

    def _on_socket_text(self, connection: SocketConnection, text: str) -> None:
        """Record an ack (``{"envelope_id": ..., "payload": {...}?}``); ignore anything else."""
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict) or not message.get("envelope_id"):
            return
        envelope_id = str(message["envelope_id"])
        payload = message.get("payload")
        with self._cond:
            sent = self._envelopes.get(envelope_id)
            self._acks.append(
                SocketAck(
                    envelope_id=envelope_id,
                    payload=payload if isinstance(payload, dict) else None,
                    at=time.time(),
                    elapsed=time.perf_counter() - sent if sent is not None else None,
                    connection=connection.id,
                )
            )
            self._cond.notify_all()

    # -- ids ---------------------------------------------------------------------------

    def _next_ts(self) -> str:
        micros = 1_700_000_000_000_000 + next(self._ts_counter) * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}FAKE{next(self._id_counter):06d}"

    def _channel_of(self, args: Json) -> str:
        channel = str(args.get("channel") or "")
        # Posting to a user id posts in the DM with that user, as Slack does.
        return self.dm_channel(channel) if channel[:1] in ("U", "W") else channel

    # -- Web API methods (called with the lock held) -----------------------------------

    def _auth_test(self, args: Json) -> Json:
        return {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "Fake Workspace",
            "user": "smtpmatch",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _message_body(self, args: Json, ts: str) -> Json:
        body: Json = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": args.get("text") or "",
            "ts": ts,
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if args.get(key):
                body[key] = args[key]
        return body

    def _chat_post_message(self, args: Json) -> Json:
        channel = self._channel_of(args)
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        stored = {**args, "channel": channel}
        self._messages[(channel, ts)] = PostedMessage(
            channel=channel, ts=ts, args=stored, versions=[copy.deepcopy(stored)]
        )
        return {"ok": True, "channel": channel, "ts": ts, "message": self._message_body(args, ts)}

    def _chat_post_ephemeral(self, args: Json) -> Json:
        channel = self._channel_of(args)
        user = str(args.get("user") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not user:
            return {"ok": False, "error": "user_not_found"}
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        self._ephemerals.append(Ephemeral(channel=channel, user=user, message_ts=ts, args=args))
        return {"ok": True, "message_ts": ts}

    def _chat_update(self, args: Json) -> Json:
        channel, ts = self._channel_of(args), str(args.get("ts") or "")
        message = self._messages.get((channel, ts))
        if message is None or message.deleted:
            return {"ok": False, "error": "message_not_found"}
        # Blocks and attachments left out keep their previous value, as Slack documents.
        message.args = {**message.args, **args, "channel": channel}
        message.versions.append(copy.deepcopy(message.args))
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message.text,
            "message": self._message_body(message.args, ts),
        }

    def _files_get_upload_url_external(self, args: Json) -> Json:
        filename = str(args.get("filename") or "")
        try:
            length = int(args.get("length") or 0)
        except (TypeError, ValueError):
            length = 0
        if not filename or length < 1:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = self._next_id("F")
        self._files[file_id] = UploadedFile(id=file_id, filename=filename, length=length)
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def receive_upload(self, file_id: str, data: bytes) -> bool:
        """The POST of a file's bytes to its upload URL; false for an unknown file id."""
        with self._cond:
            upload = self._files.get(file_id)
            if upload is None or upload.completed:
                return False
            upload.content = data
            self._calls.append(
                ApiCall(
                    method=UPLOAD,
                    args={"file_id": file_id, "bytes": len(data)},
                    at=time.time(),
                    http_status=HTTPStatus.OK,
                    result={"ok": True},
                    target=file_id,
                )
            )
            self._cond.notify_all()
            return True

    def _files_complete_upload_external(self, args: Json) -> Json:
        entries = args.get("files")
        if not isinstance(entries, list) or not entries:
            return {"ok": False, "error": "invalid_arguments"}
        completed: list[Json] = []
        for entry in entries:
            upload = self._files.get(str(entry.get("id") if isinstance(entry, dict) else ""))
            if upload is None or upload.content is None:
                return {"ok": False, "error": "file_not_found"}
            if len(upload.content) != upload.length:
                return {"ok": False, "error": "file_upload_size_mismatch"}
        channel = (
            self._channel_of({"channel": args.get("channel_id")})
            if args.get("channel_id")
            else None
        )
        for entry in entries:
            upload = self._files[str(entry["id"])]
            upload.title = str(entry.get("title") or upload.filename)
            upload.channel = channel
            upload.initial_comment = args.get("initial_comment") or None
            upload.thread_ts = args.get("thread_ts") or None
            upload.completed = True
            completed.append({"id": upload.id, "title": upload.title, "name": upload.filename})
        return {"ok": True, "files": completed}

    def _chat_delete(self, args: Json) -> Json:
        message = self._messages.get((self._channel_of(args), str(args.get("ts") or "")))
        if message is None or message.deleted:
            return {"ok": False, "error": "message_not_found"}
        message.deleted = True
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _chat_get_permalink(self, args: Json) -> Json:
        channel, ts = self._channel_of(args), str(args.get("message_ts") or "")
        if (channel, ts) not in self._messages:
            return {"ok": False, "error": "message_not_found"}
        permalink = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return {"ok": True, "channel": channel, "permalink": permalink}

    def _store_view(self, view: Json, *, root_view_id: str | None = None) -> Json:
        view_id = self._next_id("V")
        stored = {
            "type": "modal",
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            **view,
            "id": view_id,
            "team_id": TEAM_ID,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "root_view_id": root_view_id or view_id,
            "previous_view_id": None,
        }
        self._views[view_id] = stored
        return stored

    def _views_open(self, args: Json) -> Json:
        view = args.get("view")
        if not (args.get("trigger_id") or args.get("interactivity_pointer")):
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        stored = self._store_view(view)
        self._opened.append(stored["id"])
        return {"ok": True, "view": copy.deepcopy(stored)}

    def _views_push(self, args: Json) -> Json:
        result = self._views_open(args)
        if result["ok"] and self._opened[:-1]:
            # Pushed onto the stack of the modal opened before it.
            root = self._views[self._opened[-2]]["root_view_id"]
            self._views[self._opened[-1]]["root_view_id"] = root
            result["view"]["root_view_id"] = root
        return result

    def _views_update(self, args: Json) -> Json:
        view = args.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        view_id = args.get("view_id")
        if not view_id and args.get("external_id"):
            view_id = next(
                (i for i, v in self._views.items() if v.get("external_id") == args["external_id"]),
                None,
            )
        current = self._views.get(str(view_id or ""))
        if current is None:
            return {"ok": False, "error": "not_found"}
        if args.get("hash") and args["hash"] != current["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        keep = {k: current[k] for k in ("id", "team_id", "app_id", "bot_id", "root_view_id")}
        updated = {
            "type": current["type"],
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            **view,
            **keep,
            "state": current.get("state", {"values": {}}),
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "previous_view_id": None,
        }
        self._views[current["id"]] = updated
        return {"ok": True, "view": copy.deepcopy(updated)}

    def _views_publish(self, args: Json) -> Json:
        user = str(args.get("user_id") or "")
        view = args.get("view")
        if not user or not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        previous = self._homes.get(user)
        if previous is not None and args.get("hash") and args["hash"] != previous["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        stored = self._store_view({"type": "home", **view})
        self._homes[user] = stored
        return {"ok": True, "view": copy.deepcopy(stored)}

    def _usergroups_users_list(self, args: Json) -> Json:
        group = str(args.get("usergroup") or "")
        if group not in self._usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self._usergroups[group])}

    def _users_info(self, args: Json) -> Json:
        user_id = str(args.get("user") or "")
        if not user_id:
            return {"ok": False, "error": "user_not_found"}
        user = self._users.get(user_id) or _user_object(user_id)
        return {"ok": True, "user": copy.deepcopy(user)}

    def _conversations_open(self, args: Json) -> Json:
        if args.get("channel"):
            return {"ok": True, "channel": {"id": str(args["channel"])}}
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        if len(users) > 1:
            return {"ok": True, "channel": {"id": "G" + "_".join(users)}}
        return {"ok": True, "no_op": False, "channel": {"id": self.dm_channel(users[0])}}

    def _apps_connections_open(self, args: Json) -> Json:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        url = f"ws://{self.host}:{self.port}{SOCKET_PATH}?ticket={ticket}&app_id={APP_ID}"
        return {"ok": True, "url": url}


def _user_object(
    user_id: str,
    *,
    real_name: str | None = None,
    name: str | None = None,
    email: str | None = None,
) -> Json:
    """A ``users.info`` user: a plain, active, non-admin member of the fake workspace."""
    name = name or user_id.lower().removeprefix("u_")
    real_name = real_name or f"User {user_id}"
    profile: Json = {
        "real_name": real_name,
        "display_name": name,
        "real_name_normalized": real_name,
    }
    if email:
        profile["email"] = email
    return {
        "id": user_id,
        "team_id": TEAM_ID,
        "name": name,
        "real_name": real_name,
        "deleted": False,
        "is_bot": False,
        "is_admin": False,
        "is_owner": False,
        "is_restricted": False,
        "tz": "Europe/London",
        "profile": profile,
    }


class _Handler(BaseHTTPRequestHandler):
    """Routes ``/api/{method}`` and ``/response/{name}`` to the :class:`FakeSlackApi`."""

    server_version = "FakeSlackApi/1.0"

    @property
    def fake(self) -> FakeSlackApi:
        return self.server.fake  # type: ignore[attr-defined, no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the calls are recorded instead."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == SOCKET_PATH and self.command == "GET":
            self._upgrade_to_socket(dict(parse_qsl(parts.query)).get("ticket", ""))
            return
        content_type = self.headers.get("Content-Type", "")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if parts.path.startswith("/api/"):
            method = unquote(parts.path[len("/api/") :])
            args = dict(parse_qsl(parts.query, keep_blank_values=True))
            try:
                args.update(_parse_body(raw, content_type))
            except ValueError:
                self._send_json(HTTPStatus.OK, {"ok": False, "error": "invalid_json"})
                return
            status, result, headers = self.fake.handle_api(
                method, _decode_json_args(args), self.headers.get("Authorization"), content_type
            )
            self._send_json(status, result, headers)
        elif parts.path.startswith("/upload/") and self.command == "POST":
            if self.fake.receive_upload(unquote(parts.path[len("/upload/") :]), raw):
                self._send_text(HTTPStatus.OK, f"OK - {len(raw)}")
            else:
                self._send_text(HTTPStatus.NOT_FOUND, "file_not_found")
        elif parts.path.startswith("/response/") and self.command == "POST":
            name = unquote(parts.path[len("/response/") :])
            try:
                payload = _parse_body(raw, content_type)
            except ValueError:
                self._send_text(HTTPStatus.BAD_REQUEST, "invalid_payload")
                return
            self.fake.handle_response_url(name, _decode_json_args(payload), content_type)
            self._send_text(HTTPStatus.OK, "ok")
        else:
            self._send_text(HTTPStatus.NOT_FOUND, "not found")

    def _upgrade_to_socket(self, ticket: str) -> None:
        """The WebSocket handshake (RFC 6455), then the Socket Mode connection itself."""
        key = self.headers.get("Sec-WebSocket-Key")
        upgrade = (self.headers.get("Upgrade") or "").lower()
        if upgrade != "websocket" or not key or self.headers.get("Sec-WebSocket-Version") != "13":
            self._send_text(HTTPStatus.BAD_REQUEST, "expected a WebSocket (version 13) upgrade")
            return
        if not self.fake.claim_ticket(ticket):
            self._send_text(HTTPStatus.UNAUTHORIZED, "invalid or used ticket")
            return
        self.send_response(HTTPStatus.SWITCHING_PROTOCOLS)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", _websocket_accept(key))
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        self.fake.serve_socket(self.connection, self.rfile, ticket)

    def _send_json(self, status: int, body: Json, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _parse_body(raw: bytes, content_type: str) -> Json:
    """Parse a JSON or form-encoded body (``ValueError`` on bad JSON)."""
    if not raw:
        return {}
    if "json" in content_type.lower():
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            raise ValueError("JSON body is not an object")
        return parsed
    return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))


def _decode_json_args(args: Json) -> Json:
    """JSON-decode the arguments Slack accepts as JSON strings in form bodies."""
    decoded = dict(args)
    for key in _JSON_ARGS:
        value = decoded.get(key)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            # Invalid JSON is kept as sent, so the test sees it verbatim.
            with contextlib.suppress(ValueError):
                decoded[key] = json.loads(value)
    return decoded


# ---------------------------------------------------------------------------------------
# The driver: Slack's side of the bot's request URL
# ---------------------------------------------------------------------------------------


def slack_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's request signature: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SentRequest:
    """One request a :class:`SlackDriver` sent, for latency measurements.

    Attributes:
        kind: ``"command"``, ``"block_actions"``, ``"view_submission"``, ``"event"`` or ``"raw"``.
        status: HTTP status the bot answered.
        elapsed: Seconds from sending the request to the complete response (the ack).
        at: Wall-clock time the request was sent.
        response_url_name: The name of the ``response_url`` sent along, if any.
    """

    kind: str
    status: int
    elapsed: float
    at: float
    response_url_name: str | None = None


def _new_trigger_id() -> str:
    return f"{int(time.time())}.{TEAM_ID}.{uuid.uuid4().hex}"


def slash_command_payload(
    api: FakeSlackApi,
    text: str,
    *,
    response_url_name: str = "command",
    user_id: str = "U_HELP1",
    user_name: str | None = None,
    channel_id: str = "C_HELPDESK",
    channel_name: str = "helpdesk",
    command: str = "/smtpmatch",
    trigger_id: str | None = None,
) -> dict[str, str]:
    """The fields Slack sends for a slash command: form-encoded over HTTP, and the
    ``payload`` of a ``slash_commands`` envelope in Socket Mode.

    The ``response_url`` points to ``api`` and its posts are recorded under
    ``response_url_name``.
    """
    return {
        "token": "deprecated-verification-token",
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name or _user_name(user_id),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": api.response_url(response_url_name),
        "trigger_id": trigger_id or _new_trigger_id(),
    }


def block_actions_payload(
    api: FakeSlackApi,
    action_id: str,
    value: str,
    user_id: str,
    *,
    channel_id: str,
    message_ts: str,
    response_url_name: str = "click",
    block_id: str | None = None,
    container: Json | None = None,
    message: Json | None = None,
    user_name: str | None = None,
    trigger_id: str | None = None,
) -> Json:
    """The ``block_actions`` payload of a button click on a message: the ``payload`` form
    field over HTTP, and the ``payload`` of an ``interactive`` envelope in Socket Mode.

    Args:
        api: The fake; the ``response_url`` points to it, bound to the clicked message (so
            ``replace_original`` / ``delete_original`` posts change it in the fake).
        action_id: The button's ``action_id``.
        value: The button's ``value``.
        user_id: Who clicked.
        channel_id: Channel of the message holding the button.
        message_ts: ``ts`` of that message.
        response_url_name: Name under which posts to the ``response_url`` are recorded.
        block_id: The button's block id (generated when not given).
        container: Overrides the default message container.
        message: The message as Slack sends it; by default the fake's latest state of
            ``(channel_id, message_ts)``, or a minimal message with that ts.
        user_name: Clicker's user name (derived from the id by default).
        trigger_id: The trigger id (generated when not given).
    """
    if message is None:
        message = _message_payload(api, channel_id, message_ts)
    return {
        "type": "block_actions",
        "user": _payload_user(user_id, user_name),
        "api_app_id": APP_ID,
        "token": "deprecated-verification-token",
        "container": container
        or {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id or _new_trigger_id(),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_id.lower()},
        "message": message,
        "state": {"values": {}},
        "response_url": api.response_url(
            response_url_name, channel=channel_id, message_ts=message_ts
        ),
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id or uuid.uuid4().hex[:5],
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def _message_payload(api: FakeSlackApi, channel_id: str, message_ts: str) -> Json:
    """A message as Slack sends it in interaction payloads: the fake's latest state."""
    try:
        posted = api.message(channel_id, message_ts)
    except KeyError:
        return {"type": "message", "ts": message_ts, "text": "", "user": BOT_USER_ID}
    message: Json = {
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "app_id": APP_ID,
        "team": TEAM_ID,
        "ts": posted.ts,
        "text": posted.text,
    }
    if posted.blocks:
        message["blocks"] = posted.blocks
    return message


class SlackDriver:
    """Sends requests to a bot's request URL signed exactly as Slack signs them.

    Args:
        url: The bot's request URL (``http://127.0.0.1:PORT/slack/events``).
        api: The fake Web API; ``response_url``s point to it and clicks carry the clicked
            message's latest blocks from it.
        signing_secret: Secret to sign with (the bot's ``SLACK_SIGNING_SECRET``).
        timeout: HTTP timeout in seconds.
    """

    def __init__(
        self,
        url: str,
        api: FakeSlackApi,
        *,
        signing_secret: str = SIGNING_SECRET,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.api = api
        self.signing_secret = signing_secret
        self.sends: list[SentRequest] = []
        self._age_seconds = 0
        self._signed = True
        self._http = httpx.Client(timeout=timeout)
        self._counter = itertools.count(1)

    # -- variants for the negative paths ---------------------------------------------

    def _variant(self) -> SlackDriver:
        clone = copy.copy(self)  # shares the HTTP client, counters and the sends log
        return clone

    def forged(self, secret: str = "not-the-signing-secret") -> SlackDriver:
        """A driver that signs with the wrong secret (the bot must answer 401)."""
        clone = self._variant()
        clone.signing_secret = secret
        return clone

    def replayed(self, age_seconds: int = 6 * 60) -> SlackDriver:
        """A driver whose timestamps are ``age_seconds`` old (over 5 minutes: 401)."""
        clone = self._variant()
        clone._age_seconds = age_seconds
        return clone

    def unsigned(self) -> SlackDriver:
        """A driver that sends no signature headers at all."""
        clone = self._variant()
        clone._signed = False
        return clone

    # -- Slack's requests ------------------------------------------------------------

    def command(
        self,
        text: str,
        user_id: str = "U_HELP1",
        user_name: str | None = None,
        channel_id: str = "C_HELPDESK",
        command: str = "/smtpmatch",
        *,
        channel_name: str = "helpdesk",
        response_url_name: str | None = None,
    ) -> httpx.Response:
        """Send a slash command (form-encoded, as Slack does).

        The ``response_url`` points to the fake and is recorded under
        ``response_url_name`` (default ``command-N``; see ``last_response_url_name``).
        """
        name = response_url_name or f"command-{next(self._counter)}"
        fields = slash_command_payload(
            self.api,
            text,
            response_url_name=name,
            user_id=user_id,
            user_name=user_name,
            channel_id=channel_id,
            channel_name=channel_name,
            command=command,
            trigger_id=self._trigger_id(),
        )
        body = urlencode(fields).encode()
        return self._send("command", body, "application/x-www-form-urlencoded", name)

    def click(
        self,
        action_id: str,
        value: str,
        user_id: str,
        *,
        channel_id: str,
        message_ts: str,
        block_id: str | None = None,
        container: Json | None = None,
        message: Json | None = None,
        user_name: str | None = None,
        response_url_name: str | None = None,
    ) -> httpx.Response:
        """Send a ``block_actions`` payload for a button click on a message.

        Args:
            action_id: The button's ``action_id``.
            value: The button's ``value``.
            user_id: Who clicked.
            channel_id: Channel of the message holding the button.
            message_ts: ``ts`` of that message.
            block_id: The button's block id (generated when not given).
            container: Overrides the default message container.
            message: The message as Slack sends it; by default the fake's latest state of
                ``(channel_id, message_ts)``, or a minimal message with that ts.
            user_name: Clicker's user name (derived from the id by default).
            response_url_name: Name of the ``response_url`` (bound to the message, so
                ``replace_original`` / ``delete_original`` posts change it in the fake).
        """
        name = response_url_name or f"click-{next(self._counter)}"
        payload = block_actions_payload(
            self.api,
            action_id,
            value,
            user_id,
            channel_id=channel_id,
            message_ts=message_ts,
            response_url_name=name,
            block_id=block_id,
            container=container,
            message=message,
            user_name=user_name,
            trigger_id=self._trigger_id(),
        )
        return self._send_payload("block_actions", payload, name)

    def press(
        self, message: PostedMessage, action_id: str, user_id: str, **kwargs: Any
    ) -> httpx.Response:
        """Click the button ``action_id`` shown in a message recorded by the fake.

        The button's value and block id are read from the message's blocks.

        Raises:
            LookupError: The message has no element with that action id.
        """
        block_id, element = find_action(message.blocks, action_id)
        return self.click(
            action_id,
            str(element.get("value") or ""),
            user_id,
            channel_id=message.channel,
            message_ts=message.ts,
            block_id=block_id or None,
            **kwargs,
        )

    def submit_view(
        self,
        callback_id: str,
        user_id: str,
        values: Mapping[str, Mapping[str, Any]],
        private_metadata: str | None = None,
        *,
        view_id: str | None = None,
        user_name: str | None = None,
    ) -> httpx.Response:
        """Send a ``view_submission`` payload for a modal.

        Args:
            callback_id: The modal's ``callback_id``.
            user_id: Who submitted.
            values: ``{block_id: {action_id: state}}``; a plain string state is sent as
                ``{"type": "plain_text_input", "value": ...}``.
            private_metadata: The modal's metadata; by default that of the last modal
                opened with this callback id in the fake, else ``""``.
            view_id: The view id; by default that of the same modal, else a new id.
            user_name: Submitter's user name (derived from the id by default).
        """
        opened = next(
            (v for v in reversed(self.api.views_opened()) if v.get("callback_id") == callback_id),
            None,
        )
        base: Json = opened or {
            "id": view_id or f"VFAKE{uuid.uuid4().hex[:6].upper()}",
            "type": "modal",
            "blocks": [],
            "title": {"type": "plain_text", "text": "smtpmatch"},
            "root_view_id": None,
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
        }
        state = {
            block: {
                action: {"type": "plain_text_input", "value": v} if isinstance(v, str) else dict(v)
                for action, v in actions.items()
            }
            for block, actions in values.items()
        }
        view: Json = {
            **base,
            "id": view_id or base["id"],
            "team_id": TEAM_ID,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "callback_id": callback_id,
            "private_metadata": (
                private_metadata
                if private_metadata is not None
                else str(base.get("private_metadata") or "")
            ),
            "state": {"values": state},
        }
        payload: Json = {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "user": _payload_user(user_id, user_name),
            "api_app_id": APP_ID,
            "token": "deprecated-verification-token",
            "trigger_id": self._trigger_id(),
            "view": view,
            "response_urls": [],
            "enterprise": None,
            "is_enterprise_install": False,
        }
        return self._send_payload("view_submission", payload, None)

    def event(self, event: Mapping[str, Any]) -> httpx.Response:
        """Send an Events API ``event_callback`` (JSON) wrapping ``event``."""
        now = int(time.time())
        envelope = {
            "token": "deprecated-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": {"event_ts": f"{time.time():.6f}", **event},
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": now,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": uuid.uuid4().hex,
        }
        return self._send("event", json.dumps(envelope).encode(), "application/json", None)

    def home_opened(self, user_id: str) -> httpx.Response:
        """Send the ``app_home_opened`` event for the Home tab of ``user_id``."""
        return self.event(
            {"type": "app_home_opened", "user": user_id, "channel": "D_HOME", "tab": "home"}
        )

    def send_raw(
        self, body: bytes, headers: Mapping[str, str], *, kind: str = "raw"
    ) -> httpx.Response:
        """POST ``body`` with exactly ``headers`` (nothing added, nothing signed)."""
        return self._post(kind, body, dict(headers), None)

    def signed_headers(self, body: bytes, content_type: str) -> dict[str, str]:
        """The headers Slack sends with ``body`` (signature honours forged/replayed)."""
        headers = {"Content-Type": content_type}
        if self._signed:
            timestamp = str(int(time.time()) - self._age_seconds)
            headers["X-Slack-Request-Timestamp"] = timestamp
            headers["X-Slack-Signature"] = slack_signature(self.signing_secret, timestamp, body)
        return headers

    # -- results ---------------------------------------------------------------------

    @property
    def last(self) -> SentRequest:
        """The most recent send (``IndexError`` before the first)."""
        return self.sends[-1]

    @property
    def last_response_url_name(self) -> str | None:
        """The ``response_url`` name of the most recent command or click."""
        names = [s.response_url_name for s in self.sends if s.response_url_name]
        return names[-1] if names else None

    def close(self) -> None:
        """Close the HTTP connection pool (variants share it)."""
        self._http.close()

    def __enter__(self) -> SlackDriver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------

    def _trigger_id(self) -> str:
        return f"{next(self._counter)}.{TEAM_ID}.{uuid.uuid4().hex}"

    def _send_payload(self, kind: str, payload: Json, name: str | None) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self._send(kind, body, "application/x-www-form-urlencoded", name)

    def _send(self, kind: str, body: bytes, content_type: str, name: str | None) -> httpx.Response:
        return self._post(kind, body, self.signed_headers(body, content_type), name)

    def _post(
        self, kind: str, body: bytes, headers: dict[str, str], name: str | None
    ) -> httpx.Response:
        at = time.time()
        started = time.perf_counter()
        response = self._http.post(self.url, content=body, headers=headers)
        elapsed = time.perf_counter() - started
        self.sends.append(SentRequest(kind, response.status_code, elapsed, at, name))
        return response


def _payload_user(user_id: str, user_name: str | None) -> Json:
    """The ``user`` object of an interactive payload."""
    name = user_name or _user_name(user_id)
    return {"id": user_id, "username": name, "name": name, "team_id": TEAM_ID}


def _user_name(user_id: str) -> str:
    return user_id.lower().removeprefix("u_")


# ---------------------------------------------------------------------------------------
# Serving an ASGI app (a Bolt app behind Starlette) in a thread
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedApp:
    """An ASGI app served by uvicorn on 127.0.0.1 (see :func:`serve_asgi`)."""

    base_url: str

    @property
    def events_url(self) -> str:
        """``{base_url}/slack/events``: the bot's request URL."""
        return f"{self.base_url}/slack/events"


@contextmanager
def serve_asgi(app: Any, *, host: str = "127.0.0.1") -> Iterator[ServedApp]:
    """Serve an ASGI app with uvicorn in a daemon thread on a free port, for a ``with``.

    Raises:
        RuntimeError: The server did not start within 10 seconds.
    """
    import socket

    import uvicorn

    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it the response's separate writes wait ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"asgi:{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            sock.close()
            raise RuntimeError("the ASGI app did not start")
        time.sleep(0.01)
    try:
        yield ServedApp(base_url=f"http://{host}:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
