"""Logging for the command line and the bot: one handler, quiet libraries, nothing secret.

Libraries (Bolt, the Slack SDK, httpx, MSAL, …) log at WARNING unless verbose logging is asked
for (``-v``): at INFO they would log full request URLs (a webhook's ``?token=``, Graph
``$filter`` queries that carry the addresses looked up) and, for Bolt, the bodies of requests
that fail verification. Whatever the level, every record goes through :class:`RedactingFilter`:
a URL loses its ``user:password@`` part and its query string, and Bolt's records that carry a
request body or its "token will be unused" warning are dropped.
"""

from __future__ import annotations

import logging
import re
import sys

from bot.log_format import format_root_handlers

#: Loggers of the libraries smtpmatch uses; WARNING unless verbose.
LIBRARY_LOGGERS = (
    "slack_bolt",
    "slack_sdk",
    "httpx",
    "httpcore",
    "msal",
    "urllib3",
    "uvicorn",
    "ldap3",
    "sqlalchemy",
    "alembic",
    "asyncio",
    "websocket",
)
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@:]*:[^\s/@]*@")
_QUERY = re.compile(r"(?P<url>\bhttps?://[^\s?#\"'<>]+)\?[^\s\"<>]*", re.IGNORECASE)
#: What Bolt logs that must never reach a log: request bodies (with response_url and user
#: data), and the warning that the SLACK_BOT_TOKEN it found in the environment is unused (the
#: bot hands Bolt its own client on purpose).
_DROPPED = (
    "request body",
    "invalid request signature",
    "will be unused",
    "will be ignored",
)
_HANDLER_MARK = "_smtpmatch_handler"
_state = {"verbose": False, "service": False}


def redact(text: str) -> str:
    """``text`` with URL credentials and query strings replaced by ``***`` and ``?…``."""
    text = _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", text)
    return _QUERY.sub(lambda m: f"{m.group('url')}?…", text)


class RedactingFilter(logging.Filter):
    """Drops Bolt's request-body records; strips URL credentials and queries from the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False for a record that must not be written; redact the others in place."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: keep it as logging would
            return True
        if record.name.startswith("slack_bolt") and any(
            marker in message.lower() for marker in _DROPPED
        ):
            return False
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(
    *, verbose: bool | None = None, service: bool | None = None, fmt: str | None = None
) -> None:
    """Set up the root handler and the levels; safe to call more than once.

    Args:
        verbose: log libraries at DEBUG too (``-v``); ``None`` keeps the earlier choice.
        service: the bot is serving, so smtpmatch's own INFO lines (start-up, writes) show;
            ``None`` keeps the earlier choice.
        fmt: ``"json"`` for JSON lines with the request's reference id (``SMTPMATCH_LOG_FORMAT``),
            ``"text"`` for plain lines; ``None`` keeps the earlier choice.
    """
    if verbose is not None:
        _state["verbose"] = verbose
    if service is not None:
        _state["service"] = service
    loud, service = _state["verbose"], _state["service"]
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, _HANDLER_MARK, False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())
    level = logging.DEBUG if loud else logging.INFO if service else logging.WARNING
    if fmt is not None:
        format_root_handlers(fmt, level=level)
    root.setLevel(level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if loud else logging.WARNING)
