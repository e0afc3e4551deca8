"""What a whole-tenant scan produces: one item per cloud-only user, and the totals."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.rules.checks import Verdict


@dataclass(frozen=True, slots=True)
class ScanItem:
    """One cloud-only user, judged as ``smtpmatch check`` judges its address.

    Args:
        address: the address checked (the user's primary SMTP address, else ``mail``, else
            the UPN).
        cloud_id: the cloud user's object id.
        cloud_upn: its UPN.
        onprem_dn: the AD user identified for it, if exactly one was.
        verdict: the verdict.
        failing: ids of the checks that failed.
        warnings: ids of the checks that warned or could not be verified.
        plan: the change the match would make (the ``check --json`` plan shape), if any.
    """

    address: str
    cloud_id: str
    cloud_upn: str
    onprem_dn: str | None
    verdict: Verdict
    failing: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    plan: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The item in the stable ``smtpmatch scan --format json`` shape."""
        return {
            "address": self.address,
            "cloud": {"id": self.cloud_id, "userPrincipalName": self.cloud_upn},
            "onprem": {"dn": self.onprem_dn} if self.onprem_dn else None,
            "verdict": str(self.verdict),
            "failing": list(self.failing),
            "warnings": list(self.warnings),
            "plan": self.plan,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanItem:
        """The inverse of :meth:`to_dict`."""
        onprem = data.get("onprem") or {}
        return cls(
            address=str(data["address"]),
            cloud_id=str(data["cloud"]["id"]),
            cloud_upn=str(data["cloud"]["userPrincipalName"]),
            onprem_dn=onprem.get("dn"),
            verdict=Verdict(data["verdict"]),
            failing=tuple(data.get("failing") or ()),
            warnings=tuple(data.get("warnings") or ()),
            plan=data.get("plan"),
        )


@dataclass(frozen=True, slots=True)
class ScanResult:
    """A finished scan.

    Args:
        generated: when the directories were read (UTC).
        cloud_users: how many users (members and guests) Entra ID listed.
        items: one per cloud-only member user, in Entra ID's order.
        remedies: per failing check id, the remedy one of its reports gave (for the fix-first
            list).
        scan_id: the stored scan's id, once stored.
    """

    generated: datetime
    cloud_users: int
    items: tuple[ScanItem, ...]
    remedies: dict[str, str] = field(default_factory=dict)
    scan_id: str | None = None

    @property
    def by_verdict(self) -> dict[str, int]:
        """Items per verdict, every verdict listed (zero included), in :class:`Verdict` order."""
        counts = Counter(str(i.verdict) for i in self.items)
        return {str(v): counts.get(str(v), 0) for v in Verdict}

    @property
    def by_check(self) -> dict[str, int]:
        """Items failing each check, most frequent first (the fix-first list)."""
        counts = Counter(check for item in self.items for check in item.failing)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def totals(self) -> dict[str, Any]:
        """``{"cloud_users", "by_verdict", "by_check"}``."""
        return {
            "cloud_users": self.cloud_users,
            "by_verdict": self.by_verdict,
            "by_check": self.by_check,
        }

    def to_dict(self) -> dict[str, Any]:
        """The stable ``smtpmatch scan --format json`` document."""
        return {
            "generated": self.generated.isoformat().replace("+00:00", "Z"),
            "totals": self.totals(),
            "items": [item.to_dict() for item in self.items],
        }


class ScanState(StrEnum):
    """Where a stored scan is."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class StoredScan:
    """A scan as the store keeps it (its items are read separately: there may be many).

    Args:
        summary: ``{"generated", "totals", "remedies"}`` once done; ``{"error"}`` if failed.
        slack_channel: where its progress message is, when started from Slack.
    """

    id: str
    state: ScanState
    started_at: datetime
    requested_by: str | None = None
    finished_at: datetime | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    slack_channel: str | None = None
    slack_ts: str | None = None

    def result(self, items: tuple[ScanItem, ...]) -> ScanResult:
        """The finished scan with its items, as :func:`bot.services.scan.run_scan` returned."""
        totals = self.summary.get("totals") or {}
        generated = self.summary.get("generated")
        return ScanResult(
            generated=datetime.fromisoformat(generated) if generated else self.started_at,
            cloud_users=int(totals.get("cloud_users") or 0),
            items=items,
            remedies=dict(self.summary.get("remedies") or {}),
            scan_id=self.id,
        )


__all__ = ["ScanItem", "ScanResult", "ScanState", "StoredScan"]
