"""Resident memory of an idle bot (budget: under 150 MB).

Starts ``smtpmatch serve --http --demo`` as its own process (SQLite store in a temp folder),
waits until ``/healthz`` answers and a few seconds more, then prints VmRSS from /proc. Linux
only. Run: ``python bench/idle_memory.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": "bench-secret",
            "SMTPMATCH_DATABASE_URL": f"sqlite:///{folder}/idle.db",
        }
        env.pop("SLACK_APP_TOKEN", None)
        cmd = [sys.executable, "-m", "bot.cli", "serve", "--http", "--port", str(port), "--demo"]
        proc = subprocess.Popen(cmd, env=env, cwd=folder, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        print("the bot did not start", file=sys.stderr)
                        return 2
                    time.sleep(0.2)
            time.sleep(5)
            rss = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"idle bot resident memory: {rss:.1f} MB (budget 150 MB)")
    return 0 if rss < 150 else 1


if __name__ == "__main__":
    raise SystemExit(main())
