"""Slash-command acknowledgement time with slow directories.

Builds the real bot (Bolt app, HTTP endpoint, SQLite store) on the embedded demo directories,
makes every directory call take ``--latency`` seconds (default 2 s), points it at the fake
Slack Web API, and sends ``-n`` signed ``/smtpmatch`` commands one after another. Prints the
ack latency (the HTTP round trip Slack waits for; budget 100 ms, Slack's hard limit 3 s) as
p50/p99/max, and how many reports arrived.

``--busy`` runs the busy phase instead: 24 "Request approval" modal submissions in flight at
once (each re-checks against the slow directories) while 30 slash commands are sent; it prints
the ack p50/p99/max of both kinds and how many submissions' outcomes were delivered.

Run: ``python bench/ack_latency.py`` and ``python bench/ack_latency.py --busy``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.bootstrap import build_bot
from bot.directories.demo import build_demo_directories
from bot.server import build_http_app
from bot.services.check import Directories
from bot.settings import Settings
from bot.store.repository import Store
from tests.support.slack_fake import (
    BOT_TOKEN,
    RESPONSE_URL,
    SIGNING_SECRET,
    FakeSlackApi,
    SlackDriver,
    find_action,
    serve_asgi,
)

ADDRESSES = ["jane@contoso.com", "alex.admin@contoso.com", "paul.primary@contoso.com"]


class Slow:
    """Wraps a directory port so that every call takes ``delay`` seconds first."""

    def __init__(self, inner: Any, delay: float) -> None:
        self._inner = inner
        self._delay = delay

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            time.sleep(self._delay)
            return target(*args, **kwargs)

        return call


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(label: str, seconds: list[float]) -> str:
    """``label: p50 … p99 … max …`` in milliseconds."""
    ms = [a * 1000 for a in seconds]
    return (
        f"{label}: p50 {statistics.median(ms):.1f} ms  p99 {percentile(ms, 0.99):.1f} ms  "
        f"max {max(ms):.1f} ms"
    )


APPROVALS = "C0APPROVALS"
REASON_CALLBACK = "smtpmatch_request_reason"


def busy_phase(
    slack: FakeSlackApi, events_url: str, submissions: int, commands: int, latency: float
) -> int:
    """Submissions in flight plus slash commands; prints both ack distributions."""
    # Each submission needs a recorded eligible check of its own submitter.
    with SlackDriver(events_url, slack) as drv:
        names = []
        for i in range(submissions):
            drv.command("jane@contoso.com", user_id=f"UBUSY{i:03d}")
            names.append(drv.last_response_url_name)
    deadline = time.monotonic() + 60 + latency * 10
    checks: dict[str, str] = {}
    while len(checks) < submissions and time.monotonic() < deadline:
        for i, name in enumerate(names):
            calls = [c for c in slack.calls("response_url") if c.target == name]
            for call in calls:
                try:
                    _, button = find_action(
                        call.args.get("blocks") or [], "smtpmatch_request_approval"
                    )
                except LookupError:
                    continue
                checks[f"UBUSY{i:03d}"] = str(button["value"])
        time.sleep(0.2)
    if len(checks) < submissions:
        print(f"only {len(checks)}/{submissions} eligible reports arrived; cannot run")
        return 1
    slack.clear()

    submission_acks: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def submit(own: SlackDriver, user: str, check_id: str) -> None:
        t0 = time.perf_counter()
        response = own.submit_view(
            REASON_CALLBACK,
            user,
            {"reason": {"reason_input": "bench"}},
            private_metadata=check_id,
        )
        elapsed = time.perf_counter() - t0
        with lock:
            submission_acks.append(elapsed)
            statuses.append(response.status_code)

    # The simulated Slack clients are made before anything is timed: building an HTTP client
    # loads a CA bundle (tens of ms of CPU under the GIL), which is the harness's cost, not the
    # bot's, and 24 of them at once would be charged to the acks measured meanwhile.
    with contextlib.ExitStack() as clients:
        drivers = [clients.enter_context(SlackDriver(events_url, slack)) for _ in checks]
        drv = clients.enter_context(SlackDriver(events_url, slack))
        started = time.perf_counter()
        threads = [
            threading.Thread(target=submit, args=(own, user, check_id))
            for own, (user, check_id) in zip(drivers, checks.items(), strict=True)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.2)  # let the submissions reach the bot first
        command_acks: list[float] = []
        for i in range(commands):
            t0 = time.perf_counter()
            response = drv.command(ADDRESSES[i % len(ADDRESSES)], user_id=f"UCMD{i:03d}")
            command_acks.append(time.perf_counter() - t0)
            statuses.append(response.status_code)
            time.sleep(0.05)
        for thread in threads:
            thread.join()
    deadline = time.monotonic() + 60 + latency * 10

    def delivered() -> int:
        # The outcome of a submission: a request posted for approval, or a message that
        # tells the submitter why not (busy, no longer eligible, a fault).
        posted = len(slack.messages(APPROVALS))
        told = {m.channel for m in slack.messages() if m.channel != APPROVALS}
        answered = sum(
            1 for user in checks if any(ch in told for ch in (user, slack.dm_channel(user)))
        )
        return max(posted, answered)

    while delivered() < submissions and time.monotonic() < deadline:
        time.sleep(0.2)
    total = time.perf_counter() - started
    non_200 = sum(1 for s in statuses if s != 200)
    print(
        f"busy phase: {submissions} modal submissions in flight + {commands} slash commands, "
        f"directory latency per call {latency:.1f} s"
    )
    print(summary("  slash command acks   ", command_acks))
    print(summary("  modal submission acks", submission_acks))
    print(
        f"  non-200 answers: {non_200}; submissions acked after 3 s: "
        f"{sum(1 for a in submission_acks if a > 3)}; commands acked after 3 s: "
        f"{sum(1 for a in command_acks if a > 3)}"
    )
    print(
        f"  approval requests posted: {len(slack.messages(APPROVALS))} (one open request per "
        f"address: other submitters are told which one is open); "
        f"outcomes delivered: {delivered()}/{submissions} in {total:.1f} s"
    )
    ok = (
        non_200 == 0
        and percentile([a * 1000 for a in command_acks], 0.99) < 100
        and max(submission_acks) < 1
        and delivered() == submissions
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="commands to send (default 200)")
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per directory call")
    parser.add_argument("--busy", action="store_true", help="run the busy phase instead")
    parser.add_argument("--submissions", type=int, default=24, help="busy phase: submissions")
    parser.add_argument("--commands", type=int, default=30, help="busy phase: slash commands")
    args = parser.parse_args()

    onprem, cloud, policy = build_demo_directories()
    dirs = Directories(Slow(onprem, args.latency), Slow(cloud, args.latency), policy)
    with tempfile.TemporaryDirectory() as folder, FakeSlackApi() as slack:
        settings = Settings(
            _env_file=None,
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.url,
            smtpmatch_approval_channel="C0APPROVALS",
            smtpmatch_approvers=("U0APPROVER",),
        )
        store = Store(f"sqlite:///{folder}/bench.db")
        store.migrate()
        bot = build_bot(settings, directories=dirs, store=store)
        if args.busy:
            with serve_asgi(build_http_app(bot)) as served:
                code = busy_phase(
                    slack, served.events_url, args.submissions, args.commands, args.latency
                )
            bot.stop()
            store.close()
            return code
        with (
            serve_asgi(build_http_app(bot)) as served,
            SlackDriver(served.events_url, slack) as drv,
        ):
            acks: list[float] = []
            started = time.perf_counter()
            for i in range(args.n):
                t0 = time.perf_counter()
                response = drv.command(ADDRESSES[i % len(ADDRESSES)], user_id=f"U{i:05d}")
                acks.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text
            sent = time.perf_counter() - started
            deadline = time.monotonic() + 30 + args.latency * 4
            while len(slack.calls(RESPONSE_URL)) < args.n and time.monotonic() < deadline:
                time.sleep(0.1)
            reports = len(slack.calls(RESPONSE_URL))
            total = time.perf_counter() - started
        bot.stop()
        store.close()

    ms = [a * 1000 for a in acks]
    print(f"commands: {args.n}, directory latency per call: {args.latency:.1f} s")
    print(
        f"ack latency: p50 {statistics.median(ms):.1f} ms  p99 {percentile(ms, 0.99):.1f} ms  "
        f"max {max(ms):.1f} ms  (budget 100 ms; Slack's limit 3000 ms)"
    )
    print(
        f"all commands sent in {sent:.1f} s; {reports}/{args.n} reports delivered in {total:.1f} s"
    )
    return 0 if percentile(ms, 0.99) < 100 else 1


if __name__ == "__main__":
    raise SystemExit(main())
