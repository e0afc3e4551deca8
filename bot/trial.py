"""``smtpmatch try``: the real bot, the demo directories and a local stand-in for Slack.

Nothing leaves this machine and no Slack account is needed. :class:`LocalSlack` answers the Web
API calls the bot makes (``chat.postMessage``, ``views.open``, …) and the ``response_url`` posts,
and records them. :func:`run_trial` builds the bot as ``smtpmatch serve --demo`` does, then acts
as Slack would: it signs a slash command, a "Request approval" click, the reason modal's
submission and an approver's "Approve" click with the signing secret, hands each to the Bolt
app, and prints what Slack would show after each step, ending with the sync result.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode

from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from bot.settings import Settings
from bot.slack_views.ids import REASON_ACTION, REASON_BLOCK, ActionId

REQUESTER = "U0TRYHELP"
APPROVER = "U0TRYBOSS"
APPROVAL_CHANNEL = "C0TRYAPPROVE"
NOTIFY_CHANNEL = "C0TRYTEAM"
TEAM = "T0TRYTEAM"
_NAMES = {REQUESTER: "helpdesk.hannah", APPROVER: "approver.alex"}
Json = dict[str, Any]


@dataclass
class Posted:
    """One thing the bot sent to Slack: a Web API call or a ``response_url`` post."""

    method: str
    args: Json
    answer: Json = field(default_factory=dict)


@dataclass
class LocalSlack:
    """A local stand-in for Slack's Web API and ``response_url``, recording what is posted."""

    calls: list[Posted] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _ts: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))
    url: str = ""

    def record(self, method: str, args: Json) -> Json:
        """Record a call and answer it as Slack would."""
        with self._changed:
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            view_id = f"V{next(self._ts):08d}"
        channel = str(args.get("channel") or "")
        answers: dict[str, Json] = {
            "chat.postMessage": {"channel": channel, "ts": ts, "message": {"ts": ts}},
            "chat.update": {"channel": channel, "ts": str(args.get("ts") or ts)},
            "chat.postEphemeral": {"message_ts": ts},
            "views.open": {"view": {"id": view_id, **args.get("view", {})}},
            "usergroups.users.list": {"users": []},
            "users.info": {
                "user": {"id": args.get("user"), "name": _NAMES.get(str(args.get("user")), "")}
            },
        }
        answer = {"ok": True, **answers.get(method, {})}
        with self._changed:
            self.calls.append(Posted(method, args, answer))
            self._changed.notify_all()
        return answer

    def wait_for(self, test: Callable[[Posted], bool], timeout: float = 30.0) -> Posted:
        """The first recorded call ``test`` accepts, waiting for it up to ``timeout``.

        Raises:
            TimeoutError: no such call arrived.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for call in self.calls:
                    if test(call):
                        return call
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the bot did not post what was expected")
                self._changed.wait(left)

    @contextmanager
    def serving(self) -> Iterator[LocalSlack]:
        """Serve on a free loopback port (``url`` is set) for the duration of the block."""
        slack = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                text = raw.decode("utf-8")
                if "json" in (self.headers.get("Content-Type") or ""):
                    args = json.loads(text or "{}")
                else:
                    args = dict(parse_qsl(text))
                    for key in ("blocks", "view"):
                        if isinstance(args.get(key), str):
                            args[key] = json.loads(args[key])
                path = self.path.split("?", 1)[0]
                method = path.removeprefix("/api/") if path.startswith("/api/") else path
                answer = json.dumps(slack.record(method, args)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the trial prints what matters

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, name="local-slack", daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


class _TrialSettings(Settings):
    """Settings from the arguments only: the trial ignores the environment and ``.env``."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body``: its timestamp and ``v0=`` HMAC-SHA256 signature."""
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256)
    return {"x-slack-request-timestamp": stamp, "x-slack-signature": f"v0={digest.hexdigest()}"}


def as_text(blocks: list[Json] | None, fallback: str = "") -> str:
    """Block Kit blocks as the plain text a reader sees (buttons as ``[ Label ]``)."""
    lines: list[str] = []
    for block in blocks or []:
        kind = block.get("type")
        if kind in ("header", "section"):
            if block.get("text"):
                lines.append(_plain(block["text"].get("text", "")))
            lines += [_plain(f.get("text", "")) for f in block.get("fields", [])]
        elif kind == "context":
            lines.append("  ".join(_plain(e.get("text", "")) for e in block.get("elements", [])))
        elif kind == "actions":
            labels = [
                f"[ {e['text']['text']} ]" for e in block.get("elements", []) if e.get("text")
            ]
            lines.append(" ".join(labels))
        elif kind == "divider":
            lines.append("-" * 40)
        elif kind == "input":
            lines.append(f"{_plain(block.get('label', {}).get('text', ''))}: [ text field ]")
    return "\n".join(line for line in lines if line) or _plain(fallback)


