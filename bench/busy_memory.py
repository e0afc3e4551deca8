"""Resident memory of a bot that has just worked: the figure the Kubernetes requests are sized
from (deploy/base/deployment.yaml), next to the idle one (bench/idle_memory.py).

Starts the demo bot in HTTP mode as its own process (SQLite in a temp folder) against the fake
Slack Web API, sends ``-n`` signed ``/smtpmatch`` commands in bursts of ``--burst`` at once,
waits for every report, then prints VmRSS and VmHWM (the peak) from /proc. Linux only.
Run: ``python bench/busy_memory.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.bot_process import demo_bot_process
from tests.support.slack_fake import BOT_TOKEN, RESPONSE_URL, FakeSlackApi, SlackDriver

ADDRESSES = ["jane@contoso.com", "alex.admin@contoso.com", "paul.primary@contoso.com"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="commands in all")
    parser.add_argument("--burst", type=int, default=30, help="commands sent at once")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        FakeSlackApi(BOT_TOKEN) as slack,
        # One simulated user sends every command: lift the per-user limit of 10 a minute.
        demo_bot_process(slack, Path(folder), SMTPMATCH_CHECKS_PER_MINUTE="0") as bot,
    ):
        idle = bot.status_kb("VmRSS") / 1024
        with (
            SlackDriver(f"{bot.url}/slack/events", slack) as driver,
            ThreadPoolExecutor(args.burst) as pool,
        ):
            for start in range(0, args.n, args.burst):
                count = min(args.burst, args.n - start)
                list(pool.map(lambda i: driver.command(ADDRESSES[i % 3]), range(count)))
            want = args.n
            slack.wait_for(lambda c: len(slack.calls(RESPONSE_URL)) >= want, timeout=120)
        time.sleep(1)
        rss, peak = bot.status_kb("VmRSS") / 1024, bot.status_kb("VmHWM") / 1024
    print(
        f"bot resident memory: idle {idle:.1f} MB, after {args.n} checks in bursts of "
        f"{args.burst}: {rss:.1f} MB (peak {peak:.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
