"""``run_scan``: judge every cloud-only user of the tenant by the same rules as ``check``.

The directories are read once, in bulk, by a :class:`ScanSource`; what it returns are
adapters of the SAME ports ``check`` uses (answered from memory), so each candidate goes
through :func:`bot.services.check.check_match` unchanged: identification, holders, facts and
every rule are shared code, and a scan's verdict for an address is ``check``'s verdict.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.errors import DirectoryError, InvalidInput
from bot.models import CloudUser
from bot.ports import CloudDirectory, OnPremDirectory
from bot.rules.address import primary_smtp
from bot.rules.checks import Report, Status
from bot.rules.codec import report_to_dict
from bot.rules.engine import Policy, choose_target
from bot.scan.indexes import InlineExecutor
from bot.scan.model import ScanItem, ScanResult, StoredScan
from bot.services.check import Directories, check_match
from bot.services.faults import public_fault

log = logging.getLogger(__name__)

#: ``progress(stage, done, total)``: stage ``read`` (directories being read) or ``judge``.
Progress = Callable[[str, int, int], None]


@dataclass
class Snapshot:
    """Both directories as one bulk read left them, behind the directory ports.

    Args:
        onprem: AD, answered from memory.
        cloud: Entra ID, answered from memory.
        users: every Entra ID user (members and guests), in Graph's order.
        confirm_mailboxes: asks Exchange about the mailboxes of the given users before they
            are judged, where the bulk read could not settle them (``None``: all settled).
    """

    onprem: OnPremDirectory
    cloud: CloudDirectory
    users: Sequence[CloudUser]
    confirm_mailboxes: Callable[[Sequence[str]], None] | None = None


class ScanSource(Protocol):
    """Reads both directories in bulk."""

    def read(self) -> Snapshot:
        """One consistent-enough read of both directories.

        Raises:
            DirectoryError: a directory could not be read.
        """
        ...


def is_candidate(user: CloudUser) -> bool:
    """A cloud-only member user: no on-prem immutable id, and sync not enabled for it."""
    return (
        user.user_type.casefold() == "member"
        and not user.on_premises_immutable_id
        and user.on_premises_sync_enabled is not True
        and user.deleted is None
    )


def candidate_address(user: CloudUser) -> str:
    """The address a candidate is checked by: its primary SMTP address, else ``mail``, else
    its UPN (what a helpdesk member would type for it)."""
    return primary_smtp(user.proxy_addresses, user.mail) or user.mail or user.user_principal_name


def _item(user: CloudUser, address: str, report: Report) -> ScanItem:
    plan = report_to_dict(report)["plan"]
    return ScanItem(
        address=address,
        cloud_id=user.id,
        cloud_upn=user.user_principal_name,
        onprem_dn=report.onprem.dn if report.onprem else None,
        verdict=report.verdict,
        failing=tuple(str(c.id) for c in report.checks if c.status is Status.FAIL),
        warnings=tuple(
            str(c.id) for c in report.checks if c.status in (Status.WARN, Status.UNKNOWN)
        ),
        plan=plan,
    )


def run_scan(
    source: ScanSource,
    policy: Policy,
    *,
    limit: int | None = None,
    progress: Progress | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ScanResult:
    """Read both directories once, then judge every cloud-only member user.

    Args:
        source: where the bulk read comes from.
        policy: the rules' policy (sync scope), as for ``check``.
        limit: judge at most this many candidates (in Entra ID's order).
        progress: told about the stages and each judged candidate.

    Raises:
        DirectoryError: a directory could not be read (nothing is judged then).
    """
    report = progress or (lambda stage, done, total: None)
    report("read", 0, 0)
    generated = now()
    snapshot = source.read()
    candidates = [u for u in snapshot.users if is_candidate(u)]
    if limit is not None:
        candidates = candidates[: max(0, limit)]
    addresses = [candidate_address(u) for u in candidates]
    if snapshot.confirm_mailboxes is not None:
        # The user a report is about is chosen among the holders of the address, as check
        # does; only those users' mailboxes matter.
        targets = [choose_target(snapshot.cloud.find_users(a), a) for a in addresses]
        snapshot.confirm_mailboxes([t.id for t in targets if t is not None])
    dirs = Directories(
        onprem=snapshot.onprem, cloud=snapshot.cloud, policy=policy, executor=InlineExecutor()
    )
    items: list[ScanItem] = []
    remedies: dict[str, str] = {}
    total = len(candidates)
    for done, (user, address) in enumerate(zip(candidates, addresses, strict=True), start=1):
        try:
            result = check_match(dirs, address)
        except InvalidInput as exc:
            # check refuses such an address before looking anything up; so does the scan.
            log.warning("scan: %s (%s) not judged: %s", user.user_principal_name, user.id, exc)
            continue
        items.append(_item(user, address, result))
        for check in result.checks:
            if check.status is Status.FAIL and check.remediation:
                remedies.setdefault(str(check.id), check.remediation)
        report("judge", done, total)
    return ScanResult(
        generated=generated,
        cloud_users=len(snapshot.users),
        items=tuple(items),
        remedies=remedies,
    )


# -- the scan as a bot use case (Slack) ------------------------------------------------------


class ScanStore(Protocol):
    """Where scans are kept (the SQL adapter is :class:`bot.store.Store`)."""

    def start_scan(self, requested_by: str | None) -> tuple[StoredScan, bool]:
        """A new running scan, or ``(the running one, False)``: one at a time."""
        ...

    def set_scan_message(self, scan_id: str, channel: str, ts: str) -> None:
        """Where the scan's progress message is."""
        ...

    def finish_scan(self, scan_id: str, result: ScanResult) -> StoredScan:
        """Keep the items and the summary; the scan is done."""
        ...

    def fail_scan(self, scan_id: str, error: str) -> None:
        """The scan failed; nothing of it is kept but the reason."""
        ...

    def beat_scan(self, scan_id: str) -> bool:
        """The running scan's process is alive (False: not stored, and logged)."""
        ...

    def get_scan(self, scan_id: str) -> StoredScan | None:
        """One scan."""
        ...

    def latest_scans(self, limit: int = 2) -> list[StoredScan]:
        """Finished scans, newest first."""
        ...


@dataclass
class ScanServices:
    """What the scan use case needs: the directories (for the policy and the bulk reader)
    and the store."""

    dirs: Directories
    store: ScanStore
    source: Callable[[], ScanSource]
    #: How often a running scan renews its heartbeat (the store takes a scan silent for ten
    #: minutes to have died with its process).
    heartbeat: timedelta = timedelta(minutes=1)


def begin_scan(svc: ScanServices, requested_by: str) -> tuple[StoredScan, bool]:
    """Record a scan as running unless one runs already (then that one is returned)."""
    return svc.store.start_scan(requested_by)


def place_scan(svc: ScanServices, scan_id: str, channel: str, ts: str) -> None:
    """Record where the begun scan's progress message is (it becomes the summary)."""
    svc.store.set_scan_message(scan_id, channel, ts)


def abandon_scan(svc: ScanServices, scan_id: str, why: str) -> None:
    """A begun scan that will not run (its message could not be posted, the bot is busy):
    recorded as failed, so the one-scan lock is free again."""
    svc.store.fail_scan(scan_id, why)


@contextlib.contextmanager
def _heartbeat(svc: ScanServices, scan_id: str) -> Iterator[None]:
    """Renew the scan's heartbeat every ``svc.heartbeat`` while the body runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(svc.heartbeat.total_seconds()):
            svc.store.beat_scan(scan_id)  # a missed beat (logged) only shortens the lock's life

    beating = threading.Thread(target=beat, name=f"scan-heartbeat-{scan_id}", daemon=True)
    beating.start()
    try:
        yield
    finally:
        stop.set()
        beating.join()


def complete_scan(
    svc: ScanServices, scan_id: str, progress: Progress | None = None
) -> tuple[StoredScan, ScanResult]:
    """Run a begun scan and store its items and summary.

    Raises:
        DirectoryError: a directory could not be read; the scan is marked failed.
    """
    try:
        with _heartbeat(svc, scan_id):
            result = run_scan(svc.source(), svc.dirs.policy, progress=progress)
    except Exception as exc:
        # Shown on App Home later: the directory's name, never its host or bind DN.
        shown = public_fault(exc) if isinstance(exc, DirectoryError) else "an unexpected fault"
        svc.store.fail_scan(scan_id, shown)
        raise
    stored = svc.store.finish_scan(scan_id, result)
    return stored, replace(result, scan_id=scan_id)


def latest_scan(svc: ScanServices) -> StoredScan | None:
    """The newest finished scan, if any."""
    latest = svc.store.latest_scans(1)
    return latest[0] if latest else None


__all__ = [
    "Progress",
    "ScanServices",
    "ScanSource",
    "ScanStore",
    "Snapshot",
    "abandon_scan",
    "begin_scan",
    "candidate_address",
    "complete_scan",
    "is_candidate",
    "latest_scan",
    "place_scan",
    "run_scan",
]
