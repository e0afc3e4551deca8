"""The ``smtpmatch`` command line: ``check``, ``scan``, ``serve``, ``try`` and ``audit``.

Exit codes (stable, see the README): 0 a report was produced (whatever the verdict), 2 bad usage
or configuration (including credentials or rights a directory refused), 3 a directory could not
be reached, 4 the bot could not serve (its port is in use, or Slack could not be reached).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from bot import __version__
from bot.errors import (
    AuthenticationFailed,
    ConfigurationError,
    DirectoryError,
    InvalidInput,
    SmtpMatchError,
)
from bot.logging_setup import configure_logging
from bot.rules.address import parse_address
from bot.scan_cli import add_scan_arguments, run_scan_command
from bot.settings import Settings, load_settings

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_DIRECTORY = 3
EXIT_SERVE = 4

if TYPE_CHECKING:
    from bot.rules.checks import Report

log = logging.getLogger("smtpmatch")

_EXIT_CODES = """\
exit codes:
  0  a report was produced (whatever the verdict)
  2  bad usage or configuration (credentials or rights a directory refused count as configuration)
  3  a directory could not be reached
  4  the bot could not serve (its port is in use, or Slack could not be reached)
"""


class ServeError(SmtpMatchError):
    """The bot could not start serving: its port is taken or Slack cannot be reached."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors show the usage of the command that was typed."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    common = _Parser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log what the libraries do too (Slack, HTTP, MSAL), for troubleshooting",
    )
    parser = _Parser(
        prog="smtpmatch",
        description="Check and perform SMTP matching of on-prem AD users to Entra ID users.",
        epilog=_EXIT_CODES + "\nRun 'smtpmatch COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"smtpmatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, argparse.ArgumentParser] = {}

    def add(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        command = sub.add_parser(
            name,
            help=summary,
            description=description,
            epilog=_EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )
        commands[name] = command
        return command

    check = add(
        "check",
        "explain whether an address can be SMTP-matched",
        "Look the address up in Entra ID and Active Directory, run every check and print the "
        "verdict, what to do, both entries and the change a match would make. Nothing is "
        "written.",
    )
    check.add_argument("address", help="the cloud user's mailbox address, e.g. jane@contoso.com")
    check.add_argument(
        "account",
        nargs="?",
        help="the AD account to use when several match (sAMAccountName, UPN or DN)",
    )
    check.add_argument(
        "--onprem", metavar="ID", help="the AD account, same as ACCOUNT (sAMAccountName, UPN or DN)"
    )
    check.add_argument("--json", action="store_true", help="print one JSON object instead")
    check.add_argument(
        "--demo", action="store_true", help="use the embedded contoso.com sample directories"
    )

    serve = add(
        "serve",
        "run the Slack bot",
        "Run the Slack bot: Socket Mode when SLACK_APP_TOKEN is set and --http is not given, "
        "else HTTP (POST /slack/events, GET /healthz).",
    )
    serve.add_argument(
        "--http", action="store_true", help="HTTP mode even if SLACK_APP_TOKEN is set"
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=None,
        help="HTTP port, also for /healthz (default: SMTPMATCH_PORT, else 3000)",
    )
    serve.add_argument(
        "--demo", action="store_true", help="use the embedded contoso.com sample directories"
    )

    trial = add(
        "try",
        "try the bot without a Slack workspace",
        "Start the real bot on the demo directories with a local stand-in for Slack, drive it "
        "with signed requests as Slack would, and print what Slack would show: the report, the "
        "approval request, the approval and the sync result. No Slack account, no "
        "configuration, nothing outside this machine.",
    )
    trial.add_argument(
        "address",
        nargs="?",
        default="jane@contoso.com",
        help="a demo address (default jane@contoso.com; an eligible one goes through approval)",
    )

    add_scan_arguments(
        add(
            "scan",
            "judge every cloud-only user of the tenant",
            "Read Entra ID and Active Directory once, in bulk, and judge every cloud-only member "
            "user by the same rules as `check` (same verdict for the same address). Leads with "
            "totals by verdict and the checks to fix first.",
        )
    )

    audit = add(
        "audit",
        "export the audit trail",
        "Print the audit trail (oldest first) from SMTPMATCH_DATABASE_URL.",
    )
    audit.add_argument("--since", metavar="DATE", help="only events at or after DATE (ISO 8601)")
    audit.add_argument(
        "--format", choices=("json", "csv"), default="json", help="output format (default json)"
    )
    audit.add_argument(
        "--request",
        metavar="ID",
        help="only the events of this match request (an older id starting with '-': --request=ID)",
    )
    audit.add_argument(
        "--wave", metavar="ID", help="only the events of this wave and of its users' requests"
    )
    return parser, commands


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed command line; usage errors exit 2 with the typed command's own usage."""
    parser, commands = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "check" and args.account and args.onprem:
        commands["check"].error("give the AD account once: as ACCOUNT or with --onprem")
    return args


def _run_check(args: argparse.Namespace) -> int:
    from bot.bootstrap import build_directories
    from bot.rules.codec import report_to_dict
    from bot.services.check import check_match, parse_onprem_id
    from bot.terminal import render_report, use_colour

    onprem = args.account or args.onprem
    # Validate the input before anything connects to a directory.
    address = parse_address(args.address)
    parse_onprem_id(onprem)
    settings = load_settings()
    dirs = build_directories(settings, demo=args.demo)
    report = check_match(dirs, address, onprem)
    if args.json:
        print(json.dumps(report_to_dict(report), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_report(report, colour=use_colour(sys.stdout)))
    if not args.demo:
        _audit_check(settings, report, onprem)
    return EXIT_OK


def cli_actor() -> str:
    """The audit actor of a command-line run: ``cli:<OS user>``."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"cli:uid{os.getuid()}" if hasattr(os, "getuid") else "cli:unknown"


def _audit_check(settings: Settings, report: Report, onprem: str | None) -> None:
    """Record a command-line check in the bot's audit log, as Slack checks are.

    Only where the bot's database already is: it is opened read-only-style (never created,
    never migrated), so a machine without the bot's database (or a ``--demo`` run, which is
    never recorded) is left as it was. A database that is there but cannot take the event
    is told in one line; the check's result and exit code stand.
    """
    from bot.bootstrap import open_store
    from bot.domain import AuditEventName
    from bot.services.requests import checked_details

    try:
        check_database(settings, must_exist=True)
        store = open_store(settings, read_only=True)
    except ConfigurationError as exc:
        log.info("this check is not recorded in an audit log: %s", exc)
        return
    except Exception as exc:  # noqa: BLE001 (told in one line; the check itself stands)
        _warn_unrecorded(exc)
        return
    try:
        store.append_audit(
            AuditEventName.CHECKED,
            actor=cli_actor(),
            details={**checked_details(report, onprem), "via": "cli"},
        )
    except Exception as exc:  # noqa: BLE001 (told in one line; the check itself stands)
        _warn_unrecorded(exc)
    finally:
        store.close()


def _warn_unrecorded(exc: BaseException) -> None:
    first_line = (str(exc).splitlines() or [""])[0][:200]
    print(
        f"smtpmatch: this check was not recorded in the audit log "
        f"({type(exc).__name__}: {first_line})",
        file=sys.stderr,
    )


def check_database(settings: Settings, *, must_exist: bool = False) -> None:
    """Refuse a database URL the store could not open, with one line saying what to do.

    Raises:
        ConfigurationError: the PostgreSQL driver (the ``postgres`` extra) is not installed, the
            SQLite file's folder does not exist, or (``must_exist``) the SQLite file does not.
    """
    import importlib.util

    url = settings.database_url
    scheme = url.split("://", 1)[0].lower()
    if scheme.startswith("postgres") and importlib.util.find_spec("psycopg") is None:
        raise ConfigurationError(
            "SMTPMATCH_DATABASE_URL: PostgreSQL needs the driver: pip install 'smtpmatch[postgres]'"
        )
    if scheme.startswith("sqlite"):
        path_text = url.split("://", 1)[1].removeprefix("/").split("?", 1)[0]
        if not path_text or path_text == ":memory:":
            return
        path = Path(path_text)
        if not path.parent.is_dir():
            raise ConfigurationError(
                f"SMTPMATCH_DATABASE_URL: the folder {path.parent} does not exist (create it, or "
                "point the URL to another folder)"
            )
        if must_exist and not path.is_file():
            raise ConfigurationError(
                f"no audit log at {path.resolve()}: no database has been created there (set "
                "SMTPMATCH_DATABASE_URL to the bot's database)"
            )


def check_port_free(port: int) -> None:
    """Refuse a port another process already listens on, before the bot starts.

    Raises:
        ServeError: the port is in use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - the bot listens on every interface
        except OSError as exc:
            raise ServeError(
                f"port {port} is not available ({exc.strerror}): try --port N"
            ) from None


