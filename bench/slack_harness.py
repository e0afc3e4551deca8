"""Measure how fast the bot acknowledges slash commands and how fast it answers.

Starts the fake Slack Web API, starts the bot pointed at it (or uses one already running),
sends signed ``/smtpmatch`` commands one after another and reports, per command, the ack
latency (the HTTP round trip Slack waits for; budget 100 ms, hard limit 3 s) and the time to
the bot's first answer (a ``response_url`` post, ``chat.postMessage`` or ``chat.postEphemeral``).

Examples::

    python bench/slack_harness.py -n 50                       # runs `smtpmatch serve --http --demo`
    python bench/slack_harness.py --bot-cmd "python app.py --http --port {port} --demo"
    python bench/slack_harness.py --url http://127.0.0.1:3000/slack/events --api-port 8999
        # a bot already running with SLACK_API_URL=http://127.0.0.1:8999/api/

Exit status: 0 when the ack p95 is within ``--budget-ms``, 1 otherwise, 2 on set-up failure.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.slack_fake import (
    BOT_TOKEN,
    RESPONSE_URL,
    SIGNING_SECRET,
    ApiCall,
    FakeSlackApi,
    SlackDriver,
)

DEFAULT_BOT_CMD = "smtpmatch serve --http --port {port} --demo"
ANSWER_METHODS = (RESPONSE_URL, "chat.postMessage", "chat.postEphemeral")


@dataclass(frozen=True)
class Sample:
    """One command: its ack latency and the time to the bot's first answer (seconds)."""

    status: int
    ack: float
    answer: float | None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_bot(command: str, api: FakeSlackApi, startup_timeout: float) -> Iterator[str]:
    """Start the bot with its Slack settings pointed at ``api``; yield its events URL."""
    port = free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": api.url,
    }
    env.pop("SLACK_APP_TOKEN", None)
    process = subprocess.Popen(shlex.split(command.format(port=port)), env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the bot exited with status {process.returncode}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bot did not answer {base}/healthz in {startup_timeout}s")
            time.sleep(0.1)
        yield f"{base}/slack/events"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure(
    driver: SlackDriver, api: FakeSlackApi, text: str, count: int, answer_timeout: float
) -> list[Sample]:
    """Send ``count`` commands one at a time, waiting for each answer before the next."""
    samples: list[Sample] = []
    for i in range(count):
        name = f"bench-{i}"
        sent = time.time()
        response = driver.command(text, response_url_name=name)

        def answered(call: ApiCall, name: str = name, sent: float = sent) -> bool:
            if call.method == RESPONSE_URL:
                return call.target == name
            return call.method in ANSWER_METHODS and call.ok and call.at >= sent

        try:
            answer: float | None = api.wait_for(answered, timeout=answer_timeout).at - sent
        except TimeoutError:
            answer = None
        samples.append(Sample(response.status_code, driver.last.elapsed, answer))
    return samples


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (``fraction`` in 0..1)."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def report(samples: Sequence[Sample]) -> str:
    """A small table: p50 / p95 / max of ack and answer latencies, in milliseconds."""
    lines = [f"{len(samples)} commands; HTTP statuses: {sorted({s.status for s in samples})}"]
    series = {
        "ack": [s.ack for s in samples],
        "first answer": [s.answer for s in samples if s.answer is not None],
    }
    for label, values in series.items():
        if not values:
            lines.append(f"{label:>13}: none")
            continue
        lines.append(
            f"{label:>13}: p50 {percentile(values, 0.5) * 1000:7.1f} ms  "
            f"p95 {percentile(values, 0.95) * 1000:7.1f} ms  "
            f"max {max(values) * 1000:7.1f} ms  "
            f"mean {statistics.fmean(values) * 1000:7.1f} ms"
        )
    unanswered = sum(1 for s in samples if s.answer is None)
    if unanswered:
        lines.append(f"{unanswered} command(s) got no answer in time")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=20, help="commands to send")
    parser.add_argument("--text", default="jane@contoso.com", help="the command's text")
    parser.add_argument("--bot-cmd", default=DEFAULT_BOT_CMD, help="bot command; {port} is set")
    parser.add_argument("--url", help="events URL of a bot already running (no --bot-cmd)")
    parser.add_argument("--api-port", type=int, default=0, help="port of the fake Web API")
    parser.add_argument("--api-latency-ms", type=float, default=0, help="fake Web API delay")
    parser.add_argument("--budget-ms", type=float, default=100, help="ack p95 budget")
    parser.add_argument("--startup-timeout", type=float, default=30)
    parser.add_argument("--answer-timeout", type=float, default=15)
    parser.add_argument("--warmup", type=int, default=2, help="commands sent before measuring")
    args = parser.parse_args(argv)

    with FakeSlackApi(BOT_TOKEN, port=args.api_port) as api:
        api.set_latency(args.api_latency_ms / 1000)
        try:
            with _bot_url(args, api) as url, SlackDriver(url, api) as driver:
                measure(driver, api, args.text, args.warmup, args.answer_timeout)
                api.clear()
                samples = measure(driver, api, args.text, args.count, args.answer_timeout)
        except RuntimeError as error:
            print(f"slack_harness: {error}", file=sys.stderr)
            return 2
    print(report(samples))
    p95 = percentile([s.ack for s in samples], 0.95) * 1000
    within = p95 <= args.budget_ms and all(s.status == 200 for s in samples)
    print(f"ack p95 {p95:.1f} ms vs budget {args.budget_ms:.0f} ms: {'OK' if within else 'OVER'}")
    return 0 if within else 1


@contextmanager
def _bot_url(args: argparse.Namespace, api: FakeSlackApi) -> Iterator[str]:
    if args.url:
        yield args.url
    else:
        with running_bot(args.bot_cmd, api, args.startup_timeout) as url:
            yield url


if __name__ == "__main__":
    sys.exit(main())
