"""What every handler needs (built once by the composition root), and the one way faults are
told: a short message with a reference id that is also in the log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from slack_sdk import WebClient

from bot.errors import DirectoryError, SmtpMatchError
from bot.services.faults import public_fault
from bot.services.requests import RequestServices, new_reference
from bot.services.scan import ScanServices
from bot.services.waves import WaveServices
from bot.slack_views.blocks import Block, error_blocks
from bot.workers import RateLimit, WorkPool

log = logging.getLogger("smtpmatch.handlers")

#: What a user is told when the bot's executors are full (nothing was queued or changed).
BUSY = (
    ":hourglass: smtpmatch is busy right now; try again in a minute. "
    "Nothing was started or changed."
)

#: A reply to a user: ``reply(text, blocks)``.
Reply = Callable[[str, list[Block]], None]


def _pool(name: str, workers: int) -> Callable[[], WorkPool]:
    return lambda: WorkPool(name, workers, 64)


@dataclass
class BotContext:
    """Services, Slack destinations and the bot's own executors, for the handlers.

    Slow work never runs on Bolt's listener threads: checks (directory lookups) on
    ``checks``, decisions (re-check, write, trigger, posts) on ``decisions``, short Slack and
    database work (modals, Home, notices) on ``quick``.
    """

    services: RequestServices
    approval_channel: str | None
    notify_channel: str | None = None
    #: ``SLACK_TEAM_ID``: requests from any other team are refused (``None``: any team).
    team_id: str | None = None
    checks: WorkPool = field(default_factory=_pool("check", 8))
    decisions: WorkPool = field(default_factory=_pool("decide", 8))
    quick: WorkPool = field(default_factory=_pool("quick", 4))
    #: Tells users "busy" when another pool is full; its own queue is long and its work short.
    notices: WorkPool = field(default_factory=lambda: WorkPool("notice", 2, 1000))
    rate_limit: RateLimit = field(default_factory=lambda: RateLimit(10))
    #: Whole-tenant scans (``None``: not offered), run one at a time on ``scan_pool``.
    scans: ScanServices | None = None
    scan_pool: WorkPool = field(default_factory=lambda: WorkPool("scan", 1, 0))
    #: Waves (bulk hand-over; ``None``: not offered), applied on ``wave_pool``.
    waves: WaveServices | None = None
    wave_pool: WorkPool = field(default_factory=lambda: WorkPool("wave", 2, 16))

    def pools(self) -> tuple[WorkPool, ...]:
        """Every executor, for shutting down."""
        return (
            self.checks,
            self.decisions,
            self.quick,
            self.notices,
            self.scan_pool,
            self.wave_pool,
        )

    def tell_busy(self, reply: Reply) -> None:
        """Tell a user the bot is busy, off the listener thread."""
        if not self.notices.submit(_quietly, reply, BUSY):
            log.warning("every executor is full; a user could not even be told so")


def _quietly(reply: Reply, text: str) -> None:
    try:
        reply(text, error_blocks(text, None))
    except Exception:
        log.exception("could not tell a user that the bot is busy")


class SlackTeamDirectory:
    """User-group membership from the Slack Web API, asked at click time (no caching, so a
    member removed from the approvers' group loses the right at once)."""

    def __init__(self, client: WebClient) -> None:
        self._client = client

    def group_members(self, group_id: str) -> Collection[str]:
        """User ids of the group ``group_id`` (``usergroups.users.list``)."""
        response = self._client.usergroups_users_list(usergroup=group_id)
        users = response.get("users") or []
        return frozenset(str(u) for u in users)


def describe_fault(exc: BaseException, what: str) -> tuple[str, list[Block]]:
    """The short message (text, blocks) for a fault; logs it with the same reference id.

    A "no" from the rules is never an exception, so anything here is a fault: a directory
    that could not answer, or a bug. The full error goes to the log only.
    """
    reference = new_reference()
    if isinstance(exc, DirectoryError):
        # The full error names hosts, ports or the bind DN: the log gets it, people do not.
        log.warning("%s failed [ref %s]: %s", what, reference, exc)
        sentence = public_fault(exc)
        return (
            f"{exc.directory} could not answer; nothing was changed. (ref {reference})",
            error_blocks(f"{sentence}, so {what} did not finish. Nothing was changed.", reference),
        )
    if isinstance(exc, SmtpMatchError):
        log.warning("%s failed [ref %s]: %s", what, reference, exc)
        return f"{exc} (ref {reference})", error_blocks(str(exc), reference)
    log.error("%s failed unexpectedly [ref %s]", what, reference, exc_info=exc)
    return (
        f"Something went wrong; nothing was changed. (ref {reference})",
        error_blocks("Something went wrong; nothing was changed.", reference),
    )


def run_telling_faults(reply: Reply, what: str, work: Callable[[], None]) -> None:
    """Run ``work`` (on one of the bot's executors); a fault is told through ``reply``."""
    try:
        work()
    except Exception as exc:  # noqa: BLE001 (told to the user and logged with a reference)
        text, blocks = describe_fault(exc, what)
        try:
            reply(text, blocks)
        except Exception:
            log.exception("could not tell the user about a fault in %s", what)
