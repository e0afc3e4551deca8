"""Resident memory of an idle bot (budget: under 150 MB).

Starts the demo bot in HTTP mode as its own process (SQLite in a temp folder, the fake Slack
Web API), waits until ``/healthz`` answers and a few seconds more, then prints VmRSS from /proc.
Linux only. Run: ``python bench/idle_memory.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.bot_process import demo_bot_process
from tests.support.slack_fake import BOT_TOKEN, FakeSlackApi


def main() -> int:
    with (
        tempfile.TemporaryDirectory() as folder,
        FakeSlackApi(BOT_TOKEN) as slack,
        demo_bot_process(slack, Path(folder)) as bot,
    ):
        time.sleep(5)
        rss = bot.rss_kb() / 1024
    print(f"idle bot resident memory: {rss:.1f} MB (budget 150 MB)")
    return 0 if rss < 150 else 1


if __name__ == "__main__":
    raise SystemExit(main())
