"""The container's HEALTHCHECK command (``python -m bot.healthcheck``), run as Docker runs it:
a process that asks the port ``SMTPMATCH_PORT`` names, exit 0 only for a ready bot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest

ROOT = Path(__file__).resolve().parents[2]


def healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK CMD, JSON form, exactly as written there."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert match, "the HEALTHCHECK must use the JSON (exec) form"
    command = json.loads(match[1])
    assert isinstance(command, list)
    return [str(word) for word in command]


class Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def run(port: int | str | None) -> subprocess.CompletedProcess[str]:
    command = healthcheck_command()
    assert command[0] == "python"
    env = {k: v for k, v in os.environ.items() if k != "SMTPMATCH_PORT"}
    if port is not None:
        env["SMTPMATCH_PORT"] = str(port)
    return subprocess.run(
        [sys.executable, *command[1:]],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_healthcheck_names_no_port_and_asks_the_one_smtpmatch_port_names(
    server: ThreadingHTTPServer,
) -> None:
    assert not any(re.search(r"\b3000\b", word) for word in healthcheck_command())
    Health.status = 200
    assert run(server.server_address[1]).returncode == 0


def test_the_healthcheck_fails_when_the_bot_is_not_ready_or_not_there(
    server: ThreadingHTTPServer,
) -> None:
    Health.status = 503
    not_ready = run(server.server_address[1])
    assert not_ready.returncode == 1 and "answered 503" in not_ready.stderr
    Health.status = 200
    nobody = run(1)
    assert nobody.returncode == 1 and "did not answer" in nobody.stderr
    garbage = run("three-thousand")
    assert garbage.returncode == 1 and "SMTPMATCH_PORT" in garbage.stderr


def test_without_smtpmatch_port_it_asks_the_servers_default_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.healthcheck import port_setting
    from bot.settings import Settings

    monkeypatch.delenv("SMTPMATCH_PORT", raising=False)
    assert port_setting() == Settings(_env_file=None).smtpmatch_port == 3000
