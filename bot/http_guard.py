"""The HTTP mode's front door: refuse what is too big or malformed before Bolt sees it.

Slack's requests are small (a few KB; a block action carries its message, tens of KB). Anyone
can reach the URL, though, and the signature can only be checked once the whole body is read.
:class:`RequestGuard` therefore refuses a body over the limit before reading it (by its
``Content-Length``) or as soon as the streamed bytes pass it (chunked bodies), and answers a
malformed request (a body that is not UTF-8, a ``payload=`` that is not JSON, a timestamp header
that is not a number) with 400 and one log line that never contains the body.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from bot.settings import DEFAULT_MAX_BODY_BYTES

log = logging.getLogger("smtpmatch.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PortUnavailable(OSError):
    """The HTTP port could not be bound (another process listens on it)."""


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RequestGuard:
    """ASGI middleware: a body limit and well-formedness checks for ``POST`` requests.

    Args:
        app: the application to protect.
        max_body_bytes: the largest body accepted (``SMTPMATCH_HTTP_MAX_BODY_BYTES``).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check a POST's headers and body, then hand the (buffered) body to the app."""
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        try:
            self._check_headers(headers)
            body = await self._read_body(receive)
            self._check_body(body, headers.get("content-type", b"").decode("latin-1"))
        except _Refused as refused:
            client = scope.get("client") or ("?", 0)
            log.warning(
                "refused %s %s from %s: %s",
                scope.get("method"),
                scope.get("path"),
                client[0],
                refused.reason,
            )
            await _answer(send, refused.status, refused.reason)
            return

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # e.g. http.disconnect
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _check_headers(self, headers: dict[str, bytes]) -> None:
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise _Refused(400, "the Content-Length header is not a number")
            if int(length) > self.max_body_bytes:
                raise _Refused(
                    413, f"the body ({int(length)} bytes) is over {self.max_body_bytes} bytes"
                )
        timestamp = headers.get("x-slack-request-timestamp")
        if timestamp is not None and not timestamp.strip().isdigit():
            raise _Refused(400, "the X-Slack-Request-Timestamp header is not a number")

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refused(400, "the client went away before sending the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _Refused(413, f"the body is over {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _check_body(body: bytes, content_type: str) -> None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused(400, "the body is not UTF-8 text") from None
        if content_type.startswith("application/x-www-form-urlencoded"):
            try:
                form = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
            except ValueError:
                raise _Refused(400, "the form body is malformed") from None
            if "payload" in form:
                try:
                    payload = json.loads(form["payload"][0])
                except ValueError:
                    raise _Refused(400, "the payload field is not JSON") from None
                if not isinstance(payload, dict):
                    raise _Refused(400, "the payload field is not a JSON object")
        elif content_type.startswith("application/json") and text:
            try:
                json.loads(text)
            except ValueError:
                raise _Refused(400, "the JSON body is malformed") from None


async def _answer(send: Send, status: int, reason: str) -> None:
    body = json.dumps({"error": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def guard(app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> RequestGuard:
    """``app`` behind a :class:`RequestGuard`."""
    return RequestGuard(app, max_body_bytes)


def serve_http(app: ASGIApp, port: int, *, demo: bool = False) -> None:
    """Bind ``port`` on every interface, say so, then serve ``app`` until interrupted.

    The "serving" line is logged only once the port is bound.

    Raises:
        PortUnavailable: the port is already in use (or not allowed).
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("0.0.0.0", port))  # noqa: S104 - Slack reaches the bot from outside
    except OSError as exc:
        sock.close()
        raise PortUnavailable(
            f"port {port} is not available ({exc.strerror}): try --port N"
        ) from None
    sock.set_inheritable(True)
    logging.getLogger("smtpmatch").info(
        "smtpmatch serving HTTP on port %d%s", port, " (demo)" if demo else ""
    )
    config = uvicorn.Config(app, log_level="warning", log_config=None)
    uvicorn.Server(config).run(sockets=[sock])
