"""The ``smtpmatch`` command line: ``check``, ``scan``, ``serve`` and ``audit``.

Exit codes (stable, DESIGN.md): 0 a report was produced (whatever the verdict), 2 bad usage or
configuration (including credentials or rights a directory refused), 3 a directory could not be
reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from bot.errors import (
    AuthenticationFailed,
    ConfigurationError,
    DirectoryError,
    InvalidInput,
    PermissionMissing,
)
from bot.rules.address import parse_address
from bot.rules.codec import report_to_dict
from bot.scan_cli import add_scan_parser, run_scan_command
from bot.services.check import check_match, parse_onprem_id
from bot.settings import load_settings
from bot.terminal import render_report

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_DIRECTORY = 3

log = logging.getLogger("smtpmatch")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smtpmatch",
        description="Check and perform SMTP matching of on-prem AD users to Entra ID users.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="explain whether an address can be SMTP-matched")
    check.add_argument("address", help="the cloud user's mailbox address, e.g. jane@contoso.com")
    check.add_argument("--onprem", metavar="ID", help="the AD account (sAMAccountName, UPN or DN)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--demo", action="store_true", help="use the embedded sample directories")

    serve = sub.add_parser("serve", help="run the Slack bot")
    serve.add_argument(
        "--http", action="store_true", help="HTTP mode even if SLACK_APP_TOKEN is set"
    )
    serve.add_argument(
        "--port", type=int, default=None, help="HTTP port (default: SMTPMATCH_PORT, else 3000)"
    )
    serve.add_argument("--demo", action="store_true", help="use the embedded sample directories")

    add_scan_parser(sub)

    audit = sub.add_parser("audit", help="export the audit trail")
    audit.add_argument("--since", metavar="DATE", help="only events at or after DATE (ISO 8601)")
    audit.add_argument("--format", choices=("json", "csv"), default="json")
    return parser


def _run_check(args: argparse.Namespace) -> int:
    from bot.bootstrap import build_directories

    # Validate the input before anything connects to a directory.
    parse_address(args.address)
    parse_onprem_id(args.onprem)
    settings = load_settings()
    dirs = build_directories(settings, demo=args.demo)
    report = check_match(dirs, args.address, args.onprem)
    if args.json:
        print(json.dumps(report_to_dict(report), indent=2, ensure_ascii=False))
    else:
        print(render_report(report), end="")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smtpmatch`` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "check":
            return _run_check(args)
        if args.command == "scan":
            return run_scan_command(args)
        if args.command == "serve":
            from bot.server import serve

            return serve(http=args.http, port=args.port, demo=args.demo)
        from bot.audit_export import export_audit

        return export_audit(since=args.since, fmt=args.format, out=sys.stdout)
    except (InvalidInput, ConfigurationError) as exc:
        print(f"smtpmatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (AuthenticationFailed, PermissionMissing) as exc:
        # The directory answered: what it refused is the configuration (credentials, rights).
        print(f"smtpmatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DirectoryError as exc:
        print(f"smtpmatch: {exc}", file=sys.stderr)
        return EXIT_DIRECTORY


if __name__ == "__main__":
    raise SystemExit(main())
