"""The bot as an operator starts it: `python app.py --http --demo` in its own process, against
the fake Slack Web API, waited for until `/healthz` answers, stopped at the end."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.slack_fake import BOT_TOKEN, SIGNING_SECRET, FakeSlackApi

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class BotProcess:
    """A running bot process: where it listens, its pid and its log file."""

    port: int
    pid: int
    log: Path

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``)."""
        return f"http://127.0.0.1:{self.port}"

    def status_kb(self, field: str) -> int:
        """A memory figure of ``/proc/PID/status`` in KiB: ``VmRSS`` (resident now) or
        ``VmHWM`` (the resident peak). Linux only."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {field}")

    def rss_kb(self) -> int:
        """Resident memory now, in KiB."""
        return self.status_kb("VmRSS")


@contextlib.contextmanager
def demo_bot_process(
    slack_api: FakeSlackApi, folder: Path, **settings: str
) -> Iterator[BotProcess]:
    """Start the demo bot in HTTP mode with an approval channel and one approver (``settings``
    add or override variables); yields once ``/healthz`` answers; stops it afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SMTPMATCH_"))}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_api.url,
        SMTPMATCH_APPROVAL_CHANNEL="C0APPROVALS",
        SMTPMATCH_APPROVERS="U0APPROVER",
        SMTPMATCH_DATABASE_URL=f"sqlite:///{folder / 'bot.db'}",
    )
    env.update(settings)
    log_path = folder / "bot.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--http", "--port", str(port), "--demo"],
            env=env,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the bot did not start"
                time.sleep(0.2)
            yield BotProcess(port, proc.pid, log_path)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
