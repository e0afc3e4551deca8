"""Where a scan's bulk read comes from: the live directories, or the embedded demo ones."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from bot.directories.ad import ActiveDirectory
from bot.directories.demo import DemoActiveDirectory, DemoEntraDirectory
from bot.directories.entra import EntraDirectory
from bot.errors import ConfigurationError
from bot.scan.indexes import IndexedActiveDirectory, read_cloud
from bot.services.check import Directories
from bot.services.scan import ScanSource, Snapshot

#: Concurrent Graph reads: users, groups, contacts, deleted users, roles, eligibilities and
#: the tenant, plus AD. Well inside Graph's per-app limits; 429s are waited out anyway.
READ_WORKERS = 8


class LiveScanSource:
    """Reads AD (one paged search) and Entra ID (one paged list per kind) concurrently."""

    def __init__(self, onprem: ActiveDirectory, cloud: EntraDirectory) -> None:
        self._onprem = onprem
        self._cloud = cloud

    def read(self) -> Snapshot:
        """See :meth:`bot.services.scan.ScanSource.read`."""
        with ThreadPoolExecutor(READ_WORKERS, thread_name_prefix="scan-read") as pool:
            onprem = pool.submit(self._onprem.read_all)
            naming = pool.submit(self._onprem.upn_suffixes)
            cloud = read_cloud(self._cloud, pool)
            suffixes, dns_domain = naming.result()
            ad = IndexedActiveDirectory(
                onprem.result(), upn_suffixes=suffixes, dns_domain=dns_domain
            )

        def confirm(user_ids: Sequence[str]) -> None:
            cloud.confirm_mailboxes(cloud.unconfirmed_mailboxes(user_ids))

        return Snapshot(
            onprem=ad,
            cloud=cloud,
            users=[user for _, user in cloud.contents.users],
            confirm_mailboxes=confirm,
        )


class DemoScanSource:
    """The embedded demo directories are in memory already: they are used as they are."""

    def __init__(self, onprem: DemoActiveDirectory, cloud: DemoEntraDirectory) -> None:
        self._onprem = onprem
        self._cloud = cloud

    def read(self) -> Snapshot:
        """See :meth:`bot.services.scan.ScanSource.read`."""
        return Snapshot(onprem=self._onprem, cloud=self._cloud, users=list(self._cloud.users))


def scan_source_for(dirs: Directories) -> ScanSource:
    """The bulk reader for the directory adapters a run was built with.

    Raises:
        ConfigurationError: the adapters offer no bulk read.
    """
    onprem, cloud = dirs.onprem, dirs.cloud
    if isinstance(onprem, ActiveDirectory) and isinstance(cloud, EntraDirectory):
        return LiveScanSource(onprem, cloud)
    if isinstance(onprem, DemoActiveDirectory) and isinstance(cloud, DemoEntraDirectory):
        return DemoScanSource(onprem, cloud)
    raise ConfigurationError("the scan needs the AD and Entra ID directories (or --demo)")


__all__ = ["DemoScanSource", "LiveScanSource", "scan_source_for"]
