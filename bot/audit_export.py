"""`smtpmatch audit`: the audit trail as JSON or CSV, for auditors and SIEMs."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from bot.actors import ACTOR_NAME
from bot.bootstrap import open_store
from bot.domain import AuditEvent
from bot.errors import InvalidInput
from bot.settings import load_settings


def parse_since(text: str | None) -> datetime | None:
    """An ISO 8601 date or date-time; naive values are taken as UTC."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--since {text!r} is not an ISO 8601 date (e.g. 2026-11-01)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def of_wave(events: Sequence[AuditEvent], wave_id: str) -> list[AuditEvent]:
    """The events of one wave: its own (their details name it) and every event of the match
    requests its users' writes became (the wave's item events name their request)."""
    own = [e for e in events if e.details.get("wave") == wave_id]
    requests = {e.request_id for e in own if e.request_id}
    return [e for e in events if e.details.get("wave") == wave_id or e.request_id in requests]


def export_audit(
    *,
    since: str | None,
    fmt: str,
    out: TextIO,
    request_id: str | None = None,
    wave_id: str | None = None,
) -> int:
    """Write the audit events (oldest first) to ``out``; returns the exit code.

    Read-only: the database is neither migrated nor created.

    Args:
        request_id: only the events of this match request.
        wave_id: only the events of this wave (see :func:`of_wave`).
    """
    start = parse_since(since)
    store = open_store(load_settings(), read_only=True)
    try:
        events = store.list_audit(since=start, request_id=request_id)
    finally:
        store.close()
    if wave_id is not None:
        events = of_wave(events, wave_id)
    rows = [
        {
            "id": e.id,
            "at": e.at.isoformat(),
            "event": str(e.event),
            "request_id": e.request_id,
            "actor": e.actor,
            # The actor's display name when they acted (Slack's user name; the OS user for
            # `cli:` actors is in the id itself).
            "actor_name": e.details.get(ACTOR_NAME),
            "details": {k: v for k, v in e.details.items() if k != ACTOR_NAME},
        }
        for e in events
    ]
    if fmt == "json":
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        writer = csv.DictWriter(
            out,
            fieldnames=["id", "at", "event", "request_id", "actor", "actor_name", "details"],
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "details": json.dumps(row["details"], ensure_ascii=False)})
    return 0