def warn_open_access(settings: Settings) -> None:
    """Log, at start-up, who may use the bot when the settings do not narrow it down."""
    if not settings.smtpmatch_requesters:
        log.warning(
            "SMTPMATCH_REQUESTERS is not set: anyone in the workspace may run checks and "
            "request matches"
        )
    if settings.slack_team_id is None:
        log.warning("SLACK_TEAM_ID is not set: requests from any workspace are served")


def _run_serve(args: argparse.Namespace) -> int:
    from bot.http_guard import PortUnavailable
    from bot.server import serve

    settings = load_settings()
    # Every line from here on in the operator's format (SMTPMATCH_LOG_FORMAT).
    configure_logging(service=True, fmt=settings.smtpmatch_log_format)
    check_database(settings)
    port = args.port if args.port is not None else settings.smtpmatch_port
    check_port_free(port)
    warn_open_access(settings)
    try:
        return serve(http=args.http, port=port, demo=args.demo)
    except PortUnavailable as exc:
        raise ServeError(str(exc)) from None
    except OSError as exc:  # urllib's URLError is one: Slack's Web API did not answer
        host = settings.slack_api_url.split("://", 1)[-1].split("/", 1)[0]
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise ServeError(f"Slack could not be reached at {host} ({reason})") from None


def _run_audit(args: argparse.Namespace) -> int:
    from bot.audit_export import export_audit, parse_since

    parse_since(args.since)
    check_database(load_settings(), must_exist=True)
    return export_audit(
        since=args.since,
        fmt=args.format,
        out=sys.stdout,
        request_id=args.request,
        wave_id=args.wave,
    )


def _run_try(args: argparse.Namespace) -> int:
    from bot.trial import run_trial

    return run_trial(parse_address(args.address), out=sys.stdout)


def _fail(exc: BaseException, code: int) -> int:
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"smtpmatch: {line}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smtpmatch`` console script."""
    args = parse_arguments(argv)
    configure_logging(verbose=getattr(args, "verbose", False))
    log.debug("smtpmatch %s, command %s, Python %s", __version__, args.command, sys.version)
    runners = {
        "check": _run_check,
        "scan": run_scan_command,
        "serve": _run_serve,
        "try": _run_try,
        "audit": _run_audit,
    }
    try:
        return runners[args.command](args)
    except (InvalidInput, ConfigurationError, AuthenticationFailed) as exc:
        return _fail(exc, EXIT_USAGE)
    except DirectoryError as exc:
        # The directory answered with a refusal of rights: that is configuration too.
        from bot.errors import PermissionMissing

        return _fail(exc, EXIT_USAGE if isinstance(exc, PermissionMissing) else EXIT_DIRECTORY)
    except ServeError as exc:
        return _fail(exc, EXIT_SERVE)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
