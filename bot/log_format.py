"""Log lines for operators: plain text by default, one JSON object per line on request
(``SMTPMATCH_LOG_FORMAT=json``), with the reference id of the Slack request being handled.

Every Slack request gets a short reference id when it arrives (a Bolt middleware binds it in a
context variable); the worker pools run tasks in their submitter's context, so every line logged
while that request is handled, on any thread, carries the same ``reference``, and a fault shown
to the user quotes it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

_REFERENCE: Final[contextvars.ContextVar[str | None]] = contextvars.ContextVar(
    "smtpmatch_reference", default=None
)

#: Attributes every LogRecord has; anything else was passed with ``extra=`` and is kept.
_STANDARD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def new_reference() -> str:
    """A short id that ties what a user sees to the log lines about it."""
    return uuid.uuid4().hex[:8].upper()


def current_reference() -> str | None:
    """The reference id of the request being handled in this context, if any."""
    return _REFERENCE.get()


@contextlib.contextmanager
def bound_reference(reference: str | None = None) -> Iterator[str]:
    """Bind a reference id (a new one unless given) for the duration of the ``with``."""
    value = reference or new_reference()
    token = _REFERENCE.set(value)
    try:
        yield value
    finally:
        _REFERENCE.reset(token)


def reference_middleware(next: Callable[[], Any]) -> Any:
    """Bolt middleware: every incoming Slack request is handled under a reference id of its own.

    Bolt passes middleware arguments by name; ``next`` continues the chain.
    """
    with bound_reference():
        return next()


class ReferenceFilter(logging.Filter):
    """Adds ``reference`` (or ``None``) to every record that passes a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the current reference id; never drops a record."""
        if not hasattr(record, "reference"):
            record.reference = current_reference()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, ``reference``
    (when a request is being handled), ``exception`` (when there is one) and any ``extra``."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a single line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        reference = getattr(record, "reference", None) or current_reference()
        if reference:
            line["reference"] = reference
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and key not in line and key != "reference":
                line[key] = value
        return json.dumps(line, ensure_ascii=False, default=str)


TEXT_FORMAT: Final = "%(levelname)s %(name)s: %(message)s"


def configure_logging(fmt: str, *, level: int = logging.INFO) -> None:
    """Set the root logger's level and the format of all its handlers.

    Args:
        fmt: ``"json"`` for JSON lines, anything else for plain text.
        level: the root level.
    """
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    root.setLevel(level)
    for handler in root.handlers:
        if not any(isinstance(f, ReferenceFilter) for f in handler.filters):
            handler.addFilter(ReferenceFilter())
        if fmt == "json":
            handler.setFormatter(JsonFormatter())
        elif handler.formatter is None:
            handler.setFormatter(logging.Formatter(TEXT_FORMAT))


__all__ = [
    "JsonFormatter",
    "ReferenceFilter",
    "bound_reference",
    "configure_logging",
    "current_reference",
    "new_reference",
    "reference_middleware",
]
