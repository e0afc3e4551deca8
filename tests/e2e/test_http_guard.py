"""HTTP mode against hostile requests, on the running server process (`app.py --http --demo`).

An oversized body is refused before it is read (by Content-Length, and while streaming a
chunked one): the process stays near its idle memory and the log stays small. Malformed
requests get 400 and one log line; no request body ever reaches the log.
"""

from __future__ import annotations

import concurrent.futures
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.support.bot_process import BotProcess, demo_bot_process
from tests.support.slack_fake import SIGNING_SECRET, FakeSlackApi, slack_signature

BIG = 64 * 1024 * 1024
MARKER = b"BODY-MARKER-"
MEMORY_MARGIN_KB = 24 * 1024


@pytest.fixture
def bot(slack_api: FakeSlackApi, tmp_path: Path) -> Iterator[BotProcess]:
    with demo_bot_process(slack_api, tmp_path) as running:
        yield running


def status_of(sock: socket.socket) -> int:
    sock.settimeout(10)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def oversized_with_length(port: int) -> int:
    """Announce BIG bytes, send as many as the server takes, return the status it answered."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        timestamp = str(int(time.time()))
        sock.sendall(
            f"POST /slack/events HTTP/1.1\r\nHost: bot\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Slack-Request-Timestamp: {timestamp}\r\nX-Slack-Signature: v0=00\r\n"
            f"Content-Length: {BIG}\r\n\r\n".encode()
        )
        try:
            block = MARKER * (65536 // len(MARKER))
            for _ in range(BIG // len(block)):
                sock.sendall(block)
            sock.sendall(b"x" * (BIG % len(block)))  # exactly the announced length
        except OSError:  # the server answered and closed: it did not want the rest
            pass
        return status_of(sock)


def oversized_chunked(port: int) -> int:
    """Stream BIG bytes in chunks (no Content-Length); return the status the server answered."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: bot\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        block = MARKER * (65536 // len(MARKER))
        chunk = f"{len(block):x}\r\n".encode() + block + b"\r\n"
        try:
            for _ in range(BIG // len(block)):
                sock.sendall(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        return status_of(sock)


def test_oversized_bodies_are_refused_before_they_are_read(bot: BotProcess) -> None:
    idle = bot.rss_kb()
    assert oversized_with_length(bot.port) == 413
    assert oversized_chunked(bot.port) == 413
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(lambda _: oversized_chunked(bot.port), range(3)))
    assert statuses == [413, 413, 413]
    assert bot.rss_kb() < idle + MEMORY_MARGIN_KB
    log = bot.log.read_bytes()
    assert len(log) < 16 * 1024
    assert MARKER not in log
    assert log.count(b"refused POST /slack/events") == 5
    assert httpx.get(f"{bot.url}/healthz").json() == {"status": "ok"}  # still serving


def signed_post(bot: BotProcess, body: bytes, **headers: str) -> httpx.Response:
    timestamp = headers.pop("timestamp", str(int(time.time())))
    return httpx.post(
        f"{bot.url}/slack/events",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": slack_signature(SIGNING_SECRET, timestamp, body),
            **headers,
        },
    )


@pytest.mark.parametrize(
    ("body", "timestamp", "reason"),
    [
        (b"command=/smtpmatch&text=" + MARKER + b"\xff\xfe", None, "not UTF-8"),
        (
            b"payload=" + quote('{"type": "block_actions", ' + MARKER.decode()).encode(),
            None,
            "JSON",
        ),
        (b"command=/smtpmatch&text=" + MARKER, "soon", "Timestamp header"),
    ],
)
def test_malformed_requests_get_400_and_one_log_line_without_the_body(
    bot: BotProcess, body: bytes, timestamp: str | None, reason: str
) -> None:
    extra = {"timestamp": timestamp} if timestamp else {}
    response = signed_post(bot, body, **extra)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    time.sleep(0.2)
    log = bot.log.read_text()
    assert log.count("refused POST") == 1
    assert "Traceback" not in log and MARKER.decode() not in log


def test_a_request_failing_verification_is_not_logged_with_its_body(bot: BotProcess) -> None:
    body = (
        b"command=/smtpmatch&text=jane%40contoso.com&response_url=https%3A%2F%2Fhooks.example%2F"
        + MARKER
    )
    response = httpx.post(
        f"{bot.url}/slack/events",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(int(time.time())),
            "X-Slack-Signature": "v0=forged",
        },
    )
    assert response.status_code == 401
    time.sleep(0.2)
    log = bot.log.read_text()
    assert MARKER.decode() not in log and "hooks.example" not in log
    assert "will be unused" not in log  # Bolt's warning about SLACK_BOT_TOKEN is gone
    assert "serving HTTP on port" in log
