"""`smtpmatch audit`: the audit trail as JSON or CSV, for auditors and SIEMs."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from typing import TextIO

from bot.errors import InvalidInput
from bot.settings import load_settings
from bot.store.repository import Store


def parse_since(text: str | None) -> datetime | None:
    """An ISO 8601 date or date-time; naive values are taken as UTC."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--since {text!r} is not an ISO 8601 date (e.g. 2026-11-01)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def export_audit(*, since: str | None, fmt: str, out: TextIO) -> int:
    """Write the audit events (oldest first) to ``out``; returns the exit code."""
    start = parse_since(since)
    store = Store(load_settings().database_url)
    store.migrate()
    try:
        events = store.list_audit(since=start)
    finally:
        store.close()
    rows = [
        {
            "id": e.id,
            "at": e.at.isoformat(),
            "event": e.event,
            "request_id": e.request_id,
            "actor": e.actor,
            "details": e.details,
        }
        for e in events
    ]
    if fmt == "json":
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        writer = csv.DictWriter(
            out, fieldnames=["id", "at", "event", "request_id", "actor", "details"]
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "details": json.dumps(row["details"], ensure_ascii=False)})
    return 0
