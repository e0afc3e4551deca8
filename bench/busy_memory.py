"""Resident memory of a bot that has just worked: the figure the Kubernetes requests are sized
from (deploy/base/deployment.yaml), next to the idle one (bench/idle_memory.py).

Starts ``smtpmatch serve --http --demo`` as its own process (SQLite in a temp folder) against the
fake Slack Web API, sends ``-n`` signed ``/smtpmatch`` commands in bursts of ``--burst`` at once,
waits for every report, then prints VmRSS and VmHWM (the peak) from /proc. Linux only.
Run: ``python bench/busy_memory.py``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.idle_memory import free_port
from tests.support.slack_fake import (
    BOT_TOKEN,
    RESPONSE_URL,
    SIGNING_SECRET,
    FakeSlackApi,
    SlackDriver,
)

ADDRESSES = ["jane@contoso.com", "alex.admin@contoso.com", "paul.primary@contoso.com"]


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="commands in all")
    parser.add_argument("--burst", type=int, default=30, help="commands sent at once")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder, FakeSlackApi(BOT_TOKEN) as slack:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.url,
            "SMTPMATCH_DATABASE_URL": f"sqlite:///{folder}/busy.db",
            "SMTPMATCH_PORT": str(port),
        }
        env.pop("SLACK_APP_TOKEN", None)
        cmd = [sys.executable, "-m", "bot.cli", "serve", "--http", "--demo"]
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
            idle = status_mb(proc.pid, "VmRSS")
            url = f"http://127.0.0.1:{port}/slack/events"
            with SlackDriver(url, slack) as driver, ThreadPoolExecutor(args.burst) as pool:
                for start in range(0, args.n, args.burst):
                    count = min(args.burst, args.n - start)
                    list(pool.map(lambda i: driver.command(ADDRESSES[i % 3]), range(count)))
                want = args.n
                slack.wait_for(lambda c: len(slack.calls(RESPONSE_URL)) >= want, timeout=120)
            time.sleep(1)
            rss, peak = status_mb(proc.pid, "VmRSS"), status_mb(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(
        f"bot resident memory: idle {idle:.1f} MB, after {args.n} checks in bursts of "
        f"{args.burst}: {rss:.1f} MB (peak {peak:.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
