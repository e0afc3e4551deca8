"""``smtpmatch scan``: whole-tenant readiness from the command line.

Exit codes as for ``check``: 0 a report was produced, 2 bad usage or configuration, 3 a
directory could not be reached (the caller maps the project's errors onto them). Nothing is
half-written: ``--out`` is written to a temporary file renamed into place once the report is
complete, and a scan is stored only when it finished.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from bot.errors import ConfigurationError, DirectoryError, InvalidInput
from bot.scan.model import ScanResult
from bot.scan.render import (
    changes_between,
    render_changes,
    render_csv,
    render_json,
    render_table,
)
from bot.services.scan import run_scan
from bot.settings import Settings, load_settings

log = logging.getLogger("smtpmatch")


def add_scan_arguments(scan: argparse.ArgumentParser) -> None:
    """The options of ``scan``."""
    scan.add_argument("--demo", action="store_true", help="use the embedded sample directories")
    scan.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="output format (default table)",
    )
    scan.add_argument("--out", metavar="PATH", help="write the report to PATH, not stdout")
    scan.add_argument("--limit", metavar="N", type=int, help="judge at most N users")
    scan.add_argument(
        "--since-last",
        action="store_true",
        help="show what changed since the previous stored scan",
    )


class ProgressBar:
    """A one-line progress bar on a terminal's stderr (nothing when stderr is not one)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._on = stream.isatty()
        self._last = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self._on:
            return
        if stage == "read":
            self._stream.write("\rsmtpmatch scan: reading both directories…")
        else:
            percent = 100 * done // total if total else 100
            if percent == self._last and done != total:
                return
            self._last = percent
            width = max(10, min(40, shutil.get_terminal_size().columns - 40))
            filled = width * done // total if total else width
            bar = "#" * filled + "." * (width - filled)
            self._stream.write(f"\rsmtpmatch scan: [{bar}] {done}/{total} users")
        self._stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self._on:
            self._stream.write("\n")
            self._stream.flush()


def _render(result: ScanResult, fmt: str, width: int) -> str:
    if fmt == "json":
        return render_json(result)
    if fmt == "csv":
        return render_csv(result)
    return render_table(result, width)


def _write(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    target = Path(out)
    try:
        fd, temporary = tempfile.mkstemp(prefix=".smtpmatch-scan-", dir=target.parent or ".")
    except OSError as exc:
        raise ConfigurationError(
            f"--out: cannot write to {target.parent} ({exc.strerror})"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(temporary, target)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigurationError(f"--out: cannot write {target} ({exc.strerror})") from None


def _stored(settings: Settings, result: ScanResult, since_last: bool) -> ScanResult | None:
    """Store the finished scan; returns the previous stored scan (for ``--since-last``).

    Storing is a convenience of the command line: a database that cannot be used is reported
    on stderr and the report is printed all the same.
    """
    from bot.bootstrap import open_store

    try:
        store = open_store(settings)
    except (ConfigurationError, SQLAlchemyError) as exc:
        if since_last:
            raise ConfigurationError(f"--since-last needs the database: {exc}") from None
        print(f"smtpmatch: the scan was not stored: {exc}", file=sys.stderr)
        return None
    try:
        latest = store.latest_scans(1)
        previous = latest[0].result(store.scan_items(latest[0].id)) if latest else None
        scan, started = store.start_scan("command line")
        if started:
            store.finish_scan(scan.id, result)
        else:
            print(
                f"smtpmatch: scan {scan.id} is running (started {scan.started_at:%H:%M} UTC); "
                "this one was not stored",
                file=sys.stderr,
            )
        return previous
    finally:
        store.close()


def run_scan_command(args: argparse.Namespace) -> int:
    """Run ``smtpmatch scan`` (see the module docstring for exit codes).

    Raises:
        InvalidInput, ConfigurationError, DirectoryError: mapped to exit codes by the caller.
    """
    from bot.bootstrap import build_directories
    from bot.scan.sources import scan_source_for

    if args.limit is not None and args.limit < 0:
        raise InvalidInput("--limit must be 0 or more")
    if args.since_last and args.demo:
        raise InvalidInput("--since-last compares stored scans of the real directories, not --demo")
    settings = load_settings()
    dirs = build_directories(settings, demo=args.demo)
    bar = ProgressBar(sys.stderr)
    try:
        result = run_scan(scan_source_for(dirs), dirs.policy, limit=args.limit, progress=bar)
    except DirectoryError:
        bar.close()
        raise
    bar.close()
    previous = None if args.demo else _stored(settings, result, args.since_last)
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 120
    if args.since_last:
        text = render_changes(
            changes_between(previous.items if previous else (), result.items),
            previous,
            result,
            args.format,
        )
    else:
        text = _render(result, args.format, width)
    _write(text, args.out)
    return 0


__all__ = ["ProgressBar", "add_scan_arguments", "run_scan_command"]