_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")


def _plain(text: str) -> str:
    text = _DATE.sub(lambda m: m.group(1), text)  # Slack shows the date in the reader's zone
    for user, name in _NAMES.items():
        text = text.replace(f"<@{user}>", f"@{name}")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _buttons(blocks: list[Json] | None) -> dict[str, Json]:
    found: dict[str, Json] = {}
    for block in blocks or []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id"):
                found[str(element["action_id"])] = {**element, "block_id": block.get("block_id")}
        accessory = block.get("accessory")
        if accessory and accessory.get("action_id"):
            found[str(accessory["action_id"])] = {**accessory, "block_id": block.get("block_id")}
    return found


class _Slack:
    """Sends what Slack would send to the bot, signed, and prints what Slack would show."""

    def __init__(self, bot: Any, local: LocalSlack, secret: str, out: TextIO) -> None:
        self.bot, self.local, self.secret, self.out = bot, local, secret, out
        self._responses = 0
        self._seen: set[str] = set()

    def show(self, title: str, text: str) -> None:
        """Print a step; runs of lines printed before (the report again) are elided."""
        lines = text.rstrip().splitlines()
        shown: list[str] = []
        run: list[str] = []
        for line in [*lines, None]:
            if line is not None and line in self._seen:
                run.append(line)
                continue
            shown += [f"(… {len(run)} lines as above …)"] if len(run) > 2 else run
            run = []
            if line is not None:
                shown.append(line)
        self._seen.update(lines)
        self.out.write(f"\n=== {title} ===\n" + "\n".join(shown) + "\n")
        self.out.flush()

    def send(self, body: str, content_type: str) -> Json | None:
        from slack_bolt.request import BoltRequest

        headers: dict[str, str | Sequence[str]] = {"content-type": [content_type]}
        headers.update({k: [v] for k, v in sign(self.secret, body).items()})
        response = self.bot.app.dispatch(BoltRequest(body=body, headers=headers))
        if response.status != 200:
            raise RuntimeError(f"the bot answered {response.status}: {response.body[:200]}")
        return json.loads(response.body) if response.body.startswith("{") else None

    def response_url(self) -> str:
        self._responses += 1
        return f"{self.local.url}/response/{self._responses}"

    def user(self, user_id: str) -> Json:
        name = _NAMES[user_id]
        return {"id": user_id, "username": name, "name": name, "team_id": TEAM}

    def command(self, text: str) -> tuple[Json | None, str]:
        url = self.response_url()
        form = {
            "command": "/smtpmatch",
            "text": text,
            "user_id": REQUESTER,
            "user_name": _NAMES[REQUESTER],
            "team_id": TEAM,
            "channel_id": "C0TRYHELPDESK",
            "response_url": url,
            "trigger_id": secrets.token_hex(8),
        }
        return self.send(urlencode(form), "application/x-www-form-urlencoded"), url

    def click(self, user_id: str, button: Json, channel: str, message: Json) -> str:
        url = self.response_url()
        payload = {
            "type": "block_actions",
            "user": self.user(user_id),
            "team": {"id": TEAM},
            "api_app_id": "A0TRY",
            "trigger_id": secrets.token_hex(8),
            "container": {"type": "message", "channel_id": channel, "message_ts": message["ts"]},
            "channel": {"id": channel},
            "message": message,
            "response_url": url,
            "actions": [
                {
                    "type": "button",
                    "action_id": button["action_id"],
                    "block_id": button.get("block_id") or "b",
                    "value": button.get("value", ""),
                    "action_ts": str(time.time()),
                }
            ],
        }
        self.send(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")
        return url

    def submit(self, user_id: str, view: Json, reason: str) -> None:
        payload = {
            "type": "view_submission",
            "user": self.user(user_id),
            "team": {"id": TEAM},
            "api_app_id": "A0TRY",
            "view": {
                **view,
                "state": {"values": {REASON_BLOCK: {REASON_ACTION: {"value": reason}}}},
            },
        }
        self.send(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")


def run_trial(address: str, out: TextIO, *, timeout: float = 60.0) -> int:
    """Try the bot end to end on the demo directories; returns the exit code (0).

    Args:
        address: the demo address to check (an eligible one goes on to approval and sync).
        out: where to print what Slack would show.
        timeout: how long to wait for each answer of the bot.
    """
    from bot.server import build_bot

    secret = secrets.token_hex(16)
    with (
        tempfile.TemporaryDirectory(prefix="smtpmatch-try-") as folder,
        LocalSlack().serving() as local,
    ):
        settings = _TrialSettings(
            slack_bot_token=SecretStr("xoxb-local-trial"),
            slack_signing_secret=SecretStr(secret),
            slack_api_url=f"{local.url}/api/",
            smtpmatch_approval_channel=APPROVAL_CHANNEL,
            smtpmatch_notify_channel=NOTIFY_CHANNEL,
            smtpmatch_approvers=(APPROVER,),
            smtpmatch_database_url=SecretStr(f"sqlite:///{Path(folder) / 'try.db'}"),
            smtpmatch_sync_poll_seconds=1,
        )
        bot = build_bot(settings, demo=True)
        bot.start_background()
        try:
            return _drive(_Slack(bot, local, secret, out), address, timeout)
        finally:
            bot.stop()


def _drive(slack: _Slack, address: str, timeout: float) -> int:
    local = slack.local
    slack.out.write(
        f"Trying smtpmatch with the demo directories and a local stand-in for Slack.\n"
        f"@{_NAMES[REQUESTER]} asks, @{_NAMES[APPROVER]} approves "
        f"(approval channel #{APPROVAL_CHANNEL}, team channel #{NOTIFY_CHANNEL}).\n"
    )
    ack, url = slack.command(address)
    slack.show(
        f"1. @{_NAMES[REQUESTER]} types /smtpmatch {address}",
        str((ack or {}).get("text", "(acknowledged)")),
    )
    path = "/" + url.split("/", 3)[3]
    report = local.wait_for(lambda c: c.method == path and bool(c.args.get("blocks")), timeout)
    slack.show(
        "What Slack shows them (only they can see it)",
        as_text(report.args.get("blocks"), str(report.args.get("text", ""))),
    )
    request_button = _buttons(report.args.get("blocks")).get(ActionId.REQUEST_APPROVAL.value)
    if request_button is None:
        slack.out.write(
            "\nThere is no Request approval button for this report, so the trial ends here.\n"
            "Try an eligible demo address: smtpmatch try jane@contoso.com\n"
        )
        return 0
    message = {"ts": "1.000001", "blocks": report.args.get("blocks"), "text": ""}
    slack.click(REQUESTER, request_button, "C0TRYHELPDESK", message)
    modal = local.wait_for(lambda c: c.method == "views.open", timeout)
    slack.show("2. They press Request approval; Slack opens", as_text(modal.args["view"]["blocks"]))
    slack.submit(REQUESTER, modal.args["view"], "Trying smtpmatch on the demo directories")
    approval = local.wait_for(
        lambda c: c.method == "chat.postMessage" and c.args.get("channel") == APPROVAL_CHANNEL,
        timeout,
    )
    slack.show(
        f"3. They submit a reason; #{APPROVAL_CHANNEL} shows",
        as_text(approval.args.get("blocks"), str(approval.args.get("text", ""))),
    )
    ts = str(approval.answer["ts"])
    approve = _buttons(approval.args.get("blocks"))[ActionId.APPROVE.value]
    slack.click(APPROVER, approve, APPROVAL_CHANNEL, {**approval.args, "ts": ts})
    dm = local.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.args.get("channel") == REQUESTER
            and "approved" in str(c.args.get("text", ""))
        ),
        timeout,
    )
    updated = local.wait_for(
        lambda c: c.method == "chat.update" and c.args.get("channel") == APPROVAL_CHANNEL, timeout
    )
    slack.show(
        f"4. @{_NAMES[APPROVER]} presses Approve; the approval message becomes",
        as_text(updated.args.get("blocks"), str(updated.args.get("text", ""))),
    )
    slack.show(
        f"@{_NAMES[REQUESTER]} gets a direct message",
        as_text(dm.args.get("blocks"), str(dm.args.get("text", ""))),
    )
    result = local.wait_for(
        lambda c: c.method == "chat.postMessage" and c.args.get("channel") == NOTIFY_CHANNEL,
        timeout,
    )
    slack.show(
        f"5. Directory sync runs; #{NOTIFY_CHANNEL} shows",
        as_text(result.args.get("blocks"), str(result.args.get("text", ""))),
    )
    finished = local.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.args.get("channel") == NOTIFY_CHANNEL
            and bool(c.args.get("thread_ts"))
        ),
        timeout,
    )
    slack.show(
        "6. The bot watches Entra ID until the user is bound; the thread says",
        as_text(finished.args.get("blocks"), str(finished.args.get("text", ""))),
    )
    slack.out.write(
        "\nThat was the real bot (Bolt app, rules, store, demo directories) answering signed "
        "requests.\nTo run it for a workspace: see 'Deploying' in the README.\n"
    )
    return 0
